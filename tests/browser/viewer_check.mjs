// Drive the pvdgeo viewer in headless Chromium and report what it rendered, as JSON.
//
//   node tests/browser/viewer_check.mjs BASE_URL INSEE ARTIFACTS_DIR [OTHER_INSEE]
//
// Loads BASE_URL/viewer/?town=INSEE, clicks through every view of the view switcher
// (views the town has no data for are greyed out: their status is recorded, not
// clicked), and for each view records the rendered feature count of every legend layer,
// the legend text, the legend classes of the features rendered at the view's first
// render and of all the features in the tiles, a popup opened at the map centre (when a
// feature is there) and a screenshot (ARTIFACTS_DIR/viewer_<INSEE>_<view>.png). For
// each fill legend it then hides the layers drawn above, screenshots the page
// (swatch_<INSEE>_<view>_<layer>.png) and records, per legend class, sample points of
// the map inside features of that class and the centre of the class's swatch: pytest
// compares the pixels. It also records the commune names the label layer renders and
// what ?town=99999 shows. With OTHER_INSEE, then picks that
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

  result.labels = await page.evaluate(() => [...new Set(window.pvdViewer.map
    .queryRenderedFeatures({ layers: ["communes-noms"] }).map((f) => f.properties.nom))]);
  result.fonts = await page.evaluate(() => performance.getEntriesByType("resource")
    .map((e) => e.name).filter((n) => n.includes("/fonts/")));
  for (const id of viewIds) {
    const status = await page.evaluate((v) => ({
      ...(window.pvdViewer.state.town.views?.[v] ?? { available: true }),
      disabled: document.querySelector(`#views button[data-view-id="${v}"]`).getAttribute("aria-disabled"),
    }), id);
    if (!status.available) { result.views.push({ id, status }); continue; }
    // a view opens on its own framing (the map has not been moved by hand)
    await page.click(`#views button[data-view-id="${id}"]`);
    await page.waitForFunction((v) => document.body.dataset.view === v && document.body.dataset.state === "ready",
      id, { timeout: TIMEOUT_MS, polling: 200 });
    const info = await page.evaluate(() => {
      const viewer = window.pvdViewer;
      const { map } = viewer;
      const counts = viewer.renderedCounts();
      const legend = viewer.state.styles.get(viewer.state.view.id).metadata["pvdgeo:legend"];
      const classOf = (entry, props) => {
        const v = props[entry.field];
        if (v === undefined || v === null) return "nodata";
        if (entry.kind === "categorized") return String(v);
        const c = entry.classes.find((k) => v >= k.min && (k.max === null || k.max === undefined || v < k.max));
        return c ? c.label : "hors classes";
      };
      const classes = {};
      for (const entry of legend) {
        if (entry.kind === "single") continue;
        const layers = [entry.layer, ...(entry.also_layers ?? [])].filter((l) => map.getLayer(l));
        const filterOk = (p) => !entry.filter || p[entry.filter[0]] === entry.filter[1];
        const rendered = new Set(map.queryRenderedFeatures({ layers }).map((f) => classOf(entry, f.properties)));
        const all = new Set(map.querySourceFeatures("pvdgeo", { sourceLayer: entry.source_layer })
          .filter((f) => filterOk(f.properties)).map((f) => classOf(entry, f.properties)));
        classes[entry.layer] = { rendered: [...rendered], all: [...all] };
      }
      const labels = [...new Set(map.queryRenderedFeatures({ layers: ["communes-noms"] }).map((f) => f.properties.nom))];
      return { counts, classes, labels, zoom: map.getZoom(), summary: document.querySelector("#view-summary").innerText };
    });
    Object.assign(info, await page.evaluate(() => {
      const viewer = window.pvdViewer;
      const { map } = viewer;
      const legend = [...document.querySelectorAll("#legend .legend-block")].map((b) => b.innerText);
      const popupLayers = Object.keys(viewer.state.styles.get(viewer.state.view.id).metadata["pvdgeo:popup"])
        .filter((l) => map.getLayer(l));
      const canvas = map.getCanvas();
      const centre = [canvas.clientWidth / 2, canvas.clientHeight / 2];
      const atCentre = popupLayers.length ? map.queryRenderedFeatures(centre, { layers: popupLayers }).length : 0;
      return { legend, atCentre, centre, url: window.location.search };
    }));
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
    info.swatches = await swatchSamples(page, id);
    result.views.push({ id, status, ...info, popup, screenshot });
  }
  // an unknown town: a message, no other town shown in its place
  const other_page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  const seen2 = watch(other_page);
  await other_page.goto(`${base}/viewer/?town=99999`, { waitUntil: "load" });
  await other_page.waitForFunction(() => document.body.dataset.state !== "loading", null, { timeout: TIMEOUT_MS });
  result.unknown = await other_page.evaluate(() => ({
    state: document.body.dataset.state, message: document.querySelector("#message").innerText,
    hidden: document.querySelector("#message").hidden, town: document.querySelector("#town").value,
    canvas: document.querySelectorAll("#map canvas").length,
  }));
  result.errors.push(...problems(seen2));
  await other_page.close();
  if (other) {
    await page.selectOption("#town", other);
    await page.waitForFunction((t) => document.body.dataset.town === t && document.body.dataset.state === "ready",
      other, { timeout: TIMEOUT_MS, polling: 200 });
    const screenshot = join(artifacts, `viewer_${other}_occupation_sols.png`);
    result.other = await page.evaluate(() => ({
      town: document.body.dataset.town, view: document.body.dataset.view,
      message: document.querySelector("#message").hidden ? "" : document.querySelector("#message").innerText,
      first_available: window.pvdViewer.state.views.find((v) => window.pvdViewer.state.town.views[v.id].available).id,
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

// For each fill legend of the current view: hide every layer drawn above its layers,
// read the map's pixels (WebGL readPixels) at sample points inside features of each class
// and keep the most frequent colour per class; screenshot each class's swatch
// (swatch_<INSEE>_<view>_<layer>_<i>.png) for pytest to compare.
async function swatchSamples(page, view) {
  const entries = await page.evaluate(() => {
    const { state, map } = window.pvdViewer;
    return state.styles.get(state.view.id).metadata["pvdgeo:legend"]
      .filter((e) => e.kind !== "single" && map.getLayer(e.layer) && map.getLayer(e.layer).type === "fill")
      .map((e) => e.layer);
  });
  const out = [];
  for (const layer of entries) {
    const hidden = await page.evaluate((id) => new Promise((resolve) => {
      const { map, state } = window.pvdViewer;
      const entry = state.styles.get(state.view.id).metadata["pvdgeo:legend"].find((e) => e.layer === id);
      const mine = [entry.layer, ...(entry.also_layers ?? [])];
      const order = map.getStyle().layers.map((l) => l.id);
      const last = Math.max(...mine.map((l) => order.indexOf(l)));
      const hide = order.slice(last + 1);
      for (const l of hide) map.setLayoutProperty(l, "visibility", "none");
      map.once("idle", () => resolve(hide));
      map.triggerRepaint();
    }), layer);
    const samples = await page.evaluate((id) => {
      const { map, state } = window.pvdViewer;
      const entry = state.styles.get(state.view.id).metadata["pvdgeo:legend"].find((e) => e.layer === id);
      const layers = [entry.layer, ...(entry.also_layers ?? [])].filter((l) => map.getLayer(l));
      const canvas = map.getCanvas();
      const gl = canvas.getContext("webgl2") ?? canvas.getContext("webgl");
      const ratio = canvas.width / canvas.clientWidth;
      const pixels = new Uint8Array(canvas.width * canvas.height * 4);
      gl.readPixels(0, 0, canvas.width, canvas.height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
      const counts = {};
      for (let y = 20; y < canvas.clientHeight - 20; y += 9) {
        for (let x = 20; x < canvas.clientWidth - 20; x += 9) {
          const [f] = map.queryRenderedFeatures([x, y], { layers });
          if (!f) continue;
          const v = f.properties[entry.field];
          let label = entry.nodata?.label;
          if (v !== undefined && v !== null) {
            const c = entry.kind === "categorized" ? entry.classes.find((k) => k.value === v)
              : entry.classes.find((k) => v >= k.min && (k.max === null || k.max === undefined || v < k.max));
            label = c?.label;
          }
          if (!label) continue;
          const px = Math.round(x * ratio);
          const py = canvas.height - 1 - Math.round(y * ratio);
          const i = (py * canvas.width + px) * 4;
          const key = `${pixels[i]},${pixels[i + 1]},${pixels[i + 2]}`;
          (counts[label] ??= {})[key] = ((counts[label] ??= {})[key] ?? 0) + 1;
        }
      }
      const map_colours = {};
      for (const [label, byColour] of Object.entries(counts)) {
        const [best, n] = Object.entries(byColour).sort((a, b) => b[1] - a[1])[0];
        const total = Object.values(byColour).reduce((a, b) => a + b, 0);
        map_colours[label] = { rgb: best.split(",").map(Number), share: n / total, samples: total };
      }
      return { map_colours, zoom: map.getZoom() };
    }, layer);
    const items = page.locator(`#legend .legend-block[data-layer="${layer}"] li`);
    const swatches = [];
    for (let i = 0; i < await items.count(); i += 1) {
      const li = items.nth(i);
      const path = join(artifacts, `swatch_${insee}_${view}_${layer}_${i}.png`);
      await li.locator(".swatch").screenshot({ path });
      swatches.push({ label: await li.innerText(), color: await li.getAttribute("data-color"), path });
    }
    await page.evaluate((hide) => new Promise((resolve) => {
      const { map } = window.pvdViewer;
      for (const l of hide) map.setLayoutProperty(l, "visibility", "visible");
      map.once("idle", resolve);
      map.triggerRepaint();
    }), hidden);
    out.push({ layer, swatches, ...samples });
  }
  return out;
}
