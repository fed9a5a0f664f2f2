// Debian's Chromium, headless, through playwright-core, as every browser driver here
// launches it. A driver must never hang its test: the whole run has a deadline, the
// launch is tried twice, closing is bounded, and every page the browser opens is written
// to stderr so a failure shows how far the walk got.
import { chromium } from 'playwright-core';

const DEADLINE_MS = 80_000;
const started = Date.now();
const trace = (what) => process.stderr.write(`[${Date.now() - started} ms] ${what}\n`);

setTimeout(() => {
  trace(`still running after ${DEADLINE_MS} ms: giving up`);
  process.exit(3);
}, DEADLINE_MS).unref();

function traced(page) {
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) trace(`page ${frame.url()}`);
  });
  page.on('pageerror', (error) => trace(`page error ${error.message}`));
  return page;
}

async function launchOnce() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30_000,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  // `newPage` opens its page through `newContext` too.
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (...options) => {
    const context = await newContext(...options);
    context.on('page', traced);
    return context;
  };
  // Closing waits for Chromium to exit; bounded, as a stuck exit must not fail a walk
  // that already printed its result.
  const close = browser.close.bind(browser);
  browser.close = () =>
    Promise.race([close(), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  return browser;
}

// From a page that leads to a sign-in: chooses the organization when the sidecar asks,
// signs in at the IdP as `user` (any password), consents when the IdP asks, and waits
// for `done` on the page the browser comes back to.
export async function signIn(page, { org, user }, done) {
  await page.waitForSelector('#org, input[name=login]');
  if (await page.$('#org')) {
    await page.fill('#org', org);
    await page.click('button[type=submit]');
  }
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'any-password');
  await page.click('button[type=submit]');
  const consent = 'input[name=prompt][value=consent]';
  await page.waitForSelector(`${done}, ${consent}`, { state: 'attached' });
  if (await page.$(consent)) {
    await page.click('button[type=submit]');
  }
  await page.waitForSelector(done, { state: 'attached' });
}

export async function launch() {
  try {
    return await launchOnce();
  } catch (error) {
    trace(`launch failed, trying once more: ${error.message}`);
    return await launchOnce();
  }
}
