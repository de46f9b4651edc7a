// Drive the pvdgeo viewer in headless Chromium and report what it rendered, as JSON.
//
//   node tests/browser/viewer_check.mjs BASE_URL INSEE ARTIFACTS_DIR [OTHER_INSEE]
//
// Loads BASE_URL/viewer/?town=INSEE, clicks through every view of the view switcher,
// and for each view records the rendered feature count of every legend layer, the
// legend text, a popup opened at the map centre (when a feature is there) and a
// screenshot (ARTIFACTS_DIR/viewer_<INSEE>_<view>.png). With OTHER_INSEE, then picks that
// town in the town picker and records the same for the current view. Console errors, page errors,
// failed requests and HTTP errors are collected (chromium.mjs). pytest
// (tests/export/test_viewer_browser.py) asserts on the printed JSON (one line).

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launch, problems, watch } from "./chromium.mjs";

const [base, insee, artifacts, other] = process.argv.slice(2);
if (!base || !insee || !artifacts) {
  console.error("usage: node viewer_check.mjs BASE_URL INSEE ARTIFACTS_DIR");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const TIMEOUT_MS = 90_000;
const browser = await launch();
const result = { town: insee, views: [], errors: [], towns: [] };
let seen = null;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 }, locale: "fr-FR" });
  seen = watch(page);

  await page.goto(`${base}/viewer/?town=${encodeURIComponent(insee)}`, { waitUntil: "load" });
  await page.waitForFunction(() => ["ready", "error", "empty"].includes(document.body.dataset.state),
    null, { timeout: TIMEOUT_MS, polling: 200 });
  result.state = await page.evaluate(() => document.body.dataset.state);
  result.towns = await page.$$eval("#town option", (opts) => opts.map((o) => o.value));
  result.links = await page.$$eval("#links a", (as) => as.map((a) => ({ text: a.textContent, href: a.getAttribute("href") })));
  const viewIds = await page.$$eval("#views button", (bs) => bs.map((b) => b.dataset.viewId));

  for (const id of viewIds) {
    await page.click(`#views button[data-view-id="${id}"]`);
    await page.waitForFunction((v) => document.body.dataset.view === v && document.body.dataset.state === "ready",
      id, { timeout: TIMEOUT_MS, polling: 200 });
    const info = await page.evaluate(() => {
      const viewer = window.pvdViewer;
      const { map } = viewer;
      const counts = viewer.renderedCounts();
      const legend = [...document.querySelectorAll("#legend .legend-block")].map((b) => b.innerText);
      const popupLayers = Object.keys(viewer.state.styles.get(viewer.state.view.id).metadata["pvdgeo:popup"])
        .filter((l) => map.getLayer(l));
      const canvas = map.getCanvas();
      const centre = [canvas.clientWidth / 2, canvas.clientHeight / 2];
      const atCentre = popupLayers.length ? map.queryRenderedFeatures(centre, { layers: popupLayers }).length : 0;
      return { counts, legend, atCentre, centre, url: window.location.search };
    });
    let popup = null;
    if (info.atCentre > 0) {
      const box = await page.locator("#map canvas").boundingBox();
      await page.mouse.click(box.x + info.centre[0], box.y + info.centre[1]);
      const el = page.locator(".maplibregl-popup-content");
      await el.waitFor({ timeout: 10_000 });
      popup = await el.innerText();
      await page.keyboard.press("Escape");
      await page.evaluate(() => document.querySelector(".maplibregl-popup")?.remove());
    }
    const screenshot = join(artifacts, `viewer_${insee}_${id}.png`);
    await page.screenshot({ path: screenshot });
    result.views.push({ id, ...info, popup, screenshot });
  }
  if (other) {
    await page.selectOption("#town", other);
    await page.waitForFunction((t) => document.body.dataset.town === t && document.body.dataset.state === "ready",
      other, { timeout: TIMEOUT_MS, polling: 200 });
    const screenshot = join(artifacts, `viewer_${other}_occupation_sols.png`);
    result.other = await page.evaluate(() => ({
      town: document.body.dataset.town, view: document.body.dataset.view,
      counts: window.pvdViewer.renderedCounts(), url: window.location.search,
      legend: [...document.querySelectorAll("#legend .legend-block")].map((b) => b.innerText),
    }));
    // and a view whose layers this town has
    await page.click('#views button[data-view-id="occupation_sols"]');
    await page.waitForFunction(() => document.body.dataset.view === "occupation_sols" && document.body.dataset.state === "ready",
      null, { timeout: TIMEOUT_MS, polling: 200 });
    result.other.landcover = await page.evaluate(() => window.pvdViewer.renderedCounts());
    // street scale: the CORINE polygons replace the hexagons
    result.other.landcoverZoom15 = await page.evaluate(() => new Promise((resolve) => {
      const { map } = window.pvdViewer;
      map.once("idle", () => resolve(window.pvdViewer.renderedCounts()));
      map.jumpTo({ zoom: 15 });
    }));
    await page.screenshot({ path: screenshot });
    result.other.screenshot = screenshot;
  }
} catch (err) {
  result.errors.push(`driver: ${err.message}`);
} finally {
  await browser.close();
}
if (seen) result.errors.unshift(...problems(seen));
process.stdout.write(JSON.stringify(result) + "\n");
