// Drives Debian's Chromium (headless, through playwright-core) as a shop's guest: adds
// products to the basket on the product page (which shows how many items the guest's
// basket holds, `#count`), goes to the checkout's basket page, which needs a sign-in,
// chooses the organization when asked, signs in at the IdP (consenting when asked), and reads the basket page it
// lands on (`#done`, one `li.item` per line). Prints one JSON line: where the browser
// ended up, the basket's lines, and the cookies the shop's page can see.
//
// Usage: node browser-basket.mjs '{"products": url, "skus": [...], "org": ..., "user": ...}'
import { launch, signIn } from './chromium.mjs';

const job = JSON.parse(process.argv[2]);
const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(job.products);
  for (const [index, sku] of job.skus.entries()) {
    await page.click(`#add-${sku}`);
    await page.waitForFunction(
      (count) => document.querySelector('#count')?.textContent === String(count),
      index + 1,
    );
  }
  await page.click('#checkout');
  await signIn(page, job, '#done');
  const items = await page.$$eval('li.item', (lines) => lines.map((line) => line.textContent));
  console.log(JSON.stringify({ url: page.url(), items }));
} finally {
  await browser.close();
}
