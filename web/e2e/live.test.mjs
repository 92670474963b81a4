// Browser tests over a server with live traffic (ROAPPROXY_UI_URL): the live table, the detail
// pane, filters, keyboard, the exchange view, hostile content, pause, reconnect, rules, clear.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LIVE_URL, SEED_DEVICE, SEED_DOMAIN, launch, newPage, until, api, flowCount, visibleRows, waitLive, needsFeeder } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));

describe('live UI', { skip: !LIVE_URL && 'ROAPPROXY_UI_URL is not set (run go test ./web -run BrowserUI)' }, () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  // seedFlows finds the seed 000 exchange on the server: the device's leave and the RI's RDP call.
  async function seedFlows() {
    const dev = await api(LIVE_URL, `/api/flows?leg=device-ri&kind=leaveDomain&id=${encodeURIComponent(SEED_DEVICE)}`);
    const rdp = await api(LIVE_URL, `/api/flows?leg=ri-dea&kind=rdpProxyLeaveUserDomain&id=${encodeURIComponent(SEED_DEVICE)}`);
    assert.equal(dev.flows.length, 1, 'one seed leave on the device leg');
    assert.equal(rdp.flows.length, 1, 'one seed RDP exchange');
    return { dev: dev.flows[0], rdp: rdp.flows[0] };
  }

  it('shows rows arriving live', async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 0, { message: 'first rows' });
    const first = await flowCount(page);
    const firstMax = Math.max(...(await visibleRows(page)).map((r) => r.id));
    await until(async () => (await flowCount(page)) > first, { message: 'the row count to grow' });
    // Following the end, the newest row is on screen.
    await until(async () => Math.max(...(await visibleRows(page)).map((r) => r.id)) > firstMax, { message: 'a newer row in view' });
    const header = Number((await page.textContent('#count-flows')).replace(/,/g, ''));
    assert.ok(header >= first, 'the header counts the flows');
    assert.equal(await page.getAttribute('#conn', 'data-state'), 'live');
    // Scrolling up stops following; new rows then do not move the view; "follow" resumes.
    await until(async () => (await flowCount(page)) > 45, { message: 'more rows than fit', timeout: 20000 });
    await page.evaluate(() => { document.querySelector('#scroller').scrollTop = 0; });
    await page.waitForSelector('#jump:not([hidden])');
    const n = await flowCount(page);
    await until(async () => (await flowCount(page)) > n, { message: 'a row while scrolled up' });
    assert.equal(await page.evaluate(() => document.querySelector('#scroller').scrollTop), 0, 'the view stays put');
    assert.equal((await visibleRows(page))[0].id, (await page.evaluate(() => window.roapproxy.ids()))[0]);
    await page.click('#jump');
    await until(async () => {
      const ids = await page.evaluate(() => window.roapproxy.ids());
      return (await visibleRows(page)).some((r) => r.id === ids[ids.length - 1]);
    }, { message: 'following the end again' });
    // Rows can still be landing while the view catches up: wait for the button to go.
    await page.locator('#jump').waitFor({ state: 'hidden', timeout: 5000 });
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('updates rows when late findings arrive', needsFeeder(), async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 0, { message: 'rows' });
    // Leaves get a late DOM-7.5-FANOUT warning two seconds after they complete; wait until one
    // the page saw arrive has had it, then compare every row with the server's summary.
    const start = Math.max(...(await page.evaluate(() => window.roapproxy.ids())));
    await until(async () => {
      const page1 = await api(LIVE_URL, '/api/flows?q=DOM-7.5-FANOUT&limit=5000');
      return (page1.flows || []).some((s) => s.id > start);
    }, { message: 'a late finding', timeout: 15000 });
    await until(async () => {
      // One comparison in the page, so the feed (which keeps going) has little time to move
      // between the server's answer and the check.
      const server = await api(LIVE_URL, '/api/flows?limit=5000');
      const mismatched = await page.evaluate((flows) => flows.filter((s) => {
        const ui = window.roapproxy.summary(s.id);
        return ui && (ui.verdict !== (s.verdict || '') || ui.errors !== s.errors || ui.warnings !== s.warnings);
      }).map((s) => s.id), (server.flows || []).map(({ id, verdict, errors, warnings }) => ({ id, verdict, errors, warnings })));
      return mismatched.length === 0;
    }, { message: 'rows to match the server after late findings' });
    const late = (await api(LIVE_URL, '/api/flows?q=DOM-7.5-FANOUT&limit=5000')).flows.filter((s) => s.id > start)[0];
    const ui = await page.evaluate((id) => window.roapproxy.summary(id), late.id);
    assert.ok(ui.warnings >= 1, 'the late warning is counted in the row');
    await page.close();
  });

  it('opens a flow: field tree, findings, and a finding highlights its field', needsFeeder(), async () => {
    const page = await newPage(browser, `${LIVE_URL}/#kind=leaveDomain&leg=device-ri&id=${encodeURIComponent(SEED_DEVICE)}`);
    await until(async () => (await flowCount(page)) === 1, { message: 'the filtered row' });
    await page.click('#scroller .row');
    await page.waitForSelector('#detail:not([hidden]) .detail-head .title');
    assert.match(await page.textContent('#detail .detail-head'), /ri\.acme-music\.test\/roap\/leave/);
    await page.click('.tab[data-tab="request"]');
    const hashNode = page.locator('.tree .node[data-path="/leaveDomainRequest/deviceID/keyIdentifier/hash"]');
    await hashNode.waitFor();
    assert.match(await hashNode.locator('> .line').textContent(), new RegExp(`hash\\s*${SEED_DEVICE.replace(/[+/=]/g, '\\$&')}`));
    assert.match(await page.locator('.tree .node[data-path="/leaveDomainRequest/domainID"] > .line').textContent(), new RegExp(SEED_DOMAIN));
    // Findings of the message, each with rule, severity, message, path and reference.
    const findings = page.locator('#detail .detail-body > ul.findings > li.finding');
    assert.ok((await findings.count()) > 0, 'the request has findings');
    const target = findings.filter({ hasText: 'certificate[2]' }).first();
    const path = await target.locator('.path').textContent();
    assert.equal(path, '/leaveDomainRequest/certificateChain/certificate[2]');
    assert.match(await target.textContent(), /DEC-CERT/);
    assert.match(await target.textContent(), /roap-core/);
    // Collapse the chain first: the highlight must open it again.
    await page.click('.tree .node[data-path="/leaveDomainRequest/certificateChain"] > .line .twisty');
    assert.ok(!(await page.locator(`.tree .node[data-path="${path}"]`).isVisible()), 'collapsed');
    await target.locator('.path').click();
    const hl = page.locator('.tree .node.hl');
    assert.equal(await hl.count(), 1);
    assert.equal(await hl.getAttribute('data-path'), path);
    assert.ok(await hl.isVisible(), 'the highlighted field is shown');
    const box = await hl.locator('> .line').boundingBox();
    const pane = await page.locator('#detail .detail-body').boundingBox();
    assert.ok(box.y >= pane.y && box.y + box.height <= pane.y + pane.height, 'scrolled into view');
    // Raw and pretty views and the headers.
    await page.click('.view[data-view="raw"]');
    const raw = await page.textContent('pre.raw');
    assert.ok(raw.startsWith('<roap:leaveDomainRequest xmlns:roap="urn:oma:bac:dldrm:roap-1.0" triggerNonce='), 'raw shows the exact bytes');
    assert.ok(!raw.includes('\n'), 'raw is not re-indented');
    assert.match(await page.getAttribute('.raw-bar a', 'href'), /^\/api\/flows\/\d+\/request\/raw$/);
    await page.click('.view[data-view="pretty"]');
    const pretty = await page.textContent('pre.pretty');
    assert.match(pretty, /\n {2}<deviceID>\n {4}<keyIdentifier /);
    assert.match(pretty, /\n {2}<domainID>ACMEUSERDOM42001<\/domainID>\n/);
    await page.click('.view[data-view="headers"]');
    assert.match(await page.textContent('table.headers'), /User-Agent.*OMADRMAgent/);
    // Overview: timings, correlation keys.
    await page.click('.tab[data-tab="overview"]');
    const overview = await page.textContent('#detail .detail-body');
    assert.match(overview, new RegExp(`leave:${SEED_DOMAIN}:${SEED_DEVICE.replace(/[+/=]/g, '\\$&')}`));
    assert.match(overview, /Sent upstream/);
    assert.match(overview, /\+180\.0 ms/);
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('shows an embedded message with its own tree and findings', needsFeeder(), async () => {
    const { rdp } = await seedFlows();
    const page = await newPage(browser, `${LIVE_URL}/#leg=ri-dea&flow=${rdp.id}`);
    await page.click('.tab[data-tab="request"]');
    const card = page.locator('.nested').first();
    await card.waitFor();
    assert.match(await card.locator('.nested-head').textContent(), /leaveDomainRequest/);
    assert.match(await card.locator('.nested-at').textContent(), /\/rdpProxyLeaveUserDomainRequest\/reqInfo\/rdpProxyLeaveUserDomainRequestInformation\/leaveDomainRequest/);
    assert.equal(await card.locator('.node[data-path="/leaveDomainRequest/nonce"]').count(), 1);
    assert.ok((await card.locator('li.finding').count()) > 0, 'the embedded message has its findings');
    await card.locator('li.finding .path').first().click();
    assert.equal(await card.locator('.node.hl').count(), 1, 'a nested finding highlights in the nested tree');
    await page.close();
  });

  it('filters on the server, mirrors the filter in the URL, and clearing restores the table', needsFeeder(), async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 12, { message: 'some traffic', timeout: 15000 });
    const before = await flowCount(page);
    await page.selectOption('#f-leg', 'ocsp');
    await until(async () => page.url().includes('leg=ocsp'), { message: 'the hash to carry the filter' });
    await until(async () => {
      const rows = await visibleRows(page);
      return rows.length > 0 && rows.every((r) => r.text.includes('ocsp'));
    }, { message: 'only OCSP rows' });
    const filtered = await flowCount(page);
    assert.ok(filtered < before, `filtered ${filtered} < ${before}`);
    const server = await api(LIVE_URL, '/api/flows?leg=ocsp&limit=1');
    assert.ok(Math.abs(server.total - filtered) <= 2, `the table (${filtered}) matches the server's filter (${server.total})`);
    // A shared link reproduces the view.
    const shared = await newPage(browser, page.url());
    assert.equal(await shared.inputValue('#f-leg'), 'ocsp');
    await until(async () => {
      const rows = await visibleRows(shared);
      return rows.length > 0 && rows.every((r) => r.text.includes('ocsp'));
    }, { message: 'the shared link to filter' });
    await shared.close();
    // Free text through the "/" shortcut.
    await page.click('#f-reset');
    await page.locator('#scroller').focus();
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-q');
    await page.keyboard.type('rdpProxyLeaveUserDomainRequest');
    await until(async () => {
      const rows = await visibleRows(page);
      return rows.length > 0 && rows.every((r) => r.text.includes('rdpProxyLeaveUserDomainRequest'));
    }, { message: 'the text filter' });
    assert.match(page.url(), /q=rdpProxyLeaveUserDomainRequest/);
    await page.keyboard.press('Escape');
    await page.click('#f-reset');
    await until(async () => (await flowCount(page)) >= before, { message: 'the full table back' });
    assert.ok(!page.url().includes('q='), 'the hash lost the filter');
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('moves the selection with j/k and arrows, opens with Enter, closes with Esc', async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 5, { message: 'rows' });
    await page.click('#btn-pause');
    await page.locator('#scroller').focus();
    await page.keyboard.press('G');
    const last = await page.evaluate(() => Number(document.querySelector('.row.selected')?.dataset.id));
    await page.keyboard.press('k');
    await page.keyboard.press('ArrowUp');
    const up2 = await page.evaluate(() => Number(document.querySelector('.row.selected')?.dataset.id));
    await page.keyboard.press('j');
    const up1 = await page.evaluate(() => Number(document.querySelector('.row.selected')?.dataset.id));
    assert.notEqual(up2, last);
    assert.notEqual(up1, up2);
    assert.ok(await page.locator('#detail').isHidden(), 'moving does not open');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#detail:not([hidden]) .detail-head .title');
    assert.equal(await page.textContent('#detail .detail-head .title'), `#${up1}`);
    assert.match(page.url(), new RegExp(`flow=${up1}`));
    await page.keyboard.press('ArrowDown');
    await until(async () => (await page.textContent('#detail .detail-head .title')) !== `#${up1}`, { message: 'the detail to follow the selection' });
    await page.keyboard.press('Escape');
    assert.ok(await page.locator('#detail').isHidden(), 'Esc closes the detail');
    await page.close();
  });

  it('draws the seed 000 exchange as a sequence between the right lifelines', needsFeeder(), async () => {
    const { dev, rdp } = await seedFlows();
    const page = await newPage(browser, `${LIVE_URL}/#flow=${dev.id}`);
    await page.waitForSelector('#detail .tab[data-tab="exchange"]');
    await page.click('.tab[data-tab="exchange"]');
    await page.waitForSelector('svg.seq g.msg');
    const lanes = await page.$$eval('svg.seq g.lifeline', (gs) => gs.map((g) => ({
      role: g.dataset.role, label: g.querySelector('.head-role').textContent, host: g.querySelector('.head-host').textContent,
      x: Number(g.querySelector('line.life').getAttribute('x1')),
    })));
    assert.deepEqual(lanes.map((l) => l.role), ['device', 'ri', 'dea']);
    assert.equal(lanes[1].host, 'ri.acme-music.test');
    assert.equal(lanes[2].host, 'dea.acme-home.test');
    const xOf = Object.fromEntries(lanes.map((l) => [l.role, l.x]));
    const arrows = await page.$$eval('svg.seq g.msg', (gs) => gs.map((g) => {
      const line = g.querySelector('line.arrow');
      return {
        flow: Number(g.dataset.flow), dir: g.dataset.dir, from: g.dataset.from, to: g.dataset.to,
        label: g.querySelector('text.label').textContent, meta: g.querySelector('text.meta').textContent,
        x1: Number(line.getAttribute('x1')), x2: Number(line.getAttribute('x2')), y: Number(line.getAttribute('y1')),
        badge: g.querySelector('rect.vbadge').getAttribute('class'),
      };
    }));
    assert.equal(arrows.length, 4, JSON.stringify(arrows));
    const expect = [
      { flow: dev.id, dir: 'req', from: 'device', to: 'ri', label: 'leaveDomainRequest' },
      { flow: rdp.id, dir: 'req', from: 'ri', to: 'dea', label: 'rdpProxyLeaveUserDomainRequest' },
      { flow: rdp.id, dir: 'resp', from: 'dea', to: 'ri', label: 'rdpProxyLeaveUserDomainResponse' },
      { flow: dev.id, dir: 'resp', from: 'ri', to: 'device', label: 'leaveDomainResponse' },
    ];
    arrows.forEach((a, i) => {
      const e = expect[i];
      assert.deepEqual({ flow: a.flow, dir: a.dir, from: a.from, to: a.to, label: a.label }, e, `arrow ${i + 1}`);
      // The line runs between the two lifelines (the head stops a pixel short of its target).
      assert.ok(Math.abs(a.x1 - xOf[e.from]) < 2 && Math.abs(a.x2 - xOf[e.to]) < 2, `arrow ${i + 1} spans ${e.from} → ${e.to}`);
      if (i > 0) assert.ok(a.y > arrows[i - 1].y, 'arrows go down in time order');
      assert.match(a.badge, /vbadge sev-(error|warning|info|ok)/);
    });
    assert.match(arrows[2].meta, /Success/);
    assert.match(arrows[3].meta, /200 · Success/);
    // Clicking an arrow opens its flow.
    await page.click(`svg.seq g.msg[data-flow="${rdp.id}"][data-dir="req"] rect.hit`);
    await until(async () => (await page.textContent('#detail .detail-head .title')) === `#${rdp.id}`, { message: 'the RDP flow to open' });
    assert.match(await page.textContent('#detail .detail-head'), /dea\.acme-home\.test/);
    await page.waitForSelector(`svg.seq g.msg.sel[data-flow="${rdp.id}"]`);
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('gives each RI its own lifeline (the DEA fan-out to a second RI)', needsFeeder(), async () => {
    // A leave followed by the DEA's drmTrigger to the other RI that holds the domain.
    const trig = await until(async () => {
      for (const s of (await api(LIVE_URL, '/api/flows?leg=dea-ri&limit=5000')).flows || []) {
        const rel = await api(LIVE_URL, `/api/related/${s.id}`);
        if (rel.flows.length === 3) return { trigger: s, rel };
      }
      return null;
    }, { message: 'a leave with a fan-out trigger', timeout: 20000 });
    const dev = trig.rel.flows.find((f) => f.leg === 'device-ri');
    const page = await newPage(browser, `${LIVE_URL}/#flow=${dev.id}`);
    await page.click('.tab[data-tab="exchange"]');
    await page.waitForSelector('svg.seq g.msg');
    const lanes = await page.$$eval('svg.seq g.lifeline', (gs) => gs.map((g) => ({
      role: g.dataset.role, host: g.querySelector('.head-host').textContent, x: Number(g.querySelector('line.life').getAttribute('x1')),
    })));
    assert.deepEqual(lanes.map((l) => `${l.role} ${l.host}`), ['device ', 'ri ri.acme-music.test', 'ri ri.tunes-shop.test', 'dea dea.acme-home.test']);
    const arrows = await page.$$eval('svg.seq g.msg', (gs) => gs.map((g) => ({
      flow: Number(g.dataset.flow), dir: g.dataset.dir, label: g.querySelector('text.label').textContent,
      x1: Number(g.querySelector('line.arrow').getAttribute('x1')), x2: Number(g.querySelector('line.arrow').getAttribute('x2')),
    })));
    assert.deepEqual(arrows.map((a) => a.label), ['leaveDomainRequest', 'rdpProxyLeaveUserDomainRequest', 'rdpProxyLeaveUserDomainResponse', 'leaveDomainResponse', 'drmTrigger', 'HTTP 204']);
    const t = arrows[4];
    assert.equal(t.flow, trig.trigger.id);
    assert.ok(Math.abs(t.x1 - lanes[3].x) < 2 && Math.abs(t.x2 - lanes[2].x) < 2, 'the trigger goes from the DEA to the second RI');
    await page.close();
  });

  it('renders hostile traffic as inert text', needsFeeder(), async () => {
    const page = await newPage(browser, `${LIVE_URL}/#q=pwned`);
    await until(async () => (await flowCount(page)) >= 1, { message: 'the hostile flow' });
    await page.click('#scroller .row');
    await page.waitForSelector('#detail:not([hidden]) .detail-head .title');
    for (const tab of ['overview', 'request', 'response']) {
      await page.click(`.tab[data-tab="${tab}"]`);
      if (tab === 'overview') {
        // Every finding's path link, including the hostile one.
        const n = await page.locator('.finding .path').count();
        for (let i = 0; i < n; i++) {
          await page.click('.tab[data-tab="overview"]');
          await page.locator('.finding .path').nth(i).click();
        }
        continue;
      }
      for (const view of ['tree', 'pretty', 'raw', 'headers']) {
        await page.click(`.view[data-view="${view}"]`);
        await page.waitForTimeout(50);
      }
    }
    await page.click('.tab[data-tab="response"]');
    await page.click('.view[data-view="pretty"]');
    const pretty = await page.textContent('pre.pretty');
    assert.ok(pretty.includes('<domainID><![CDATA[<script>window.__pwned=1</script>]]></domainID>'), 'the payload shows as text in the XML');
    await page.click('.view[data-view="tree"]');
    assert.equal(await page.textContent('.node[data-path="/leaveDomainResponse/domainID"] > .line .value'), '<script>window.__pwned=1</script>');
    assert.equal(await page.textContent('.node[data-path="/leaveDomainResponse/img/@onerror"] > .line .value'), 'window.__pwned=3');
    await page.click('.view[data-view="headers"]');
    assert.match(await page.textContent('table.headers'), /a=<script>window\.__pwned=13<\/script>/);
    await page.click('.tab[data-tab="exchange"]');
    await page.waitForSelector('svg.seq g.msg');
    await page.click('.tab[data-tab="overview"]');
    assert.match(await page.textContent('#detail'), /<img src=x onerror=window\.__pwned=5>/);
    await page.hover('#scroller .row');
    await page.waitForTimeout(300);

    const verdict = await page.evaluate(() => {
      const allowed = new Set(['html', 'head', 'meta', 'title', 'link', 'script', 'body', 'header', 'div', 'span', 'b', 'button', 'a',
        'form', 'label', 'input', 'select', 'option', 'datalist', 'main', 'section', 'nav', 'dialog', 'table', 'tbody', 'thead', 'tr',
        'th', 'td', 'p', 'ul', 'li', 'dl', 'dt', 'dd', 'pre', 'details', 'summary', 'h2', 'h3', 'svg', 'defs', 'marker', 'path', 'g',
        'line', 'rect', 'text']);
      const els = [...document.querySelectorAll('*')];
      const handlers = els.filter((e) => [...e.attributes].some((a) => /^on/i.test(a.name))).map((e) => e.outerHTML.slice(0, 80));
      return {
        pwned: window.__pwned,
        csp: window.__csp,
        scripts: [...document.scripts].map((s) => s.getAttribute('src')),
        strangers: [...new Set(els.map((e) => e.localName))].filter((n) => !allowed.has(n)),
        handlers,
        hrefs: [...document.querySelectorAll('[href]')].map((e) => e.getAttribute('href')).filter((h) => !/^(\/api\/|\/static\/|data:,$)/.test(h)),
        styled: els.filter((e) => e.hasAttribute('style') && /url|expression|javascript|pwned/i.test(e.getAttribute('style'))).length,
      };
    });
    assert.equal(verdict.pwned, undefined, 'no payload ran');
    assert.deepEqual(verdict.scripts, ['/static/app.js'], 'no script element from data');
    assert.deepEqual(verdict.strangers, [], 'no element types from data');
    assert.deepEqual(verdict.handlers, [], 'no event handler attributes');
    assert.deepEqual(verdict.hrefs, [], 'links only to the API');
    assert.equal(verdict.styled, 0);
    assert.deepEqual(verdict.csp, [], 'nothing tripped the CSP');
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  it('pause stops new rows and keeps them; resume shows them', async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 0, { message: 'rows' });
    await page.click('#btn-pause');
    await page.waitForSelector('#conn[data-state="paused"]');
    const held = await flowCount(page);
    const maxBefore = await page.evaluate(() => Math.max(...[...document.querySelectorAll('#scroller .row')].map((r) => Number(r.dataset.id))));
    await until(() => page.evaluate(() => window.roapproxy.buffered >= 3), { message: 'flows to buffer', timeout: 15000 });
    assert.equal(await flowCount(page), held, 'no new rows while paused');
    const maxPaused = await page.evaluate(() => Math.max(...[...document.querySelectorAll('#scroller .row')].map((r) => Number(r.dataset.id))));
    assert.equal(maxPaused, maxBefore, 'no new row rendered');
    const buffered = await page.evaluate(() => window.roapproxy.buffered);
    // The header redraws on the next frame, not with each event.
    await until(async () => /Resume \(\d+\)/.test(await page.textContent('#btn-pause')), { message: 'the resume button to count what is held' });
    await until(async () => /buffered/.test(await page.textContent('#count-note')), { message: 'the buffered note' });
    await page.click('#btn-pause');
    await page.waitForSelector('#conn[data-state="live"]');
    assert.ok((await flowCount(page)) >= held + buffered, 'the buffered flows are shown');
    await until(async () => Math.max(...(await visibleRows(page)).map((r) => r.id)) > maxBefore, { message: 'newer rows after resume' });
    await page.close();
  });

  it('reconnects after the stream drops, from the last event seen, and misses nothing', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    // Every stream connection goes through here, so the test can cut them and hold reconnects.
    const urls = [];
    const open = [];
    let refuse = false;
    await page.routeWebSocket(/\/api\/stream/, (ws) => {
      urls.push(ws.url());
      if (refuse) {
        ws.close({ code: 1011, reason: 'test: refused' });
        return;
      }
      ws.connectToServer();
      open.push(ws);
    });
    await page.goto(LIVE_URL);
    await waitLive(page);
    await until(async () => (await flowCount(page)) > 0, { message: 'rows' });
    assert.match(urls[0], /since=0/);
    refuse = true;
    for (const ws of open.splice(0)) await ws.close({ code: 1012, reason: 'test: dropped' });
    await until(async () => (await page.getAttribute('#conn', 'data-state')) === 'reconnecting', { message: 'reconnecting state' });
    await new Promise((r) => setTimeout(r, 1500)); // flows keep arriving meanwhile
    const seen = await page.evaluate(() => window.roapproxy.lastSeq);
    assert.ok(seen > 0);
    refuse = false;
    await waitLive(page, 15000);
    const resumed = urls[urls.length - 1];
    assert.match(resumed, new RegExp(`since=${seen}(&|$)`), `reconnected from the last seq seen (${resumed})`);
    const server = await api(LIVE_URL, '/api/flows?limit=5000');
    await until(async () => (await flowCount(page)) >= server.total, { message: 'the table to catch up' });
    const ids = await page.evaluate(() => window.roapproxy.ids());
    const shown = new Set(ids);
    for (const s of server.flows || []) assert.ok(shown.has(s.id), `flow ${s.id} shown after reconnecting`);
    assert.equal(shown.size, ids.length, 'no duplicates');

    // The stream may repeat a flow (a snapshot overlapping the events after it): one row each.
    const stream = open[open.length - 1];
    const [s1, s2] = server.flows;
    stream.send(JSON.stringify({ type: 'flow', seq: 1, flow: s1 }));
    stream.send(JSON.stringify({ type: 'flow', seq: 2, flow: s2 }));
    await new Promise((r) => setTimeout(r, 300));
    const again = await page.evaluate(() => window.roapproxy.ids());
    assert.equal(again.filter((id) => id === s1.id).length, 1, 'a repeated flow is shown once');
    assert.equal(new Set(again).size, again.length, 'no duplicates');
    // A resync replaces the table with the snapshot that follows it.
    stream.send(JSON.stringify({ type: 'resync', reason: 'test' }));
    stream.send(JSON.stringify({ type: 'snapshot', flows: [s1, s2], total: 2, lastSeq: await page.evaluate(() => window.roapproxy.lastSeq) }));
    await until(async () => {
      const ids = await page.evaluate(() => window.roapproxy.ids());
      return ids[0] === s1.id && ids[1] === s2.id && ids.length < again.length;
    }, { message: 'the snapshot to replace the table' });
    await context.close();
  });

  it('lists the rule catalogue, searchable, and filters by a rule', async () => {
    const page = await newPage(browser, LIVE_URL);
    await page.click('#btn-rules');
    await page.waitForSelector('table.rules tbody tr');
    const all = await page.locator('table.rules tbody tr').count();
    const rules = await api(LIVE_URL, '/api/rules');
    assert.equal(all, rules.length);
    await page.fill('.rules-search', 'DEC-CERT');
    await until(async () => (await page.locator('table.rules tbody tr').count()) < all, { message: 'search' });
    assert.match(await page.textContent('table.rules tbody'), /DEC-CERT/);
    await page.click('table.rules tbody tr button[data-act="filter"] >> text=DEC-CERT');
    assert.ok(await page.locator('#rules-dialog').isHidden());
    assert.equal(await page.inputValue('#f-q'), 'DEC-CERT');
    await until(async () => page.url().includes('q=DEC-CERT'), { message: 'the rule filter' });
    await page.keyboard.press('Escape');
    await page.close();
  });

  // docs/ui.png shows the real demo (web/e2e/demo.test.mjs); this one, of the synthetic feed,
  // goes to docs/ui-synthetic.png.
  it('takes a screenshot of the synthetic feed', { skip: process.env.ROAPPROXY_SCREENSHOT !== '1' && 'set ROAPPROXY_SCREENSHOT=1' }, async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 40, { message: 'a full table', timeout: 30000 });
    await page.click('#btn-pause');
    // A leave in view, clear of the "follow" button, preferably one the DEA fanned out to a
    // second RI (its exchange has three flows and four lifelines).
    const rows = (await visibleRows(page)).filter((r) => r.text.includes('leaveDomainRequest')).slice(0, -2);
    let pick = rows[rows.length - 1];
    for (const r of rows.reverse()) {
      if ((await api(LIVE_URL, `/api/related/${r.id}`)).flows.length === 3) {
        pick = r;
        break;
      }
    }
    await page.click(`#scroller .row[data-id="${pick.id}"]`);
    await page.click('.tab[data-tab="exchange"]');
    await page.waitForSelector('svg.seq g.msg');
    await page.click('#btn-pause');
    await page.mouse.move(0, 0);
    await page.waitForTimeout(400);
    const out = join(here, '..', '..', 'docs', 'ui-synthetic.png');
    mkdirSync(dirname(out), { recursive: true });
    await page.screenshot({ path: out });
    await page.close();
  });

  it('clears the capture', async () => {
    const page = await newPage(browser, LIVE_URL);
    await until(async () => (await flowCount(page)) > 5, { message: 'rows' });
    const before = await flowCount(page);
    const maxBefore = Math.max(...(await page.evaluate(() => window.roapproxy.ids())));
    await page.click('#btn-clear');
    // The table drops every row it had; what it shows next arrived after the clear.
    await until(async () => {
      const ids = await page.evaluate(() => window.roapproxy.ids());
      return ids.length < before && ids.every((id) => id > maxBefore);
    }, { message: 'the table to empty' });
    const server = await api(LIVE_URL, '/api/flows?limit=5000');
    assert.ok((server.flows || []).every((s) => s.id > maxBefore), 'the server store was cleared');
    await page.close();
  });
});
