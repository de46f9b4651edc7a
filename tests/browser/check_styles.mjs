// Check that each view style's legend tells the truth about its paint expressions.
//
//   node tests/browser/check_styles.mjs STYLE.json [STYLE.json ...]
//
// For every entry of metadata["pvdgeo:legend"], the style layer's colour property
// (fill-color, line-color or circle-color) is evaluated with the MapLibre style-spec
// expression engine on synthetic features: one value inside each class (the class
// minimum, or its value), and a feature without the field (the "nodata" class). The
// layer filter must accept the legend's filter value and reject another value. Prints
// one JSON object: {"checked": n, "problems": [...]}; pytest asserts on it.

import { readFileSync } from "node:fs";
import { createExpression, featureFilter, latest } from "@maplibre/maplibre-gl-style-spec";

const COLOR_PROP = { fill: "fill-color", line: "line-color", circle: "circle-color" };

function hex(color) {
  const to = (v) => Math.round(v * 255).toString(16).padStart(2, "0");
  const [r, g, b, a] = color.a === 0 ? [0, 0, 0, 0] : [color.r / color.a, color.g / color.a, color.b / color.a, color.a];
  return `#${to(r)}${to(g)}${to(b)}`;
}

function normalise(css) {
  const c = css.trim().toLowerCase();
  if (/^#[0-9a-f]{3}$/.test(c)) return `#${[...c.slice(1)].map((x) => x + x).join("")}`;
  return c;
}

function colourExpression(layer, index) {
  const prop = COLOR_PROP[layer.type];
  const spec = latest[`paint_${layer.type}`][prop];
  const value = layer.paint?.[prop];
  const parsed = createExpression(value, `layers[${index}].paint.${prop}`, spec);
  if (parsed.result !== "success") throw new Error(`${layer.id}: ${parsed.value.map((e) => e.message).join("; ")}`);
  return parsed.value;
}

const problems = [];
let checked = 0;
for (const file of process.argv.slice(2)) {
  const style = JSON.parse(readFileSync(file, "utf8"));
  const layers = new Map(style.layers.map((l, i) => [l.id, { ...l, index: i }]));
  for (const entry of style.metadata?.["pvdgeo:legend"] ?? []) {
    const where = `${file} ${entry.layer}`;
    const layer = layers.get(entry.layer);
    if (!layer) { problems.push(`${where}: no such style layer`); continue; }
    const expr = colourExpression(layer, layer.index);
    const filter = layer.filter ? featureFilter(layer.filter, `layers[${layer.index}].filter`) : null;
    const base = {};
    if (entry.filter) base[entry.filter[0]] = entry.filter[1];
    const evaluate = (props) => hex(expr.evaluate({ zoom: 14 }, { type: "Point", properties: { ...base, ...props } }));
    const cases = [];
    if (entry.kind === "single") cases.push([{}, entry.color, "single"]);
    for (const c of entry.classes ?? []) {
      const value = entry.kind === "graduated" ? c.min : c.value;
      cases.push([{ [entry.field]: value }, c.color, c.label]);
      if (entry.kind === "graduated" && c.max !== null && c.max !== undefined)
        cases.push([{ [entry.field]: c.max - 1e-9 }, c.color, `${c.label} (upper end)`]);
    }
    if (entry.nodata) cases.push([{}, entry.nodata.color, entry.nodata.label]);
    for (const [props, want, label] of cases) {
      checked += 1;
      const got = evaluate(props);
      if (got !== normalise(want)) problems.push(`${where}: class "${label}" (${JSON.stringify(props)}) renders ${got}, legend says ${want}`);
    }
    if (entry.filter && filter) {
      const feature = (value) => ({ type: 1, properties: { [entry.filter[0]]: value } });
      checked += 2;
      if (!filter.filter({ zoom: 14 }, feature(entry.filter[1]))) problems.push(`${where}: filter rejects ${entry.filter[1]}`);
      if (filter.filter({ zoom: 14 }, feature("__autre__"))) problems.push(`${where}: filter accepts other values`);
    }
  }
}
process.stdout.write(JSON.stringify({ checked, problems }) + "\n");
