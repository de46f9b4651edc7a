// pvdgeo map viewer: one town's PMTiles shown through the MapLibre styles of the PVD views.
//
// Reads, next to this file: towns.json (every built town), views.json (the views, in
// order), fields.json (French labels and units of fields) and styles/<view>.json. The
// styles' "pvdgeo" source points at pmtiles://town.pmtiles; it is replaced with the
// chosen town's archive. URL parameters: ?town=<insee>&view=<view id>.
//
// Each town entry says, per view, whether the town has its data (views[id].available,
// with the reason when not: the view is offered greyed out) and what an access map
// measures (views[id].summary). A view opens on the town (framing "town", at least at
// its min_zoom) or on the whole catchment ("catchment"). Legend swatches are drawn as
// the map draws the layer: the layer's opacity at the current zoom over the basemap's
// land colour.
//
// For tests and scripts, window.pvdViewer exposes the map, setView, setTown,
// renderedCounts() and swatchColours(); <body data-state> is "ready" once the current
// view has rendered, "unknown-town" when ?town= names no published town.

import * as maplibregl from "maplibre-gl";
import { Protocol } from "pmtiles";

const NODATA = "donnée non disponible";
const numberFormat = (digits) =>
  new Intl.NumberFormat("fr-FR", { maximumFractionDigits: digits, minimumFractionDigits: 0 });

const state = { towns: [], views: [], fields: {}, values: {}, styles: new Map(), town: null, view: null };
let map = null;
let popup = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
}

async function loadJSON(url) {
  const response = await fetch(url, { cache: "no-cache" });
  if (!response.ok) throw new Error(`${url} : HTTP ${response.status}`);
  return response.json();
}

// --- styles --------------------------------------------------------------------------

async function styleFor(town, view) {
  if (!state.styles.has(view.id)) state.styles.set(view.id, await loadJSON(view.style));
  const style = structuredClone(state.styles.get(view.id));
  const source = style.sources.pvdgeo;
  source.url = "pmtiles://" + new URL(town.pmtiles, window.location.href).href;
  if (town.attribution_html || town.attribution) source.attribution = town.attribution_html || town.attribution;
  for (const faces of Object.values(style["font-faces"] ?? {}))  // fonts copied from npm
    for (const face of Array.isArray(faces) ? faces : [faces])
      if (face.url) face.url = new URL(face.url, window.location.href).href;
  delete style.center;
  delete style.zoom;
  return style;
}

function legendOf(view) {
  return state.styles.get(view.id)?.metadata?.["pvdgeo:legend"] ?? [];
}

// The style layers drawn by a legend entry (its layer and its also_layers).
function entryLayers(entry) {
  return [entry.layer, ...(entry.also_layers ?? [])];
}

function viewStatus(town, view) {
  return town?.views?.[view.id] ?? { available: true, reason: "", summary: "" };
}

function popupsOf(view) {
  return state.styles.get(view.id)?.metadata?.["pvdgeo:popup"] ?? {};
}

// --- formatting ----------------------------------------------------------------------

function fieldInfo(name) {
  return state.fields[name] ?? { label: name.replaceAll("_", " "), unit: "" };
}

function valueLabel(field, value, view) {
  const known = state.values[field];
  if (known && typeof value === "string" && value.includes(";"))  // several sources
    return value.split(";").map((v) => known[v] ?? v).join(", ");
  if (known?.[String(value)]) return known[String(value)];
  for (const entry of legendOf(view)) {
    if (entry.field !== field || entry.kind !== "categorized") continue;
    const cls = entry.classes.find((c) => c.value === value);
    if (cls) return cls.label;
  }
  return null;
}

function formatValue(field, value, view) {
  if (value === undefined || value === null || value === "") return null;
  const { unit } = fieldInfo(field);
  if (typeof value === "boolean") return value ? "oui" : "non";
  if (typeof value === "number") {
    if (unit === "%") return `${numberFormat(1).format(value * 100)} %`;
    if (unit === "hab.") return `${Number.isInteger(value) ? "" : "≈ "}${numberFormat(0).format(value)} hab.`;
    const digits = Number.isInteger(value) ? 0 : unit === "min" || Math.abs(value) >= 10 ? 1 : 2;
    const text = numberFormat(digits).format(value);
    return unit ? `${text} ${unit}` : text;
  }
  return valueLabel(field, value, view) ?? String(value);
}

// --- legend --------------------------------------------------------------------------

// A zoom-dependent opacity (a number, or ["interpolate", ["linear"], ["zoom"], z0, v0, ...]
// as the styles write it) at `zoom`.
function opacityAt(value, zoom) {
  if (typeof value === "number") return value;
  if (!Array.isArray(value) || value[0] !== "interpolate" || !Array.isArray(value[2]) || value[2][0] !== "zoom") return 1;
  const stops = [];
  for (let i = 3; i + 1 < value.length; i += 2) stops.push([value[i], value[i + 1]]);
  if (zoom <= stops[0][0]) return stops[0][1];
  for (let i = 1; i < stops.length; i += 1) {
    const [z0, v0] = stops[i - 1];
    const [z1, v1] = stops[i];
    if (zoom <= z1) return v0 + (v1 - v0) * (zoom - z0) / (z1 - z0);
  }
  return stops[stops.length - 1][1];
}

function landColour(view) {
  return state.styles.get(view.id)?.metadata?.["pvdgeo:basemap"]?.land
    ?? state.basemapLand ?? "#ffffff";
}

// The style layer of an entry that the map draws at `zoom` (the resolution-8 hexagons in
// a wide view, the resolution-9 ones closer).
function layerAtZoom(entry, zoom) {
  const layers = state.styles.get(state.view.id)?.layers ?? [];
  const candidates = entryLayers(entry).map((id) => layers.find((l) => l.id === id)).filter(Boolean);
  return candidates.find((l) => (l.minzoom ?? 0) <= zoom && zoom < (l.maxzoom ?? 99)) ?? candidates[0];
}

function swatch(geometry, color, dashed, opacity = 1, land = "#ffffff") {
  const kind = geometry === "circle" ? "circle" : geometry === "line" ? "line" : "fill";
  const node = el("span", { class: `swatch ${kind}${dashed ? " dashed" : ""}`, "aria-hidden": "true" });
  if (kind === "line") node.style.borderTopColor = color;
  else if (kind === "fill") {  // the class colour at the layer's opacity over the land colour
    node.style.background = land;
    const paint = el("span", { class: "swatch-paint" });
    paint.style.background = color;
    paint.style.opacity = String(opacity);
    node.append(paint);
  } else node.style.background = color;
  return node;
}

function currentOpacity(entry) {
  const zoom = map ? map.getZoom() : 13;
  const layer = layerAtZoom(entry, zoom);
  const paint = layer?.paint ?? {};
  return opacityAt(paint["fill-opacity"] ?? paint["line-opacity"] ?? paint["circle-opacity"] ?? 1, zoom);
}

// Keep fill swatches in step with the map's zoom-dependent opacity.
function refreshSwatches() {
  for (const entry of legendOf(state.view)) {
    const block = $("legend").querySelector(`[data-layer="${CSS.escape(entry.layer)}"]`);
    const opacity = String(currentOpacity(entry));
    for (const paint of block?.querySelectorAll(".swatch-paint") ?? []) paint.style.opacity = opacity;
  }
}

function renderLegend(view) {
  const root = $("legend");
  root.replaceChildren();
  const styleLayers = new Map((state.styles.get(view.id)?.layers ?? []).map((l) => [l.id, l]));
  let previous = null;
  for (const entry of legendOf(view)) {
    const layer = styleLayers.get(entry.layer);
    const geometry = layer?.type ?? "fill";
    const dashed = Boolean(layer?.paint?.["line-dasharray"]);
    const title = entry.unit ? `${entry.title} (${entry.unit})` : entry.title;
    const sameClasses = previous && entry.kind !== "single" &&
      JSON.stringify([entry.classes, entry.nodata]) === JSON.stringify([previous.classes, previous.nodata]);
    previous = entry;
    if (sameClasses) {  // e.g. streets coloured like the cells above: say so, once
      root.append(el("div", { class: "legend-block", "data-layer": entry.layer },
        el("h3", { text: title }), el("p", { class: "muted", text: "Mêmes classes et couleurs que ci-dessus." }),
        el("p", { class: "legend-note", hidden: true })));
      continue;
    }
    const items = el("ul");
    const classes = entry.kind === "single" ? [{ color: entry.color, label: entry.label }] : entry.classes;
    const opacity = currentOpacity(entry);
    const land = landColour(view);
    const item = (c) => el("li", { "data-color": c.color }, swatch(geometry, c.color, dashed, opacity, land), el("span", { text: c.label }));
    for (const c of classes) items.append(item(c));
    if (entry.nodata) items.append(item(entry.nodata));
    const rule = entry.rule ? el("p", { class: "muted legend-rule", text: entry.rule }) : null;
    root.append(el("div", { class: "legend-block", "data-layer": entry.layer },
      el("h3", { text: title }), items, rule,
      el("p", { class: "legend-note", hidden: true })));
  }
}

// After rendering: say so when the town has no data for a legend's field.
function annotateLegend(view) {
  for (const entry of legendOf(view)) {
    const block = $("legend").querySelector(`[data-layer="${CSS.escape(entry.layer)}"]`);
    const note = block?.querySelector(".legend-note");
    if (!note) continue;
    let text = "";
    const published = state.town.layers ?? [];
    const layers = entryLayers(entry).filter((id) => map.getLayer(id));
    if (!published.includes(entry.source_layer))
      text = `Pas de couche « ${entry.source_layer} » pour cette ville : ${NODATA}.`;
    else if (!layers.length) text = `Couche absente : ${NODATA}.`;
    else {
      const features = map.queryRenderedFeatures({ layers });
      if (features.length === 0) text = "Aucun élément à cette échelle ou dans cette partie de la carte.";
      else if (entry.field && !features.some((f) => f.properties[entry.field] !== undefined))
        text = `Pour cette ville : ${NODATA}.`;
    }
    note.textContent = text;
    note.hidden = !text;
  }
}

// --- popups --------------------------------------------------------------------------

function onClick(event) {
  const popups = popupsOf(state.view);
  const layers = Object.keys(popups).filter((id) => map.getLayer(id));
  if (!layers.length) return;
  const [feature] = map.queryRenderedFeatures(event.point, { layers });
  if (!feature) return;
  const spec = popups[feature.layer.id];
  const rows = el("tbody");
  for (const field of spec.fields) {
    const when = spec.when?.[field];  // e.g. brand and chain only for shops
    if (when && feature.properties[when[0]] !== when[1]) continue;
    const info = fieldInfo(field);
    const text = formatValue(field, feature.properties[field], state.view);
    rows.append(el("tr", {}, el("th", { text: info.label }),
      el("td", { text: text ?? NODATA, class: text === null ? "nodata" : "" })));
  }
  const content = el("div", { class: "popup" }, el("h4", { text: spec.title }), el("table", {}, rows));
  popup?.remove();
  popup = new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(event.lngLat).setDOMContent(content).addTo(map);
}

// --- town and view -------------------------------------------------------------------

function updateUrl() {
  const params = new URLSearchParams(window.location.search);
  params.set("town", state.town.insee);
  params.set("view", state.view.id);
  window.history.replaceState(null, "", `?${params}`);
}

function renderTownInfo(town) {
  const parts = [];
  if (town.osm_date) parts.push(town.osm_date);
  if (town.cog_year) parts.push(`COG ${town.cog_year}`);
  if (town.build_date) parts.push(`construit le ${new Date(town.build_date).toLocaleDateString("fr-FR")}`);
  $("town-info").textContent = parts.join(" · ");
  const links = $("links");
  links.replaceChildren();
  if (town.gpkg) {
    const size = town.gpkg_bytes ? ` (${numberFormat(1).format(town.gpkg_bytes / 1e6)} Mo)` : "";
    links.append(el("li", {}, el("a", { href: town.gpkg, download: "", text: `GeoPackage pour QGIS${size}` })));
  }
  if (town.portrait) links.append(el("li", {}, el("a", { href: town.portrait, text: "Portrait de la ville" })));
  links.append(el("li", {}, el("a", { href: town.pmtiles, download: "", text: "Tuiles vectorielles (PMTiles)" })));
  const provenance = $("provenance");
  provenance.replaceChildren();
  if (town.attribution_html || town.attribution) {
    const credit = el("span");
    credit.innerHTML = town.attribution_html || town.attribution;  // escaped in Python
    provenance.append("Sources : ", credit);
  }
}

function renderViews() {
  const root = $("views");
  root.replaceChildren();
  for (const view of state.views) {
    const status = viewStatus(state.town, view);
    const button = el("button", { type: "button", role: "radio", "data-view-id": view.id,
      "aria-checked": String(view.id === state.view?.id), "aria-disabled": String(!status.available) },
      el("span", { text: view.title }),
      status.available ? null : el("span", { class: "unavailable", text: "pas de données pour cette ville" }));
    if (!status.available) button.title = status.reason;
    button.addEventListener("click", () => {
      if (viewStatus(state.town, view).available) setView(view.id);
      else showMessage(`${view.title} : ${viewStatus(state.town, view).reason}`);
    });
    root.append(button);
  }
}

function renderViewInfo(view) {
  $("view-description").textContent = view.description;
  const status = viewStatus(state.town, view);
  const summary = $("view-summary");
  summary.textContent = status.summary ? `Ce que mesure la carte : ${status.summary}` : "";
  summary.hidden = !status.summary;
}

// Where a view opens: the town (at least at the view's min_zoom) or the catchment.
function frame(view, animate = false) {
  const town = state.town;
  const bounds = view.framing === "catchment" ? town.bounds : (town.town_bounds ?? town.bounds);
  map.fitBounds(bounds, { padding: 40, animate });
  if (view.min_zoom && map.getZoom() < view.min_zoom) map.jumpTo({ zoom: view.min_zoom });
  state.framedBy = view.framing;
  state.userMoved = false;
}

function markReady(view) {
  annotateLegend(view);
  document.body.dataset.view = view.id;
  document.body.dataset.town = state.town.insee;
  document.body.dataset.state = "ready";
}

async function applyStyle() {
  document.body.dataset.state = "loading";
  const view = state.view;
  const style = await styleFor(state.town, view);
  renderLegend(view);
  renderViewInfo(view);
  for (const button of $("views").querySelectorAll("button"))
    button.setAttribute("aria-checked", String(button.dataset.viewId === view.id));
  const idle = new Promise((resolve) => map.once("idle", resolve));
  map.setStyle(style);
  map.triggerRepaint(); // an unchanged style would otherwise never reach "idle"
  await idle;
  if (state.view === view) markReady(view);
}

async function setView(id) {
  const view = state.views.find((v) => v.id === id);
  if (!view) throw new Error(`vue inconnue : ${id}`);
  if (view === state.view && document.body.dataset.state === "ready") return;
  if (!state.town || !map) {  // no town chosen yet (unknown ?town=): remember the view
    state.view = view;
    for (const button of $("views").querySelectorAll("button"))
      button.setAttribute("aria-checked", String(button.dataset.viewId === view.id));
    return;
  }
  popup?.remove();
  showMessage("");
  state.view = view;
  updateUrl();
  // a new view opens on its own framing, unless the user has moved the map since
  if (!state.userMoved || state.framedBy === undefined) frame(view);
  await applyStyle();
}

// The first view of `town` that has data: `wanted` when it has, else the first available.
function viewFor(town, wanted) {
  if (wanted && viewStatus(town, wanted).available) return wanted;
  return state.views.find((v) => viewStatus(town, v).available) ?? wanted ?? state.views[0];
}

async function setTown(insee) {
  const town = state.towns.find((t) => t.insee === insee);
  if (!town) throw new Error(`ville inconnue : ${insee}`);
  popup?.remove();
  showMessage("");
  state.town = town;
  $("town").value = town.insee;
  $("town").querySelector('option[value=""]')?.remove();
  renderTownInfo(town);
  const wanted = state.view;
  state.view = viewFor(town, wanted);
  if (wanted && state.view !== wanted)
    showMessage(`${wanted.title} : ${viewStatus(town, wanted).reason} Vue « ${state.view.title} » affichée.`);
  renderViews();
  updateUrl();
  if (!map) { await startMap(); return; }
  frame(state.view);
  await applyStyle();
}

function renderedCounts() {
  const counts = {};
  for (const entry of legendOf(state.view)) {
    const layers = entryLayers(entry).filter((id) => map.getLayer(id));
    counts[entry.layer] = layers.length ? map.queryRenderedFeatures({ layers }).length : 0;
  }
  return counts;
}

// The legend swatches' colours as the page paints them (class colour at the layer's
// opacity over the land colour), per legend layer: [{label, color, rgb: [r, g, b]}].
function swatchColours() {
  const out = {};
  for (const block of $("legend").querySelectorAll(".legend-block")) {
    out[block.dataset.layer] = [...block.querySelectorAll("li")].map((li) => {
      const box = li.querySelector(".swatch").getBoundingClientRect();
      return { label: li.innerText, color: li.dataset.color,
        x: box.left + box.width / 2, y: box.top + box.height / 2 };
    });
  }
  return out;
}

// --- start ---------------------------------------------------------------------------

async function main() {
  const [towns, views, fields] = await Promise.all([
    loadJSON("towns.json"), loadJSON("views.json"), loadJSON("fields.json"),
  ]);
  state.towns = towns.towns;
  state.views = views.views;
  state.fields = fields.fields;
  state.values = fields.values;
  if (!state.towns.length) {
    showMessage("Aucune ville publiée : lancez « make demo » (ou « make town INSEE=… ») puis rechargez.");
    document.body.dataset.state = "empty";
    return;
  }
  const params = new URLSearchParams(window.location.search);
  const asked = params.get("town");
  const select = $("town");
  for (const town of state.towns) select.append(el("option", { value: town.insee, text: `${town.nom} (${town.insee})` }));
  select.addEventListener("change", () => setTown(select.value));
  const wanted = state.views.find((v) => v.id === params.get("view")) ?? state.views[0];
  state.view = wanted;
  state.town = asked ? state.towns.find((t) => t.insee === asked) : state.towns[0];
  if (!state.town) {  // never show another town in its place
    select.prepend(el("option", { value: "", text: "— choisir une ville —" }));
    select.value = "";
    renderViews();
    showMessage(`Aucune ville « ${asked} » n'est publiée dans ce visualiseur. Choisissez une des ${state.towns.length} villes de la liste.`);
    document.body.dataset.state = "unknown-town";
    return;
  }
  select.value = state.town.insee;
  state.view = viewFor(state.town, wanted);
  if (state.view !== wanted)
    showMessage(`${wanted.title} : ${viewStatus(state.town, wanted).reason} Vue « ${state.view.title} » affichée.`);
  renderViews();
  renderTownInfo(state.town);
  await startMap();
}

async function startMap() {
  const protocol = new Protocol();
  maplibregl.addProtocol("pmtiles", protocol.tile);
  map = new maplibregl.Map({
    container: "map",
    style: await styleFor(state.town, state.view),
    bounds: state.view.framing === "catchment" ? state.town.bounds : (state.town.town_bounds ?? state.town.bounds),
    fitBoundsOptions: { padding: 40 },
    attributionControl: { compact: false },
    maxZoom: 18,
    canvasContextAttributes: { preserveDrawingBuffer: true },  // pixel reads by the tests
  });
  if (state.view.min_zoom && map.getZoom() < state.view.min_zoom) map.jumpTo({ zoom: state.view.min_zoom });
  state.framedBy = state.view.framing;
  state.userMoved = false;
  map.on("movestart", (event) => { if (event.originalEvent) state.userMoved = true; });
  map.on("zoomend", refreshSwatches);
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
  map.on("error", (event) => {
    const message = event.error?.message ?? String(event.error ?? event);
    console.error(`Erreur de la carte : ${message}`);
    showMessage(`Erreur de la carte : ${message}`);
  });
  map.on("click", onClick);
  map.on("mousemove", (event) => {
    const layers = Object.keys(popupsOf(state.view)).filter((id) => map.getLayer(id));
    const hit = layers.length && map.queryRenderedFeatures(event.point, { layers }).length;
    map.getCanvas().style.cursor = hit ? "pointer" : "";
  });
  renderLegend(state.view);
  renderViewInfo(state.view);
  updateUrl();
  window.pvdViewer = { map, setView, setTown, renderedCounts, swatchColours, state };
  map.once("idle", () => markReady(state.view));
}

main().catch((error) => {
  console.error(error);
  showMessage(`Le visualiseur n'a pas pu démarrer : ${error.message}`);
  document.body.dataset.state = "error";
});
