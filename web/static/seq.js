// The exchange view: the flows that share a correlation key with the selected one, drawn as a
// sequence diagram. Lifelines are the parties (Device, one RI per host, DEA, OCSP responder);
// every flow contributes a request arrow at the time the proxy received it and a response arrow
// at the time it completed, so nested exchanges (RI → DEA inside device → RI) read in order.

import { svg, el, sevClass, preciseTime, fmtMs, statusOK } from './dom.js';

const MARGIN = 10;
const HEAD_H = 52;
const ROW_H = 46;
const LABEL_W = 7.0; // width of an 11.5px monospace glyph (0.6 em), for truncation
const META_W = 6.4; // same at 10.5px

function trunc(s, max) {
  s = String(s || '');
  return s.length > max ? s.slice(0, Math.max(1, max - 1)) + '…' : s;
}

// lanesFor assigns every flow's two ends to lifelines.
export function layout(flows) {
  const lanes = new Map(); // key -> {key, role, label, host}
  const order = { device: 0, ri: 1, dea: 2, ocsp: 3, other: 4 };
  const lane = (key, role, label, host) => {
    if (!lanes.has(key)) lanes.set(key, { key, role, label, host, first: lanes.size });
    return key;
  };
  // RIs are known by host from the flows that go to them; RI IDs seen there name them when the
  // RI is the client (towards the DEA or the OCSP responder), where only an address is known.
  const riByID = new Map();
  for (const f of flows) {
    if ((f.leg === 'device-ri' || f.leg === 'dea-ri') && f.ids && f.ids.riID) riByID.set(f.ids.riID, f.host);
  }
  const riHosts = [...new Set(flows.filter((f) => f.leg === 'device-ri' || f.leg === 'dea-ri').map((f) => f.host))];
  const riLane = (host) => lane('ri:' + host, 'ri', 'RI', host);
  const clientRI = (f) => {
    const ids = f.ids || {};
    const host = riByID.get(ids.reqID) || riByID.get(ids.riID) || (riHosts.length === 1 ? riHosts[0] : null);
    return host !== null && host !== undefined ? riLane(host) : lane('ri:?' + f.client, 'ri', 'RI', f.client);
  };
  const ends = new Map();
  for (const f of flows) {
    let from;
    let to;
    switch (f.leg) {
      case 'device-ri':
        from = lane('device', 'device', 'Device', '');
        to = riLane(f.host);
        break;
      case 'ri-dea':
        from = clientRI(f);
        to = lane('dea', 'dea', 'DEA', f.host);
        break;
      case 'dea-ri':
        from = lane('dea', 'dea', 'DEA', '');
        to = riLane(f.host);
        break;
      case 'ocsp':
        from = clientRI(f);
        to = lane('ocsp', 'ocsp', 'OCSP responder', f.host);
        break;
      default:
        from = lane('client:' + f.client, 'other', 'Client', f.client);
        to = lane('host:' + f.host, 'other', 'Server', f.host);
    }
    ends.set(f.id, { from, to });
  }
  // A DEA lane first met as a client has no host yet: take it from a flow that went to it.
  const dea = lanes.get('dea');
  if (dea && !dea.host) dea.host = (flows.find((f) => f.leg === 'ri-dea') || {}).host || '';
  const sorted = [...lanes.values()].sort((a, b) => order[a.role] - order[b.role] || a.first - b.first);
  sorted.forEach((l, i) => { l.index = i; });

  const events = [];
  for (const f of flows) {
    const t0 = preciseTime(f.time);
    const e = ends.get(f.id);
    events.push({ f, dir: 'req', t: t0, from: e.from, to: e.to });
    // The response arrow sits where the proxy had the whole answer, not where it finished
    // forwarding it: only the former is causally ordered across nested exchanges.
    const t1 = t0 + (Number(f.respondedMs) || Number(f.durationMs) || 0);
    events.push({ f, dir: 'resp', t: t1, from: e.to, to: e.from });
  }
  // Time order; at equal times a request comes before responses, and a flow's request before its
  // own response.
  events.sort((a, b) => a.t - b.t || (a.dir === b.dir ? a.f.id - b.f.id : a.dir === 'req' ? -1 : 1));
  return { lanes: sorted, byKey: lanes, events };
}

// drawExchange returns the diagram as an <svg> element (or a note when there is nothing to draw).
// width is the room available; lifelines share it (within limits, beyond which it scrolls).
export function drawExchange(related, selectedId, width = 640) {
  const flows = (related && related.flows) || [];
  if (flows.length === 0) return el('p', { class: 'muted', text: 'No related flows.' });
  const { lanes, byKey, events } = layout(flows);
  const COL_W = Math.max(118, Math.min(280, Math.floor((width - MARGIN * 2) / Math.max(1, lanes.length))));
  width = MARGIN * 2 + lanes.length * COL_W;
  const height = HEAD_H + events.length * ROW_H + 24;
  const x = (key) => MARGIN + byKey.get(key).index * COL_W + COL_W / 2;
  const root = svg('svg', { class: 'seq', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'message sequence' });
  root.appendChild(svg('defs', {},
    svg('marker', { id: 'seq-ah', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'ah' })),
    svg('marker', { id: 'seq-ah-sel', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'ah-sel' }))));

  for (const l of lanes) {
    const cx = MARGIN + l.index * COL_W + COL_W / 2;
    const g = svg('g', { class: 'lifeline lane-' + l.role, data: { role: l.role, lane: l.index } });
    g.appendChild(svg('line', { x1: cx, y1: HEAD_H - 6, x2: cx, y2: height - 8, class: 'life' }));
    const boxW = Math.min(COL_W - 12, 180);
    g.appendChild(svg('rect', { x: cx - boxW / 2, y: 6, width: boxW, height: HEAD_H - 14, rx: 5, class: 'head' }));
    g.appendChild(svg('text', { x: cx, y: 23, 'text-anchor': 'middle', class: 'head-role', text: l.label }));
    g.appendChild(svg('text', { x: cx, y: 38, 'text-anchor': 'middle', class: 'head-host', text: trunc(l.host, Math.floor((boxW - 6) / 5.75)) }));
    g.appendChild(svg('title', { text: `${l.label} ${l.host}` }));
    root.appendChild(g);
  }

  events.forEach((ev, i) => {
    const { f, dir } = ev;
    const y = HEAD_H + i * ROW_H + 30;
    const x1 = x(ev.from);
    const x2 = x(ev.to);
    const self = x1 === x2;
    const sel = f.id === selectedId;
    const failed = dir === 'resp' && !!f.error;
    const cls = ['msg', dir, sel ? 'sel' : '', failed ? 'failed' : ''].filter(Boolean).join(' ');
    const kind = dir === 'req'
      ? (f.reqKind || `${f.method || ''} ${f.path || ''}`.trim())
      : (failed ? '✕ no response' : f.respKind || (f.statusCode ? `HTTP ${f.statusCode}` : 'response'));
    const status = dir === 'req'
      ? (f.variant || '')
      : [f.statusCode ? String(f.statusCode) : '', f.status || ''].filter(Boolean).join(' · ');
    const g = svg('g', {
      class: cls, tabindex: 0, role: 'button',
      data: { flow: f.id, dir, kind, from: byKey.get(ev.from).role, to: byKey.get(ev.to).role, order: i },
      'aria-label': `${dir === 'req' ? 'request' : 'response'} ${kind} of flow ${f.id}`,
    });
    const span = Math.abs(x2 - x1) || COL_W;
    const left = Math.min(x1, x2);
    g.appendChild(svg('rect', { x: left - 4, y: y - 26, width: span + 8, height: ROW_H - 6, class: 'hit' }));
    if (self) {
      g.appendChild(svg('path', { d: `M${x1},${y - 8} h40 v16 h-36`, class: 'arrow', 'marker-end': sel ? 'url(#seq-ah-sel)' : 'url(#seq-ah)' }));
    } else {
      g.appendChild(svg('line', { x1, y1: y, x2: x2 + (x2 > x1 ? -1 : 1), y2: y, class: 'arrow', 'marker-end': sel ? 'url(#seq-ah-sel)' : 'url(#seq-ah)' }));
    }
    // Labels may run past the arrow's ends (over the dashed lifelines) but stay in the picture.
    const room = Math.min(span + COL_W * 0.8, width - MARGIN * 2);
    const label = trunc(kind, Math.max(6, Math.floor((room - 26) / LABEL_W)));
    const labelW = label.length * LABEL_W + 20; // with the verdict badge
    const mid = Math.max(MARGIN + labelW / 2, Math.min(width - MARGIN - labelW / 2, left + span / 2));
    const badgeText = f.verdict === 'error' ? 'E' : f.verdict === 'warning' ? 'W' : f.verdict === 'info' ? 'i' : '✓';
    const bx = mid - labelW / 2;
    g.appendChild(svg('rect', { x: bx, y: y - 19, width: 14, height: 13, rx: 3, class: 'vbadge ' + sevClass(f.verdict) }));
    g.appendChild(svg('text', { x: bx + 7, y: y - 9, 'text-anchor': 'middle', class: 'vbadge-t', text: badgeText }));
    g.appendChild(svg('text', { x: bx + 20, y: y - 8, class: 'label', text: label }));
    const meta = dir === 'req'
      ? [`#${f.id}`, f.method, f.path, status].filter(Boolean).join(' ')
      : [`#${f.id}`, status, fmtMs(f.durationMs)].filter(Boolean).join('  ');
    const metaMax = Math.floor((room - 10) / META_W);
    g.appendChild(svg('text', { x: Math.max(MARGIN + Math.min(meta.length, metaMax) * META_W / 2, Math.min(width - MARGIN - Math.min(meta.length, metaMax) * META_W / 2, left + span / 2)), y: y + 14, 'text-anchor': 'middle', class: 'meta ' + (dir === 'resp' && ((f.status && !statusOK(f.status)) || failed) ? 'bad' : ''), text: trunc(meta, metaMax) }));
    g.appendChild(svg('title', { text: `#${f.id} ${dir === 'req' ? 'request' : 'response'}: ${kind}${status ? ' · ' + status : ''} · verdict ${f.verdict || 'ok'} (${f.errors} errors, ${f.warnings} warnings)` }));
    root.appendChild(g);
  });
  return root;
}
