// pvdgeo map viewer: one town's PMTiles shown through the MapLibre styles of the PVD views.
//
// Reads, next to this file: towns.json (every built town), views.json (the views, in
// order), fields.json (French labels and units of fields) and styles/<view>.json. The
// styles' "pvdgeo" source points at pmtiles://town.pmtiles; it is replaced with the
// chosen town's archive. URL parameters: ?town=<insee>&view=<view id>.
//
// For tests and scripts, window.pvdViewer exposes the map, setView, setTown and
// renderedCounts(); <body data-state> is "ready" once the current view has rendered.

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
  if (town.attribution) source.attribution = town.attribution;
  delete style.center;
  delete style.zoom;
  return style;
}

function legendOf(view) {
  return state.styles.get(view.id)?.metadata?.["pvdgeo:legend"] ?? [];
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
    const digits = Number.isInteger(value) ? 0 : unit === "min" || Math.abs(value) >= 10 ? 1 : 2;
    const text = numberFormat(digits).format(value);
    return unit ? `${text} ${unit}` : text;
  }
  return valueLabel(field, value, view) ?? String(value);
}

// --- legend --------------------------------------------------------------------------

function swatch(geometry, color, dashed) {
  const kind = geometry === "circle" ? "circle" : geometry === "line" ? "line" : "fill";
  const node = el("span", { class: `swatch ${kind}${dashed ? " dashed" : ""}`, "aria-hidden": "true" });
  if (kind === "line") node.style.borderTopColor = color;
  else node.style.background = color;
  return node;
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
    for (const c of classes) items.append(el("li", {}, swatch(geometry, c.color, dashed), el("span", { text: c.label })));
    if (entry.nodata) items.append(el("li", {}, swatch(geometry, entry.nodata.color, dashed), el("span", { text: entry.nodata.label })));
    root.append(el("div", { class: "legend-block", "data-layer": entry.layer },
      el("h3", { text: title }), items,
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
    if (!published.includes(entry.source_layer))
      text = `Pas de couche « ${entry.source_layer} » pour cette ville : ${NODATA}.`;
    else if (!map.getLayer(entry.layer)) text = `Couche absente : ${NODATA}.`;
    else {
      const features = map.queryRenderedFeatures({ layers: [entry.layer] });
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
  $("provenance").textContent = town.attribution ? `Sources : ${town.attribution}` : "";
}

function renderViews() {
  const root = $("views");
  root.replaceChildren();
  for (const view of state.views) {
    const button = el("button", { type: "button", role: "radio", "data-view-id": view.id, text: view.title,
      "aria-checked": String(view.id === state.view?.id) });
    button.addEventListener("click", () => setView(view.id));
    root.append(button);
  }
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
  $("view-description").textContent = view.description;
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
  popup?.remove();
  state.view = view;
  updateUrl();
  await applyStyle();
}

async function setTown(insee) {
  const town = state.towns.find((t) => t.insee === insee);
  if (!town) throw new Error(`ville inconnue : ${insee}`);
  popup?.remove();
  state.town = town;
  $("town").value = town.insee;
  renderTownInfo(town);
  updateUrl();
  map.fitBounds(town.town_bounds ?? town.bounds, { padding: 40, animate: false });
  await applyStyle();
}

function renderedCounts() {
  const counts = {};
  for (const entry of legendOf(state.view)) {
    counts[entry.layer] = map.getLayer(entry.layer) ? map.queryRenderedFeatures({ layers: [entry.layer] }).length : 0;
  }
  return counts;
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
  state.town = state.towns.find((t) => t.insee === params.get("town")) ?? state.towns[0];
  state.view = state.views.find((v) => v.id === params.get("view")) ?? state.views[0];

  const select = $("town");
  for (const town of state.towns) select.append(el("option", { value: town.insee, text: `${town.nom} (${town.insee})` }));
  select.value = state.town.insee;
  select.addEventListener("change", () => setTown(select.value));
  renderViews();
  renderTownInfo(state.town);

  const protocol = new Protocol();
  maplibregl.addProtocol("pmtiles", protocol.tile);
  map = new maplibregl.Map({
    container: "map",
    style: await styleFor(state.town, state.view),
    bounds: state.town.town_bounds ?? state.town.bounds,
    fitBoundsOptions: { padding: 40 },
    attributionControl: { compact: false },
    maxZoom: 18,
  });
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
  $("view-description").textContent = state.view.description;
  updateUrl();
  window.pvdViewer = { map, setView, setTown, renderedCounts, state };
  map.once("idle", () => markReady(state.view));
}

main().catch((error) => {
  console.error(error);
  showMessage(`Le visualiseur n'a pas pu démarrer : ${error.message}`);
  document.body.dataset.state = "error";
});
