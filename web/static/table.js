// The flow table: a virtualized list with a fixed row height. Only the rows in view (plus a small
// margin) exist in the DOM; they are reused as the view scrolls, filled with textContent, and
// rendered at most once per animation frame. Clicks are handled by one delegated listener.

import { el, clear, verdictBadge, legClass, fmtTime, fmtBytes, fmtMs, statusOK } from './dom.js';

const OVERSCAN = 8;

export const COLUMNS = [
  { key: 'id', label: '#', cls: 'c-id' },
  { key: 'time', label: 'Time', cls: 'c-time' },
  { key: 'leg', label: 'Leg · peers', cls: 'c-peers' },
  { key: 'kind', label: 'Messages', cls: 'c-kind' },
  { key: 'status', label: 'Status', cls: 'c-status' },
  { key: 'verdict', label: 'Verdict', cls: 'c-verdict' },
  { key: 'size', label: 'Size', cls: 'c-size' },
  { key: 'dur', label: 'Duration', cls: 'c-dur' },
];

export class FlowTable {
  // scroller: the overflow element; onOpen(id) when a row is clicked; onScrollUser(atEnd) when
  // the user scrolls (not when the table scrolls itself).
  constructor(scroller, { onOpen, onJump }) {
    this.scroller = scroller;
    this.spacer = el('div', { class: 'spacer' });
    this.body = el('div', { class: 'rows', role: 'rowgroup' });
    scroller.append(this.spacer, this.body);
    this.rowH = parseFloat(getComputedStyle(scroller).getPropertyValue('--row-h')) || 22;
    this.flows = [];
    this.pool = [];
    this.selectedId = null;
    this.follow = true;
    this.onOpen = onOpen;
    this.onJump = onJump;
    this.jumpShown = false;
    this.pending = false;
    this.lastHeight = -1;
    this.pendingShift = 0;

    scroller.addEventListener('click', (e) => {
      const row = e.target.closest('.row');
      if (!row || !this.scroller.contains(row)) return;
      const id = Number(row.dataset.id);
      if (Number.isFinite(id)) this.onOpen(id);
    });
    scroller.addEventListener('scroll', () => {
      // Following is a matter of position: at the end, new rows keep the view at the end.
      this.follow = this.atEnd();
      this.schedule();
    }, { passive: true });
    new ResizeObserver(() => {
      // Keep the header's columns over the rows' when the scrollbar takes space.
      const head = scroller.parentElement.querySelector('.thead');
      if (head) head.style.paddingRight = `${scroller.offsetWidth - scroller.clientWidth}px`;
      this.schedule();
    }).observe(scroller);
  }

  atEnd() {
    const s = this.scroller;
    return s.scrollTop + s.clientHeight >= s.scrollHeight - this.rowH * 1.5;
  }

  // setFlows replaces the list the table shows (the array is owned by the caller and may grow).
  setFlows(flows) {
    this.flows = flows;
    this.schedule();
  }

  setFollow(on) {
    this.follow = on;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  indexOf(id) {
    // Flows are in arrival order and IDs mostly increase: look near the binary-search position
    // first, then fall back to a scan.
    const f = this.flows;
    let lo = 0;
    let hi = f.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (f[mid].id === id) return mid;
      if (f[mid].id < id) lo = mid + 1;
      else hi = mid - 1;
    }
    for (let i = Math.max(0, lo - 64); i < Math.min(f.length, lo + 64); i++) if (f[i].id === id) return i;
    return f.findIndex((x) => x.id === id);
  }

  // reveal scrolls the row at index i into view.
  reveal(i) {
    const s = this.scroller;
    const top = i * this.rowH;
    if (top < s.scrollTop) s.scrollTop = top;
    else if (top + this.rowH > s.scrollTop + s.clientHeight) s.scrollTop = top + this.rowH - s.clientHeight;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // shift keeps the rows in view in place when n rows were inserted above them.
  shift(n) {
    if (!this.follow && n > 0) this.pendingShift += n;
    this.schedule();
  }

  render() {
    const n = this.flows.length;
    const h = n * this.rowH;
    if (h !== this.lastHeight) {
      this.spacer.style.height = `${h}px`;
      this.lastHeight = h;
    }
    if (this.pendingShift) {
      this.scroller.scrollTop += this.pendingShift * this.rowH;
      this.pendingShift = 0;
    }
    if (this.follow && n > 0) {
      const target = Math.max(0, h - this.scroller.clientHeight);
      if (Math.abs(this.scroller.scrollTop - target) > 1) {
        this.scroller.scrollTop = target;
      }
    }
    const viewH = this.scroller.clientHeight || 600;
    // Offer to follow again only when there is somewhere to go.
    const jump = !this.follow && h - this.scroller.scrollTop - viewH > this.rowH;
    if (jump !== this.jumpShown) {
      this.jumpShown = jump;
      this.onJump(jump);
    }
    const inView = Math.ceil(viewH / this.rowH) + 2 * OVERSCAN;
    // The list may have shrunk under a view scrolled far down: never start past its end.
    const first = Math.max(0, Math.min(Math.floor(this.scroller.scrollTop / this.rowH) - OVERSCAN, n - inView));
    const count = Math.max(0, Math.min(n - first, inView));
    while (this.pool.length < count) this.pool.push(this.makeRow());
    while (this.pool.length > count) this.pool.pop().remove();
    this.body.style.transform = `translateY(${first * this.rowH}px)`;
    for (let k = 0; k < count; k++) {
      const row = this.pool[k];
      if (!row.isConnected) this.body.appendChild(row);
      this.fill(row, this.flows[first + k], first + k);
    }
  }

  makeRow() {
    const cells = {};
    const row = el('div', { class: 'row', role: 'row' });
    for (const c of COLUMNS) {
      cells[c.key] = el('div', { class: 'cell ' + c.cls, role: 'cell' });
      row.appendChild(cells[c.key]);
    }
    row._cells = cells;
    return row;
  }

  fill(row, s, index) {
    const odd = index % 2 === 1;
    row.classList.toggle('odd', odd);
    row.classList.toggle('selected', s.id === this.selectedId);
    if (row._flow === s && row._ver === s._v) return;
    row._flow = s;
    row._ver = s._v;
    row.dataset.id = String(s.id);
    const c = row._cells;
    c.id.textContent = String(s.id);
    c.time.textContent = fmtTime(s.time);

    clear(c.leg);
    c.leg.append(el('span', { class: 'leg ' + legClass(s.leg), text: s.leg || '?' }),
      el('span', { class: 'peers' }, el('span', { class: 'client', text: `${s.client || '?'} → ` }), s.host || '?'));
    c.leg.title = `${s.method || ''} ${s.host || ''}${s.path || ''}\nfrom ${s.client || '?'}`;

    clear(c.kind);
    if (s.reqKind || s.respKind) {
      c.kind.append(el('span', { class: 'kind', text: s.reqKind || '—' }), el('span', { class: 'arrow', text: ' → ' }),
        el('span', { class: 'kind', text: shortResponse(s.reqKind, s.respKind) || '—' }));
      if (s.variant) c.kind.append(el('span', { class: 'variant', text: ' ' + s.variant }));
    } else {
      c.kind.append(el('span', { class: 'method', text: (s.method || '') + ' ' }), el('span', { class: 'path', text: s.path || '/' }));
    }
    c.kind.title = `${s.reqKind || '—'} → ${s.respKind || '—'}${s.variant ? ' (' + s.variant + ')' : ''}`;

    clear(c.status);
    if (s.error) c.status.append(el('span', { class: 'status-fail', text: '✕ failed', title: s.error }));
    else if (s.status) c.status.append(el('span', { class: statusOK(s.status) ? 'status-ok' : 'status-bad', text: s.status }));
    if (!s.error && (s.statusCode !== 200 || !s.status)) {
      c.status.append(el('span', { class: s.statusCode >= 400 || !s.statusCode ? 'http http-bad' : 'http', text: s.statusCode ? `HTTP ${s.statusCode}` : '' }));
    }
    c.status.title = `HTTP ${s.statusCode || '—'}${s.status ? ' · ' + s.status : ''}${s.error ? ' · ' + s.error : ''}`;

    clear(c.verdict);
    c.verdict.append(verdictBadge(s.verdict, s.errors, s.warnings));
    c.size.textContent = fmtBytes(s.size);
    c.dur.textContent = fmtMs(s.durationMs);
  }

  select(id) {
    this.selectedId = id;
    for (const row of this.pool) row.classList.toggle('selected', row._flow && row._flow.id === id);
  }

  // invalidate forces the rows to be refilled (after a summary changed in place).
  invalidate() {
    for (const row of this.pool) row._flow = null;
    this.schedule();
  }
}

// shortResponse abbreviates a response kind that only repeats its request's ("…Response" for
// leaveDomainRequest → leaveDomainResponse), so long SCE names fit.
export function shortResponse(req, resp) {
  if (req && resp && req.endsWith('Request') && resp === req.slice(0, -7) + 'Response') return '…Response';
  return resp;
}
