"""The published layers of a town: which files they come from, and their preparation.

A town run writes per-stage files under ``data/out/<insee>/`` (ARCHITECTURE.md). The
GeoPackage and the PMTiles publish whatever exists: a town without streets has no
``isochrones`` or ``network_edges``, a town without land cover has no ``clc_*`` fields.
Only a town with no layer at all is an error.

Preparation is a pure function (:func:`prepare_layers`): reprojection to the town's
metric CRS, snake_case field names, a few fields derived for the maps
(``is_town``, ``clc_dominant``, French category labels) and the walk and bike street
edges merged into one ``network_edges`` layer.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo import communes, sources
from geo._io import read_parquet_metadata
from geo.errors import GeoError, InputFileError, MissingColumnsError, MissingCrsError
from geo.export import basemap
from geo.export.fields import category_groups, category_labels
from geo.settings import Settings, get_settings
from geo.vocab import LEVEL1

__all__ = [
    "LAYERS",
    "LayerSpec",
    "TownLayers",
    "add_basemap_layers",
    "layer_spec",
    "normalise_dtypes",
    "prepare_layers",
    "read_town_card",
    "read_town_layers",
    "reference_communes",
    "town_crs",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """One published layer (same name in the GeoPackage and in the vector tiles)."""

    name: str
    #: French title (GeoPackage ``identifier``) and description.
    title: str
    description: str
    #: Input files under the town folder, merged in order; empty for the basemap layers
    #: derived from the others (:mod:`geo.export.basemap`).
    files: tuple[str, ...]
    #: Columns every input must have (besides the geometry).
    required: tuple[str, ...]
    #: Tile zoom range: the layer is in the tiles from ``minzoom`` to the archive's max.
    minzoom: int
    #: Zoom beyond which the layer gains no detail (map clients overzoom it): the archive
    #: stops at the largest ``maxzoom`` of its layers (and ``settings.tiles_max_zoom``).
    maxzoom: int = 15


#: Publication order: backgrounds first, points last.
LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("communes", "Communes", "Commune du programme et communes de son bassin, "
              "avec leurs indicateurs (population, APL, équipements, accès, occupation des "
              "sols)", ("communes.parquet",), ("insee",), 0, 13),
    LayerSpec("water", "Plans d'eau (fond de carte)", "Plans d'eau de l'extrait "
              "OpenStreetMap de la ville et surfaces en eau CORINE Land Cover, quand ces "
              "sources existent", (), (), 8, 14),
    LayerSpec("waterways", "Cours d'eau (fond de carte)", "Rivières, canaux et ruisseaux "
              "de l'extrait OpenStreetMap de la ville, quand il existe", (), (), 8, 14),
    LayerSpec("landcover", "Occupation des sols (CORINE Land Cover)", "Polygones CORINE "
              "Land Cover du bassin (version vectorielle)", ("landcover.parquet",), (), 10, 13),
    LayerSpec("h3_r8", "Hexagones H3 (résolution 8)", "Cellules H3 de résolution 8 "
              "(environ 0,7 km²) couvrant le bassin, avec leurs indicateurs",
              ("h3_r8.parquet",), ("h3",), 8, 13),
    LayerSpec("h3_r9", "Hexagones H3 (résolution 9)", "Cellules H3 de résolution 9 "
              "(environ 0,1 km²) couvrant le bassin, avec leurs indicateurs",
              ("h3_r9.parquet",), ("h3",), 12, 14),
    LayerSpec("street_limit", "Limite des données de rues", "Zone couverte par les "
              "données de rues (tronçons élargis de la distance de rattachement des "
              "équipements) : au-delà, les temps d'accès sont estimés à vol d'oiseau",
              (), (), 8, 13),
    LayerSpec("isochrones", "Isochrones depuis la mairie", "Zones atteintes en 5, 10, 15 "
              "et 20 minutes à pied et à vélo depuis la mairie",
              ("isochrones.parquet",), ("mode", "minutes"), 8, 15),
    LayerSpec("network_edges", "Réseau de rues (à pied et à vélo)", "Tronçons des "
              "graphes piéton et cyclable avec leur longueur et leur temps de parcours",
              ("access_walk_edges.parquet", "access_bike_edges.parquet"), (), 12, 15),
    LayerSpec("facilities", "Équipements", "Équipements de santé, commerces, culture, "
              "éducation, services et énergie (OSM, BPE, culture, Géorisques)",
              ("facilities.parquet",), ("category",), 10, 14),
    LayerSpec("commune_labels", "Noms des communes", "Un point par commune du bassin pour "
              "placer son nom sur la carte (point le plus intérieur du polygone)",
              (), (), 0, 13),
)

_BY_NAME = {spec.name: spec for spec in LAYERS}

_CLC_LEVEL1 = tuple(LEVEL1.values())


@dataclass(frozen=True, slots=True)
class TownLayers:
    """The prepared layers of one town, in its metric CRS, and its card."""

    insee: str
    nom: str
    crs: str
    layers: dict[str, gpd.GeoDataFrame]
    card: dict[str, Any]
    #: Per layer, its input files and the provenance the stage stored in them
    #: (``{"file": name, "metadata": {...}}``, :func:`geo._io.read_parquet_metadata`).
    inputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def read_town_card(town_dir: Path) -> dict[str, Any]:
    """``town.json`` of a town folder, or ``{}`` when the stage has not written it."""
    path = Path(town_dir) / "town.json"
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        raise InputFileError(f"{path}: not a readable town card ({exc})") from None


def town_crs(insee: str, card: Mapping[str, Any], settings: Settings | None = None) -> str:
    """Metric CRS of a town: the card's ``metric_crs`` if set, else
    :func:`geo.communes.metric_crs` (by département)."""
    for key in ("metric_crs", "crs"):
        if card.get(key):
            return str(card[key])
    return communes.metric_crs(insee, settings)


def _read_one(path: Path) -> gpd.GeoDataFrame:
    try:
        gdf = gpd.read_parquet(path)
    except (ValueError, OSError) as exc:  # pyarrow raises ArrowInvalid (a ValueError)
        raise InputFileError(f"{path}: not a readable GeoParquet file ({exc})") from None
    if gdf.crs is None:
        raise MissingCrsError(f"{path}: layer has no CRS; expected a projected or "
                              "geographic CRS in the GeoParquet metadata")
    return gdf


def read_town_layers(insee: str, *, settings: Settings | None = None,
                     town_dir: Path | None = None) -> TownLayers:
    """Read and prepare every layer a town run has produced.

    Parameters
    ----------
    insee
        INSEE code of the town (5 characters).
    town_dir
        Folder of the town run (default ``settings.town_dir(insee)``).

    Raises
    ------
    InputFileError
        When the folder holds none of the published layers.
    """
    s = settings or get_settings()
    folder = Path(town_dir) if town_dir is not None else s.town_dir(insee)
    card = read_town_card(folder)
    raw: dict[str, list[gpd.GeoDataFrame]] = {}
    inputs: dict[str, list[dict[str, Any]]] = {}
    for spec in LAYERS:
        for name in spec.files:
            path = folder / name
            if path.is_file():
                gdf = _read_one(path)
                if spec.name == "network_edges" and "mode" not in gdf.columns:
                    gdf = gdf.assign(mode=name.split("_")[1])  # access_<mode>_edges
                raw.setdefault(spec.name, []).append(gdf)
                inputs.setdefault(spec.name, []).append(
                    {"file": name, "metadata": read_parquet_metadata(path)})
        if spec.name not in raw and spec.files:
            log.info("%s: no %s (%s not found); layer left out", insee, spec.name,
                     " / ".join(spec.files))
    if not raw:
        expected = ", ".join(f for spec in LAYERS for f in spec.files)
        raise InputFileError(f"{folder}: no layer to publish for town {insee}; expected "
                             f"some of {expected} (run `make town INSEE={insee}` first)")
    crs = town_crs(insee, card, s)
    if "communes" not in raw:
        fallback = reference_communes(insee, crs=crs, settings=s)
        if fallback is not None:
            raw["communes"] = [fallback]
            inputs["communes"] = [{"file": "commune reference (geo.communes.catchment)",
                                   "metadata": {"cog_year": s.cog_year}}]
    layers = prepare_layers(raw, insee=insee, crs=crs, settings=s)
    osm_water = _osm_water(insee, crs, layers.get("communes"), s)
    layers = add_basemap_layers(layers, osm_water=osm_water, settings=s)
    for name in ("water", "waterways", "street_limit", "commune_labels"):
        if name in layers:
            inputs[name] = [{"file": "derived (geo.export.basemap)",
                             "metadata": {"from": _DERIVED_FROM[name]}}]
    nom = str(card.get("nom") or _town_name(layers.get("communes"), insee) or insee)
    return TownLayers(insee=insee, nom=nom, crs=crs, layers=layers, card=card, inputs=inputs)


_DERIVED_FROM = {
    "water": "OpenStreetMap extract of the town (when catalogued), landcover.parquet",
    "waterways": "OpenStreetMap extract of the town (when catalogued)",
    "street_limit": "access_walk_edges.parquet, access_bike_edges.parquet",
    "commune_labels": "communes layer",
}


def _osm_water(insee: str, crs: str, communes_layer: gpd.GeoDataFrame | None,
               s: Settings) -> gpd.GeoDataFrame | None:
    """OSM water of the town's catalogued extract (None without one)."""
    found = sources.datasets_for_town(insee, kind="osm", settings=s)
    if not found:
        return None
    try:
        path = sources.ensure(found[0].id, s)
        clip = (communes_layer.geometry.union_all() if communes_layer is not None
                and len(communes_layer) else None)
        return basemap.read_osm_water(path, crs=crs, clip=clip)
    except GeoError as exc:
        log.warning("%s: no OSM water on the basemap (%s)", insee, exc)
        return None


def add_basemap_layers(layers: Mapping[str, gpd.GeoDataFrame], *,
                       osm_water: gpd.GeoDataFrame | None = None,
                       settings: Settings | None = None) -> dict[str, gpd.GeoDataFrame]:
    """The prepared layers plus the basemap layers derived from them
    (:mod:`geo.export.basemap`): ``commune_labels``, ``water`` (areas), ``waterways``
    (lines), ``street_limit``, the
    commune (``insee``, ``nom``) of each H3 cell and, with streets, the cells'
    ``beyond_street_data``. In publication order."""
    s = settings or get_settings()
    out = dict(layers)
    com = out.get("communes")
    if com is not None and len(com) and "nom" in com.columns:
        out["commune_labels"] = normalise_dtypes(basemap.commune_label_points(com))
    waters = [w for w in (osm_water,) if w is not None and len(w)]
    if "landcover" in out:
        waters.append(basemap.corine_water(out["landcover"]))
    waters = [w.to_crs(next(iter(out.values())).crs) for w in waters if len(w)]
    if waters:
        water = gpd.GeoDataFrame(pd.concat(waters, ignore_index=True), geometry="geometry")
        # one geometry type per layer (QGIS splits mixed GeoPackage layers)
        for name, kind in (("water", "area"), ("waterways", "line")):
            part = water[water["kind"] == kind].drop(columns="kind").reset_index(drop=True)
            if len(part):
                out[name] = normalise_dtypes(part)
    limit = None
    if "network_edges" in out and len(out["network_edges"]):
        limit = basemap.street_limit(out["network_edges"], buffer_m=s.snap_max_m)
        out["street_limit"] = limit
    for name in ("h3_r8", "h3_r9"):
        cells = out.get(name)
        if cells is None:
            continue
        cells = cells.drop(columns=[c for c in ("insee", "nom") if c in cells.columns])
        if com is not None and "nom" in com.columns:
            cells = cells.join(basemap.cell_communes(cells, com))
        if limit is not None:
            cells = basemap.with_street_limit_flag(cells, limit)
        out[name] = normalise_dtypes(gpd.GeoDataFrame(cells, geometry="geometry"))
    order = [spec.name for spec in LAYERS]
    return {n: out[n] for n in sorted(out, key=order.index)}


def reference_communes(insee: str, *, crs: str,
                       settings: Settings | None = None) -> gpd.GeoDataFrame | None:
    """The town and its catchment communes from the commune reference (``insee``,
    ``nom``, ``population``, polygons), for a town run without ``communes.parquet``: the
    maps' background and the town's outline. ``None`` (logged) when the reference is not
    available."""
    s = settings or get_settings()
    try:
        c = communes.catchment(insee, settings=s)
        population = communes.load_reference(s)[["insee", "population"]]
    except GeoError as exc:
        log.warning("%s: no communes layer and no commune reference to fall back on (%s)",
                    insee, exc)
        return None
    gdf = c.communes.drop(columns="is_town").merge(population, on="insee", how="left")
    log.info("%s: communes layer from the commune reference (%d communes of the catchment; "
             "no indicators: communes.parquet not found)", insee, len(gdf))
    return gpd.GeoDataFrame(gdf, geometry="geometry", crs=c.crs).to_crs(crs)


def _town_name(communes: gpd.GeoDataFrame | None, insee: str) -> str | None:
    if communes is None or "nom" not in communes.columns:
        return None
    match = communes.loc[communes["insee"] == insee, "nom"]
    return str(match.iloc[0]) if len(match) else None


_SNAKE = re.compile(r"[^0-9a-z]+")


def _snake(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_name).lower()
    return _SNAKE.sub("_", ascii_name).strip("_") or "field"


def _normalise_columns(gdf: gpd.GeoDataFrame, layer: str) -> gpd.GeoDataFrame:
    geom = gdf.geometry.name
    renames = {c: _snake(str(c)) for c in gdf.columns if c != geom and _snake(str(c)) != c}
    if renames:
        log.info("%s: renamed fields to snake_case: %s", layer,
                 ", ".join(f"{a} -> {b}" for a, b in renames.items()))
        gdf = gdf.rename(columns=renames)
    if geom != "geometry":
        gdf = gdf.rename_geometry("geometry")
    dupes = gdf.columns[gdf.columns.duplicated()].tolist()
    if dupes:
        raise InputFileError(f"layer {layer}: fields {dupes} collide after snake_case")
    return gdf


def normalise_dtypes(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Column dtypes the GDAL and tile writers handle: pyarrow-backed columns (from
    GeoParquet) to numpy or nullable pandas dtypes, and object columns holding only
    booleans and missing values to the nullable ``boolean`` dtype."""
    out = gdf.copy()
    for col in out.columns:
        if col == out.geometry.name:
            continue
        dtype = out[col].dtype
        if isinstance(dtype, pd.ArrowDtype):
            kind = dtype.numpy_dtype.kind if dtype.numpy_dtype is not None else "O"
            out[col] = out[col].astype({"b": "boolean", "i": "Int64", "u": "Int64",
                                        "f": "float64"}.get(kind, "object"))
        elif pd.api.types.is_object_dtype(dtype):
            values = out[col].dropna()
            if len(values) and all(isinstance(v, bool | np.bool_) for v in values):
                out[col] = out[col].astype("boolean")
    return out


def _clc_dominant(df: pd.DataFrame) -> pd.Series | None:
    cols = [f"clc_{k}_share" for k in _CLC_LEVEL1 if f"clc_{k}_share" in df.columns]
    if not cols:
        return None
    shares = df[cols].astype("float64")
    has = shares.notna().any(axis=1) & (shares.fillna(0).sum(axis=1) > 0)
    keys = np.array([c[len("clc_"):-len("_share")] for c in cols], dtype=object)
    dominant = pd.Series(keys[np.nanargmax(shares.fillna(-1).to_numpy(), axis=1)],
                         index=df.index, dtype="object")
    return dominant.where(has, None)


def prepare_layers(raw: Mapping[str, list[gpd.GeoDataFrame]], *, insee: str, crs: str,
                   settings: Settings | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Prepared layers from the raw per-file frames, in publication order.

    Reprojects to ``crs``, renames fields to snake_case, merges the walk and bike edges,
    adds ``is_town`` to communes, ``clc_dominant`` (key of the largest level-1 CORINE
    share) to communes and cells, French ``category_label`` / ``subcategory_label`` and
    ``subcategory_group`` to facilities, and drops empty geometries.
    """
    s = settings or get_settings()
    labels = category_labels(s)
    groups = category_groups(s)
    out: dict[str, gpd.GeoDataFrame] = {}
    for spec in LAYERS:
        frames = raw.get(spec.name)
        if not frames:
            continue
        parts = []
        for gdf in frames:
            if gdf.crs is None:
                raise MissingCrsError(f"layer {spec.name}: input has no CRS")
            gdf = _normalise_columns(gdf, spec.name)
            missing = [c for c in spec.required if c not in gdf.columns]
            if missing:
                raise MissingColumnsError(f"layer {spec.name}", missing, list(gdf.columns))
            parts.append(gdf.to_crs(crs))
        gdf = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry",
                               crs=crs)
        gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].reset_index(drop=True)
        if spec.name == "communes":
            gdf["insee"] = gdf["insee"].astype(str)
            gdf["is_town"] = gdf["insee"] == insee
        if spec.name in {"communes", "h3_r8", "h3_r9"}:
            dominant = _clc_dominant(gdf)
            if dominant is not None:
                gdf["clc_dominant"] = dominant
        if spec.name == "facilities":
            gdf["category_label"] = gdf["category"].map(lambda k: labels.get(k, k))
            if "subcategory" in gdf.columns:
                gdf["subcategory_label"] = gdf["subcategory"].map(
                    lambda k: labels.get(k, k) if isinstance(k, str) else None)
                if groups:
                    gdf["subcategory_group"] = gdf["subcategory"].map(groups)
        if spec.name == "isochrones":
            gdf["minutes"] = gdf["minutes"].astype("int64")
            if "area_m2" in gdf.columns:
                gdf["area_km2"] = gdf["area_m2"].astype("float64") / 1e6
        out[spec.name] = normalise_dtypes(gdf)
    return out


def layer_spec(name: str) -> LayerSpec:
    """The :class:`LayerSpec` of a published layer name."""
    return _BY_NAME[name]
