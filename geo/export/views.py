"""The map views: MapLibre styles in ``tiles/styles/`` and their legends.

Each style is one PVD map view (accès santé à pied, commerces, APL...). Its
``metadata`` holds what the viewer and the QGIS styles need, so that one file defines
the symbology everywhere:

- ``pvdgeo:view``: ``id``, ``order``, French ``title`` and ``description``;
- ``pvdgeo:legend``: one entry per thematic style layer: ``layer`` (style layer id),
  ``source_layer`` (tile / GeoPackage layer), ``title``, ``kind`` (``graduated``,
  ``categorized`` or ``single``), ``field``, ``classes`` (``min``/``max`` or ``value``,
  ``color``, ``label``), ``nodata`` (colour and label of features without the field),
  an optional ``filter`` (``[field, value]``), and for QGIS ``qgis_name``,
  ``qgis_layers`` and ``qgis_default``;
- ``pvdgeo:popup``: per style layer, the popup ``title`` and the ``fields`` shown.

The view's ``pvdgeo:view`` may also say how the view opens and what it measures:
``framing`` (``town``: the town's outline, default; ``catchment``: every commune of the
catchment, for views comparing communes), ``min_zoom`` (the view opens at least at this
zoom, e.g. where streets appear) and ``measures`` (``category``: the facility category
whose points the access times lead to; ``key_subcategories``: those whose absence is
worth saying). A legend entry's ``also_layers`` names other style layers drawn with the
same classes (e.g. the resolution-8 hexagons shown at low zoom in place of the
resolution-9 ones); a popup's ``when`` maps a field to a ``[field, value]`` condition
(brand and chain only for shops).

Every view is composed with the basemap (``tiles/basemap/basemap.json``,
:func:`compose_style`): its layers carry a ``pvdgeo:slot`` (background, land, water,
fills, streets, lines, boundaries, points, labels) and the view's layers go in the slot
of their type (``fill`` -> fills, ``line`` -> lines, ``circle`` -> points) unless their
own metadata names one. :attr:`View.style` is the composed style; the viewer publishes
it. :func:`tile_fields` lists, per tile layer, the attributes the composed styles read.

The styles' single vector source ``pvdgeo`` points at ``pmtiles://town.pmtiles``; the
viewer (and any front end) replaces that URL with the town's archive, and the fonts'
relative URLs (``vendor/fonts/...``) with its own copies.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.errors import InputFileError
from geo.settings import PROJECT_ROOT

__all__ = [
    "BASEMAP_FILE",
    "SLOTS",
    "SOURCE_ID",
    "STYLES_DIR",
    "LegendClass",
    "LegendEntry",
    "View",
    "compose_style",
    "load_basemap",
    "load_views",
    "tile_fields",
]

#: Folder of the MapLibre styles (one JSON file per view).
STYLES_DIR = PROJECT_ROOT / "tiles" / "styles"
#: Id of the vector source every style reads.
SOURCE_ID = "pvdgeo"
#: The basemap every view is drawn on.
BASEMAP_FILE = PROJECT_ROOT / "tiles" / "basemap" / "basemap.json"
#: Drawing order of the basemap and view layers (``pvdgeo:slot``).
SLOTS = ("background", "land", "water", "fills", "streets", "lines", "boundaries", "points",
         "labels")
_DEFAULT_SLOT = {"background": "background", "fill": "fills", "line": "lines",
                 "circle": "points", "symbol": "labels"}

_KINDS = {"graduated", "categorized", "single"}


@dataclass(frozen=True, slots=True)
class LegendClass:
    """One legend class: a range ``[min, max)`` (graduated) or a ``value``."""

    color: str
    label: str
    min: float | None = None
    max: float | None = None
    value: Any = None


@dataclass(frozen=True, slots=True)
class LegendEntry:
    """The symbology of one thematic style layer."""

    view_id: str
    layer: str
    source_layer: str
    title: str
    kind: str
    geometry: str  # fill, line or circle (the style layer's type)
    field: str | None = None
    classes: tuple[LegendClass, ...] = ()
    nodata: LegendClass | None = None
    filter: tuple[str, Any] | None = None
    unit: str = ""
    color: str | None = None
    label: str = ""
    opacity: float = 1.0
    dashed: bool = False
    #: Drawing order of features: ``(field, descending)`` from a ``*-sort-key`` of the
    #: form ``["get", f]`` or ``["-", 0, ["get", f]]`` (features with a larger key on top).
    sort: tuple[str, bool] | None = None
    qgis_name: str = ""
    qgis_layers: tuple[str, ...] = ()
    qgis_default: bool = False
    #: Other style layers drawn with the same classes (``also_layers``).
    also_layers: tuple[str, ...] = ()
    #: Zoom range ``(minzoom, maxzoom)`` of the style layer drawing each source layer
    #: (None where unbounded): QGIS scale-dependent visibility.
    zooms: dict[str, tuple[float | None, float | None]] = dataclasses.field(
        default_factory=dict)


@dataclass(frozen=True, slots=True)
class View:
    """One map view: its style, file and legend."""

    id: str
    order: int
    title: str
    description: str
    path: Path
    style: dict[str, Any] = field(repr=False)
    legend: tuple[LegendEntry, ...] = ()
    popup: dict[str, Any] = field(default_factory=dict, repr=False)
    #: ``town`` or ``catchment``: what the view opens on.
    framing: str = "town"
    min_zoom: float | None = None
    #: ``category`` and ``key_subcategories`` of the facilities an access view leads to.
    measures: dict[str, Any] = field(default_factory=dict)

    @property
    def source_layers(self) -> set[str]:
        """Tile layers read by the view's style layers."""
        return {lyr["source-layer"] for lyr in self.style["layers"] if "source-layer" in lyr}

    def fields_by_layer(self) -> dict[str, set[str]]:
        """Feature attributes the view reads, per tile layer: every ``["get", field]``
        and ``{field}`` token of its style layers (filters, paint, layout), its legends'
        fields and filters, and its popups' fields."""
        out: dict[str, set[str]] = {}
        by_id = {lyr["id"]: lyr for lyr in self.style.get("layers", [])}
        for lyr in by_id.values():
            if "source-layer" in lyr:
                out.setdefault(lyr["source-layer"], set()).update(
                    _expression_fields([lyr.get("filter"), lyr.get("paint"), lyr.get("layout")]))
        for entry in self.legend:
            names = {entry.field, entry.filter[0] if entry.filter else None,
                     entry.sort[0] if entry.sort else None}
            out.setdefault(entry.source_layer, set()).update(n for n in names if n)
        for layer_id, popup in self.popup.items():
            lyr = by_id.get(layer_id)
            if lyr is not None and "source-layer" in lyr:
                out.setdefault(lyr["source-layer"], set()).update(popup.get("fields", []))
                out[lyr["source-layer"]].update(c[0] for c in popup.get("when", {}).values())
        return out


def _expression_fields(value: Any) -> set[str]:
    """Attribute names a MapLibre expression (or any nesting of them) reads."""
    found: set[str] = set()
    if isinstance(value, list):
        if len(value) == 2 and value[0] in ("get", "has") and isinstance(value[1], str):
            found.add(value[1])
        for item in value:
            found |= _expression_fields(item)
    elif isinstance(value, dict):
        for item in value.values():
            found |= _expression_fields(item)
    elif isinstance(value, str):
        found.update(re.findall(r"\{([A-Za-z0-9_]+)\}", value))
    return found


def tile_fields(views: list[View]) -> dict[str, set[str]]:
    """Attributes any view reads, per tile layer (see :meth:`View.fields_by_layer`)."""
    out: dict[str, set[str]] = {}
    for view in views:
        for layer, names in view.fields_by_layer().items():
            out.setdefault(layer, set()).update(names)
    return out


def _legend_class(raw: dict[str, Any]) -> LegendClass:
    return LegendClass(color=raw["color"], label=raw["label"], min=raw.get("min"),
                       max=raw.get("max"), value=raw.get("value"))


def _opacity(layer: dict[str, Any]) -> float:
    """The layer's opacity (the first stop of a zoom ``interpolate``)."""
    paint = layer.get("paint", {})
    for key in ("fill-opacity", "line-opacity", "circle-opacity"):
        value = paint.get(key)
        if isinstance(value, list) and value[:1] == ["interpolate"] and len(value) > 4:
            value = value[4]
        if isinstance(value, int | float):
            return float(value)
    return 1.0


def _sort(layer: dict[str, Any]) -> tuple[str, bool] | None:
    key = layer.get("layout", {}).get(f"{layer.get('type')}-sort-key")
    if isinstance(key, list) and key[:1] == ["get"] and len(key) == 2:
        return str(key[1]), False
    if (isinstance(key, list) and key[:2] == ["-", 0] and len(key) == 3
            and isinstance(key[2], list) and key[2][:1] == ["get"]):
        return str(key[2][1]), True
    return None


def load_basemap(path: Path | None = None) -> dict[str, Any]:
    """The basemap style fragment (``tiles/basemap/basemap.json``)."""
    path = Path(path) if path is not None else BASEMAP_FILE
    try:
        base = json.loads(path.read_text(encoding="utf-8"))
        layers = base["layers"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"{path}: not a pvdgeo basemap ({type(exc).__name__}: {exc})"
                             ) from None
    for lyr in layers:
        slot = lyr.get("metadata", {}).get("pvdgeo:slot")
        if slot not in SLOTS:
            raise InputFileError(f"{path}: layer {lyr.get('id')!r} needs a pvdgeo:slot, one "
                                 f"of {', '.join(SLOTS)}")
    return dict(base)


def _slot(layer: dict[str, Any]) -> str:
    slot = layer.get("metadata", {}).get("pvdgeo:slot") or _DEFAULT_SLOT.get(layer["type"])
    return slot if slot in SLOTS else "fills"


def compose_style(view_style: dict[str, Any], basemap: dict[str, Any]) -> dict[str, Any]:
    """A view's style drawn on the basemap: the basemap's fonts, source attribution and
    layers, ordered by slot (the view's layers after the basemap's in each slot). A view
    layer with the id of a basemap layer replaces it."""
    own = {lyr["id"] for lyr in view_style["layers"]}
    layers = [lyr for lyr in basemap["layers"] if lyr["id"] not in own]
    layers += view_style["layers"]
    layers.sort(key=lambda lyr: SLOTS.index(_slot(lyr)))  # stable: order kept in a slot
    out = {k: v for k, v in view_style.items() if k != "layers"}
    out["sources"] = {k: {**basemap.get("sources", {}).get(k, {}), **v}
                      for k, v in view_style["sources"].items()}
    if "font-faces" in basemap:
        out["font-faces"] = basemap["font-faces"]
    out["layers"] = layers
    return out


def _zoom_range(layer: dict[str, Any]) -> tuple[float | None, float | None]:
    lo, hi = layer.get("minzoom"), layer.get("maxzoom")
    return (float(lo) if lo is not None else None, float(hi) if hi is not None else None)


def _parse(path: Path, basemap: dict[str, Any]) -> View:
    try:
        raw_style = json.loads(path.read_text(encoding="utf-8"))
        meta = raw_style["metadata"]
        view = meta["pvdgeo:view"]
        style = compose_style(raw_style, basemap)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"{path}: not a pvdgeo view style (needs metadata "
                             f"'pvdgeo:view'; {type(exc).__name__}: {exc})") from None
    layers = {lyr["id"]: lyr for lyr in style.get("layers", [])}
    legend = []
    for i, raw in enumerate(meta.get("pvdgeo:legend", [])):
        where = f"{path}: legend entry {i}"
        if raw.get("kind") not in _KINDS:
            raise InputFileError(f"{where}: kind must be one of {sorted(_KINDS)}")
        layer = layers.get(raw.get("layer", ""))
        if layer is None:
            raise InputFileError(f"{where}: style layer {raw.get('layer')!r} not in the style")
        if layer.get("source-layer") != raw.get("source_layer"):
            raise InputFileError(f"{where}: source_layer {raw.get('source_layer')!r} differs "
                                 f"from the style layer's {layer.get('source-layer')!r}")
        if raw["kind"] != "single" and not (raw.get("field") and raw.get("classes")):
            raise InputFileError(f"{where}: a {raw['kind']} legend needs 'field' and 'classes'")
        if raw["kind"] == "single" and not raw.get("color"):
            raise InputFileError(f"{where}: a single legend needs 'color'")
        filt = raw.get("filter")
        also = tuple(raw.get("also_layers", []))
        missing = [a for a in also if a not in layers]
        if missing:
            raise InputFileError(f"{where}: also_layers {missing} not in the style")
        zooms = {}
        for lid in (raw["layer"], *also):
            zooms[layers[lid]["source-layer"]] = _zoom_range(layers[lid])
        legend.append(LegendEntry(
            view_id=view["id"], layer=raw["layer"], source_layer=raw["source_layer"],
            title=raw["title"], kind=raw["kind"], geometry=layer["type"],
            field=raw.get("field"),
            classes=tuple(_legend_class(c) for c in raw.get("classes", [])),
            nodata=_legend_class(raw["nodata"]) if raw.get("nodata") else None,
            filter=(filt[0], filt[1]) if filt else None,
            unit=raw.get("unit", ""), color=raw.get("color"), label=raw.get("label", ""),
            opacity=_opacity(layer), dashed="line-dasharray" in layer.get("paint", {}),
            sort=_sort(layer),
            qgis_name=raw.get("qgis_name") or view["title"],
            qgis_layers=tuple(raw.get("qgis_layers") or [raw["source_layer"]]),
            qgis_default=bool(raw.get("qgis_default", False)),
            also_layers=also, zooms=zooms,
        ))
    framing = view.get("framing", "town")
    if framing not in ("town", "catchment"):
        raise InputFileError(f"{path}: framing must be 'town' or 'catchment', got {framing!r}")
    return View(id=view["id"], order=int(view.get("order", 99)), title=view["title"],
                description=view.get("description", ""), path=path, style=style,
                legend=tuple(legend), popup=dict(meta.get("pvdgeo:popup", {})),
                framing=framing,
                min_zoom=float(view["min_zoom"]) if view.get("min_zoom") is not None else None,
                measures=dict(view.get("measures", {})))


def load_views(styles_dir: Path | None = None, *,
               basemap: Path | None = None) -> list[View]:
    """Every view style of ``styles_dir`` (default ``tiles/styles``), composed with the
    basemap (default ``tiles/basemap/basemap.json``), in view order."""
    folder = Path(styles_dir) if styles_dir is not None else STYLES_DIR
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise InputFileError(f"{folder}: no MapLibre style (*.json) found")
    base = load_basemap(basemap)
    views = [_parse(p, base) for p in paths]
    ids = [v.id for v in views]
    if len(set(ids)) != len(ids):
        raise InputFileError(f"{folder}: duplicate view ids in {ids}")
    return sorted(views, key=lambda v: (v.order, v.id))
