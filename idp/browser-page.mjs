// Opens one page in Debian's Chromium (headless, through playwright-core), waits until an
// element `#done` appears (the page's own script adds it when it has finished), and prints
// one JSON line with the page's text.
//
// Usage: node browser-page.mjs '{"url": ...}'
import { launch } from './chromium.mjs';

const job = JSON.parse(process.argv[2]);
const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(job.url);
  await page.waitForSelector('#done', { state: 'attached' });
  console.log(JSON.stringify({ url: page.url(), text: await page.textContent('body') }));
} finally {
  await browser.close();
}
