// Browser test over a server holding 50,000 flows (ROAPPROXY_UI_BIG_URL): the table loads them
// all, keeps only the rows in view in the DOM, and scrolls to either end.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BIG_URL, launch, newPage, until, api, flowCount, visibleRows } from './helpers.mjs';

describe('50,000 flows', { skip: !BIG_URL && 'ROAPPROXY_UI_BIG_URL is not set (run go test ./web -run BrowserUI)' }, () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('virtualizes the table and scrolls end to end', { timeout: 120000 }, async () => {
    const all = await api(BIG_URL, '/api/flows?limit=1');
    assert.ok(all.total >= 50000, `the server holds ${all.total} flows`);
    const lastPage = await api(BIG_URL, `/api/flows?offset=${all.total - 1}&limit=1`);
    const firstID = all.flows[0].id;
    const lastID = lastPage.flows[0].id;

    const page = await newPage(browser, BIG_URL);
    await until(async () => (await flowCount(page)) === all.total, { message: 'every flow in the table', timeout: 60000 });
    await until(async () => (await page.textContent('#count-flows')) === all.total.toLocaleString('en-US'), { message: 'the header count' });
    const rowsInDOM = await page.locator('.row').count();
    assert.ok(rowsInDOM > 10 && rowsInDOM < 200, `${rowsInDOM} row elements in the DOM`);

    // Following by default: the newest flow is on screen.
    await until(async () => (await visibleRows(page)).some((r) => r.id === lastID), { message: 'the last flow in view' });

    // To the top, then to the end again by scrolling.
    await page.locator('#scroller').focus();
    await page.keyboard.press('Home');
    await until(async () => (await visibleRows(page)).some((r) => r.id === firstID), { message: 'the first flow in view' });
    assert.ok((await page.locator('.row').count()) < 200);
    // Jump through the middle frame by frame: at every stop the rows in view are refilled for
    // that position, and the DOM never holds more than a screenful. (Structure, not wall time:
    // how fast a shared machine paints is for benchmarks, not for a test.)
    const stops = await page.evaluate(async () => {
      const sc = document.querySelector('#scroller');
      const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
      const out = [];
      for (let i = 1; i <= 60; i++) {
        sc.scrollTop = (sc.scrollHeight * i) / 61;
        await frame();
        await frame();
        const top = sc.getBoundingClientRect().top;
        const inView = [...sc.querySelectorAll('.row')].filter((r) => r.getBoundingClientRect().bottom > top);
        out.push({ rows: sc.querySelectorAll('.row').length, first: inView.length ? Number(inView[0].dataset.id) : -1 });
      }
      return out;
    });
    assert.ok(stops.every((x) => x.rows > 10 && x.rows < 200), `row elements per stop: ${stops.map((x) => x.rows)}`);
    assert.ok(stops.every((x, i) => x.first > 0 && (i === 0 || x.first > stops[i - 1].first)), `first row in view per stop: ${stops.map((x) => x.first)}`);
    const mid = await visibleRows(page);
    assert.ok(mid.length > 10 && mid.every((r, i) => i === 0 || r.id > mid[i - 1].id), 'rows in view are consecutive');
    await page.evaluate(() => {
      const sc = document.querySelector('#scroller');
      sc.scrollTop = sc.scrollHeight;
    });
    await until(async () => (await visibleRows(page)).some((r) => r.id === lastID), { message: 'the last flow after scrolling to the end' });
    const rows = await visibleRows(page);
    assert.equal(rows[rows.length - 1].id, lastID, 'the last flow is the bottom row');
    assert.ok((await page.locator('.row').count()) < 200);

    // Open the last one, then filter down to one flow on the server.
    await page.click(`#scroller .row[data-id="${lastID}"]`);
    await page.waitForSelector('#detail:not([hidden]) .detail-head .title');
    await page.fill('#f-domain', 'FILL049999');
    await page.press('#f-domain', 'Enter');
    await until(async () => (await flowCount(page)) === 1, { message: 'the domain filter' });
    assert.deepEqual(page.problems, []);
    await page.close();
  });
});
