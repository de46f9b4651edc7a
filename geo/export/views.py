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

The styles' single vector source ``pvdgeo`` points at ``pmtiles://town.pmtiles``; the
viewer (and any front end) replaces that URL with the town's archive.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.errors import InputFileError
from geo.settings import PROJECT_ROOT

__all__ = [
    "SOURCE_ID",
    "STYLES_DIR",
    "LegendClass",
    "LegendEntry",
    "View",
    "load_views",
    "tile_fields",
]

#: Folder of the MapLibre styles (one JSON file per view).
STYLES_DIR = PROJECT_ROOT / "tiles" / "styles"
#: Id of the vector source every style reads.
SOURCE_ID = "pvdgeo"

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


def _parse(path: Path) -> View:
    try:
        style = json.loads(path.read_text(encoding="utf-8"))
        meta = style["metadata"]
        view = meta["pvdgeo:view"]
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
        ))
    return View(id=view["id"], order=int(view.get("order", 99)), title=view["title"],
                description=view.get("description", ""), path=path, style=style,
                legend=tuple(legend), popup=dict(meta.get("pvdgeo:popup", {})))


def load_views(styles_dir: Path | None = None) -> list[View]:
    """Every view style of ``styles_dir`` (default ``tiles/styles``), in view order."""
    folder = Path(styles_dir) if styles_dir is not None else STYLES_DIR
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise InputFileError(f"{folder}: no MapLibre style (*.json) found")
    views = [_parse(p) for p in paths]
    ids = [v.id for v in views]
    if len(set(ids)) != len(ids):
        raise InputFileError(f"{folder}: duplicate view ids in {ids}")
    return sorted(views, key=lambda v: (v.order, v.id))
