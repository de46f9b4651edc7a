// pvdgeo national dashboard: every commune of France on one map, any indicator of the
// national tables, a panel per town compared with similar towns, a table view and CSV
// downloads. Built by `pvdgeo site` (geo/export/site.py); everything is read from files
// next to this one:
//
//   data/config.json           themes, indicators (label, unit, classes, national median,
//                              sources), filters, built towns, tile archives, catalogue
//   data/communes.json         one entry per commune, as columns (code, name, département,
//                              typology, programme, population, centre, zoom, panel)
//   data/valeurs/<key>.json    {v: values in the order of communes.json, p: {insee:
//                              percentile among its peers}} of one indicator
//   data/fiches/<insee>.json   a compared town's panel
//   tiles/communes.pmtiles     commune polygons (promoteId insee), départements, labels
//   tiles/cellules.pmtiles     the built towns' H3 cells (access times), zoom 10+
//
// Indicator values reach the map as feature state ({v, out, cmp} per commune), so that
// switching indicator loads one array and recolours without reloading tiles.
//
// URL parameters (a view can be shared): indicateur, mode (valeur | percentile),
// typologie, programme (pvd | acv | programme | aucun), region, departement, commune
// (INSEE code or name), vue (carte | tableau).
//
// For tests and scripts: window.pvdSite (map, state, setIndicator, setMode, setFilters,
// selectCommune, search, ready()); <body data-state> is "ready" once the map shows the
// current indicator, data-indicator / data-mode / data-commune / data-view mirror the state.

import * as maplibregl from "maplibre-gl";
import { Protocol } from "pmtiles";

const NODATA = "donnée non disponible";
const OUT_COLOUR = "#f1f1ef";     // communes outside the filters
const NOCMP_COLOUR = "#e4e2dc";   // percentile mode: communes without peers computed
const PVD_COLOUR = "#6a1b9a";
const ACV_COLOUR = "#e65100";
const PAGE_SIZE = 50;
const METRO_BOUNDS = [[-5.3, 41.3], [9.7, 51.15]];

const state = {
  config: null, communes: null, index: new Map(), keys: [], indicators: new Map(),
  values: new Map(), sheets: new Map(), indicator: null, mode: "valeur",
  filters: { typologie: "", programme: "", region: "", departement: "" },
  commune: null, view: "carte", sort: { key: "population", dir: -1 }, page: 0,
  applied: 0,
};
let map = null;
let readyResolve = null;
const readyPromise = new Promise((resolve) => { readyResolve = resolve; });

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "for")
      node.setAttribute(key, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false)
    node.append(child);
  return node;
}

function showMessage(text, kind = "") {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
  document.body.dataset.message = text ? kind || "info" : "";
}

async function loadJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} : HTTP ${response.status}`);
  return response.json();
}

// --- names and formats -----------------------------------------------------------------------

// The same key as geo.communes.normalize_name: case, accents and punctuation ignored.
function normalizeName(text) {
  let s = String(text).normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  s = s.replaceAll("œ", "oe").replaceAll("æ", "ae");
  s = s.replace(/[^a-z0-9]+/g, " ").trim();
  s = s.replace(/\bste\b/g, "sainte").replace(/\bst\b/g, "saint");
  return s;
}

const numberFormats = new Map();
function numberFormat(digits, signed) {
  const key = `${digits}:${signed}`;
  if (!numberFormats.has(key)) numberFormats.set(key, new Intl.NumberFormat("fr-FR", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
    signDisplay: signed ? "exceptZero" : "auto",
  }));
  return numberFormats.get(key);
}

// An indicator's value as the portrait writes it (geo.portrait.Indicator.format).
function formatValue(ind, value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "n.d.";
  const text = numberFormat(ind.digits, ind.signed).format(ind.percent ? value * 100 : value);
  if (ind.percent) return `${text}\u202f${ind.unit.startsWith("point") ? "pt" : "%"}`;
  if (["min", "MW", "%"].includes(ind.unit)) return `${text}\u202f${ind.unit}`;
  return text;
}

function formatCount(value) {
  return value === null || value === undefined ? "n.d." : numberFormat(0, false).format(value);
}

const PROGRAMMES = ["hors programme", "PVD", "ACV", "PVD et ACV"];

function communeLabel(i) {
  const c = state.communes;
  return `${c.nom[i]} (${c.dep[i]})`;
}

function departementName(code) {
  return state.config.filters.departements.find((d) => d.code === code)?.nom ?? code;
}

// --- URL state ---------------------------------------------------------------------------------

function readUrl() {
  const params = new URLSearchParams(window.location.search);
  return {
    indicateur: params.get("indicateur"),
    mode: params.get("mode"),
    typologie: params.get("typologie") ?? "",
    programme: params.get("programme") ?? "",
    region: params.get("region") ?? "",
    departement: params.get("departement") ?? "",
    commune: params.get("commune"),
    vue: params.get("vue"),
  };
}

function updateUrl() {
  const params = new URLSearchParams();
  params.set("indicateur", state.indicator.key);
  if (state.mode !== "valeur") params.set("mode", state.mode);
  for (const [key, value] of Object.entries(state.filters)) if (value) params.set(key, value);
  if (state.commune !== null) params.set("commune", state.communes.insee[state.commune]);
  if (state.view !== "carte") params.set("vue", state.view);
  const url = `${window.location.pathname}?${params}`;
  if (url !== `${window.location.pathname}${window.location.search}`)
    window.history.replaceState(null, "", url);
  const body = document.body.dataset;
  body.indicator = state.indicator.key;
  body.mode = state.mode;
  body.view = state.view;
  body.commune = state.commune === null ? "" : state.communes.insee[state.commune];
}

// --- values ------------------------------------------------------------------------------------

async function ensureValues(key) {
  if (!state.values.has(key)) state.values.set(key, loadJSON(`data/valeurs/${key}.json`));
  return state.values.get(key);
}

async function ensureSheet(insee) {
  if (!state.sheets.has(insee)) state.sheets.set(insee, loadJSON(`data/fiches/${insee}.json`));
  return state.sheets.get(insee);
}

// Whether commune i passes the filters.
function passes(i) {
  const f = state.filters;
  const c = state.communes;
  if (f.typologie) {
    const typo = state.config.filters.typologies.indexOf(f.typologie);
    if (c.typo[i] !== typo) return false;
  }
  if (f.programme) {
    const p = c.prog[i];
    if (f.programme === "pvd" && !(p & 1)) return false;
    if (f.programme === "acv" && !(p & 2)) return false;
    if (f.programme === "programme" && !p) return false;
    if (f.programme === "aucun" && p) return false;
  }
  if (f.departement && c.dep[i] !== f.departement) return false;
  if (f.region && state.regionOf.get(c.dep[i]) !== f.region) return false;
  return true;
}

function filteredRows() {
  const rows = [];
  for (let i = 0; i < state.communes.insee.length; i += 1) if (passes(i)) rows.push(i);
  return rows;
}

// --- map ---------------------------------------------------------------------------------------

function stepExpression(input, classes, fallback) {
  if (!classes.length) return fallback;
  const expr = ["step", input, classes[0].color];
  for (const c of classes.slice(1)) expr.push(c.min, c.color);
  return expr;
}

// The colour of one value in `classes` (lowest first; a class holds [min, next min)).
function classColour(classes, value) {
  if (value === null || value === undefined || !classes.length) return state.config.nodata_color;
  let colour = classes[0].color;
  for (const c of classes.slice(1)) {
    if (value >= c.min) colour = c.color;
    else break;
  }
  return colour;
}

// The commune fill reads its colour from the feature state (set by applyState): changing
// indicator, mode or filters never changes the style, so tiles are not laid out again.
function fillColour() {
  return ["to-color", ["coalesce", ["feature-state", "c"], state.config.nodata_color]];
}

function cellColour(field) {
  return ["case", ["has", field], stepExpression(["get", field], state.config.minute_classes,
    state.config.nodata_color), state.config.nodata_color];
}

function mapStyle() {
  const tiles = state.config.tiles;
  const abs = (path) => "pmtiles://" + new URL(path, window.location.href).href;
  const fontFaces = structuredClone(tiles.font_faces ?? {});
  for (const faces of Object.values(fontFaces))
    for (const face of Array.isArray(faces) ? faces : [faces])
      if (face.url) face.url = new URL(face.url, window.location.href).href;
  const style = {
    version: 8,
    name: "Tableau de bord pvdgeo",
    sources: {
      communes: { type: "vector", url: abs(tiles.communes), promoteId: { communes: "insee" },
        attribution: tiles.attribution },
    },
    layers: [
      { id: "fond", type: "background", paint: { "background-color": "#dfe9ef" } },
      { id: "communes-fill", type: "fill", source: "communes", "source-layer": "communes",
        paint: { "fill-color": fillColour(), "fill-opacity": 1 } },
      { id: "communes-line", type: "line", source: "communes", "source-layer": "communes",
        minzoom: 7, paint: { "line-color": "#ffffff",
          "line-width": ["interpolate", ["linear"], ["zoom"], 7, 0.2, 10, 0.8],
          "line-opacity": ["interpolate", ["linear"], ["zoom"], 7, 0.3, 9, 0.8] } },
      { id: "departements-line", type: "line", source: "communes", "source-layer": "departements",
        paint: { "line-color": "#5f5f5f",
          "line-width": ["interpolate", ["linear"], ["zoom"], 4, 0.3, 8, 1.2] } },
      { id: "programmes-line", type: "line", source: "communes", "source-layer": "communes",
        filter: ["has", "p"],
        paint: { "line-color": ["match", ["get", "p"], "ACV", ACV_COLOUR, PVD_COLOUR],
          "line-width": ["interpolate", ["linear"], ["zoom"], 4, 0.4, 7, 1.2, 10, 2.2] } },
      { id: "selected-line", type: "line", source: "communes", "source-layer": "communes",
        filter: ["==", ["get", "insee"], ""],
        paint: { "line-color": "#111111", "line-width": 3.5 } },
      { id: "labels-departements", type: "symbol", source: "communes", "source-layer": "labels",
        minzoom: 5, maxzoom: 8.5, filter: ["==", ["get", "kind"], "departement"],
        layout: { "text-field": ["get", "nom"], "text-font": ["Noto Sans Regular"],
          "text-size": 11, "text-transform": "uppercase", "text-letter-spacing": 0.08 },
        paint: { "text-color": "#444444", "text-halo-color": "rgba(255,255,255,0.85)",
          "text-halo-width": 1.2 } },
      { id: "labels-programmes", type: "symbol", source: "communes", "source-layer": "labels",
        minzoom: 7, filter: ["all", ["==", ["get", "kind"], "commune"], ["has", "p"]],
        layout: { "text-field": ["get", "nom"], "text-font": ["Noto Sans Bold"],
          "text-size": ["interpolate", ["linear"], ["zoom"], 7, 10.5, 11, 13],
          "symbol-sort-key": ["-", 0, ["coalesce", ["get", "population"], 0]] },
        paint: { "text-color": "#222222", "text-halo-color": "rgba(255,255,255,0.9)",
          "text-halo-width": 1.4 } },
      { id: "labels-communes", type: "symbol", source: "communes", "source-layer": "labels",
        minzoom: 9.5, filter: ["all", ["==", ["get", "kind"], "commune"], ["!", ["has", "p"]]],
        layout: { "text-field": ["get", "nom"], "text-font": ["Noto Sans Regular"],
          "text-size": 11,
          "symbol-sort-key": ["-", 0, ["coalesce", ["get", "population"], 0]] },
        paint: { "text-color": "#333333", "text-halo-color": "rgba(255,255,255,0.85)",
          "text-halo-width": 1.2 } },
    ],
  };
  if (Object.keys(fontFaces).length) style["font-faces"] = fontFaces;
  if (tiles.cells) {
    style.sources.cells = { type: "vector", url: abs(tiles.cells) };
    style.layers.splice(2, 0, { id: "cells-fill", type: "fill", source: "cells",
      "source-layer": "cells", minzoom: tiles.cell_zooms[0] + 0.5,
      layout: { visibility: "none" },
      paint: { "fill-color": state.config.nodata_color, "fill-opacity": 0.85,
        "fill-outline-color": "rgba(255,255,255,0.4)" } });
  }
  return style;
}

// Feature state of every commune for the current indicator, mode and filters.
async function applyState() {
  const stamp = ++state.applied;
  document.body.dataset.state = "loading";
  const values = await ensureValues(state.indicator.key);
  if (stamp !== state.applied || !map) return;
  const c = state.communes;
  const percentile = state.mode === "percentile";
  const classes = percentile ? state.config.percentile_classes : state.indicator.classes;
  for (let i = 0; i < c.insee.length; i += 1) {
    const insee = c.insee[i];
    const v = percentile ? (values.p[insee] ?? null) : values.v[i];
    let colour;
    if (!passes(i)) colour = OUT_COLOUR;
    else if (percentile && c.fiche[i] !== 1) colour = NOCMP_COLOUR;
    else colour = classColour(classes, v);
    map.setFeatureState({ source: "communes", sourceLayer: "communes", id: insee }, { v, c: colour });
  }
  if (map.getLayer("cells-fill")) {
    const field = state.indicator.cell_field;
    map.setLayoutProperty("cells-fill", "visibility", field && !percentile ? "visible" : "none");
    if (field) map.setPaintProperty("cells-fill", "fill-color", cellColour(field));
  }
  const idle = new Promise((resolve) => map.once("idle", resolve));
  map.triggerRepaint();
  await idle;
  if (stamp !== state.applied) return;
  document.body.dataset.state = "ready";
  readyResolve();
}

// The map, on `initial` ({center, zoom}) or on France (the site's bounds for a regional
// site).
function startMap(initial = null) {
  maplibregl.addProtocol("pmtiles", new Protocol().tile);
  const framing = initial ?? {
    bounds: state.config.tiles.regional ? state.config.tiles.bounds : METRO_BOUNDS,
    fitBoundsOptions: { padding: 10 },
  };
  map = new maplibregl.Map({
    container: "map",
    style: mapStyle(),
    ...framing,
    minZoom: state.config.tiles.commune_zooms[0],
    maxZoom: 15,
    attributionControl: { compact: false },
    canvasContextAttributes: { preserveDrawingBuffer: true },  // pixel reads by the tests
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
  map.on("error", (event) => {
    const message = event.error?.message ?? String(event.error ?? event);
    console.error(`Erreur de la carte : ${message}`);
    showMessage(`Erreur de la carte : ${message}`, "error");
  });
  map.on("click", (event) => {
    const hit = map.queryRenderedFeatures(event.point, { layers: ["communes-fill"] })[0];
    const i = hit ? state.index.get(hit.properties.insee) : undefined;
    if (i !== undefined) selectCommune(i, { fly: false });
  });
  map.on("mousemove", (event) => {
    const hit = map.queryRenderedFeatures(event.point, { layers: ["communes-fill"] }).length;
    map.getCanvas().style.cursor = hit ? "pointer" : "";
  });
  // feature states can be set once the style (and so the source) exists: the first
  // render then already has the indicator's colours
  return new Promise((resolve) => {
    if (map.isStyleLoaded()) resolve();
    else map.once("style.load", resolve);
  });
}

// --- indicator tree, modes, filters ----------------------------------------------------------

function renderTree() {
  const tree = $("tree");
  tree.replaceChildren();
  for (const theme of state.config.themes) {
    const inds = state.config.indicators.filter((i) => i.theme === theme.key);
    if (!inds.length) continue;
    const open = inds.some((i) => i.key === state.indicator.key);
    const list = el("ul", { role: "list" }, inds.map((ind) => el("li", {},
      el("label", { class: ind.classes.length ? "" : "empty", title: ind.classes.length ? ""
        : "Aucune commune n'a de valeur pour cet indicateur dans ces données." },
      el("input", { type: "radio", name: "indicator", value: ind.key,
        checked: ind.key === state.indicator.key,
        onchange: () => setIndicator(ind.key) }),
      ` ${ind.label}`))));
    tree.append(el("details", { open, "data-theme": theme.key },
      el("summary", {}, theme.label, el("span", { class: "count", text: ` (${inds.length})` })),
      el("p", { class: "muted theme-note", text: theme.description }), list));
  }
}

function fillSelect(select, options, value, all) {
  select.replaceChildren(el("option", { value: "", text: all }),
    ...options.map(([v, label]) => el("option", { value: v, text: label, selected: v === value })));
  select.value = value;
}

function renderFilters() {
  const f = state.config.filters;
  fillSelect($("f-typologie"), f.typologies.map((t) => [t, t]), state.filters.typologie,
    "Toutes les typologies");
  fillSelect($("f-programme"), f.programmes.map((p) => [p.code, p.label]), state.filters.programme,
    "Tous les programmes");
  fillSelect($("f-region"), f.regions.map((r) => [r.code, r.nom]), state.filters.region,
    "Toutes les régions");
  const deps = f.departements.filter((d) => !state.filters.region || d.region === state.filters.region);
  fillSelect($("f-departement"), deps.map((d) => [d.code, `${d.code} ${d.nom}`]),
    state.filters.departement, "Tous les départements");
  const n = filteredRows().length;
  $("filter-count").textContent = `${formatCount(n)} commune${n > 1 ? "s" : ""} retenue${n > 1 ? "s" : ""} sur ${formatCount(state.communes.insee.length)}.`;
}

function setFilters(filters) {
  Object.assign(state.filters, filters);
  if (state.filters.departement && state.filters.region
      && state.regionOf.get(state.filters.departement) !== state.filters.region)
    state.filters.departement = "";
  state.page = 0;
  renderFilters();
  updateUrl();
  if (state.view === "tableau") renderTable();
  return applyState();
}

function setMode(mode) {
  state.mode = mode === "percentile" ? "percentile" : "valeur";
  for (const input of document.querySelectorAll('input[name="mode"]'))
    input.checked = input.value === state.mode;
  renderLegend();
  updateUrl();
  if (state.view === "tableau") renderTable();
  return applyState();
}

function setIndicator(key) {
  const ind = state.indicators.get(key);
  if (!ind) return Promise.resolve();
  state.indicator = ind;
  const radio = document.querySelector(`input[name="indicator"][value="${key}"]`);
  if (radio) {
    radio.checked = true;
    radio.closest("details").open = true;
  }
  renderLegend();
  updateUrl();
  if (state.view === "tableau") renderTable();
  if (state.commune !== null) highlightPanelIndicator();
  return applyState();
}

// --- legend --------------------------------------------------------------------------------

function sourceLinks(keys) {
  const catalogue = state.config.catalogue;
  const links = keys.filter((k) => catalogue[k]).map((k) => el("a", {
    href: `sources.html#${k}`, text: `${catalogue[k].producer}, ${catalogue[k].vintage}`,
    title: `${catalogue[k].title} — licence : ${catalogue[k].licence}` }));
  const out = [];
  links.forEach((a, i) => { if (i) out.push(" ; "); out.push(a); });
  return out;
}

function swatchItem(colour, label, kind = "") {
  return el("li", {}, el("span", { class: `swatch ${kind}`, style: `background:${colour}` }),
    el("span", { text: label }));
}

function renderLegend() {
  const ind = state.indicator;
  const legend = $("legend");
  const percentile = state.mode === "percentile";
  const classes = percentile ? state.config.percentile_classes : ind.classes;
  const items = classes.map((c) => swatchItem(c.color, c.label));
  if (percentile) items.push(swatchItem(NOCMP_COLOUR, "commune sans comparaison (hors PVD, ACV et communes traitées)"));
  items.push(swatchItem(state.config.nodata_color, NODATA));
  if (Object.values(state.filters).some(Boolean)) items.push(swatchItem(OUT_COLOUR, "hors des filtres"));
  const blocks = [
    el("h3", { text: ind.label }),
    el("p", { class: "muted", text: percentile
      ? `Percentile de la commune parmi ses communes comparables (0 à 100 ; 50 = médiane des pairs), seulement avec au moins ${state.config.peer_min_count} pairs ayant une valeur.`
      : `Unité : ${ind.unit}${ind.sens === "plus" ? " · plus la valeur est élevée, mieux c'est"
        : ind.sens === "moins" ? " · plus la valeur est basse, mieux c'est" : ""}` }),
    el("ul", { class: "classes" }, items),
  ];
  if (!percentile && ind.rule) blocks.push(el("p", { class: "legend-rule muted", text: ind.rule }));
  if (!ind.classes.length)
    blocks.push(el("p", { class: "legend-note", text: "Aucune commune n'a de valeur pour cet indicateur : donnée non disponible partout." }));
  if (!percentile && ind.mediane_france !== null)
    blocks.push(el("p", { class: "muted", text: `Médiane des communes de France : ${formatValue(ind, ind.mediane_france)} (${formatCount(ind.n)} communes avec une valeur).` }));
  if (ind.note) blocks.push(el("p", { class: "muted", text: ind.note }));
  if (ind.cell_field && state.config.tiles.cells && !percentile)
    blocks.push(el("p", { class: "muted", text: "À grande échelle (zoom 11 et plus), les cellules H3 des communes traitées montrent le temps médian d'accès : " },
      el("span", {}, state.config.minute_classes.map((c) => el("span", { class: "inline-swatch" },
        el("span", { class: "swatch", style: `background:${c.color}` }), ` ${c.label} `)))));
  blocks.push(el("p", { class: "muted" }, "Source : ", ...sourceLinks(ind.sources.length ? ind.sources : [])));
  blocks.push(el("ul", { class: "classes outlines" },
    el("li", {}, el("span", { class: "swatch line", style: `border-color:${PVD_COLOUR}` }), el("span", { text: "contour : commune Petites villes de demain" })),
    el("li", {}, el("span", { class: "swatch line", style: `border-color:${ACV_COLOUR}` }), el("span", { text: "contour : commune Action Cœur de Ville" }))));
  legend.replaceChildren(el("div", { class: "legend-block" }, blocks));
}

// --- search ----------------------------------------------------------------------------------

// Up to `limit` communes matching `query`: INSEE code prefix, or name (case, accents and
// punctuation ignored; exact name first, then names starting with it, then containing it;
// larger towns first). A trailing département code narrows the search ("vernon 27").
function search(query, limit = 10) {
  const text = String(query ?? "").trim();
  if (!text) return [];
  const c = state.communes;
  if (/^(\d{1,5}|2[abAB]\d{0,3})$/.test(text)) {
    const code = text.toUpperCase();
    const hits = [];
    for (let i = 0; i < c.insee.length; i += 1) if (c.insee[i].startsWith(code)) hits.push(i);
    return hits.sort((a, b) => (c.insee[a] === code ? -1 : 0) - (c.insee[b] === code ? -1 : 0)
      || (c.pop[b] ?? 0) - (c.pop[a] ?? 0)).slice(0, limit);
  }
  let key = normalizeName(text);
  let dep = null;
  const m = key.match(/^(.*?)\s+(\d{2,3}|2a|2b)$/);
  if (m && m[1]) { key = m[1]; dep = m[2].toUpperCase(); }
  if (!key) return [];
  const scored = [];
  for (let i = 0; i < c.insee.length; i += 1) {
    if (dep && c.dep[i] !== dep) continue;
    const name = state.keys[i];
    let rank = -1;
    if (name === key) rank = 0;
    else if (name.startsWith(key)) rank = 1;
    else if (name.includes(` ${key}`)) rank = 2;
    else if (key.length >= 3 && name.includes(key)) rank = 3;
    if (rank >= 0) scored.push([rank, i]);
  }
  scored.sort((a, b) => a[0] - b[0] || (c.prog[b[1]] ? 1 : 0) - (c.prog[a[1]] ? 1 : 0)
    || (c.pop[b[1]] ?? 0) - (c.pop[a[1]] ?? 0));
  return scored.slice(0, limit).map((s) => s[1]);
}

// The commune a URL names (code or name): its index, or a message saying why none.
function resolveCommune(query) {
  const c = state.communes;
  const text = String(query).trim();
  if (state.index.has(text.toUpperCase())) return { index: state.index.get(text.toUpperCase()) };
  const hits = search(text, 50).filter((i) => state.keys[i] === normalizeName(text.replace(/\s+(\d{2,3}|2[ab])$/i, "")));
  if (hits.length === 1) return { index: hits[0] };
  if (hits.length > 1) return { error: `Plusieurs communes s'appellent « ${text} » : ${hits.slice(0, 6).map((i) => `${c.nom[i]} (${departementName(c.dep[i])}, ${c.insee[i]})`).join(" ; ")}. Choisissez-la dans la recherche.` };
  return { error: `Commune inconnue : « ${text} ». Aucune commune ne porte ce code INSEE ni ce nom (communes du COG ${state.config.cog_year ?? ""}). Cherchez-la par son nom ou son code.` };
}

function renderResults(hits) {
  const list = $("search-results");
  const input = $("search");
  const c = state.communes;
  list.replaceChildren(...hits.map((i, k) => el("li", {
    id: `result-${k}`, role: "option", "data-insee": c.insee[i], "aria-selected": k === 0 ? "true" : "false",
    onmousedown: (event) => { event.preventDefault(); chooseResult(i); } },
  el("span", { class: "name", text: c.nom[i] }),
  el("span", { class: "where", text: ` ${departementName(c.dep[i])} (${c.dep[i]}) · ${formatCount(c.pop[i])} hab.${c.prog[i] ? ` · ${PROGRAMMES[c.prog[i]]}` : ""} · ${c.insee[i]}` }))));
  if (!hits.length && input.value.trim())
    list.replaceChildren(el("li", { class: "none", role: "option", "aria-disabled": "true", text: "Aucune commune trouvée." }));
  list.hidden = !input.value.trim();
  input.setAttribute("aria-expanded", String(!list.hidden));
  input.setAttribute("aria-activedescendant", hits.length ? "result-0" : "");
  state.results = hits;
  state.active = 0;
}

function moveActive(delta) {
  if (!state.results?.length) return;
  state.active = (state.active + delta + state.results.length) % state.results.length;
  for (const [k, item] of [...$("search-results").children].entries())
    item.setAttribute("aria-selected", k === state.active ? "true" : "false");
  $("search").setAttribute("aria-activedescendant", `result-${state.active}`);
  $(`result-${state.active}`)?.scrollIntoView({ block: "nearest" });
}

function chooseResult(i) {
  const input = $("search");
  input.value = state.communes.nom[i];
  $("search-results").hidden = true;
  input.setAttribute("aria-expanded", "false");
  return selectCommune(i, { fly: true });
}

function setupSearch() {
  const input = $("search");
  input.addEventListener("input", () => renderResults(search(input.value)));
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { event.preventDefault(); moveActive(1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); moveActive(-1); }
    else if (event.key === "Enter") {
      event.preventDefault();
      if (!state.results?.length) renderResults(search(input.value));
      if (state.results?.length) chooseResult(state.results[state.active ?? 0]);
    } else if (event.key === "Escape") {
      $("search-results").hidden = true;
      input.setAttribute("aria-expanded", "false");
    }
  });
  input.addEventListener("blur", () => setTimeout(() => { $("search-results").hidden = true; }, 150));
}

// --- town panel ------------------------------------------------------------------------------

function percentileBar(pct) {
  if (pct === null || pct === undefined) return el("span", { class: "muted", text: "n.d." });
  return el("span", { class: "pct" },
    el("span", { class: "pct-bar", "aria-hidden": "true" },
      el("span", { class: "pct-mark", style: `left:${Math.max(0, Math.min(100, pct))}%` })),
    el("span", { class: "pct-text", text: numberFormat(0, false).format(pct) }));
}

function indicatorRow(ind, row) {
  const [value, median, nPeers, pct] = row ?? [null, null, 0, null];
  return el("tr", { "data-key": ind.key, class: ind.key === state.indicator.key ? "current" : "" },
    el("th", { scope: "row" },
      el("button", { type: "button", class: "linklike", text: ind.label,
        title: "Afficher cet indicateur sur la carte", onclick: () => setIndicator(ind.key) }),
      el("span", { class: "unit", text: ind.unit }),
      ind.sources.length && state.config.catalogue[ind.sources[0]]
        ? el("a", { class: "src", href: `sources.html#${ind.sources[0]}`, text: "source",
          title: `${state.config.catalogue[ind.sources[0]].producer}, ${state.config.catalogue[ind.sources[0]].vintage} (licence : ${state.config.catalogue[ind.sources[0]].licence})` })
        : null),
    el("td", { class: "num", text: formatValue(ind, value) }),
    el("td", { class: "num" }, formatValue(ind, median), el("span", { class: "n", text: ` (n = ${formatCount(nPeers)})` })),
    el("td", {}, percentileBar(pct)),
    el("td", { class: "num", text: formatValue(ind, ind.mediane_france) }));
}

function indicatorTable(inds, rows) {
  return el("table", { class: "indicators" },
    el("thead", {}, el("tr", {},
      el("th", { scope: "col", text: "Indicateur" }), el("th", { scope: "col", text: "Commune" }),
      el("th", { scope: "col", text: "Médiane des pairs" }),
      el("th", { scope: "col", text: "Percentile parmi les pairs" }),
      el("th", { scope: "col", text: "Médiane nationale" }))),
    el("tbody", {}, inds.map((ind) => indicatorRow(ind, rows[ind.key]))));
}

function highlightPanelIndicator() {
  for (const tr of document.querySelectorAll("#panel tr[data-key]"))
    tr.classList.toggle("current", tr.dataset.key === state.indicator.key);
}

async function basicRows(i) {
  const rows = {};
  const headline = state.config.indicators.filter((ind) => ind.headline);
  const values = await Promise.all(headline.map((ind) => ensureValues(ind.key)));
  headline.forEach((ind, k) => { rows[ind.key] = [values[k].v[i], null, 0, null]; });
  return rows;
}

// A distinction's sentence without its leading "<label> (<unit>) : ", shown after the
// label as a button.
function phraseRest(d) {
  const at = d.phrase.indexOf(" : ", (d.libelle ?? "").length);
  return at >= 0 ? d.phrase.slice(at + 3) : d.phrase;
}

async function renderPanel(i) {
  const c = state.communes;
  const insee = c.insee[i];
  const panel = $("panel");
  const body = $("panel-body");
  panel.hidden = false;
  document.body.classList.add("with-panel");
  body.replaceChildren(el("p", { class: "muted", text: "Chargement de la fiche…" }));
  const sheet = c.fiche[i] ? await ensureSheet(insee) : null;
  if (state.commune !== i) return;
  const inds = state.config.indicators;
  const headline = inds.filter((ind) => ind.headline);
  const rows = sheet ? sheet.rows : await basicRows(i);
  const card = sheet?.card ?? {};
  const parts = [
    el("header", {},
      el("h2", { id: "panel-title", text: c.nom[i] }),
      el("p", { class: "sub", text: [`Commune ${insee}`, `${departementName(c.dep[i])} (${c.dep[i]})`,
        card.region_nom, card.epci_nom].filter(Boolean).join(" · ") }),
      el("p", { class: "badges" },
        el("span", { class: "badge", text: `${formatCount(c.pop[i])} habitants (2023)` }),
        c.typo[i] !== null ? el("span", { class: "badge", text: state.config.filters.typologies[c.typo[i]] }) : null,
        el("span", { class: `badge prog-${c.prog[i]}`, text: PROGRAMMES[c.prog[i]] }),
        card.centralite ? el("span", { class: "badge", text: card.centralite }) : null)),
  ];
  const links = sheet?.links ?? state.config.built[insee] ?? {};
  const linkItems = [
    ["viewer", "Carte détaillée de la commune"], ["portrait", "Portrait (comparaison détaillée)"],
    ["gpkg", "GeoPackage pour QGIS"], ["csv", "Indicateurs du portrait (CSV)"],
  ].filter(([k]) => links[k]).map(([k, label]) => el("li", {}, el("a", { href: links[k], text: label })));
  if (sheet) linkItems.push(el("li", {}, el("button", { type: "button", id: "download-sheet", class: "linklike",
    text: "Comparaison avec les pairs et la France (CSV)",
    onclick: () => saveCsv(sheetCsv(i, sheet), `pvdgeo_${insee}_comparaison.csv`) })));
  if (linkItems.length) parts.push(el("ul", { class: "links", "aria-label": "Fichiers de la commune" }, linkItems));
  if (!links.viewer && !links.portrait) parts.push(el("p", { class: "muted", text: "Commune non traitée par pvdgeo : pas de carte détaillée (accès à pied et à vélo, cellules H3) ni de portrait." }));
  if (sheet) {
    const strong = sheet.distinctions.filter((d) => d.cote === "fort");
    const weak = sheet.distinctions.filter((d) => d.cote === "faible");
    const list = (items) => items.length ? el("ul", {}, items.map((d) => el("li", {},
      el("button", { type: "button", class: "linklike", text: state.indicators.get(d.indicateur)?.label ?? d.indicateur,
        onclick: () => setIndicator(d.indicateur) }), " — ", phraseRest(d))))
      : el("p", { class: "muted", text: "Aucun indicateur ne s'écarte des pairs de ce côté." });
    parts.push(el("section", { class: "synthese", "aria-labelledby": "synthese-title" },
      el("h3", { id: "synthese-title", text: "Ce qui distingue la commune" }),
      el("p", { class: "muted", text: `Par rapport à ses ${formatCount(sheet.peers.n)} communes comparables : les indicateurs où elle s'écarte le plus de leur médiane (écart de son percentile à 50), seulement ceux mesurés pour au moins ${state.config.peer_min_count} pairs et dont le sens est établi.` }),
      el("h4", { class: "fort", text: "Points forts" }), list(strong),
      el("h4", { class: "faible", text: "Points faibles" }), list(weak)));
    parts.push(el("details", { class: "peers" },
      el("summary", { text: `Communes comparables (${formatCount(sheet.peers.n)})` }),
      el("p", { class: "muted", text: sheet.peers.rule }),
      el("ul", { class: "peer-list" }, sheet.peers.list.map(([code, nom, dep, pop]) => el("li", {},
        el("button", { type: "button", class: "linklike", text: `${nom} (${dep})`,
          onclick: () => { const k = state.index.get(code); if (k !== undefined) selectCommune(k, { fly: true }); } }),
        ` · ${formatCount(pop)} hab.`)))));
  } else {
    parts.push(el("p", { class: "note", text: "La comparaison avec des communes similaires (pairs, percentiles, ce qui distingue la commune) est calculée pour les communes des programmes Petites villes de demain et Action Cœur de Ville et pour les communes traitées." }));
  }
  parts.push(el("section", {}, el("h3", { text: "Indicateurs clés" }), indicatorTable(headline, rows)));
  if (sheet) {
    const all = el("section", {}, el("h3", { text: "Tous les indicateurs, par thème" }));
    for (const theme of state.config.themes) {
      const themed = inds.filter((ind) => ind.theme === theme.key);
      if (themed.length) all.append(el("details", {}, el("summary", { text: theme.label }), indicatorTable(themed, rows)));
    }
    parts.push(all);
  }
  parts.push(el("p", { class: "muted" }, "Percentile : part des pairs ayant une valeur inférieure, plus la moitié des ex æquo ; médiane nationale : communes de France (métropole et DROM) ayant une valeur. ",
    el("a", { href: "sources.html", text: "Sources et méthode" })));
  body.replaceChildren(...parts);
  panel.dataset.insee = insee;
  panel.dataset.fiche = sheet ? "1" : "0";
}

async function selectCommune(i, { fly = true } = {}) {
  state.commune = i;
  const c = state.communes;
  updateUrl();
  showMessage("");
  if (map) map.setFilter("selected-line", ["==", ["get", "insee"], c.insee[i]]);
  const opened = renderPanel(i);
  map?.resize();  // the panel takes its place beside the map on wide screens
  if (fly && map && c.lon[i] !== null) {
    if (state.view !== "carte" && fly !== "jump") setView("carte");
    const panel = $("panel");
    const overlay = getComputedStyle(panel).position === "absolute";
    // on a phone the panel covers the lower half of the map: the town goes above it, a
    // little further out
    const camera = { center: [c.lon[i], c.lat[i]], zoom: (c.z[i] ?? 11) - (overlay ? 1 : 0),
      padding: overlay ? { top: 10, left: 10, right: 10, bottom: panel.offsetHeight } : 0 };
    if (fly === "jump") map.jumpTo(camera);
    else map.flyTo({ ...camera, speed: 2.4, essential: true });
  }
  await opened;
  $("panel").focus({ preventScroll: true });
}

function closePanel() {
  state.commune = null;
  $("panel").hidden = true;
  document.body.classList.remove("with-panel");
  if (map) {
    map.setFilter("selected-line", ["==", ["get", "insee"], ""]);
    map.resize();
  }
  updateUrl();
}

// --- table view ------------------------------------------------------------------------------

function tableColumns() {
  const ind = state.indicator;
  const headline = state.config.indicators.filter((i) => i.headline && i.key !== ind.key && i.key !== "population");
  return [
    { key: "nom", label: "Commune", text: true },
    { key: "insee", label: "Code INSEE", text: true },
    { key: "departement", label: "Département", text: true },
    { key: "typologie", label: "Typologie", text: true },
    { key: "programme", label: "Programme", text: true },
    { key: "population", label: "Population 2023", ind: state.indicators.get("population") },
    { key: ind.key, label: ind.label, ind },
    { key: `percentile_${ind.key}`, label: `Percentile parmi les pairs : ${ind.label}`, pct: ind },
    ...headline.map((h) => ({ key: h.key, label: h.label, ind: h })),
  ];
}

function cellValue(col, i, cache) {
  const c = state.communes;
  switch (col.key) {
    case "nom": return c.nom[i];
    case "insee": return c.insee[i];
    case "departement": return c.dep[i];
    case "typologie": return c.typo[i] === null ? "" : state.config.filters.typologies[c.typo[i]];
    case "programme": return c.prog[i] ? PROGRAMMES[c.prog[i]] : "aucun";
    case "population": return c.pop[i];
    default:
      if (col.pct) return cache.get(col.pct.key)?.p[c.insee[i]] ?? null;
      return cache.get(col.key)?.v[i] ?? null;
  }
}

async function tableData() {
  const cols = tableColumns();
  const cache = new Map();
  await Promise.all(cols.filter((col) => (col.ind || col.pct) && col.key !== "population")
    .map(async (col) => {
      const key = (col.ind ?? col.pct).key;
      cache.set(key, await ensureValues(key));
    }));
  const rows = filteredRows();
  const { key, dir } = state.sort;
  const sortCol = cols.find((col) => col.key === key) ?? cols[5];
  const collator = new Intl.Collator("fr", { sensitivity: "base" });
  rows.sort((a, b) => {
    const va = cellValue(sortCol, a, cache);
    const vb = cellValue(sortCol, b, cache);
    if (va === null || va === "") return (vb === null || vb === "") ? 0 : 1;  // missing last
    if (vb === null || vb === "") return -1;
    return dir * (sortCol.text ? collator.compare(va, vb) : va - vb);
  });
  return { cols, rows, cache };
}

async function renderTable() {
  const { cols, rows, cache } = await tableData();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const start = state.page * PAGE_SIZE;
  const shown = rows.slice(start, start + PAGE_SIZE);
  const thead = $("table").tHead;
  thead.replaceChildren(el("tr", {}, cols.map((col) => el("th", {
    scope: "col", "aria-sort": state.sort.key === col.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none" },
  el("button", { type: "button", class: "sort", text: col.label, onclick: () => {
    state.sort = { key: col.key, dir: state.sort.key === col.key ? -state.sort.dir : (col.text ? 1 : -1) };
    state.page = 0;
    renderTable();
  } }),
  // every figure links to its datasets (producer, vintage, licence) in sources.html
  (col.ind || col.pct) ? el("a", { class: "src col-source", href: `sources.html#indicateur-${(col.ind ?? col.pct).key}`,
    text: "source", title: `Sources et méthode : ${(col.ind ?? col.pct).label}` }) : null))));
  const tbody = $("table").tBodies[0];
  tbody.replaceChildren(...shown.map((i) => el("tr", { "data-insee": state.communes.insee[i] }, cols.map((col) => {
    const v = cellValue(col, i, cache);
    if (col.key === "nom") return el("th", { scope: "row" }, el("button", { type: "button", class: "linklike", text: v,
      onclick: () => selectCommune(i, { fly: true }) }));
    if (col.text) return el("td", { text: col.key === "departement" ? `${v} ${departementName(v)}` : v });
    if (col.pct) return el("td", { class: "num", text: v === null ? "n.d." : numberFormat(0, false).format(v) });
    return el("td", { class: "num", text: formatValue(col.ind, v) });
  }))));
  $("table-title").textContent = `Communes retenues : ${formatCount(rows.length)}`;
  $("table-info").textContent = `Triées par « ${cols.find((c) => c.key === state.sort.key)?.label ?? "population"} » ; filtres de la carte appliqués. Indicateur : ${state.indicator.label} (${state.indicator.unit}).`;
  $("page-info").textContent = `Page ${state.page + 1} sur ${pages}`;
  $("page-prev").disabled = state.page === 0;
  $("page-next").disabled = state.page >= pages - 1;
  document.body.dataset.tableRows = String(rows.length);
}

function csvField(value) {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// The rows of the table view (every page) as CSV: column names are the national table's.
async function viewCsv() {
  const { cols, rows, cache } = await tableData();
  const header = cols.map((col) => col.key === "departement" ? "departement" : col.key);
  const lines = [header.join(",")];
  for (const i of rows) lines.push(cols.map((col) => csvField(cellValue(col, i, cache))).join(","));
  return "\ufeff" + lines.join("\r\n") + "\r\n";
}

// A town's panel as CSV: one row per indicator with the town's value, its peers' median,
// how many peers have a value, its percentile among them and the national median.
function sheetCsv(i, sheet) {
  const c = state.communes;
  const lines = [["insee", "nom", "theme", "indicateur", "libelle", "unite", "valeur", "mediane_pairs",
    "n_pairs", "percentile_pairs", "mediane_nationale", "sources"].join(",")];
  for (const ind of state.config.indicators) {
    const [value, median, n, pct] = sheet.rows[ind.key] ?? [null, null, 0, null];
    lines.push([c.insee[i], c.nom[i], ind.theme, ind.key, ind.label, ind.unit, value, median, n, pct,
      ind.mediane_france, ind.sources.join(" ")].map(csvField).join(","));
  }
  return "\ufeff" + lines.join("\r\n") + "\r\n";
}

function saveCsv(text, filename) {
  const blob = new Blob([text], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function downloadView() {
  const parts = ["communes", state.indicator.key, ...Object.values(state.filters).filter(Boolean)];
  saveCsv(await viewCsv(), `${parts.join("_").replace(/[^A-Za-z0-9_-]+/g, "-")}.csv`);
}

function setView(view) {
  state.view = view === "tableau" ? "tableau" : "carte";
  $("show-map").setAttribute("aria-pressed", String(state.view === "carte"));
  $("show-table").setAttribute("aria-pressed", String(state.view === "tableau"));
  $("table-view").hidden = state.view !== "tableau";
  $("map").hidden = state.view !== "carte";
  updateUrl();
  if (state.view === "tableau") return renderTable();
  map?.resize();
  return Promise.resolve();
}

// --- start -----------------------------------------------------------------------------------

function setupControls() {
  for (const input of document.querySelectorAll('input[name="mode"]'))
    input.addEventListener("change", () => setMode(input.value));
  const bind = (id, key) => $(id).addEventListener("change", (event) => setFilters({ [key]: event.target.value }));
  bind("f-typologie", "typologie");
  bind("f-programme", "programme");
  bind("f-region", "region");
  bind("f-departement", "departement");
  $("f-reset").addEventListener("click", () => setFilters({ typologie: "", programme: "", region: "", departement: "" }));
  $("show-map").addEventListener("click", () => setView("carte"));
  $("show-table").addEventListener("click", () => setView("tableau"));
  $("toggle-controls").addEventListener("click", () => {
    const open = document.body.classList.toggle("controls-open");
    $("toggle-controls").setAttribute("aria-expanded", String(open));
  });
  $("panel-close").addEventListener("click", closePanel);
  $("panel").addEventListener("keydown", (event) => { if (event.key === "Escape") closePanel(); });
  $("download-view").addEventListener("click", downloadView);
  $("page-prev").addEventListener("click", () => { state.page -= 1; renderTable(); });
  $("page-next").addEventListener("click", () => { state.page += 1; renderTable(); });
  $("download-national").href = state.config.csv;
  setupSearch();
}

async function main() {
  const communesLoaded = loadJSON("data/communes.json");
  const config = await loadJSON("data/config.json");
  state.config = config;
  for (const ind of config.indicators) state.indicators.set(ind.key, ind);
  const url = readUrl();
  const messages = [];
  state.indicator = state.indicators.get(url.indicateur ?? config.default_indicator)
    ?? state.indicators.get(config.default_indicator) ?? config.indicators[0];
  if (url.indicateur && !state.indicators.has(url.indicateur))
    messages.push(`Indicateur inconnu : « ${url.indicateur} » ; « ${state.indicator.label} » est affiché.`);
  ensureValues(state.indicator.key);  // fetched while the map starts
  if (!config.tiles.communes) throw new Error("le site n'a pas d'archive de tuiles (pvdgeo site sans --no-tiles)");
  // France at once; on the town named in the URL once the communes are known
  let styleLoaded = url.commune ? null : startMap();
  const communes = await communesLoaded;
  state.communes = communes;
  communes.insee.forEach((code, i) => state.index.set(code, i));
  state.keys = communes.nom.map(normalizeName);
  state.regionOf = new Map(config.filters.departements.map((d) => [d.code, d.region]));
  state.mode = url.mode === "percentile" ? "percentile" : "valeur";
  for (const key of Object.keys(state.filters)) state.filters[key] = url[key] ?? "";
  if (state.filters.typologie && !config.filters.typologies.includes(state.filters.typologie)) state.filters.typologie = "";
  if (state.filters.programme && !config.filters.programmes.some((p) => p.code === state.filters.programme)) state.filters.programme = "";
  if (state.filters.region && !config.filters.regions.some((r) => r.code === state.filters.region)) state.filters.region = "";
  if (state.filters.departement && !state.regionOf.has(state.filters.departement)) state.filters.departement = "";
  renderTree();
  renderFilters();
  for (const input of document.querySelectorAll('input[name="mode"]')) input.checked = input.value === state.mode;
  renderLegend();
  setupControls();
  $("provenance").textContent = `${config.software}, tableau généré le ${config.generated.slice(0, 10)} ; ${formatCount(config.counts.communes)} communes, ${formatCount(config.counts.compared)} comparées à leurs pairs, ${formatCount(config.counts.built)} traitées.`;
  let target = null;
  if (url.commune) {
    const found = resolveCommune(url.commune);
    if (found.error) messages.push(found.error);
    else target = found.index;
  }
  if (messages.length) showMessage(messages.join(" "), url.commune && target === null ? "unknown-commune" : "warning");
  updateUrl();
  if (!styleLoaded) {
    const at = target !== null && communes.lon[target] !== null
      ? { center: [communes.lon[target], communes.lat[target]], zoom: communes.z[target] ?? 11 } : null;
    styleLoaded = startMap(at);
  }
  await styleLoaded;
  window.pvdSite = { map, state, setIndicator, setMode, setFilters, selectCommune, search, setView, viewCsv,
    ready: () => readyPromise, classColour };
  if (url.vue === "tableau") await setView("tableau");
  const applied = applyState();
  if (target !== null) await selectCommune(target, { fly: "jump" });
  await applied;
}

main().catch((error) => {
  console.error(error);
  showMessage(`Le tableau de bord n'a pas pu démarrer : ${error.message}`, "error");
  document.body.dataset.state = "error";
});
