// Load one page in headless Chromium and report what a user would see.
//
//   node tests/browser/check_page.mjs '<json config>'
//
// config: { url, screenshot?, viewport?: {width, height}, waitFor?: css selector,
//           count?: {name: css selector}, fullPage?: bool, timeoutMs?: number,
//           element?: css selector (screenshot of that element only) }
// Prints one JSON object: { title, console: [{type, text}], pageErrors: [..],
// failedRequests: [..], httpErrors: [..], counts: {name: n}, screenshot }. Exit status 0
// unless the browser itself failed; the caller asserts on the report.
import { launch, watch } from './chromium.mjs';

const config = JSON.parse(process.argv[2] || '{}');
const browser = await launch();
const report = { counts: {} };
try {
  const page = await browser.newPage({ viewport: config.viewport || { width: 1200, height: 900 } });
  Object.assign(report, watch(page));  // filled as the page runs
  await page.goto(config.url, { waitUntil: 'load', timeout: config.timeoutMs || 30000 });
  if (config.waitFor) await page.waitForSelector(config.waitFor, { timeout: config.timeoutMs || 30000 });
  report.title = await page.title();
  for (const [name, selector] of Object.entries(config.count || {})) {
    report.counts[name] = await page.locator(selector).count();
  }
  if (config.screenshot) {
    if (config.element) {
      await page.locator(config.element).first().screenshot({ path: config.screenshot });
    } else {
      await page.screenshot({ path: config.screenshot, fullPage: config.fullPage ?? true });
    }
    report.screenshot = config.screenshot;
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
