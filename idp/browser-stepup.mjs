// Drives Debian's Chromium (headless, through playwright-core) through a shop visit that
// needs a step-up: each step opens a page (or submits the form on the current page); where
// the browser lands on the IdP's login form, it signs in as `user`, with the one-time code
// when the step says so. A step ends when the page shows its `until` selector. Prints one
// JSON line with each step's URL and text.
//
// Usage: node browser-stepup.mjs '{"user": ..., "steps": [{"url": ... | "submit": true,
//   "code": "123456" | null, "until": "#done"}]}'
import { launch } from './chromium.mjs';

const job = JSON.parse(process.argv[2]);
const browser = await launch();
const results = [];
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  for (const step of job.steps) {
    if (step.url) await page.goto(step.url);
    else await page.click('button[type=submit]');
    // Either the page itself, or the IdP's login form on the way to it.
    await page.waitForSelector(`${step.until}, input[name=login]`, { state: 'attached' });
    if (await page.$('input[name=login]')) {
      await page.fill('input[name=login]', job.user);
      await page.fill('input[name=password]', 'any-password');
      if (step.code) await page.fill('input[name=otp]', step.code);
      await page.click('button[type=submit]');
      await page.waitForSelector(step.until, { state: 'attached' });
    }
    results.push({ url: page.url(), text: await page.textContent('body') });
  }
  console.log(JSON.stringify({ steps: results }));
} finally {
  await browser.close();
}
