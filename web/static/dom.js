// DOM helpers. Everything a flow carries is hostile, so the UI builds nodes only through these:
// text goes in with textContent, attributes come from a fixed allowlist of names, and class names,
// URLs and styles are never taken from traffic (callers map data to classes via lookup tables).

const ATTRS = new Set([
  'title', 'type', 'role', 'tabindex', 'hidden', 'disabled', 'placeholder', 'value', 'name', 'for', 'id',
  'aria-label', 'aria-selected', 'aria-expanded', 'aria-controls', 'aria-pressed', 'colspan', 'download', 'spellcheck',
  'autocomplete',
]);

// el('div', {class: 'a b', text: 'x', title: 't', data: {id: 3}}, child, 'text', …)
export function el(tag, props, ...children) {
  const n = document.createElement(tag);
  if (props) applyProps(n, props);
  append(n, children);
  return n;
}

function applyProps(n, props) {
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.setAttribute('class', v);
    else if (k === 'text') n.textContent = String(v);
    else if (k === 'data') {
      for (const [dk, dv] of Object.entries(v)) {
        // Names are the caller's constants; values are inert attribute text.
        if (/^[a-z][a-zA-Z0-9]*$/.test(dk)) n.dataset[dk] = String(dv);
      }
    } else if (k === 'href') {
      // Only same-origin API paths built by this code.
      const s = String(v);
      if (/^\/api\/[A-Za-z0-9/_.?=&-]*$/.test(s)) n.setAttribute('href', s);
    } else if (ATTRS.has(k)) {
      n.setAttribute(k, v === true ? '' : String(v));
    } else {
      throw new Error('dom: attribute not allowed: ' + k);
    }
  }
}

function append(n, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(n, c);
    else if (c instanceof Node) n.appendChild(c);
    else n.appendChild(document.createTextNode(String(c)));
  }
}

const SVGNS = 'http://www.w3.org/2000/svg';
const SVG_ATTRS = new Set([
  'x', 'y', 'x1', 'y1', 'x2', 'y2', 'width', 'height', 'rx', 'ry', 'd', 'points', 'viewBox', 'class', 'id',
  'markerWidth', 'markerHeight', 'refX', 'refY', 'orient', 'markerUnits', 'text-anchor', 'dominant-baseline',
  'marker-end', 'marker-start', 'role', 'tabindex', 'aria-label', 'cx', 'cy', 'r', 'preserveAspectRatio',
]);

// svg('line', {x1: 0, …}, …): numbers and constant strings only; text via the text prop.
export function svg(tag, props, ...children) {
  const n = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') n.textContent = String(v);
    else if (k === 'data') {
      for (const [dk, dv] of Object.entries(v)) if (/^[a-z][a-zA-Z0-9]*$/.test(dk)) n.dataset[dk] = String(dv);
    } else if (SVG_ATTRS.has(k)) n.setAttribute(k, String(v));
    else throw new Error('dom: svg attribute not allowed: ' + k);
  }
  append(n, children);
  return n;
}

export function clear(n) {
  while (n.firstChild) n.removeChild(n.firstChild);
  return n;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// Severity, leg and verdict names map to CSS classes through these tables only.
const SEV = { error: 'sev-error', warning: 'sev-warning', info: 'sev-info' };
export const sevClass = (s) => SEV[s] || 'sev-ok';
// statusOK says whether a protocol status means success: ROAP and SCE say "Success", an OCSP
// responder "successful".
export const statusOK = (s) => s === 'Success' || s === 'successful';
export const sevRank = (s) => ({ error: 3, warning: 2, info: 1 })[s] || 0;

export const LEGS = ['device-ri', 'ri-dea', 'dea-ri', 'ocsp', 'other'];
const LEG_CLASS = { 'device-ri': 'leg-dri', 'ri-dea': 'leg-rdea', 'dea-ri': 'leg-deari', ocsp: 'leg-ocsp', other: 'leg-other' };
export const legClass = (l) => LEG_CLASS[l] || 'leg-other';

// A verdict badge: "error 2", "warn 3", "info", "ok".
export function verdictBadge(verdict, errors = 0, warnings = 0) {
  const cls = 'badge ' + sevClass(verdict);
  let text = 'ok';
  if (verdict === 'error') text = errors > 0 ? `error ${errors}` : 'error';
  else if (verdict === 'warning') text = warnings > 0 ? `warn ${warnings}` : 'warn';
  else if (verdict === 'info') text = 'info';
  const title = `${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`;
  return el('span', { class: cls, text, title });
}

export function sevBadge(sev) {
  const text = sev === 'warning' ? 'warn' : sev === 'error' || sev === 'info' ? sev : '?';
  return el('span', { class: 'badge ' + sevClass(sev), text });
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

export function fmtTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtDateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(iso)}`;
}

export function fmtBytes(n) {
  n = Number(n) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}

export function fmtMs(ms) {
  ms = Number(ms);
  if (!Number.isFinite(ms) || ms <= 0) return '';
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

// Time in ms since the epoch with sub-millisecond precision kept from RFC 3339 nanoseconds, so
// events a fraction of a millisecond apart still order correctly.
export function preciseTime(iso) {
  if (typeof iso !== 'string') return NaN;
  const m = /^([^.]*\.\d{1,3})(\d*)(.*)$/.exec(iso);
  if (!m) return Date.parse(iso);
  const base = Date.parse(m[1] + m[3]);
  return m[2] ? base + Number('0.' + m[2]) : base;
}
