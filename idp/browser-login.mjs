// Drives Debian's Chromium (headless, through playwright-core) through a real sign-in:
// protected page → login page (organization) → IdP choice → the IdP's login form → back
// on the protected page. Prints one JSON line with where the browser ended up and the
// page's text; saves a screenshot of the login page.
//
// Usage: node browser-login.mjs '{"url": ..., "org": ..., "idp": ..., "user": ..., "screenshot": ...}'
// Optional: "until" (the URL prefix where the run ends, default "url"), "finalScreenshot".
import { launch } from './chromium.mjs';

const job = JSON.parse(process.argv[2]);
const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(job.url);
  await page.waitForSelector('#org');
  if (job.screenshot) await page.screenshot({ path: job.screenshot, fullPage: true });
  await page.fill('#org', job.org);
  await page.click('button[type=submit]');
  if (job.idp) {
    await page.click(`#idp-${job.idp}`);
  }
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', job.user);
  await page.fill('input[name=password]', 'any-password');
  await page.click('button[type=submit]');
  await page.waitForURL((u) => u.toString().startsWith(job.until || job.url));
  if (job.finalScreenshot) await page.screenshot({ path: job.finalScreenshot, fullPage: true });
  const text = await page.textContent('body');
  console.log(JSON.stringify({ url: page.url(), text }));
} finally {
  await browser.close();
}
