// Drives Debian's Chromium (headless, through playwright-core) through a form that is sent
// without a session: the form page → submit → the sidecar's login page (organization) →
// the IdP's login form (the organization page only when there are several) → back, where the kept form is posted again. Prints one JSON line
// with where the browser ended up and the page's text (the page has `#done` when saved).
//
// Usage: node browser-form.mjs '{"url": ..., "fields": {"name": "value"}, "org": ..., "user": ...}'
import { launch, signIn } from './chromium.mjs';

const job = JSON.parse(process.argv[2]);
const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(job.url);
  for (const [name, value] of Object.entries(job.fields)) {
    await page.fill(`[name="${name}"]`, value);
  }
  await page.click('button[type=submit]');
  // With one organization the sidecar goes straight to its IdP.
  await signIn(page, job, '#done');
  console.log(JSON.stringify({ url: page.url(), text: await page.textContent('body') }));
} finally {
  await browser.close();
}
