// Drive the pvdgeo dashboard site in headless Chromium and report what it did, as JSON.
//
//   node tests/browser/site_check.mjs BASE_URL ARTIFACTS_DIR '<json config>'
//
// config: { search: "pont de veyle", expect: "01306", other: "<indicator key>",
//           filters: {departement, programme}, unknown: "99999" }
//
// 1. loads BASE_URL/site/ (the default indicator) and times the first render;
// 2. screenshots the map, picks `other` in the indicator tree, screenshots it again
//    (pytest compares the pixels);
// 3. types `search` in the search box, takes the first suggestion with the keyboard,
//    records the panel that opens and downloads its CSV; then homonyms, a code, accents;
// 4. sets `filters`, opens the table view, downloads the national CSV and the view's CSV;
// 5. reloads with ?commune=<unknown> and records the message;
// 6. loads the panel on a phone-sized screen;
// 7. checks every control can take the keyboard focus.
// Screenshots and downloads go to ARTIFACTS_DIR (site_*.png, site_*.csv). Console errors,
// page errors, failed requests and HTTP errors are collected (chromium.mjs).

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launch, problems, watch } from "./chromium.mjs";

const [base, artifacts, rawConfig] = process.argv.slice(2);
if (!base || !artifacts) {
  console.error("usage: node site_check.mjs BASE_URL ARTIFACTS_DIR '<json config>'");
  process.exit(2);
}
const config = { search: "pont de veyle", expect: "01306", other: "n_commerces_per_10k",
  filters: { departement: "01", programme: "pvd" }, unknown: "99999", ...JSON.parse(rawConfig || "{}") };
mkdirSync(artifacts, { recursive: true });

const TIMEOUT_MS = 60_000;
// The middle of the map (480 x 360 px): enough pixels to compare two renders.
async function mapShot(page, path) {
  const box = await page.locator("#map").boundingBox();
  const clip = { x: Math.round(box.x + box.width / 2 - 240), y: Math.round(box.y + box.height / 2 - 180),
    width: 480, height: 360 };
  await page.screenshot({ path, clip });
}

const ready = (page) => page.waitForFunction(() => document.body.dataset.state === "ready"
  || document.body.dataset.state === "error", null, { timeout: TIMEOUT_MS, polling: 100 });

const browser = await launch();
const result = { errors: [], steps: {} };
const seen = [];
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "fr-FR",
    acceptDownloads: true });
  const page = await context.newPage();
  seen.push(watch(page));
  const tileBytes = [];
  page.on("response", async (res) => {
    if (res.url().endsWith(".pmtiles") && res.status() === 206) {
      const len = Number(res.headers()["content-length"] ?? 0);
      tileBytes.push(len);
    }
  });

  // 1. first render
  const t0 = Date.now();
  await page.goto(`${base}/site/`, { waitUntil: "load" });
  await ready(page);
  result.steps.load = {
    state: await page.evaluate(() => document.body.dataset.state),
    firstRenderMs: Date.now() - t0,
    indicator: await page.evaluate(() => document.body.dataset.indicator),
    url: await page.evaluate(() => window.location.search),
    legend: await page.locator("#legend").innerText(),
    tree: await page.$$eval("#tree details", (ds) => ds.map((d) => ({ theme: d.dataset.theme,
      n: d.querySelectorAll("input").length }))),
    rendered: await page.evaluate(() => window.pvdSite.map.queryRenderedFeatures({ layers: ["communes-fill"] }).length),
    labels: await page.evaluate(() => window.pvdSite.map.queryRenderedFeatures({ layers: ["labels-departements", "labels-programmes"] })
      .map((f) => f.properties.nom).filter((v, i, a) => a.indexOf(v) === i).slice(0, 200)),
  };
  const first = join(artifacts, "site_map_default.png");
  await mapShot(page, first);
  await page.screenshot({ path: join(artifacts, "site_france.png") });

  // 2. another indicator
  const radio = page.locator(`#tree input[value="${config.other}"]`);
  await radio.evaluate((input) => { input.closest("details").open = true; });
  await radio.check();
  await page.waitForFunction((k) => document.body.dataset.indicator === k, config.other, { timeout: TIMEOUT_MS });
  await ready(page);
  const second = join(artifacts, "site_map_other.png");
  await mapShot(page, second);
  result.steps.switch = { indicator: await page.evaluate(() => document.body.dataset.indicator),
    url: await page.evaluate(() => window.location.search), first, second,
    legend: await page.locator("#legend").innerText() };

  // 3. search with the keyboard
  await page.locator("#search").focus();
  await page.keyboard.type(config.search, { delay: 20 });
  await page.waitForSelector("#search-results li[role=option]", { timeout: TIMEOUT_MS });
  const options = await page.$$eval("#search-results li", (lis) => lis.map((li) => ({ insee: li.dataset.insee, text: li.innerText })));
  await page.keyboard.press("Enter");
  await page.waitForFunction((code) => document.querySelector("#panel")?.dataset.insee === code,
    config.expect, { timeout: TIMEOUT_MS });
  await page.waitForFunction(() => !document.querySelector(".maplibregl-map")?.classList.contains("moving")
    && window.pvdSite.map.loaded() && !window.pvdSite.map.isMoving(), null, { timeout: TIMEOUT_MS });
  await page.waitForTimeout(800);
  await page.evaluate(() => new Promise((r) => { window.pvdSite.map.once("idle", r); window.pvdSite.map.triggerRepaint(); }));
  result.steps.search = {
    options, panel: await page.locator("#panel").innerText(),
    fiche: await page.evaluate(() => document.querySelector("#panel").dataset.fiche),
    url: await page.evaluate(() => window.location.search),
    commune: await page.evaluate(() => document.body.dataset.commune),
    zoom: await page.evaluate(() => window.pvdSite.map.getZoom()),
    selected: await page.evaluate(() => window.pvdSite.map.queryRenderedFeatures({ layers: ["selected-line"] }).length),
    focused: await page.evaluate(() => document.activeElement?.id),
  };
  await page.screenshot({ path: join(artifacts, "site_panel.png") });
  await page.locator("#panel").screenshot({ path: join(artifacts, "site_panel_only.png") });

  // the panel's figures as CSV
  const sheetDl = page.waitForEvent("download");
  await page.click("#download-sheet");
  const sheetFile = await sheetDl;
  result.steps.search.sheetCsv = join(artifacts, "site_sheet.csv");
  result.steps.search.sheetCsvName = sheetFile.suggestedFilename();
  await sheetFile.saveAs(result.steps.search.sheetCsv);

  // homonyms and codes: the suggestions tell them apart by département
  const suggestions = async (text) => {
    await page.locator("#search").fill("");
    await page.locator("#search").focus();
    await page.keyboard.type(text, { delay: 10 });
    await page.waitForSelector("#search-results li", { timeout: TIMEOUT_MS });
    const found = await page.$$eval("#search-results li", (lis) => lis.map((li) => ({ insee: li.dataset.insee, text: li.innerText })));
    await page.keyboard.press("Escape");
    return found;
  };
  result.steps.search.homonyms = await suggestions(config.homonyms ?? "VERNON");
  result.steps.search.code = await suggestions(config.code ?? "2A004");
  result.steps.search.accents = await suggestions(config.accents ?? "saint etienne du bois");

  // 4. filters, table view, downloads
  if (config.filters.departement) await page.selectOption("#f-departement", config.filters.departement);
  if (config.filters.programme) await page.selectOption("#f-programme", config.filters.programme);
  await ready(page);
  await page.click("#show-table");
  await page.waitForSelector("#table tbody tr", { timeout: TIMEOUT_MS });
  const nationalDl = page.waitForEvent("download");
  await page.click("#download-national");
  const national = await nationalDl;
  const nationalPath = join(artifacts, "site_national.csv");
  await national.saveAs(nationalPath);
  const viewDl = page.waitForEvent("download");
  await page.click("#download-view");
  const view = await viewDl;
  const viewPath = join(artifacts, "site_view.csv");
  await view.saveAs(viewPath);
  // sort by the indicator column, descending then ascending
  const header = page.locator("#table thead th").nth(6).locator("button");
  await header.click();
  await page.waitForTimeout(200);
  const sortedDesc = await page.$$eval("#table tbody tr", (trs) => trs.map((tr) => tr.children[6].innerText));
  await header.click();
  await page.waitForTimeout(200);
  const sortedAsc = await page.$$eval("#table tbody tr", (trs) => trs.map((tr) => tr.children[6].innerText));
  result.steps.table = {
    url: await page.evaluate(() => window.location.search),
    rows: Number(await page.evaluate(() => document.body.dataset.tableRows)),
    shown: await page.locator("#table tbody tr").count(),
    headers: await page.$$eval("#table thead th button", (bs) => bs.map((b) => b.innerText)),
    columnSources: await page.$$eval("#table thead a.col-source", (as) => as.map((a) => a.getAttribute("href"))),
    firstRows: await page.$$eval("#table tbody tr", (trs) => trs.slice(0, 5).map((tr) => tr.innerText)),
    sortedDesc, sortedAsc,
    national: nationalPath, nationalName: national.suggestedFilename(),
    view: viewPath, viewName: view.suggestedFilename(),
  };
  await page.screenshot({ path: join(artifacts, "site_table.png") });

  // 5. unknown town in the URL
  const unknown = await context.newPage();
  seen.push(watch(unknown));
  await unknown.goto(`${base}/site/?commune=${encodeURIComponent(config.unknown)}`, { waitUntil: "load" });
  await ready(unknown);
  result.steps.unknown = {
    message: await unknown.locator("#message").innerText(),
    kind: await unknown.evaluate(() => document.body.dataset.message),
    panelHidden: await unknown.evaluate(() => document.querySelector("#panel").hidden),
    state: await unknown.evaluate(() => document.body.dataset.state),
  };
  await unknown.close();

  // 6. phone-sized screen
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, locale: "fr-FR",
    deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  seen.push(watch(phone));
  await phone.goto(`${base}/site/?commune=${config.expect}`, { waitUntil: "load" });
  await ready(phone);
  await phone.waitForFunction((code) => document.querySelector("#panel")?.dataset.insee === code,
    config.expect, { timeout: TIMEOUT_MS });
  const box = async (sel) => phone.locator(sel).boundingBox();
  result.steps.phone = {
    scrollWidth: await phone.evaluate(() => document.documentElement.scrollWidth),
    map: await box("#map"), panel: await box("#panel"), search: await box("#search"),
    toggle: await box("#toggle-controls"),
  };
  await phone.screenshot({ path: join(artifacts, "site_phone.png") });
  await phone.click("#toggle-controls");
  await phone.waitForTimeout(400);
  result.steps.phone.controls = await box("#controls");
  await phone.screenshot({ path: join(artifacts, "site_phone_controls.png") });
  await phone.close();

  // 7. keyboard: every control takes the focus
  result.steps.keyboard = await page.evaluate(() => {
    const out = {};
    window.pvdSite.setView("carte");
    for (const sel of ["#search", "#show-map", "#show-table", "#tree summary", "#tree details[open] input",
      'input[name="mode"]', "#f-typologie", "#f-programme", "#f-region", "#f-departement",
      "#f-reset", "#download-national", "#panel-close", "#panel button.linklike"]) {
      const node = document.querySelector(sel);
      node?.focus();
      out[sel] = Boolean(node) && document.activeElement === node;
    }
    return out;
  });
  result.tileResponses = { count: tileBytes.length, maxBytes: Math.max(0, ...tileBytes),
    totalBytes: tileBytes.reduce((a, b) => a + b, 0) };
} catch (err) {
  result.errors.push(`driver: ${err.message}`);
} finally {
  await browser.close();
}
// MapLibre cancels the tile requests a view no longer needs (flying to a town):
// net::ERR_ABORTED on a .pmtiles range request is the client's doing, not a failure.
const cancelledTile = (line) => /^request failed: \S+\.pmtiles net::ERR_ABORTED$/.test(line);
for (const s of seen) result.errors.unshift(...problems(s).filter((line) => !cancelledTile(line)));
process.stdout.write(JSON.stringify(result) + "\n");
