// Shared set-up for the browser tests: a headless Chromium through playwright-core, the URLs of
// the servers under test (from the Go harness, web/e2e_test.go), and small polling helpers.

import { chromium } from 'playwright-core';

export const LIVE_URL = process.env.ROAPPROXY_UI_URL || '';
export const BIG_URL = process.env.ROAPPROXY_UI_BIG_URL || '';
// The live server is fed by web/feed_test.go (the seed 000 exchange with the vectors' exact IDs, a
// hostile flow, late findings). Tests that rely on those fixtures skip over other traffic.
export const SYNTHETIC = process.env.ROAPPROXY_UI_FEED === 'synthetic';
const NEEDS = 'needs the synthetic feeder (ROAPPROXY_UI_FEED=synthetic)';
export const needsFeeder = (opts = {}) => ({ ...opts, skip: !SYNTHETIC && NEEDS });

export const SEED_DEVICE = 'gFRTYNpC6VEhQafFOugGmY6VGeI=';
export const SEED_DOMAIN = 'ACMEUSERDOM42001';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

// newPage opens a 1280x800 page that records page errors, console errors and CSP violations.
export async function newPage(browser, url, { colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push('pageerror: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') page.problems.push('console: ' + m.text());
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  if (url) {
    await page.goto(url);
    await waitLive(page);
  }
  return page;
}

export async function waitLive(page, timeout = 10000) {
  await page.waitForFunction(() => document.querySelector('#conn')?.dataset.state === 'live', null, { timeout });
}

// until polls fn (in node) until it returns a truthy value.
export async function until(fn, { timeout = 10000, interval = 100, message = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${message} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export async function api(base, path) {
  const r = await fetch(base.replace(/\/$/, '') + path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

export const flowCount = (page) => page.evaluate(() => window.roapproxy.flowCount);

// visibleRows returns the rows inside the scroller's viewport as {id, text}.
export function visibleRows(page) {
  return page.evaluate(() => {
    const sc = document.querySelector('#scroller').getBoundingClientRect();
    return [...document.querySelectorAll('#scroller .row')]
      .filter((r) => {
        const b = r.getBoundingClientRect();
        return b.bottom > sc.top + 1 && b.top < sc.bottom - 1;
      })
      .map((r) => ({ id: Number(r.dataset.id), text: r.textContent }));
  });
}
