// Checks pages for accessibility problems with axe-core (WCAG 2.1 A and AA rules) in
// Debian's Chromium, at desktop and phone width. Prints one JSON line: for each page and
// width, the violations axe found (rule id, impact, the elements), and a screenshot path.
//
// Usage: node browser-axe.mjs '{"pages": [{"name": ..., "url": ..., "from": URL?}],
//   "screenshots": DIR, "headers": {...}?}' (`from`: a page of another origin to come from)
import { createRequire } from 'node:module';
import { launch } from './chromium.mjs';

const require = createRequire(import.meta.url);
const axePath = require.resolve('axe-core/axe.min.js');
const job = JSON.parse(process.argv[2]);
const widths = [{ name: 'desktop', width: 1280, height: 900 }, { name: 'phone', width: 375, height: 740 }];
const browser = await launch();
const results = [];
try {
  for (const viewport of widths) {
    // The pages forbid scripts (CSP); axe is the test's own, so the policy is bypassed for it.
    const context = await browser.newContext({ viewport, extraHTTPHeaders: job.headers || {}, bypassCSP: true });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    for (const target of job.pages) {
      if (target.from) {
        // Arrive from another origin (`Sec-Fetch-Site` is then not same-origin).
        await page.goto(target.from);
        await Promise.all([page.waitForNavigation(), page.evaluate((url) => { window.location.href = url; }, target.url)]);
      } else {
        await page.goto(target.url);
      }
      await page.addScriptTag({ path: axePath });
      const found = await page.evaluate(async () => {
        const result = await window.axe.run(document, {
          runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
        });
        return result.violations.map((v) => ({
          id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.html),
        }));
      });
      const shot = `${job.screenshots}/${target.name}-${viewport.name}.png`;
      await page.screenshot({ path: shot, fullPage: true });
      results.push({ page: target.name, width: viewport.name, violations: found, screenshot: shot });
    }
    await context.close();
  }
  console.log(JSON.stringify({ results }));
} finally {
  await browser.close();
}
