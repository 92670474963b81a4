// Browser tests over the real thing: `roapproxy demo` (simulated devices, RIs, DEA and OCSP
// responder sending through the proxy), started by cmd/roapproxy/browser_test.go, which also sends
// one hostile exchange through the proxy. They run only when ROAPPROXY_UI_FEED=demo.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LIVE_URL, launch, newPage, until, api, flowCount, visibleRows } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));

const DEMO = process.env.ROAPPROXY_UI_FEED === 'demo';

describe('UI over roapproxy demo', { skip: !(DEMO && LIVE_URL) && 'needs ROAPPROXY_UI_FEED=demo (go test ./cmd/roapproxy -run BrowserUIOverDemo)' }, () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('shows demo traffic arriving live', async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 0, { message: 'first rows' });
    const first = await flowCount(page);
    await until(async () => (await flowCount(page)) > first + 5, { message: 'the row count to grow', timeout: 20000 });
    const rows = await visibleRows(page);
    assert.ok(rows.some((r) => /device-ri/.test(r.text)), 'device-RI rows are shown');
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('opens a flow: field tree and findings', async () => {
    // A verified RO acquisition with a 1024-bit chain carries findings (CHAIN-WEAK at least).
    const { flows } = await api(LIVE_URL, '/api/flows?kind=roResponse&leg=device-ri');
    const f = flows.find((x) => x.reqKind === 'roRequest' && (x.findings || []).length > 0);
    assert.ok(f, 'a 2-pass RO acquisition with findings in the demo traffic');
    const page = await newPage(browser, `${LIVE_URL}/#flow=${f.id}`);
    await page.waitForSelector('#detail:not([hidden]) .detail-head .title');
    await page.click('.tab[data-tab="request"]');
    const hash = page.locator('.tree .node[data-path="/roRequest/deviceID/keyIdentifier/hash"] > .line');
    await hash.waitFor();
    assert.match(await hash.textContent(), new RegExp(`hash\\s*${f.ids.deviceID.replace(/[+/=]/g, '\\$&')}`));
    let findings = 0;
    for (const tab of ['request', 'response']) {
      await page.click(`.tab[data-tab="${tab}"]`);
      findings += await page.locator('#detail .detail-body > ul.findings > li.finding').count();
    }
    assert.ok(findings > 0, 'the flow shows its findings');
    await page.click('.tab[data-tab="response"]');
    assert.ok(await page.locator('.tree .node[data-path^="/roResponse/protectedRO"]').count() > 0, 'the protected RO is in the tree');
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('filters the table on the server', async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 20, { message: 'some traffic', timeout: 20000 });
    const all = await flowCount(page);
    await page.goto(`${LIVE_URL}/#kind=TokenDeliveryResponse`);
    // The filtered snapshot replaces the table asynchronously: wait for it, not for any rows.
    await until(async () => {
      const rows = await visibleRows(page);
      return rows.length > 0 && rows.every((r) => /TokenDeliveryResponse/.test(r.text));
    }, { message: 'only token deliveries in the table' });
    const some = await flowCount(page);
    assert.ok(some < all, `the filter narrows the table (${some} of ${all})`);
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('draws the seed 000 leave as a sequence: device → RI → DEA → RI → device', async () => {
    // The user-domain leave: a device-RI flow whose correlation key also names RI-DEA flows.
    const dev = await until(async () => {
      const { flows } = await api(LIVE_URL, '/api/flows?kind=leaveDomainRequest&leg=device-ri&domain=ACMEUSERDOM42001');
      for (const f of flows.reverse()) {
        const rel = await api(LIVE_URL, `/api/related/${f.id}`);
        if (rel.flows.some((r) => r.leg === 'ri-dea')) return f;
      }
      return null;
    }, { message: 'a proxied leave', timeout: 30000 });
    const page = await newPage(browser, `${LIVE_URL}/#flow=${dev.id}`);
    await page.waitForSelector('#detail .tab[data-tab="exchange"]');
    await page.click('.tab[data-tab="exchange"]');
    await page.waitForSelector('svg.seq g.msg');
    const arrows = await page.$$eval('svg.seq g.msg', (gs) => gs.map((g) => ({
      from: g.dataset.from, to: g.dataset.to, label: g.dataset.kind,
      y: Number(g.querySelector('line.arrow').getAttribute('y1')),
    })));
    const want = [
      { from: 'device', to: 'ri', label: 'leaveDomainRequest' },
      { from: 'ri', to: 'dea', label: 'rdpProxyLeaveUserDomainRequest' },
      { from: 'dea', to: 'ri', label: 'rdpProxyLeaveUserDomainResponse' },
      { from: 'ri', to: 'device', label: 'leaveDomainResponse' },
    ];
    // The demo repeats its scenarios, so the exchange may hold several runs: the four steps must
    // appear in this order, each between the right lifelines.
    let at = -1;
    for (const w of want) {
      const i = arrows.findIndex((a, k) => k > at && a.from === w.from && a.to === w.to && a.label === w.label);
      assert.ok(i > at, `${w.label} ${w.from} → ${w.to} after step ${at}: ${JSON.stringify(arrows)}`);
      at = i;
    }
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('renders hostile traffic that went through the proxy as inert text', async () => {
    const page = await newPage(browser, `${LIVE_URL}/#q=pwned`);
    await until(async () => (await flowCount(page)) >= 1, { message: 'the hostile flow', timeout: 20000 });
    await page.click('#scroller .row');
    await page.waitForSelector('#detail:not([hidden]) .detail-head .title');
    for (const tab of ['overview', 'request', 'response']) {
      await page.click(`.tab[data-tab="${tab}"]`);
      if (tab === 'overview') continue;
      for (const view of ['tree', 'pretty', 'raw', 'headers']) {
        await page.click(`.view[data-view="${view}"]`);
        await page.waitForTimeout(50);
      }
    }
    await page.click('.tab[data-tab="response"]');
    await page.click('.view[data-view="raw"]');
    assert.match(await page.textContent('pre.raw'), /<script>window\.__pwned=1<\/script>/, 'the payload is visible as text');
    await page.click('.view[data-view="headers"]');
    assert.match(await page.textContent('table.headers'), /<img src=x onerror=window\.__pwned=2>/);
    await page.click('.tab[data-tab="overview"]');
    const verdict = await page.evaluate(() => ({
      pwned: window.__pwned,
      csp: window.__csp,
      scripts: [...document.scripts].map((s) => s.getAttribute('src')),
      handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => /^on/i.test(a.name))).length,
      imgs: document.querySelectorAll('img').length,
    }));
    assert.equal(verdict.pwned, undefined, 'no payload ran');
    assert.deepEqual(verdict.scripts, ['/static/app.js']);
    assert.equal(verdict.handlers, 0);
    assert.equal(verdict.imgs, 0, 'no element from the data');
    assert.deepEqual(verdict.csp, []);
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('takes the screenshot for docs/ui.png', { skip: process.env.ROAPPROXY_SCREENSHOT !== 'demo' && 'set ROAPPROXY_SCREENSHOT=demo' }, async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 60, { message: 'a full table', timeout: 40000 });
    // A proxied user-domain leave: its exchange spans device, RI and DEA.
    const dev = await until(async () => {
      const { flows } = await api(LIVE_URL, '/api/flows?kind=leaveDomainRequest&leg=device-ri&domain=ACMEUSERDOM42001');
      for (const f of flows.reverse()) {
        if ((await api(LIVE_URL, `/api/related/${f.id}`)).flows.some((r) => r.leg === 'ri-dea')) return f;
      }
      return null;
    }, { message: 'a proxied leave', timeout: 30000 });
    await page.click('#btn-pause');
    await page.goto(`${LIVE_URL}/#flow=${dev.id}`);
    await page.waitForSelector('#detail .tab[data-tab="exchange"]');
    await page.click('.tab[data-tab="exchange"]');
    await page.waitForSelector('svg.seq g.msg');
    await page.mouse.move(0, 0);
    await page.waitForTimeout(400);
    const out = join(here, '..', '..', 'docs', 'ui.png');
    mkdirSync(dirname(out), { recursive: true });
    await page.screenshot({ path: out });
    await page.close();
  });
});
