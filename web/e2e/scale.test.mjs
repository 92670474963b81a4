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
    // Scroll through the middle frame by frame, timing it.
    const ms = await page.evaluate(async () => {
      const sc = document.querySelector('#scroller');
      const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
      const t0 = performance.now();
      for (let i = 1; i <= 60; i++) {
        sc.scrollTop = (sc.scrollHeight * i) / 61;
        await frame();
        await frame();
      }
      return (performance.now() - t0) / 60;
    });
    assert.ok(ms < 120, `a jump through the table takes ${ms.toFixed(1)} ms per step`);
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
