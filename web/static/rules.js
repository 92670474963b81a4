// The rule catalogue (/api/rules) as a searchable table in a dialog. Choosing a rule filters the
// flow table to the flows with a finding of that rule.

import { el, clear, sevBadge } from './dom.js';

export class RulesDialog {
  constructor(dialog, { onFilterRule }) {
    this.dialog = dialog;
    this.onFilterRule = onFilterRule;
    this.rules = null;
    this.search = el('input', { type: 'search', class: 'rules-search', placeholder: 'Search rule ID, check, spec reference…', 'aria-label': 'Search rules', spellcheck: 'false' });
    this.count = el('span', { class: 'muted' });
    this.tbody = el('tbody');
    const table = el('table', { class: 'grid rules' },
      el('thead', {}, el('tr', {}, el('th', { text: 'Rule' }), el('th', { text: 'Severity' }), el('th', { text: 'Check' }), el('th', { text: 'Reference' }), el('th', { text: 'Package' }))),
      this.tbody);
    clear(dialog).append(
      el('div', { class: 'dlg-head' }, el('h2', { text: 'Rule catalogue' }), this.count,
        el('button', { class: 'icon close', 'aria-label': 'Close', title: 'Close (Esc)', data: { act: 'close' }, text: '✕' })),
      this.search,
      el('div', { class: 'dlg-body' }, table));
    this.search.addEventListener('input', () => this.renderRows());
    dialog.addEventListener('click', (e) => {
      if (e.target === dialog) dialog.close(); // backdrop
      const b = e.target.closest('[data-act]');
      if (!b) return;
      if (b.dataset.act === 'close') dialog.close();
      if (b.dataset.act === 'filter') {
        const r = this.rules && this.rules[Number(b.dataset.idx)];
        if (r) {
          dialog.close();
          this.onFilterRule(r.id);
        }
      }
    });
  }

  async open() {
    this.dialog.showModal();
    this.search.focus();
    if (this.rules) return;
    this.count.textContent = 'loading…';
    try {
      const r = await fetch('/api/rules');
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      this.rules = await r.json();
    } catch (err) {
      this.count.textContent = 'could not load the catalogue: ' + err.message;
      return;
    }
    this.renderRows();
  }

  renderRows() {
    if (!this.rules) return;
    const q = this.search.value.trim().toLowerCase();
    const words = q ? q.split(/\s+/) : [];
    clear(this.tbody);
    let n = 0;
    this.rules.forEach((r, i) => {
      const hay = `${r.id} ${r.severity} ${r.check} ${r.ref} ${r.package}`.toLowerCase();
      if (!words.every((w) => hay.includes(w))) return;
      n++;
      this.tbody.append(el('tr', {},
        el('td', {}, el('button', { class: 'link mono', data: { act: 'filter', idx: i }, title: 'Show flows with this finding', text: r.id })),
        el('td', {}, sevBadge(r.severity)),
        el('td', { text: r.check }),
        el('td', { class: 'ref', text: r.ref }),
        el('td', { class: 'muted', text: r.package })));
    });
    this.count.textContent = `${n} of ${this.rules.length} rules`;
  }
}
