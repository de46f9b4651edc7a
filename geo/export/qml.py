"""QGIS layer styles (QML) built from the map views' legends.

Every legend entry of ``tiles/styles/*.json`` becomes a QGIS style of the GeoPackage
layers it names, with the same classes, colours and French labels as the web map:

- ``graduated`` -> a graduated renderer (``graduatedSymbol``). MapLibre's ``step``
  puts a value equal to a break in the upper class ([min, max)); QGIS takes the first
  range with ``lower <= value <= upper``, so ranges are written from the highest class
  down, which gives the same classes at the breaks;
- ``categorized`` -> a categorised renderer, with a catch-all category (value ``""``)
  for the ``nodata`` class;
- an entry with a ``filter`` (e.g. only ``category = 'commerces'``) -> a rule-based
  renderer with one rule per class, so other features are not drawn.

A legend whose field the layer lacks gives a single grey symbol labelled "donnée non
disponible" rather than an empty map. Layers that no view styles get a default style
(facilities by category, streets by mode). Field aliases carry the French labels of
:mod:`geo.export.fields`.
"""

from __future__ import annotations

import math
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geo.errors import InputFileError
from geo.export.fields import FieldLabel, field_label
from geo.export.views import LegendClass, LegendEntry, View

__all__ = [
    "QgisStyle",
    "build_qgis_styles",
    "legend_qml",
]

QGIS_VERSION = "3.34.0-Prizren"
_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
_NODATA = LegendClass(color="#d9d9d9", label="donnée non disponible")
#: Upper bound of an open-ended top class (QGIS ranges need one).
_OPEN_UPPER = 1e12

#: Colour-blind-safe categories of facilities (Okabe & Ito palette).
_CATEGORY_COLOURS = {
    "sante": "#D55E00",
    "commerces": "#E69F00",
    "culture": "#CC79A7",
    "education": "#56B4E9",
    "services": "#0072B2",
    "energie": "#009E73",
}


@dataclass(frozen=True, slots=True)
class QgisStyle:
    """One row of the GeoPackage ``layer_styles`` table."""

    layer: str
    name: str
    qml: str
    description: str
    default: bool


def _rgba(colour: str, opacity: float = 1.0) -> str:
    """``#rrggbb`` or ``rgba(r,g,b,a)`` to QGIS ``r,g,b,a`` (0..255)."""
    c = colour.strip()
    if c.startswith("#"):
        h = c[1:]
        if len(h) == 3:
            h = "".join(ch * 2 for ch in h)
        r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
        a = opacity
    elif c.startswith("rgb"):
        parts = [p.strip() for p in c[c.index("(") + 1:c.rindex(")")].split(",")]
        r, g, b = (int(float(p)) for p in parts[:3])
        a = (float(parts[3]) if len(parts) > 3 else 1.0) * opacity
    else:
        raise InputFileError(
            f"unsupported colour {colour!r} in a map style: expected #rrggbb or rgb[a](...)")
    return f"{r},{g},{b},{round(a * 255)}"


def _options(parent: ET.Element, props: Mapping[str, str]) -> None:
    """Symbol-layer properties in both QGIS encodings (``Option`` map, 3.26+, and the
    ``prop`` list older 3.x versions read)."""
    opt = ET.SubElement(parent, "Option", type="Map")
    for k, v in props.items():
        ET.SubElement(opt, "Option", name=k, value=str(v), type="QString")
    for k, v in props.items():
        ET.SubElement(parent, "prop", k=k, v=str(v))


def _symbol(parent: ET.Element, name: str, geometry: str, colour: str, opacity: float,
            *, dashed: bool = False) -> None:
    sym_type = {"fill": "fill", "outline": "fill", "line": "line", "circle": "marker"}[geometry]
    sym = ET.SubElement(parent, "symbol", type=sym_type, name=name, alpha="1",
                        clip_to_extent="1", force_rhr="0")
    if geometry == "outline":  # polygons drawn as their outlines (a line style on the map)
        layer = ET.SubElement(sym, "layer", attrib={"class": "SimpleFill"}, enabled="1",
                              pass_="0", locked="0")
        _options(layer, {"color": "0,0,0,0", "style": "no",
                         "outline_color": _rgba(colour, opacity),
                         "outline_style": "dash" if dashed else "solid",
                         "outline_width": "0.6", "outline_width_unit": "MM",
                         "joinstyle": "round"})
    elif geometry == "fill":
        layer = ET.SubElement(sym, "layer", attrib={"class": "SimpleFill"}, enabled="1",
                              pass_="0", locked="0")
        _options(layer, {"color": _rgba(colour, opacity), "style": "solid",
                         "outline_color": "255,255,255,140", "outline_style": "solid",
                         "outline_width": "0.15", "outline_width_unit": "MM",
                         "joinstyle": "bevel"})
    elif geometry == "line":
        layer = ET.SubElement(sym, "layer", attrib={"class": "SimpleLine"}, enabled="1",
                              pass_="0", locked="0")
        _options(layer, {"line_color": _rgba(colour, opacity),
                         "line_style": "dash" if dashed else "solid", "line_width": "0.6",
                         "line_width_unit": "MM", "capstyle": "round",
                         "joinstyle": "round"})
    else:
        layer = ET.SubElement(sym, "layer", attrib={"class": "SimpleMarker"}, enabled="1",
                              pass_="0", locked="0")
        _options(layer, {"name": "circle", "color": _rgba(colour, opacity),
                         "outline_color": "255,255,255,255", "outline_style": "solid",
                         "outline_width": "0.3", "outline_width_unit": "MM", "size": "2.6",
                         "size_unit": "MM", "scale_method": "diameter"})


def _literal(value: Any) -> str:
    """A QGIS expression literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _quote(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


def _cat_value(value: Any) -> str:
    """Category value as QGIS compares it (``QVariant::toString``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fmt(x: float) -> str:
    return repr(float(x))


def _order_by(renderer: ET.Element, entry: LegendEntry) -> None:
    """Draw order of the map's ``*-sort-key``: features with a larger key on top, i.e.
    drawn last (QGIS draws in ``order by`` order)."""
    if entry.sort is None:
        return
    field, descending = entry.sort
    renderer.set("enableorderby", "1")
    order = ET.SubElement(renderer, "orderby")
    # MapLibre's sort key -F puts small F on top: QGIS draws large F first (descending)
    ET.SubElement(order, "orderByClause", asc="0" if descending else "1",
                  nullsFirst="1").text = _quote(field)


def _renderer(root: ET.Element, entry: LegendEntry, geometry: str,
              has_field: bool) -> None:
    _renderer_body(root, entry, geometry, has_field)
    renderer = root.find("renderer-v2")
    if renderer is not None and has_field:
        _order_by(renderer, entry)


def _renderer_body(root: ET.Element, entry: LegendEntry, geometry: str,
                   has_field: bool) -> None:
    dashed = geometry in {"line", "outline"} and entry.dashed
    fld = _quote(entry.field or "")

    def renderer(kind: str, **attrs: str) -> ET.Element:
        return ET.SubElement(root, "renderer-v2", attrib={
            "type": kind, **attrs, "symbollevels": "0", "forceraster": "0",
            "enableorderby": "0", "referencescale": "-1"})

    if entry.kind != "single" and not has_field:
        # one rule without filter (every feature), so the legend says why it is grey
        nodata = entry.nodata or _NODATA
        r = renderer("RuleRenderer")
        root_rule = ET.SubElement(r, "rules", key=f"{{{uuid.uuid4()}}}")
        ET.SubElement(root_rule, "rule", key=f"{{{uuid.uuid4()}}}", symbol="0",
                      label=f"{nodata.label} ({entry.field} absent)")
        _symbol(ET.SubElement(r, "symbols"), "0", geometry, nodata.color, entry.opacity)
        return
    if entry.kind == "single" and entry.filter is None:
        r = renderer("singleSymbol")
        _symbol(ET.SubElement(r, "symbols"), "0", geometry, entry.color or "#000000",
                entry.opacity)
        return
    if entry.filter is not None or (entry.kind == "graduated" and entry.nodata is not None):
        # rules, so features without a value are drawn in the nodata class (QGIS's
        # graduated renderer leaves them out)
        if entry.filter is not None:
            f_field, f_value = entry.filter
            base = f"{_quote(f_field)} = {_literal(f_value)} AND "
        else:
            base = ""
        rules: list[tuple[str, str, LegendClass]] = []  # (filter, label, class)
        if entry.kind == "single":
            rules.append((base.removesuffix(" AND "), entry.label or entry.title,
                          LegendClass(color=entry.color or "#000000", label=entry.label)))
        else:
            for c in entry.classes:
                if entry.kind == "categorized":
                    cond = f"{fld} = {_literal(c.value)}"
                else:
                    cond = f"{fld} >= {_fmt(c.min or 0)}"
                    if c.max is not None:
                        cond += f" AND {fld} < {_fmt(c.max)}"
                rules.append((f"{base}{cond}", c.label, c))
            if entry.nodata is not None:
                if entry.kind == "categorized":
                    values = ", ".join(_literal(c.value) for c in entry.classes)
                    other = f"NOT coalesce({fld} IN ({values}), false)"
                else:
                    other = f"{fld} IS NULL"
                rules.append((f"{base}{other}", entry.nodata.label, entry.nodata))
        r = renderer("RuleRenderer")
        rules_el = ET.SubElement(r, "rules", key=f"{{{uuid.uuid4()}}}")
        symbols = ET.SubElement(r, "symbols")
        for i, (expr, label, c) in enumerate(rules):
            ET.SubElement(rules_el, "rule", key=f"{{{uuid.uuid4()}}}", filter=expr,
                          symbol=str(i), label=label)
            _symbol(symbols, str(i), geometry, c.color, entry.opacity, dashed=dashed)
        return
    if entry.kind == "graduated":
        r = renderer("graduatedSymbol", attr=str(entry.field), graduatedMethod="GraduatedColor")
        ranges = ET.SubElement(r, "ranges")
        symbols = ET.SubElement(r, "symbols")
        order = list(enumerate(entry.classes))[::-1]  # highest first: see module doc
        for i, c in order:
            upper = c.max if c.max is not None else _OPEN_UPPER
            ET.SubElement(ranges, "range", lower=_fmt(c.min if c.min is not None else 0),
                          upper=_fmt(upper), symbol=str(i), label=c.label, render="true")
            _symbol(symbols, str(i), geometry, c.color, entry.opacity, dashed=dashed)
        ET.SubElement(r, "mode", name="manual")
        ET.SubElement(r, "labelformat", format="%1 - %2", decimalplaces="1",
                      trimtrailingzeroes="true")
        return
    r = renderer("categorizedSymbol", attr=str(entry.field))
    cats = ET.SubElement(r, "categories")
    symbols = ET.SubElement(r, "symbols")
    classes = [*entry.classes, *([entry.nodata] if entry.nodata else [])]
    for i, c in enumerate(classes):
        is_other = entry.nodata is not None and i == len(classes) - 1
        ET.SubElement(cats, "category", value="" if is_other else _cat_value(c.value),
                      symbol=str(i), label=c.label, render="true")
        _symbol(symbols, str(i), geometry, c.color, entry.opacity, dashed=dashed)


def _geometry_kind(geom_type: str) -> str:
    g = geom_type.lower()
    if "polygon" in g:
        return "fill"
    if "line" in g:
        return "line"
    return "circle"


#: Scale denominator at zoom 0 on the equator (256-pixel tiles, 0.28 mm pixels).
_SCALE_Z0 = 559_082_264.028717


def zoom_scale(zoom: float, latitude: float) -> float:
    """The map scale denominator of a web-map ``zoom`` at ``latitude`` (degrees)."""
    return _SCALE_Z0 * math.cos(math.radians(latitude)) / 2 ** zoom


def _labeling(root: ET.Element, field: str) -> None:
    """QGIS labels of ``field`` (the commune names), dark text with a white halo."""
    root.set("labelsEnabled", "1")
    lab = ET.SubElement(root, "labeling", type="simple")
    settings = ET.SubElement(lab, "settings", calloutType="simple")
    style = ET.SubElement(settings, "text-style", fieldName=field, isExpression="0",
                          fontFamily="Noto Sans", fontSize="9", fontSizeUnit="Point",
                          fontWeight="63", textColor="30,30,30,255", textOpacity="1")
    ET.SubElement(style, "text-buffer", bufferDraw="1", bufferSize="1",
                  bufferSizeUnits="MM", bufferColor="255,255,255,230", bufferOpacity="1")
    ET.SubElement(settings, "placement", placement="1", dist="0", quadOffset="4")
    ET.SubElement(settings, "rendering", obstacle="1", displayAll="0", priority="5")


def legend_qml(entry: LegendEntry, *, fields: Sequence[str], geometry_type: str,
               labels: Mapping[str, FieldLabel] | None = None, layer: str | None = None,
               latitude: float = 46.5, label_field: str | None = None) -> str:
    """The QML document of one legend entry applied to a layer.

    Parameters
    ----------
    entry
        A legend entry of a view style.
    fields
        The layer's field names (aliases are written for each).
    geometry_type
        The layer's geometry type (``Polygon``, ``MultiLineString``, ``Point``...).
    labels
        French labels per field (default :func:`~geo.export.fields.field_label`).
    layer
        The GeoPackage layer styled. When the entry draws several layers at different
        zooms (H3 resolutions 8 and 9), the style gets the layer's zoom range as a
        scale-dependent visibility, so the two never overlap in QGIS either.
    latitude
        Where zooms are turned into scales (the town's latitude, degrees).
    """
    geometry = _geometry_kind(geometry_type)
    if geometry == "fill" and entry.geometry == "line":
        geometry = "outline"
    root = ET.Element("qgis", version=QGIS_VERSION,
                      styleCategories="Symbology|Labeling|Fields|Rendering")
    zooms = entry.zooms.get(layer or entry.source_layer)
    if len(entry.zooms) > 1 and zooms is not None:
        lo, hi = zooms  # visible for lo <= zoom < hi: scales (S(hi), S(lo)]
        root.set("hasScaleBasedVisibilityFlag", "1")
        root.set("minScale", f"{zoom_scale(lo, latitude):.0f}" if lo is not None else "0")
        root.set("maxScale", f"{zoom_scale(hi, latitude):.0f}" if hi is not None else "0")
    has_field = entry.field is None or entry.field in fields
    if entry.filter is not None and entry.filter[0] not in fields:
        has_field = False
    _renderer(root, entry, geometry, has_field)
    if label_field and label_field in fields:
        _labeling(root, label_field)
    aliases = ET.SubElement(root, "aliases")
    for i, name in enumerate(fields):
        lab = (labels or {}).get(name) or field_label(name)
        ET.SubElement(aliases, "alias", field=name, index=str(i), name=lab.text)
    ET.SubElement(root, "layerGeometryType").text = {"circle": "0", "line": "1", "fill": "2",
                                                     "outline": "2"}[geometry]
    ET.indent(root)
    # ElementTree cannot name an attribute "pass"; written as pass_ above.
    return _DOCTYPE + ET.tostring(root, encoding="unicode").replace(' pass_="', ' pass="')


def _default_entries(layer: str, fields: Sequence[str],
                     category_labels: Mapping[str, str]) -> list[LegendEntry]:
    """Styles of layers that no view draws thematically."""
    if layer == "facilities" and "category" in fields:
        classes = tuple(LegendClass(color=c, label=category_labels.get(k, k), value=k)
                        for k, c in _CATEGORY_COLOURS.items())
        return [LegendEntry(view_id="", layer="", source_layer=layer,
                            title="Équipements par catégorie", kind="categorized",
                            geometry="circle", field="category", classes=classes,
                            nodata=LegendClass(color="#8c8c8c", label="autre"),
                            qgis_name="Équipements par catégorie", qgis_default=True)]
    if layer == "network_edges" and "mode" in fields:
        classes = (LegendClass(color="#5f5f5f", label="réseau piéton", value="walk"),
                   LegendClass(color="#0072B2", label="réseau cyclable", value="bike"))
        return [LegendEntry(view_id="", layer="", source_layer=layer, title="Réseau de rues",
                            kind="categorized", geometry="line", field="mode",
                            classes=classes, qgis_name="Réseau de rues",
                            qgis_default=True)]
    basemap = {"water": ("Plans d'eau", "#b9d7ee", 1.0), "waterways": ("Cours d'eau",
                                                                          "#8fbbe0", 1.0),
               "commune_labels": ("Noms des communes", "#333333", 1.0),
               "street_limit": ("Limite des données de rues", "#7a3e00", 1.0)}
    if layer in basemap:
        name, colour, opacity = basemap[layer]
        return [LegendEntry(view_id="", layer="", source_layer=layer, title=name,
                            kind="single", geometry="fill", color=colour, opacity=opacity,
                            qgis_name=name, qgis_default=True)]
    return [LegendEntry(view_id="", layer="", source_layer=layer, title=layer,
                        kind="single", geometry="fill", color="#8c8c8c", opacity=0.6,
                        qgis_name="Contours", qgis_default=False)]


def build_qgis_styles(views: Iterable[View], layers: Mapping[str, Any], *,
                      labels: Mapping[str, FieldLabel] | None = None,
                      category_labels: Mapping[str, str] | None = None,
                      latitude: float = 46.5) -> list[QgisStyle]:
    """QGIS styles for the GeoPackage layers: one per (legend entry, layer), plus
    defaults for layers no view styles. Exactly one style per layer is the default.

    Parameters
    ----------
    views
        The map views (:func:`~geo.export.views.load_views`).
    layers
        Layer name -> GeoDataFrame (fields and geometry type are read from it).
    """
    out: list[QgisStyle] = []
    seen: set[tuple[str, str]] = set()
    for view in views:
        for entry in view.legend:
            for layer in entry.qgis_layers:
                gdf = layers.get(layer)
                if gdf is None or (layer, entry.qgis_name) in seen:
                    continue
                seen.add((layer, entry.qgis_name))
                fields = [c for c in gdf.columns if c != gdf.geometry.name]
                qml = legend_qml(entry, fields=fields, labels=labels,
                                 geometry_type=_geom_type(gdf), layer=layer,
                                 latitude=latitude)
                out.append(QgisStyle(layer=layer, name=entry.qgis_name, qml=qml,
                                     description=f"{view.title} : {entry.title}",
                                     default=entry.qgis_default))
    for layer, gdf in layers.items():
        fields = [c for c in gdf.columns if c != gdf.geometry.name]
        styled = [s for s in out if s.layer == layer]
        if styled and layer not in {"facilities", "network_edges"}:
            continue
        for entry in _default_entries(layer, fields, category_labels or {}):
            qml = legend_qml(entry, fields=fields, labels=labels, geometry_type=_geom_type(gdf),
                             label_field="nom" if layer == "commune_labels" else None)
            out.append(QgisStyle(layer=layer, name=entry.qgis_name, qml=qml,
                                 description=entry.title, default=entry.qgis_default))
    return _one_default_per_layer(out)


def _geom_type(gdf: Any) -> str:
    types = gdf.geometry.geom_type.dropna().unique()
    return str(types[0]) if len(types) else "Polygon"


def _one_default_per_layer(styles: list[QgisStyle]) -> list[QgisStyle]:
    out: list[QgisStyle] = []
    layers = list(dict.fromkeys(s.layer for s in styles))
    for layer in layers:
        mine = [s for s in styles if s.layer == layer]
        chosen = next((s for s in mine if s.default), mine[0])
        out += [QgisStyle(s.layer, s.name, s.qml, s.description, s is chosen) for s in mine]
    return out
