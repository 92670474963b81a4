// roapproxy UI: the live flow table over the event stream, server-side filters mirrored in the URL
// hash, the detail pane, the rule catalogue. See web/stream.go for the stream protocol.

import { el, $ } from './dom.js';
import { FlowTable, COLUMNS } from './table.js';
import { DetailPane } from './detail.js';
import { RulesDialog } from './rules.js';

const FILTER_KEYS = ['q', 'kind', 'id', 'domain', 'status', 'severity', 'leg'];
const PAGE = 5000; // the largest page /api/flows serves
const MAX_FLOWS = 250000; // the table forgets the oldest rows beyond this

const state = {
  flows: [],
  byId: new Map(),
  errors: 0,
  warnings: 0,
  lastSeq: 0,
  total: 0, // flows matching the filter on the server, per the last snapshot
  paused: false,
  queue: [], // events held while paused
  buffered: 0, // new flows among them
  expectSnapshot: false, // the next snapshot answers a user action: apply it even when paused
  filter: {},
  ws: null,
  wsGen: 0,
  backoff: 500,
  connected: false,
  everLive: false, // connected at least once: a lost connection shows as "reconnecting"
  loadGen: 0,
  loadingOlder: 0,
  selectedId: null,
};

// ---- header --------------------------------------------------------------------------------

let headerPending = false;
function updateHeader() {
  if (headerPending) return;
  headerPending = true;
  requestAnimationFrame(() => {
    headerPending = false;
    $('#count-flows').textContent = state.flows.length.toLocaleString('en-US');
    $('#count-errors').textContent = state.errors.toLocaleString('en-US');
    $('#count-warnings').textContent = state.warnings.toLocaleString('en-US');
    const notes = [];
    if (state.loadingOlder > 0) notes.push(`loading ${state.loadingOlder.toLocaleString('en-US')} older…`);
    if (state.paused) notes.push(`${state.buffered.toLocaleString('en-US')} buffered`);
    $('#count-note').textContent = notes.join(' · ');
    const pause = $('#btn-pause');
    pause.textContent = state.paused ? `Resume${state.buffered ? ` (${state.buffered.toLocaleString('en-US')})` : ''}` : 'Pause';
    pause.setAttribute('aria-pressed', state.paused ? 'true' : 'false');
    pause.classList.toggle('on', state.paused);
    const conn = $('#conn');
    const cs = !state.connected ? (state.everLive ? 'reconnecting' : 'connecting') : state.paused ? 'paused' : 'live';
    conn.dataset.state = cs;
    $('#conn-text').textContent = cs;
    const empty = $('#empty');
    empty.hidden = state.flows.length > 0;
    empty.textContent = activeFilterCount() ? 'No flows match the filter.' : state.connected ? 'Waiting for traffic… point a device, an RI or a DEA at the proxy.' : 'Connecting to the proxy…';
  });
}

// ---- table data ----------------------------------------------------------------------------

function resetData() {
  state.flows = [];
  state.byId = new Map();
  state.errors = 0;
  state.warnings = 0;
  state.loadGen++;
  state.loadingOlder = 0;
  table.setFlows(state.flows);
  updateHeader();
}

function addFlow(s) {
  if (!s || typeof s.id !== 'number' || state.byId.has(s.id)) return false;
  s._v = 0;
  state.flows.push(s);
  state.byId.set(s.id, s);
  state.errors += s.errors || 0;
  state.warnings += s.warnings || 0;
  return true;
}

function trim() {
  const extra = state.flows.length - MAX_FLOWS;
  if (extra <= 0) return;
  for (const s of state.flows.splice(0, extra)) {
    state.byId.delete(s.id);
    state.errors -= s.errors || 0;
    state.warnings -= s.warnings || 0;
  }
  table.setFlows(state.flows);
}

function applyFindings(ev) {
  const s = state.byId.get(ev.flowId);
  if (!s) return false;
  const rank = { error: 3, warning: 2, info: 1 };
  for (const f of ev.findings || []) {
    if (f.severity === 'error') { s.errors++; state.errors++; }
    if (f.severity === 'warning') { s.warnings++; state.warnings++; }
    if ((rank[f.severity] || 0) > (rank[s.verdict] || 0)) s.verdict = f.severity;
    s.findings = s.findings || [];
    if (!s.findings.includes(f.rule)) s.findings.push(f.rule);
  }
  s._v++;
  table.invalidate();
  if (detail.open && detail.id === s.id) detail.show(s.id);
  return true;
}

function applySnapshot(msg) {
  const keepFollow = table.follow;
  state.flows = [];
  state.byId = new Map();
  state.errors = 0;
  state.warnings = 0;
  for (const s of msg.flows || []) addFlow(s);
  state.total = msg.total || 0;
  table.setFlows(state.flows);
  table.setFollow(keepFollow);
  const gen = ++state.loadGen;
  const missing = state.total - state.flows.length;
  state.loadingOlder = missing > 0 ? missing : 0;
  if (missing > 0) loadOlder(gen, missing);
  updateHeader();
}

// loadOlder fetches the flows older than the snapshot (which holds only the newest) page by page
// and puts them above the rows already shown.
async function loadOlder(gen, missing) {
  const older = [];
  try {
    for (let off = 0; off < missing; off += PAGE) {
      const p = filterParams();
      p.set('offset', String(off));
      p.set('limit', String(Math.min(PAGE, missing - off)));
      const r = await fetch('/api/flows?' + p.toString());
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const page = await r.json();
      if (gen !== state.loadGen) return;
      for (const s of page.flows || []) older.push(s);
      state.loadingOlder = Math.max(0, missing - off - PAGE);
      updateHeader();
    }
  } catch (err) {
    console.warn('roapproxy: loading older flows failed:', err);
  }
  if (gen !== state.loadGen) return;
  const fresh = [];
  for (const s of older) {
    if (state.byId.has(s.id)) continue;
    s._v = 0;
    state.byId.set(s.id, s);
    state.errors += s.errors || 0;
    state.warnings += s.warnings || 0;
    fresh.push(s);
  }
  state.flows = fresh.concat(state.flows);
  state.loadingOlder = 0;
  table.setFlows(state.flows);
  table.shift(fresh.length);
  trim();
  updateHeader();
}

// ---- stream --------------------------------------------------------------------------------

function onEvent(msg) {
  switch (msg.type) {
    case 'snapshot':
      state.lastSeq = Number(msg.lastSeq) || 0;
      if (state.paused && !state.expectSnapshot) {
        // A snapshot replaces the table: what was held before it no longer matters.
        state.queue = [msg];
        state.buffered = (msg.flows || []).filter((s) => !state.byId.has(s.id)).length;
        updateHeader();
        return;
      }
      state.expectSnapshot = false;
      applySnapshot(msg);
      return;
    case 'resync':
      // A fresh snapshot follows on the same connection.
      return;
    default:
  }
  if (typeof msg.seq === 'number' && msg.seq > state.lastSeq) state.lastSeq = msg.seq;
  switch (msg.type) {
    case 'flow':
      if (state.paused) {
        state.queue.push(msg);
        if (msg.flow && !state.byId.has(msg.flow.id)) state.buffered++;
        updateHeader();
      } else if (addFlow(msg.flow)) {
        state.total++;
        trim();
        table.schedule();
        updateHeader();
      }
      break;
    case 'findings':
      if (!applyFindings(msg) && state.paused) state.queue.push(msg);
      break;
    case 'clear':
      state.queue = [];
      state.buffered = 0;
      state.total = 0;
      closeDetail();
      resetData();
      break;
    default:
  }
}

function streamURL() {
  const p = filterParams();
  p.set('since', String(state.lastSeq));
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/stream?${p.toString()}`;
}

function connect() {
  const gen = ++state.wsGen;
  let ws;
  try {
    ws = new WebSocket(streamURL());
  } catch {
    retry(gen);
    return;
  }
  state.ws = ws;
  ws.onopen = () => {
    if (gen !== state.wsGen) return;
    state.connected = true;
    state.everLive = true;
    state.backoff = 500;
    updateHeader();
  };
  ws.onmessage = (e) => {
    if (gen !== state.wsGen) return;
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'batch' && Array.isArray(msg.events)) {
      for (const ev of msg.events) if (ev && typeof ev === 'object') onEvent(ev);
      return;
    }
    onEvent(msg);
  };
  ws.onclose = () => {
    if (gen !== state.wsGen) return;
    state.connected = false;
    updateHeader();
    retry(gen);
  };
}

function retry(gen) {
  // Reconnect with the last sequence seen: the server sends what was missed, or a snapshot.
  const wait = state.backoff;
  state.backoff = Math.min(state.backoff * 2, 5000);
  setTimeout(() => {
    if (gen === state.wsGen) connect();
  }, wait);
}

// restartStream reconnects from scratch, after the filter changed.
function restartStream() {
  state.wsGen++;
  if (state.ws) state.ws.close();
  state.ws = null;
  state.connected = false;
  state.lastSeq = 0;
  state.queue = [];
  state.buffered = 0;
  state.expectSnapshot = true;
  resetData();
  table.setFollow(true);
  connect();
}

// ---- pause ---------------------------------------------------------------------------------

function setPaused(on) {
  if (state.paused === on) return;
  state.paused = on;
  if (!on) {
    const q = state.queue;
    state.queue = [];
    state.buffered = 0;
    let added = false;
    for (const m of q) {
      if (m.type === 'snapshot') applySnapshot(m);
      else if (m.type === 'flow') added = addFlow(m.flow) || added;
      else if (m.type === 'findings') applyFindings(m);
    }
    if (added) {
      trim();
      table.schedule();
    }
  }
  updateHeader();
}

// ---- filters and the URL hash --------------------------------------------------------------

function readForm() {
  const f = {};
  for (const k of FILTER_KEYS) {
    const v = $(`#f-${k}`).value.trim();
    if (v) f[k] = v;
  }
  return f;
}

function writeForm(f) {
  for (const k of FILTER_KEYS) $(`#f-${k}`).value = f[k] || '';
}

function filterParams() {
  const p = new URLSearchParams();
  for (const k of FILTER_KEYS) if (state.filter[k]) p.set(k, state.filter[k]);
  return p;
}

function activeFilterCount() {
  return FILTER_KEYS.filter((k) => state.filter[k]).length;
}

function sameFilter(a, b) {
  return FILTER_KEYS.every((k) => (a[k] || '') === (b[k] || ''));
}

function parseHash() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  const f = {};
  for (const k of FILTER_KEYS) {
    const v = p.get(k);
    if (v) f[k] = v;
  }
  const flow = Number(p.get('flow'));
  return { filter: f, flow: Number.isInteger(flow) && flow > 0 ? flow : null };
}

function writeHash() {
  const p = filterParams();
  if (detail.open && detail.id !== null) p.set('flow', String(detail.id));
  const h = p.toString();
  const url = h ? `#${h}` : location.pathname + location.search;
  if (('#' + h) !== location.hash && !(h === '' && location.hash === '')) history.replaceState(null, '', url);
}

function showFilterState() {
  const n = activeFilterCount();
  $('#f-active').textContent = n ? `${n} filter${n > 1 ? 's' : ''} on` : '';
  $('#filters').classList.toggle('active', n > 0);
}

// setFilter applies a new filter: the server filters, so the stream starts over with it.
function setFilter(f) {
  if (sameFilter(f, state.filter)) return;
  state.filter = f;
  showFilterState();
  writeHash();
  restartStream();
}

let filterTimer = 0;
function onFilterInput(immediate) {
  clearTimeout(filterTimer);
  const apply = () => setFilter(readForm());
  if (immediate) apply();
  else filterTimer = setTimeout(apply, 300);
}

// ---- selection and detail ------------------------------------------------------------------

function selectFlow(id, open, opts) {
  state.selectedId = id;
  table.select(id);
  if (open) {
    $('#main').classList.add('with-detail');
    detail.show(id, opts).then(() => writeHash());
    writeHash();
  } else if (detail.open) {
    scheduleDetail(id);
  }
}

let detailTimer = 0;
function scheduleDetail(id) {
  clearTimeout(detailTimer);
  detailTimer = setTimeout(() => {
    detail.show(id);
    writeHash();
  }, 90);
}

function closeDetail() {
  if (!detail.open) return;
  detail.close();
  $('#main').classList.remove('with-detail');
  writeHash();
  table.schedule();
}

function move(delta) {
  const n = state.flows.length;
  if (!n) return;
  let i = state.selectedId !== null ? table.indexOf(state.selectedId) : -1;
  if (i < 0) i = delta > 0 ? -1 : n;
  i = Math.max(0, Math.min(n - 1, i + delta));
  selectFlow(state.flows[i].id, false);
  table.reveal(i);
}

// ---- wiring --------------------------------------------------------------------------------

const thead = $('#thead');
for (const c of COLUMNS) thead.append(el('div', { class: 'cell ' + c.cls, role: 'columnheader', text: c.label }));

const table = new FlowTable($('#scroller'), {
  onOpen: (id) => {
    // A chosen row stays where it is: new flows no longer scroll the table.
    table.setFollow(false);
    selectFlow(id, true);
  },
  onJump: (visible) => { $('#jump').hidden = !visible; },
});

const detail = new DetailPane($('#detail'), {
  onSelectFlow: (id, opts) => {
    selectFlow(id, true, opts);
    const i = table.indexOf(id);
    if (i >= 0) table.reveal(i);
  },
  onClose: () => closeDetail(),
  onFilterID: (v) => {
    writeForm({ ...state.filter, id: v });
    onFilterInput(true);
  },
});

const rules = new RulesDialog($('#rules-dialog'), {
  onFilterRule: (id) => {
    writeForm({ ...state.filter, q: id });
    onFilterInput(true);
  },
});

$('#filters').addEventListener('input', (e) => onFilterInput(e.target.tagName === 'SELECT'));
$('#filters').addEventListener('change', (e) => {
  if (e.target.tagName === 'SELECT') onFilterInput(true);
});
$('#filters').addEventListener('submit', (e) => {
  e.preventDefault();
  onFilterInput(true);
});
$('#f-reset').addEventListener('click', () => {
  writeForm({});
  onFilterInput(true);
});
$('#btn-pause').addEventListener('click', () => setPaused(!state.paused));
$('#btn-clear').addEventListener('click', async () => {
  try {
    const r = await fetch('/api/clear', { method: 'POST' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
  } catch (err) {
    console.warn('roapproxy: clear failed:', err);
  }
});
$('#btn-rules').addEventListener('click', () => rules.open());
$('#btn-help').addEventListener('click', () => $('#help-dialog').showModal());
$('#help-close').addEventListener('click', () => $('#help-dialog').close());
$('#jump').addEventListener('click', () => {
  table.setFollow(true);
  table.scrollToEnd();
});

window.addEventListener('hashchange', () => {
  const h = parseHash();
  if (!sameFilter(h.filter, state.filter)) {
    writeForm(h.filter);
    setFilter(h.filter);
  }
  if (h.flow && h.flow !== detail.id) selectFlow(h.flow, true);
});

document.addEventListener('keydown', (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  const typing = t instanceof Element && t.matches('input, select, textarea');
  if (document.querySelector('dialog[open]')) return; // the dialog handles its own keys (Esc closes it)
  if (e.key === 'Escape') {
    if (typing) t.blur();
    else closeDetail();
    return;
  }
  if (typing) {
    if (e.key === 'Enter' && t.closest('#filters')) {
      e.preventDefault();
      onFilterInput(true);
      return;
    }
    if (e.key === 'ArrowDown' && t.closest('#filters') && t.tagName === 'INPUT') {
      t.blur();
      $('#scroller').focus();
      e.preventDefault();
    }
    return;
  }
  const inDetail = t instanceof Element && t.closest('#detail');
  switch (e.key) {
    case '/':
      e.preventDefault();
      $('#f-q').focus();
      $('#f-q').select();
      break;
    case 'j':
    case 'k':
      e.preventDefault();
      move(e.key === 'j' ? 1 : -1);
      break;
    case 'ArrowDown':
    case 'ArrowUp':
      if (inDetail) return;
      e.preventDefault();
      move(e.key === 'ArrowDown' ? 1 : -1);
      break;
    case 'g':
    case 'Home':
      if (inDetail && e.key === 'Home') return;
      e.preventDefault();
      move(-Infinity);
      break;
    case 'G':
    case 'End':
      if (inDetail && e.key === 'End') return;
      e.preventDefault();
      move(Infinity);
      break;
    case 'Enter':
      if (t instanceof Element && t.closest('button, a, [role="button"], summary')) return;
      if (state.selectedId !== null) {
        e.preventDefault();
        selectFlow(state.selectedId, true);
      }
      break;
    case 'p':
      setPaused(!state.paused);
      break;
    default:
  }
});

// Detail width: the splitter sets a CSS variable (a number of pixels), remembered locally.
(() => {
  const main = $('#main');
  const split = $('#splitter');
  const saved = Number(localStorage.getItem('roapproxy.detailWidth'));
  if (saved >= 320) main.style.setProperty('--detail-w', `${Math.round(saved)}px`);
  split.addEventListener('pointerdown', (e) => {
    split.setPointerCapture(e.pointerId);
    const move = (ev) => {
      const r = main.getBoundingClientRect();
      const w = Math.max(320, Math.min(r.width - 420, r.right - ev.clientX));
      main.style.setProperty('--detail-w', `${Math.round(w)}px`);
      localStorage.setItem('roapproxy.detailWidth', String(Math.round(w)));
    };
    const up = () => {
      split.removeEventListener('pointermove', move);
      split.removeEventListener('pointerup', up);
      table.schedule();
    };
    split.addEventListener('pointermove', move);
    split.addEventListener('pointerup', up);
  });
})();

// Start: the hash may carry a filter and an open flow.
{
  const h = parseHash();
  state.filter = h.filter;
  writeForm(h.filter);
  showFilterState();
  state.expectSnapshot = true;
  connect();
  if (h.flow) selectFlow(h.flow, true);
  updateHeader();
}

// For tests and the curious: a read-only view of the table state.
window.roapproxy = Object.freeze({
  get flowCount() { return state.flows.length; },
  get buffered() { return state.buffered; },
  get paused() { return state.paused; },
  get lastSeq() { return state.lastSeq; },
  get loadingOlder() { return state.loadingOlder; },
  ids: () => state.flows.map((s) => s.id),
  summary: (id) => {
    const s = state.byId.get(id);
    return s ? { verdict: s.verdict || '', errors: s.errors, warnings: s.warnings } : null;
  },
});
