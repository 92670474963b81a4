// The detail pane of one flow: overview (summary, all findings, identifiers, correlation keys,
// timings), the request and the response (decoded field tree, pretty XML, exact bytes, headers,
// embedded messages, findings) and the exchange view. All content is built as text nodes.

import { el, clear, verdictBadge, sevBadge, sevClass, sevRank, legClass, fmtDateTime, fmtBytes, fmtMs, preciseTime, svg, statusOK } from './dom.js';
import { prettyNode } from './xml.js';
import { drawExchange } from './seq.js';
import { shortResponse } from './table.js';

const TABS = [
  ['overview', 'Overview'],
  ['request', 'Request'],
  ['response', 'Response'],
  ['exchange', 'Exchange'],
];
const VIEWS = [
  ['tree', 'Fields'],
  ['pretty', 'XML'],
  ['raw', 'Raw'],
  ['headers', 'Headers'],
];
const TREE_EXPAND_ALL = 400; // field trees up to this many nodes open fully

function countFields(f) {
  if (!f) return 0;
  let n = 1;
  for (const c of f.children || []) n += countFields(c);
  return n;
}

function worst(findings) {
  let w = '';
  const rank = { error: 3, warning: 2, info: 1 };
  for (const f of findings || []) if ((rank[f.severity] || 0) > (rank[w] || 0)) w = f.severity;
  return w;
}

// allMessageFindings lists a message's findings and those of its embedded messages, each with
// the scope of the tree its path refers to.
function allMessageFindings(m, scope, out = []) {
  if (!m) return out;
  for (const f of m.findings || []) out.push({ f, scope });
  (m.nested || []).forEach((n, i) => allMessageFindings(n, `${scope}/${i}`, out));
  return out;
}

export class DetailPane {
  constructor(root, { onSelectFlow, onClose, onFilterID }) {
    this.root = root;
    this.onSelectFlow = onSelectFlow;
    this.onClose = onClose;
    this.onFilterID = onFilterID;
    this.tab = 'overview';
    this.view = { request: 'tree', response: 'tree' };
    this.id = null;
    this.data = null;
    this.seq = 0;
    this.trees = new Map(); // scope -> Map(path -> node element)
    this.head = el('div', { class: 'detail-head' });
    this.tabs = el('nav', { class: 'tabs', role: 'tablist' });
    this.body = el('div', { class: 'detail-body', tabindex: '-1' });
    clear(root).append(this.head, this.tabs, this.body);
    root.addEventListener('click', (e) => this.onClick(e));
    root.addEventListener('keydown', (e) => {
      if ((e.key === 'Enter' || e.key === ' ') && e.target.closest('g.msg')) {
        e.preventDefault();
        e.stopPropagation();
        this.onClick(e);
      }
    });
  }

  get open() {
    return !this.root.hidden;
  }

  async show(id, opts = {}) {
    if (opts.tab) this.tab = opts.tab;
    this.root.hidden = false;
    this.id = id;
    const mySeq = ++this.seq;
    if (!this.data || this.data.summary.id !== id) {
      clear(this.head).append(el('span', { class: 'muted', text: `Loading flow #${id}…` }));
    }
    let data;
    try {
      const r = await fetch(`/api/flows/${encodeURIComponent(id)}`);
      if (!r.ok) throw new Error(r.status === 404 ? 'this flow is no longer held (evicted or cleared)' : `HTTP ${r.status}`);
      data = await r.json();
    } catch (err) {
      if (mySeq !== this.seq) return;
      this.data = null;
      clear(this.head).append(el('span', { class: 'title', text: `Flow #${id}` }), this.closeButton());
      clear(this.tabs);
      clear(this.body).append(el('p', { class: 'error-note', text: `Could not load flow #${id}: ${err.message}` }));
      return;
    }
    if (mySeq !== this.seq) return;
    const keep = this.data && this.data.summary.id === id ? this.body.scrollTop : 0;
    this.data = data;
    this.render();
    this.body.scrollTop = keep;
  }

  close() {
    this.root.hidden = true;
    this.id = null;
    this.data = null;
    this.seq++;
  }

  closeButton() {
    return el('button', { class: 'icon close', title: 'Close (Esc)', 'aria-label': 'Close detail', data: { act: 'close' }, text: '✕' });
  }

  render() {
    const d = this.data;
    const s = d.summary;
    const f = d.flow;
    clear(this.head).append(
      verdictBadge(s.verdict, s.errors, s.warnings),
      el('span', { class: 'title', text: `#${s.id}` }),
      el('span', { class: 'leg ' + legClass(s.leg), text: s.leg }),
      el('span', { class: 'method', text: f.method || '' }),
      el('span', { class: 'url', text: f.url || '', title: f.url || '' }),
      el('span', { class: f.statusCode >= 400 || !f.statusCode ? 'http http-bad' : 'http', text: f.statusCode ? String(f.statusCode) : '—' }),
      this.closeButton(),
    );
    clear(this.tabs);
    for (const [key, label] of TABS) {
      let count = null;
      let sev = '';
      if (key === 'overview') {
        const all = this.allFindings();
        count = all.length;
        sev = worst(all.map((x) => x.f));
      } else if (key === 'request' || key === 'response') {
        const fs = allMessageFindings(d[key].message, key).map((x) => x.f);
        count = fs.length;
        sev = worst(fs);
      }
      const b = el('button', { class: 'tab' + (this.tab === key ? ' active' : ''), role: 'tab', 'aria-selected': this.tab === key ? 'true' : 'false', data: { tab: key } }, label);
      if (count) b.append(el('span', { class: 'count ' + (sev ? 'c-' + (sev === 'error' ? 'err' : sev === 'warning' ? 'warn' : 'info') : ''), text: String(count) }));
      this.tabs.append(b);
    }
    this.trees = new Map();
    clear(this.body);
    if (this.tab === 'overview') this.renderOverview();
    else if (this.tab === 'request' || this.tab === 'response') this.renderHalf(this.tab);
    else this.renderExchange();
  }

  // allFindings: flow-level findings, then each message's (nested included), with scopes.
  allFindings() {
    const d = this.data;
    const out = (d.findings || []).map((f) => ({ f, scope: 'flow' }));
    allMessageFindings(d.request.message, 'request', out);
    allMessageFindings(d.response.message, 'response', out);
    return out;
  }

  // ---- overview ------------------------------------------------------------------------------

  renderOverview() {
    const d = this.data;
    const s = d.summary;
    const f = d.flow;
    const kv = el('dl', { class: 'kv' });
    const row = (k, ...v) => kv.append(el('dt', { text: k }), el('dd', {}, ...v));
    row('Leg', el('span', { class: 'leg ' + legClass(s.leg), text: s.leg }), ` ${f.mode || ''} mode`);
    row('Client', el('span', { class: 'mono', text: f.client || '—' }));
    row('Upstream', el('span', { class: 'mono', text: f.upstream || '—' }));
    row('Request', el('span', { class: 'mono', text: `${f.method || ''} ${f.url || ''} ${f.proto || ''}` }));
    row('Messages', el('span', { class: 'mono', text: `${s.reqKind || '—'} → ${s.respKind || '—'}${s.variant ? '  (' + s.variant + ')' : ''}` }));
    row('Status', el('span', { class: 'mono', text: `HTTP ${f.statusCode || '—'}` }), s.status ? el('span', { class: statusOK(s.status) ? 'status-ok mono' : 'status-bad mono', text: `  ${s.status}` }) : null);
    row('Verdict', verdictBadge(s.verdict, s.errors, s.warnings));
    if (f.error) row('Error', el('span', { class: 'error-note', text: f.error }));
    if (f.rules && f.rules.length) row('Rules applied', el('span', { class: 'mono', text: f.rules.join(', ') }));
    this.body.append(this.section('Flow', kv));

    const all = this.allFindings();
    this.body.append(this.section(`Findings (${all.length})`, this.findingList(all, true)));

    const ids = Object.entries(s.ids || {}).sort(([a], [b]) => a.localeCompare(b));
    if (ids.length) {
      const t = el('table', { class: 'grid ids' });
      for (const [k, v] of ids) {
        t.append(el('tr', {}, el('th', { text: k }), el('td', { class: 'mono', text: v }),
          el('td', {}, el('button', { class: 'link small', data: { act: 'filter-id', key: k }, title: 'Show only flows carrying this value', text: 'filter' }))));
      }
      this.body.append(this.section('Identifiers', t));
    }
    const keys = f.correlation || [];
    this.body.append(this.section('Correlation keys', keys.length
      ? el('ul', { class: 'keys' }, keys.map((k) => el('li', { class: 'mono', text: k })))
      : el('p', { class: 'muted', text: 'None: this flow is not tied to others.' })));
    this.body.append(this.section('Timings', this.timings(d.timings)));
  }

  section(title, ...content) {
    return el('section', { class: 'sect' }, el('h3', { text: title }), ...content);
  }

  findingList(items, withScope) {
    if (items.length === 0) return el('p', { class: 'muted', text: 'No findings.' });
    const ul = el('ul', { class: 'findings' });
    items.forEach(({ f, scope }, i) => {
      const li = el('li', { class: 'finding', data: { idx: i } },
        sevBadge(f.severity),
        el('span', { class: 'rule', text: f.rule || '' }),
        el('span', { class: 'fmsg', text: f.message || '' }));
      const meta = el('div', { class: 'fmeta' });
      if (withScope) meta.append(el('span', { class: 'scope', text: scopeLabel(scope, this.data) }));
      if (f.path) meta.append(el('button', { class: 'path link', data: { act: 'goto', idx: i }, title: 'Show this field', text: f.path }));
      if (f.ref) meta.append(el('span', { class: 'ref', text: f.ref }));
      li.append(meta);
      li._finding = { f, scope };
      ul.append(li);
    });
    return ul;
  }

  timings(t) {
    const wrap = el('div', { class: 'timings' });
    const t0 = preciseTime(t.received);
    const rows = [
      ['Received from client', t.received],
      ['Sent upstream', t.sentUpstream],
      ['First byte from upstream', t.firstByte],
      ['Response read from upstream', t.responded],
      ['Done (response written)', t.done],
    ];
    const tbl = el('table', { class: 'grid' });
    let prev = t0;
    const marks = [];
    for (const [label, v] of rows) {
      const at = preciseTime(v);
      if (!v || Number.isNaN(at)) {
        tbl.append(el('tr', {}, el('th', { text: label }), el('td', { class: 'muted', text: '—' }), el('td'), el('td')));
        continue;
      }
      tbl.append(el('tr', {},
        el('th', { text: label }),
        el('td', { class: 'mono', text: fmtDateTime(v) }),
        el('td', { class: 'mono num', text: at === t0 ? '' : `+${(at - t0).toFixed(1)} ms` }),
        el('td', { class: 'mono num muted', text: at === t0 ? '' : `Δ ${(at - prev).toFixed(1)} ms` })));
      marks.push(at - t0);
      prev = at;
    }
    wrap.append(tbl);
    const total = marks.length ? Math.max(...marks) : 0;
    if (total > 0) {
      // A waterfall: proxy in, upstream wait, transfer back.
      const W = 420;
      const bar = svg('svg', { class: 'waterfall', width: W, height: 16, viewBox: `0 0 ${W} 16` });
      const segs = ['w-proxy', 'w-wait', 'w-xfer'];
      for (let i = 1; i < marks.length; i++) {
        const x = (marks[i - 1] / total) * W;
        const w = Math.max(1, ((marks[i] - marks[i - 1]) / total) * W);
        bar.append(svg('rect', { x, y: 3, width: w, height: 10, rx: 2, class: segs[i - 1] || 'w-xfer' }));
      }
      wrap.append(el('div', { class: 'wf' }, bar, el('span', { class: 'mono', text: ` total ${fmtMs(total)}` })));
    }
    return wrap;
  }

  // ---- request / response --------------------------------------------------------------------

  renderHalf(which) {
    const h = this.data[which];
    const m = h.message;
    const info = el('div', { class: 'msg-head' });
    if (m) {
      info.append(el('span', { class: 'family', text: m.family }), el('span', { class: 'kind big', text: m.kind }));
      if (m.variant) info.append(el('span', { class: 'variant', text: m.variant }));
      if (m.role) info.append(el('span', { class: 'muted', text: `from ${m.role}` }));
      if (m.status) info.append(el('span', { class: statusOK(m.status) ? 'status-ok' : 'status-bad', text: `status ${m.status}` }));
      if (m.reason) info.append(el('span', { class: 'error-note', text: m.reason }));
    } else {
      info.append(el('span', { class: 'muted', text: h.size ? 'Not decoded' : 'No body' }));
    }
    const ct = (h.header['Content-Type'] || h.header['content-type'] || [])[0];
    info.append(el('span', { class: 'muted mono', text: [ct, fmtBytes(h.size), h.truncated ? 'truncated' : '', h.binary ? 'binary' : ''].filter(Boolean).join(' · ') }));
    this.body.append(info);

    if (m) {
      const fs = allMessageFindings(m, which).filter((x) => x.scope === which);
      if (fs.length) this.body.append(this.findingList(fs, false));
    }
    const sw = el('div', { class: 'views', role: 'tablist' });
    for (const [key, label] of VIEWS) {
      sw.append(el('button', { class: 'view' + (this.view[which] === key ? ' active' : ''), data: { view: key }, role: 'tab', 'aria-selected': this.view[which] === key ? 'true' : 'false', text: label }));
    }
    this.body.append(sw);
    const pane = el('div', { class: 'view-body' });
    this.body.append(pane);
    switch (this.view[which]) {
      case 'tree':
        if (m && m.fields) pane.append(this.tree(m.fields, which, m.findings));
        else pane.append(el('p', { class: 'muted', text: m ? 'No field tree: the body did not parse as XML.' : 'No decoded message.' }));
        if (m) (m.nested || []).forEach((n, i) => pane.append(this.nestedCard(n, m, `${which}/${i}`)));
        break;
      case 'pretty':
        if (h.text && /^\s*</.test(h.text) && !h.binary) pane.append(prettyNode(h.text));
        else pane.append(el('p', { class: 'muted', text: h.size ? 'The body is not XML; see Raw.' : 'No body.' }));
        break;
      case 'raw':
        pane.append(this.raw(which, h));
        break;
      default:
        pane.append(this.headers(h.header));
    }
  }

  tree(root, scope, findings = []) {
    const map = new Map();
    this.trees.set(scope, map);
    const openAll = countFields(root) <= TREE_EXPAND_ALL;
    const wrap = el('div', { class: 'tree', role: 'tree', data: { scope } });
    const pathBar = el('div', { class: 'pathbar mono', text: 'Click a field to see its path.' });
    const build = (f, depth) => {
      const kids = f.children || [];
      const node = el('div', { class: 'node' + (f.attr ? ' attr' : '') + (kids.length ? '' : ' leaf') + (!openAll && depth >= 2 && kids.length ? ' collapsed' : ''), role: 'treeitem', data: { path: f.path } });
      const line = el('div', { class: 'line', title: f.path });
      line.append(kids.length ? el('button', { class: 'twisty', 'aria-label': 'expand or collapse', data: { act: 'twisty' } }) : el('span', { class: 'twisty-sp' }));
      line.append(el('span', { class: 'name', text: f.attr ? '@' + f.name : f.name }));
      if (f.value !== undefined && f.value !== '') line.append(valueSpan(f.value));
      else if (!kids.length) line.append(el('span', { class: 'value empty', text: '(empty)' }));
      node.append(line);
      map.set(f.path, node);
      if (kids.length) {
        const box = el('div', { class: 'kids', role: 'group' });
        for (const c of kids) box.append(build(c, depth + 1));
        node.append(box);
      }
      return node;
    };
    wrap.append(build(root, 0));
    // Mark the fields findings are about (or, for an absent field, its nearest ancestor).
    const marks = new Map();
    for (const f of findings || []) {
      const node = nearestNode(map, f.path || '');
      if (!node) continue;
      const m = marks.get(node) || { sev: '', rules: [] };
      if (sevRank(f.severity) > sevRank(m.sev)) m.sev = f.severity;
      m.rules.push(`${f.rule}: ${f.message}`);
      marks.set(node, m);
    }
    for (const [node, m] of marks) {
      const line = node.firstChild;
      line.insertBefore(el('span', { class: 'fmark ' + sevClass(m.sev), title: m.rules.join('\n'), text: m.rules.length > 1 ? `${m.rules.length}` : '!' }), line.children[1] || null);
    }
    return el('div', { class: 'tree-wrap' }, pathBar, wrap);
  }

  nestedCard(n, parent, scope) {
    const card = el('div', { class: 'nested' });
    card.append(el('div', { class: 'nested-head' },
      el('span', { class: 'muted', text: 'Embedded' }),
      el('span', { class: 'family', text: n.family }), el('span', { class: 'kind big', text: n.kind }),
      n.role ? el('span', { class: 'muted', text: `from ${n.role}` }) : null,
      n.status ? el('span', { class: statusOK(n.status) ? 'status-ok' : 'status-bad', text: `status ${n.status}` }) : null));
    card.append(el('div', { class: 'nested-at muted' }, 'decoded from ', el('span', { class: 'mono', text: n.nestedPath || '?' })));
    if (n.reason) card.append(el('p', { class: 'error-note', text: n.reason }));
    const fs = (n.findings || []).map((f) => ({ f, scope }));
    if (fs.length) card.append(this.findingList(fs, false));
    if (n.fields) card.append(this.tree(n.fields, scope, n.findings));
    // The embedded bytes are the base64 value of the field it came from: show them as XML too.
    const src = findField(parent.fields, n.nestedPath);
    const xml = src && src.value ? decodeBase64Text(src.value) : null;
    if (xml) card.append(el('details', { class: 'nested-xml' }, el('summary', { text: 'Embedded XML (decoded from base64)' }), prettyNode(xml)));
    (n.nested || []).forEach((c, i) => card.append(this.nestedCard(c, n, `${scope}/${i}`)));
    return card;
  }

  raw(which, h) {
    const box = el('div', { class: 'raw-box' });
    const bar = el('div', { class: 'raw-bar' },
      el('span', { class: 'muted', text: `${h.size} bytes as received${h.truncated ? ' (truncated: only the first part was kept)' : ''}` }),
      el('a', { class: 'button small', href: `/api/flows/${Number(this.data.summary.id)}/${which === 'request' ? 'request' : 'response'}/raw`, download: '', text: 'Download' }),
      el('button', { class: 'small', data: { act: 'wrap' }, text: 'Wrap lines' }));
    box.append(bar);
    if (!h.size) {
      box.append(el('p', { class: 'muted', text: 'No body.' }));
    } else if (h.binary) {
      const pre = el('pre', { class: 'code raw hex', text: 'Loading bytes…' });
      box.append(pre);
      fetch(`/api/flows/${Number(this.data.summary.id)}/${which === 'request' ? 'request' : 'response'}/raw`)
        .then((r) => r.arrayBuffer())
        .then((b) => { pre.textContent = hexdump(new Uint8Array(b)); })
        .catch((e) => { pre.textContent = 'Could not load the bytes: ' + e.message; });
    } else {
      box.append(el('pre', { class: 'code raw', text: h.text }));
    }
    return box;
  }

  headers(hdr) {
    const names = Object.keys(hdr || {}).sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
    if (!names.length) return el('p', { class: 'muted', text: 'No headers.' });
    const t = el('table', { class: 'grid headers' });
    for (const k of names) for (const v of hdr[k] || []) t.append(el('tr', {}, el('th', { class: 'mono', text: k }), el('td', { class: 'mono', text: v })));
    return t;
  }

  // ---- exchange ------------------------------------------------------------------------------

  async renderExchange() {
    const id = this.data.summary.id;
    const mySeq = this.seq;
    const box = el('div', { class: 'exchange' });
    const keys = this.data.flow.correlation || [];
    box.append(el('p', { class: 'muted' }, keys.length ? 'Flows sharing ' : 'This flow has no correlation key; it is shown alone.',
      ...keys.map((k, i) => [i ? ', ' : '', el('span', { class: 'mono', text: k })])));
    const stage = el('div', { class: 'seq-stage', text: 'Loading…' });
    box.append(stage);
    this.body.append(box);
    let rel;
    try {
      const r = await fetch(`/api/related/${Number(id)}`);
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      rel = await r.json();
    } catch (err) {
      if (mySeq === this.seq) stage.textContent = 'Could not load related flows: ' + err.message;
      return;
    }
    if (mySeq !== this.seq || this.tab !== 'exchange') return;
    clear(stage).append(drawExchange(rel, id, stage.clientWidth || 640));
    stage.append(el('p', { class: 'legend muted', text: 'Solid arrows are requests, dashed ones responses, in the order the proxy saw them. Click an arrow or a row to open its flow.' }));
    const t = el('table', { class: 'grid related' }, el('thead', {}, el('tr', {},
      el('th', { text: '#' }), el('th', { text: 'Leg' }), el('th', { text: 'Messages' }), el('th', { text: 'Status' }), el('th', { text: 'Verdict' }))));
    const tb = el('tbody');
    for (const f of rel.flows || []) {
      tb.append(el('tr', { class: f.id === id ? 'sel' : '', data: { flow: f.id } },
        el('td', { class: 'mono', text: String(f.id) }),
        el('td', {}, el('span', { class: 'leg ' + legClass(f.leg), text: f.leg })),
        el('td', { class: 'mono kinds' }, el('span', { text: `${f.reqKind || f.method || ''} →` }), ' ',
          el('span', { text: shortResponse(f.reqKind, f.respKind) || (f.statusCode ? `HTTP ${f.statusCode}` : '—') })),
        el('td', { class: 'mono st ' + (f.status && !statusOK(f.status) ? 'status-bad' : 'status-ok'), text: f.status || (f.error ? 'failed' : '') }),
        el('td', {}, verdictBadge(f.verdict, f.errors, f.warnings))));
    }
    t.append(tb);
    stage.append(this.section(`Related flows (${(rel.flows || []).length})`, t));
  }

  // ---- interaction ---------------------------------------------------------------------------

  onClick(e) {
    const t = e.target;
    const tab = t.closest('[data-tab]');
    if (tab && this.tabs.contains(tab)) {
      this.tab = tab.dataset.tab;
      this.render();
      this.body.scrollTop = 0;
      return;
    }
    const view = t.closest('[data-view]');
    if (view && this.body.contains(view)) {
      this.view[this.tab] = view.dataset.view;
      this.render();
      return;
    }
    const msg = t.closest('g.msg, table.related tr[data-flow]');
    if (msg) {
      const id = Number(msg.dataset.flow);
      if (Number.isFinite(id)) this.onSelectFlow(id, { tab: 'exchange' });
      return;
    }
    const act = t.closest('[data-act]');
    const a = act ? act.dataset.act : '';
    if (a === 'close') {
      this.onClose();
    } else if (a === 'twisty') {
      const node = act.closest('.node');
      node.classList.toggle('collapsed');
      act.setAttribute('aria-expanded', node.classList.contains('collapsed') ? 'false' : 'true');
    } else if (a === 'goto') {
      const li = act.closest('.finding');
      if (li && li._finding) this.gotoFinding(li._finding);
    } else if (a === 'more') {
      const v = act.parentElement;
      if (v && typeof v._full === 'string') v.textContent = v._full;
    } else if (a === 'wrap') {
      const pre = this.body.querySelector('pre.raw');
      if (pre) pre.classList.toggle('wrap');
    } else if (a === 'filter-id') {
      const v = (this.data.summary.ids || {})[act.dataset.key];
      if (v) this.onFilterID(v);
    } else {
      const line = t.closest('.tree .line');
      if (line) {
        const node = line.parentElement;
        for (const c of this.body.querySelectorAll('.node.cur')) c.classList.remove('cur');
        node.classList.add('cur');
        const bar = node.closest('.tree-wrap').querySelector('.pathbar');
        if (bar) bar.textContent = node.dataset.path;
      }
    }
  }

  // gotoFinding shows the field a finding is about: the right tab, the field tree, ancestors
  // opened, the node highlighted and scrolled into view. A path that names a missing field
  // (a mandatory element that is absent) lands on its nearest existing ancestor.
  gotoFinding({ f, scope }) {
    if (!f.path) return;
    let path = f.path;
    if (scope === 'flow') scope = this.scopeOfPath(path);
    // Paths into an embedded message may be written from the outer message's root (the
    // embedding field's path, then the inner path): follow them into the embedded tree.
    const own = scopeMessage(this.data, scope);
    if (own && own.nestedPath && path.startsWith(own.nestedPath + '/')) path = path.slice(own.nestedPath.length);
    for (;;) {
      const m = scopeMessage(this.data, scope);
      const i = ((m && m.nested) || []).findIndex((n) => n.nestedPath && path.startsWith(n.nestedPath + '/'));
      if (i < 0) break;
      path = path.slice(m.nested[i].nestedPath.length);
      scope = `${scope}/${i}`;
    }
    const half = scope.split('/')[0];
    if (half !== 'request' && half !== 'response') return;
    if (this.tab !== half || this.view[half] !== 'tree') {
      this.tab = half;
      this.view[half] = 'tree';
      this.render();
    }
    const map = this.trees.get(scope);
    if (!map) return;
    const node = nearestNode(map, path);
    if (!node) return;
    const exact = node.dataset.path === path;
    path = node.dataset.path;
    for (const c of this.body.querySelectorAll('.node.hl')) c.classList.remove('hl', 'hl-near');
    node.classList.add('hl');
    if (!exact) node.classList.add('hl-near');
    for (let p = node.parentElement; p && p !== this.body; p = p.parentElement) {
      if (p.classList.contains('node')) p.classList.remove('collapsed');
    }
    node.classList.remove('collapsed');
    const bar = node.closest('.tree-wrap').querySelector('.pathbar');
    if (bar) bar.textContent = exact ? f.path : `${f.path} (absent; nearest field ${path})`;
    node.scrollIntoView({ block: 'center' });
  }

  // scopeOfPath picks the message a flow-level finding's path refers to by its root element
  // (the response first: cross-message findings are mostly about the answer).
  scopeOfPath(path) {
    const root = '/' + path.split('/')[1];
    const walk = (m, scope) => {
      if (!m) return null;
      if (m.fields && m.fields.path === root) return scope;
      for (let i = 0; i < (m.nested || []).length; i++) {
        const r = walk(m.nested[i], `${scope}/${i}`);
        if (r) return r;
      }
      return null;
    };
    return walk(this.data.response.message, 'response') || walk(this.data.request.message, 'request') || 'response';
  }
}

const LONG_VALUE = 160;

// valueSpan shows a field value; long ones (base64 certificates, embedded messages) are cut
// until asked for.
function valueSpan(v) {
  if (v.length <= LONG_VALUE) return el('span', { class: 'value', text: v });
  const span = el('span', { class: 'value', text: v.slice(0, 96) + '…' });
  span._full = v;
  span.append(el('button', { class: 'link more', data: { act: 'more' }, text: `show all ${v.length} chars` }));
  return span;
}

// nearestNode returns the tree node at path, or at its nearest existing ancestor.
function nearestNode(map, path) {
  let p = path;
  let node = map.get(p);
  while (!node && p.lastIndexOf('/') > 0) {
    p = p.slice(0, p.lastIndexOf('/'));
    node = map.get(p);
  }
  return node || null;
}

function scopeMessage(data, scope) {
  const parts = scope.split('/');
  let m = data[parts[0]] && data[parts[0]].message;
  for (const i of parts.slice(1)) m = m && m.nested ? m.nested[Number(i)] : null;
  return m;
}

function scopeLabel(scope, data) {
  if (scope === 'flow') return 'flow';
  const m = scopeMessage(data, scope);
  const half = scope.split('/')[0];
  return `${half}${scope.includes('/') ? ' › embedded' : ''}${m && m.kind ? ' · ' + m.kind : ''}`;
}

function findField(f, path) {
  if (!f || !path) return null;
  if (f.path === path) return f;
  for (const c of f.children || []) {
    if (path === c.path || path.startsWith(c.path + '/')) {
      const r = findField(c, path);
      if (r) return r;
    }
  }
  return null;
}

function decodeBase64Text(v) {
  try {
    const bin = atob(v.replace(/\s+/g, ''));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const s = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    return /^\s*</.test(s) ? s : null;
  } catch {
    return null;
  }
}

function hexdump(b) {
  const lines = [];
  for (let i = 0; i < b.length && i < 1 << 20; i += 16) {
    const row = b.subarray(i, i + 16);
    const hex = Array.from(row, (x) => x.toString(16).padStart(2, '0')).join(' ');
    const asc = Array.from(row, (x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${asc}`);
  }
  return lines.join('\n');
}
