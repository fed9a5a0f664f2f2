// Walks Debian's Chromium through a list of steps in one language, at desktop and phone
// width (a new browser context, cookies and all, for each width), and at each "snapshot"
// checks the page with axe-core (WCAG 2.1 A and AA), saves a screenshot and records what a
// person sees. Prints one JSON line: {"snapshots": [{name, width, url, status, lang, title,
// text, probe, logo, violations}]}.
//
// Usage: node browser-walk.mjs '{"locale": "de-DE", "screenshots": DIR, "steps": [...]}'
// Steps: {"goto": URL, "from": URL?} (`from`: arrive from that page of another origin),
// {"fill": SELECTOR, "value": TEXT}, {"click": SELECTOR} (waits for the page it opens),
// {"waitForUrl": PREFIX}, {"snapshot": NAME, "probe": SELECTOR?} (`probe`: the computed
// border-top colour of that element, to see that a stylesheet applied).
import { createRequire } from 'node:module';
import { launch } from './chromium.mjs';

const require = createRequire(import.meta.url);
const axeSource = (await import('node:fs')).readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const job = JSON.parse(process.argv[2]);
const widths = [{ name: 'desktop', width: 1280, height: 900 }, { name: 'phone', width: 375, height: 740 }];
const browser = await launch();
const snapshots = [];
try {
  for (const viewport of widths) {
    // The pages' own CSP stays on (a stylesheet or logo it does not admit would show);
    // axe runs in an isolated world, as the test's tool, not as a script of the page.
    const context = await browser.newContext({ viewport, locale: job.locale });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    let status = null;
    page.on('response', (r) => {
      if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) status = r.status();
    });
    for (const step of job.steps) {
      if (step.goto) {
        if (step.from) {
          await page.goto(step.from);
          await Promise.all([page.waitForNavigation(), page.evaluate((url) => { window.location.href = url; }, step.goto)]);
        } else {
          await page.goto(step.goto);
        }
      } else if (step.fill) {
        await page.fill(step.fill, step.value);
      } else if (step.click) {
        await Promise.all([page.waitForNavigation(), page.click(step.click)]);
      } else if (step.waitForUrl) {
        await page.waitForURL((u) => u.toString().startsWith(step.waitForUrl));
      } else if (step.snapshot) {
        await page.waitForLoadState('load');
        const seen = await page.evaluate((probe) => {
          const probed = probe && document.querySelector(probe);
          const logo = document.querySelector('img.logo');
          return {
            lang: document.documentElement.lang,
            title: document.title,
            text: document.body.innerText,
            probe: probed ? getComputedStyle(probed).borderTopColor : null,
            logo: logo ? logo.naturalWidth : null,
          };
        }, step.probe || null);
        const session = await context.newCDPSession(page);
        const { executionContextId } = await isolatedWorld(session);
        await session.send('Runtime.evaluate', { expression: axeSource, contextId: executionContextId });
        const { result } = await session.send('Runtime.evaluate', {
          expression: `axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
            .then((r) => JSON.stringify(r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.html) }))))`,
          contextId: executionContextId,
          awaitPromise: true,
          returnByValue: true,
        });
        await session.detach();
        const shot = `${job.screenshots}/${step.snapshot}-${viewport.name}.png`;
        await page.screenshot({ path: shot, fullPage: true });
        snapshots.push({
          name: step.snapshot, width: viewport.name, url: page.url(), status, ...seen,
          violations: JSON.parse(result.value), screenshot: shot,
        });
      }
    }
    await context.close();
  }
  console.log(JSON.stringify({ snapshots }));
} finally {
  await browser.close();
}

// A JavaScript world of the test's own in the page's main frame: the page's CSP does not
// apply to it, and nothing of it is visible to the page.
async function isolatedWorld(session) {
  const { frameTree } = await session.send('Page.getFrameTree');
  return session.send('Page.createIsolatedWorld', { frameId: frameTree.frame.id, worldName: 'axe' });
}
