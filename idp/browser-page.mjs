// Opens one page in Debian's Chromium (headless, through playwright-core), waits until an
// element `#done` appears (the page's own script adds it when it has finished), and prints
// one JSON line with the page's text.
//
// Usage: node browser-page.mjs '{"url": ...}'
import { chromium } from 'playwright-core';

const job = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(job.url);
  await page.waitForSelector('#done', { state: 'attached' });
  console.log(JSON.stringify({ url: page.url(), text: await page.textContent('body') }));
} finally {
  await browser.close();
}
