"""The national dashboard site: ``data/out/site/``, served with the towns by ``make serve``.

:func:`build_site` writes a static site (any static host serving HTTP Range requests
works; nothing is loaded from a CDN: MapLibre, PMTiles and the label fonts are copied
from npm, as for the viewer) that centralises the indicators of
:mod:`geo.dashboard` for every commune:

``index.html``, ``site.js``, ``site.css``
    the page (sources in ``tiles/site/``): France map, indicator tree, filters, search,
    town panel, table view;
``sources.html``
    the catalogue of the datasets behind the figures (producer, vintage, licence, link),
    one anchor per dataset: every figure of the site links there;
``data/config.json``
    themes, indicators (label, unit, theme, sens, classes, national median, sources),
    filters, built towns and their files, tile archives;
``data/communes.json``
    one entry per commune (columns as arrays): code, name, département, typology,
    programme, population, centre and zoom, whether it has a panel;
``data/valeurs/<key>.json``
    the values of one indicator (``v``, in the order of ``communes.json``) and the
    percentile of each compared town among its peers (``p``): loaded when the indicator
    is picked;
``data/fiches/<insee>.json``
    the panel of each compared town (every PVD and ACV town, and every built town): peers,
    each indicator against its peers and France, what distinguishes it;
``data/tableau_national.csv``
    the national dashboard table (also ``data/national/dashboard.parquet``);
``tiles/communes.pmtiles``
    commune polygons (``communes``: ``insee``, ``p`` the programme), département outlines
    (``departements``) and label points (``labels``) at zooms 4-8 (the simplified national
    polygons gain nothing beyond; MapLibre overzooms);
``tiles/cellules.pmtiles``
    the built towns' H3 cells (resolution 9) with their access times, zooms 10-13.

Indicator values reach the map as feature state (``promoteId: insee``), not as tile
attributes: the archive stays the size of the geometry however many indicators the
registry holds (measured: 61 indicator attributes double the archive and the largest
tile), and switching indicator loads one small array.

Tiles are rebuilt only when their inputs change (a fingerprint in the archive's
metadata). The site links to the viewer, portraits and GeoPackages as ``../<insee>/...``:
serve it from ``data/out`` (:mod:`geo.export.serve`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo import __version__, communes, dashboard, national, portrait, sources
from geo import _report as report
from geo._io import (
    atomic_path,
    ensure_writable_dir,
    write_json_atomic,
    write_parquet,
    write_text_atomic,
)
from geo.dashboard import Dashboard, IndicatorClasses, TownComparison
from geo.errors import GeoError, UnknownDatasetError
from geo.export.tiles import (
    _TMP_PREFIX,
    PMTilesSummary,
    _rewrite_metadata,
    _run_tippecanoe,
    _sweep_tile_inputs,
    check_pmtiles,
    find_tippecanoe,
)
from geo.export.viewer import copy_vendor_files
from geo.settings import PROJECT_ROOT, Settings, get_settings

__all__ = [
    "SITE_DIRNAME",
    "SiteSummary",
    "build_site",
    "commune_index",
    "compared_codes",
    "site_dir",
    "write_cell_tiles",
    "write_commune_tiles",
]

log = logging.getLogger(__name__)

SITE_DIRNAME = "site"
SITE_SRC = PROJECT_ROOT / "tiles" / "site"
#: File of the national dashboard table in ``data/national``.
DASHBOARD_FILE = "dashboard.parquet"
#: The CSV download of the national table, in the site's ``data`` folder.
CSV_NAME = "tableau_national.csv"
#: Significant digits of the published values (CSV and JSON alike).
SIGNIFICANT = 6
#: Zoom range of the commune archive, and of the cell archive.
COMMUNE_ZOOMS = (4, 8)
CELL_ZOOMS = (10, 13)
#: H3 resolution of the cells drawn at street scale.
CELL_RESOLUTION = 9
#: Percentile classes of the percentile mode (the town among its peers), and colours
#: (ColorBrewer RdBu, colour-blind safe), lowest first.
PERCENTILE_CLASSES = (
    {"min": 0, "max": 20, "color": "#ca0020", "label": "moins de 20 : parmi les plus bas"},
    {"min": 20, "max": 40, "color": "#f4a582", "label": "20 à 40"},
    {"min": 40, "max": 60, "color": "#f7f7f7", "label": "40 à 60 : autour de la médiane"},
    {"min": 60, "max": 80, "color": "#92c5de", "label": "60 à 80"},
    {"min": 80, "max": None, "color": "#0571b0", "label": "80 ou plus : parmi les plus hauts"},
)
#: Classes of the access times of the H3 cells (fixed 5-minute steps), lowest first.
MINUTE_CLASSES = (
    {"min": 0, "max": 5, "color": "#1a9850", "label": "moins de 5 min"},
    {"min": 5, "max": 10, "color": "#91cf60", "label": "5 à 10 min"},
    {"min": 10, "max": 15, "color": "#fee08b", "label": "10 à 15 min"},
    {"min": 15, "max": 20, "color": "#fc8d59", "label": "15 à 20 min"},
    {"min": 20, "max": None, "color": "#d73027", "label": "20 min ou plus"},
)
#: Catalogue entries of sources that are not downloaded datasets.
EXTRA_SOURCES = {
    "osm": {
        "title": "OpenStreetMap : extraits et réseaux de rues des communes traitées par "
                 "pvdgeo (équipements, temps d'accès à pied et à vélo, part des commerces "
                 "appartenant à une chaîne, patrimoine)",
        "producer": "contributeurs OpenStreetMap ; calculs pvdgeo",
        "licence": "ODbL 1.0",
        "vintage": "date de l'extrait de chaque commune (voir son visualiseur)",
        "homepage": "https://www.openstreetmap.org/copyright",
    },
}


def site_dir(settings: Settings | None = None) -> Path:
    """``data/out/site``."""
    s = settings or get_settings()
    return s.out_dir / SITE_DIRNAME


@dataclass
class SiteSummary:
    """What :func:`build_site` wrote."""

    index: Path
    communes: int
    compared: int
    indicators: int
    csv: Path
    table: Path
    commune_tiles: PMTilesSummary | None = None
    cell_tiles: PMTilesSummary | None = None
    seconds: dict[str, float] = field(default_factory=dict)


# --- values as published ---------------------------------------------------------------------


def _round(values: Any, digits: int = SIGNIFICANT) -> np.ndarray:
    """Values rounded to ``digits`` significant digits (NaN kept)."""
    x = np.asarray(values, dtype="float64")
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    mag = np.floor(np.log10(np.abs(x[ok])))
    scale = 10.0 ** (digits - 1 - mag)
    out[ok] = np.round(x[ok] * scale) / scale
    return out


def published_table(board: Dashboard) -> pd.DataFrame:
    """The dashboard table as published (CSV and JSON): values rounded to
    :data:`SIGNIFICANT` significant digits, integer indicators as integers."""
    table = board.table.copy()
    for ind in board.indicators:
        raw = pd.to_numeric(table[ind.key], errors="coerce").to_numpy("float64", na_value=np.nan)
        finite = raw[np.isfinite(raw)]
        # counts stay exact (a population above 10^6 is not rounded)
        if finite.size and np.all(finite == np.round(finite)) and np.abs(finite).max() < 2**53:
            table[ind.key] = pd.array([None if not np.isfinite(v) else int(v) for v in raw],
                                      dtype="Int64")
        else:
            table[ind.key] = _round(raw)
    return table


def _json_number(v: Any) -> float | int | None:
    if v is None or v is pd.NA:
        return None
    f = float(v)
    if not math.isfinite(f):
        return None
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _json_figure(v: Any) -> float | int | None:
    """A figure as the site shows it: :func:`_json_number` rounded to :data:`SIGNIFICANT`
    significant digits, as in the national table (integers as they are)."""
    n = _json_number(v)
    return n if n is None or isinstance(n, int) else _json_number(_round([n])[0])


# --- compared towns --------------------------------------------------------------------------


def compared_codes(board: Dashboard) -> list[str]:
    """The towns that get a panel: every PVD and ACV town, and every built town."""
    t = board.table
    mask = t["pvd"] | t["acv"] | t["commune_traitee"]
    return t.loc[mask, "insee"].astype(str).tolist()


# --- commune index and geometry --------------------------------------------------------------


def _fit_zoom(bounds: np.ndarray, width: float = 420, height: float = 320) -> np.ndarray:
    """Web Mercator zoom (512 px tiles) at which each ``[minx, miny, maxx, maxy]`` (deg)
    fits ``width`` x ``height`` pixels (with its neighbours around), clamped to 8..12.5."""
    def merc(lat: np.ndarray) -> np.ndarray:
        rad = np.radians(np.clip(lat, -85, 85))
        return np.log(np.tan(np.pi / 4 + rad / 2)) / (2 * np.pi)

    dx = np.maximum(bounds[:, 2] - bounds[:, 0], 1e-6) / 360
    dy = np.maximum(merc(bounds[:, 3]) - merc(bounds[:, 1]), 1e-6)
    z = np.minimum(np.log2(width / 512 / dx), np.log2(height / 512 / dy))
    return np.clip(np.floor(z * 2) / 2, 8, 12.5)


def commune_index(board: Dashboard, polygons: gpd.GeoDataFrame,
                  compared: Collection[str]) -> dict[str, list[Any]]:
    """``data/communes.json``: one entry per commune of the table (its order), as columns:
    ``insee``, ``nom``, ``dep``, ``typo`` (index in :data:`geo.communes.TYPOLOGIES`),
    ``prog`` (0 none, 1 PVD, 2 ACV, 3 both), ``pop``, ``lon``/``lat`` (a point inside the
    polygon, 4 decimals) and ``z`` (the zoom that frames it; null without a polygon),
    ``fiche`` (1 when it has a panel), ``traitee`` (1 when built)."""
    t = board.table
    polys = polygons.drop_duplicates("insee").set_index("insee").reindex(t["insee"])
    has = polys.geometry.notna().to_numpy() & ~polys.geometry.is_empty.fillna(True).to_numpy()
    points = np.full((len(t), 2), np.nan)
    zoom = np.full(len(t), np.nan)
    if has.any():
        geoms = polys.geometry.to_numpy()[has]
        pts = shapely.point_on_surface(geoms)
        points[has] = np.column_stack([shapely.get_x(pts), shapely.get_y(pts)])
        zoom[has] = _fit_zoom(shapely.bounds(geoms))
    typo = {name: i for i, name in enumerate(communes.TYPOLOGIES)}
    prog = t["pvd"].astype(int) + 2 * t["acv"].astype(int)
    comp = set(compared)

    def num(a: Iterable[Any], digits: int | None = None) -> list[Any]:
        out: list[Any] = []
        for v in a:
            if v is None or (isinstance(v, float) and not math.isfinite(v)) or pd.isna(v):
                out.append(None)
            else:
                out.append(round(float(v), digits) if digits is not None else _json_number(v))
        return out

    return {
        "insee": t["insee"].astype(str).tolist(),
        "nom": t["nom"].astype(str).tolist(),
        "dep": t["departement"].astype(str).tolist(),
        "typo": [typo.get(v) if isinstance(v, str) else None for v in t["typologie"]],
        "prog": prog.astype(int).tolist(),
        "pop": num(t["population"]),
        "lon": num(points[:, 0], 4),
        "lat": num(points[:, 1], 4),
        "z": num(zoom),
        "fiche": [int(c in comp) for c in t["insee"]],
        "traitee": t["commune_traitee"].astype(int).tolist(),
    }


# --- tiles -----------------------------------------------------------------------------------


def _fingerprint(parts: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _archive_fingerprint(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        summary = check_pmtiles(path)
    except GeoError:  # unreadable: rebuilt
        return None
    return summary.metadata.get("pvdgeo", {}).get("fingerprint")


def _tippecanoe_archive(path: Path, layers: Mapping[str, gpd.GeoDataFrame], *,
                        zooms: tuple[int, int], name: str, description: str,
                        attribution: str, fingerprint: str, extra_args: Sequence[str] = (),
                        feature_filter: Mapping[str, Any] | None = None) -> PMTilesSummary:
    """Write ``layers`` (EPSG:4326) as one PMTiles archive with tippecanoe (FlatGeobuf
    inputs in a temporary folder beside it, swept on every exit), checked; the archive's
    metadata gets ``pvdgeo.fingerprint``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_tile_inputs(path.parent)
    binary = find_tippecanoe()
    with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-",
                                     dir=path.parent) as tmpdir:
        inputs = []
        for lname, gdf in layers.items():
            src = Path(tmpdir) / f"{lname}.fgb"
            pyogrio.write_dataframe(gdf, src, driver="FlatGeobuf", layer=lname,
                                    SPATIAL_INDEX="NO")
            inputs.append(src)
        raw = Path(tmpdir) / "tippecanoe.pmtiles"
        cmd = [str(binary), "-o", str(raw), "--force", "--quiet",
               f"--minimum-zoom={zooms[0]}", f"--maximum-zoom={zooms[1]}",
               f"--name={name}", f"--description={description}",
               f"--attribution={attribution}", *extra_args]
        if feature_filter:
            cmd.append("--feature-filter=" + json.dumps(feature_filter))
        for lname, src in zip(layers, inputs, strict=True):
            cmd.append("--named-layer=" + json.dumps({"file": str(src), "layer": lname}))
        _run_tippecanoe(cmd, inputs)
        with atomic_path(path) as tmp:
            _rewrite_metadata(raw, tmp, {"pvdgeo": {"fingerprint": fingerprint,
                                                    "software": f"pvdgeo {__version__}"}}, {})
            summary = check_pmtiles(tmp, layers=list(layers), min_zoom=zooms[0],
                                    max_zoom=zooms[1])
    return replace(summary, path=path)


def _programme_code(pvd: pd.Series, acv: pd.Series) -> pd.Series:
    out = pd.Series(pd.NA, index=pvd.index, dtype="string")
    out[pvd] = "PVD"
    out[acv] = "ACV"
    out[pvd & acv] = "PVD et ACV"
    return out


def write_commune_tiles(polygons: gpd.GeoDataFrame, table: pd.DataFrame, path: Path, *,
                        attribution: str, fingerprint: str) -> PMTilesSummary:
    """``communes.pmtiles``: layers ``communes`` (``insee``; ``p`` = ``PVD``, ``ACV`` or
    ``PVD et ACV`` for programme towns), ``departements`` (outlines, ``code``, ``nom``) and
    ``labels`` (``nom``, ``population``, ``p``: programme towns from zoom 6, every
    commune from zoom 8, département names at 4-7), zooms :data:`COMMUNE_ZOOMS`."""
    t = table.set_index("insee")
    polys = polygons[polygons["insee"].isin(t.index)].drop_duplicates("insee")
    polys = polys[polys.geometry.notna() & ~polys.geometry.is_empty]
    prog = _programme_code(t["pvd"], t["acv"]).reindex(polys["insee"]).to_numpy()
    geoms = shapely.make_valid(polys.geometry.set_precision(1e-6).to_numpy())
    communes_layer = gpd.GeoDataFrame(
        {"insee": polys["insee"].to_numpy(), "p": pd.array(prog, dtype="string")},
        geometry=geoms, crs="EPSG:4326")
    deps = communes_layer.assign(code=communes_layer["insee"].map(communes.departement_of))
    deps = deps[["code", "geometry"]].dissolve("code", as_index=False)
    names = (t.drop_duplicates("departement").set_index("departement")["departement_nom"])
    deps["nom"] = deps["code"].map(names).astype("string")
    dep_points = gpd.GeoDataFrame(
        {"nom": deps["nom"], "kind": "departement", "population": pd.NA, "p": pd.NA},
        geometry=shapely.point_on_surface(deps.geometry.to_numpy()), crs="EPSG:4326")
    pts = shapely.point_on_surface(geoms)
    commune_points = gpd.GeoDataFrame(
        {"nom": t["nom"].reindex(polys["insee"]).to_numpy(), "kind": "commune",
         "population": t["population"].reindex(polys["insee"]).round().astype("Int64")
         .to_numpy(), "p": pd.array(prog, dtype="string")},
        geometry=pts, crs="EPSG:4326")
    labels = pd.concat([dep_points, commune_points], ignore_index=True)
    labels["population"] = pd.to_numeric(labels["population"]).astype("Int64")
    labels["p"] = labels["p"].astype("string")
    labels["nom"] = labels["nom"].astype("string")
    labels = gpd.GeoDataFrame(labels, geometry="geometry", crs="EPSG:4326")
    layer_filter = {"labels": ["any",
                               ["all", ["==", "kind", "departement"], ["<", "$zoom", 8]],
                               ["has", "p"], [">=", "$zoom", 8]]}
    return _tippecanoe_archive(
        path, {"communes": communes_layer, "departements": deps, "labels": labels},
        zooms=COMMUNE_ZOOMS, name="Communes de France (pvdgeo)",
        description="Contours des communes (COG), des départements et noms",
        attribution=attribution, fingerprint=fingerprint, feature_filter=layer_filter,
        extra_args=["--no-feature-limit", "--no-tile-size-limit", "--detect-shared-borders",
                    "--no-tiny-polygon-reduction", "--low-detail=11", "--simplification=4",
                    "--drop-rate=1", "--attribute-type=population:int"])


def _town_cells(settings: Settings, fields: Sequence[str]) -> gpd.GeoDataFrame | None:
    """The built towns' H3 cells of :data:`CELL_RESOLUTION` (data/national), one row per
    cell (a cell in several catchments keeps the run of the town it lies in, else the
    first town's), with ``fields``."""
    if not (national.national_dir(settings) / f"h3_r{CELL_RESOLUTION}").is_dir():
        return None
    cells = national.read_cells(CELL_RESOLUTION, settings=settings)
    if cells.empty:
        return None
    keep = ["town", "h3", *(c for c in ("population", "commune", *fields)
                            if c in cells.columns)]
    cells = cells[[*keep, cells.geometry.name]].to_crs("EPSG:4326")
    own = (cells["commune"].astype(str) == cells["town"].astype(str)) \
        if "commune" in cells.columns else pd.Series(False, index=cells.index)
    cells = cells.assign(_own=own).sort_values(["h3", "_own", "town"],
                                               ascending=[True, False, True])
    cells = cells.drop_duplicates("h3").drop(columns=["_own"])
    for col in fields:
        if col in cells.columns:
            cells[col] = pd.to_numeric(cells[col], errors="coerce").astype("float64").round(2)
    if "population" in cells.columns:
        cells["population"] = pd.to_numeric(cells["population"], errors="coerce").round(0)
    cells["town"] = cells["town"].astype("string")
    cells["h3"] = cells["h3"].astype("string")
    return cells.drop(columns=[c for c in ("commune",) if c in cells.columns])


def write_cell_tiles(cells: gpd.GeoDataFrame, path: Path, *, attribution: str,
                     fingerprint: str) -> PMTilesSummary:
    """``cellules.pmtiles``: the built towns' H3 cells (layer ``cells``), zooms
    :data:`CELL_ZOOMS`."""
    return _tippecanoe_archive(
        path, {"cells": cells}, zooms=CELL_ZOOMS, name="Cellules H3 des communes traitées",
        description="Temps d'accès à pied et à vélo par cellule H3 (pvdgeo)",
        attribution=attribution, fingerprint=fingerprint,
        extra_args=["--no-feature-limit", "--no-tile-size-limit", "--detect-shared-borders",
                    "--no-tiny-polygon-reduction"])


# --- panels ----------------------------------------------------------------------------------


def _links(insee: str, out_dir: Path) -> dict[str, str]:
    """The built town's files, relative to the site folder."""
    folder = out_dir / insee
    links = {}
    if (folder / f"{insee}.pmtiles").is_file():
        links["viewer"] = f"../viewer/?town={insee}"
    for key, name in (("portrait", "portrait.html"), ("gpkg", f"{insee}.gpkg"),
                      ("csv", "portrait.csv")):
        if (folder / name).is_file():
            links[key] = f"../{insee}/{name}"
    return links


def town_sheet(comparison: TownComparison, card: Mapping[str, Any],
               links: Mapping[str, str]) -> dict[str, Any]:
    """``data/fiches/<insee>.json``: the town's card, peers, every indicator against its
    peers (value, peer median, peers with a value, percentile, shares of peers below and
    above) and what distinguishes it."""
    sel = comparison.peers
    rows = {}
    for r in comparison.table.itertuples(index=False):
        pct = float(r.percentile_pairs)
        rows[str(r.indicateur)] = [_json_figure(r.valeur), _json_figure(r.mediane_pairs),
                                   int(r.n_pairs),
                                   round(pct, 1) if math.isfinite(pct) else None]
    peers = sel.peers
    return {
        "insee": comparison.insee,
        "nom": card.get("nom"),
        "card": {k: (None if v is None or v is pd.NA or (isinstance(v, float)
                                                          and not math.isfinite(v)) else v)
                 for k, v in card.items()},
        "peers": {
            "rule": sel.describe(card),
            "n": len(peers),
            "widened": sel.widened,
            "list": [[p.insee, p.nom, p.departement, _json_number(p.population)]
                     for p in peers.head(40).itertuples()],
        },
        "rows": rows,
        "distinctions": [{"cote": d.cote, "rang": int(d.rang), "indicateur": d.indicateur,
                          "libelle": d.libelle, "phrase": d.phrase}
                         for d in comparison.distinctions.itertuples(index=False)],
        "links": dict(links),
    }


# --- catalogue -------------------------------------------------------------------------------


def _catalogue(ids: Iterable[str], s: Settings) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for ds_id in sorted(set(ids)):
        if ds_id in EXTRA_SOURCES:
            out[ds_id] = dict(EXTRA_SOURCES[ds_id])
            continue
        try:
            ds = sources.get_dataset(ds_id, s)
        except UnknownDatasetError:
            log.warning("site: dataset %r is not in the catalogue; figures citing it link "
                        "to nothing", ds_id)
            continue
        out[ds_id] = {"title": portrait._french(ds.title),
                      "producer": portrait._french(ds.producer),
                      "licence": ds.licence, "vintage": portrait._french(ds.vintage),
                      "homepage": ds.homepage or ""}
    return out


def render_sources_html(board: Dashboard, catalogue: Mapping[str, Mapping[str, str]],
                        classes: Mapping[str, IndicatorClasses | None]) -> str:
    """``sources.html``: every dataset (anchor = its catalogue id) and every indicator
    with its sources, rule of classes and note, in French."""
    parts = ["<header><h1>Sources et méthode du tableau de bord</h1>"
             '<p class="sub">Chaque chiffre du tableau de bord renvoie ici à ses données : '
             "producteur, millésime, licence et page de téléchargement.</p>"
             '<p><a href="index.html">← Retour au tableau de bord</a></p></header>',
             "<h2>Jeux de données</h2>"]
    for ds_id, ds in catalogue.items():
        link = (f'<a href="{escape(ds["homepage"])}">{escape(ds["homepage"])}</a>'
                if ds.get("homepage") else "")
        parts.append(
            f'<section id="{escape(ds_id)}" class="card"><h3>{escape(ds["title"])}</h3>'
            f"<p>Producteur : {escape(ds['producer'])}<br>Millésime : "
            f"{escape(ds['vintage'])}<br>Licence : {escape(ds['licence'])}"
            f"{'<br>Page : ' + link if link else ''}<br>"
            f'<span class="note">Identifiant : {escape(ds_id)}</span></p></section>')
    parts.append("<h2>Indicateurs</h2>")
    themes = {t.key: t for t in dashboard.THEMES}
    for theme in dashboard.THEMES:
        inds = [i for i in board.indicators if i.theme == theme.key]
        if not inds:
            continue
        parts.append(f'<h3 id="theme-{theme.key}">{escape(theme.label)}</h3>'
                     f"<p class=\"note\">{escape(themes[theme.key].description)}</p><ul>")
        for ind in inds:
            srcs = ", ".join(f'<a href="#{escape(d)}">{escape(catalogue[d]["producer"])}</a>'
                             for d in board.sources.get(ind.key, ()) if d in catalogue)
            cls = classes.get(ind.key)
            note = board.notes.get(ind.key, "")
            sens = {"plus": "plus la valeur est élevée, mieux c'est",
                    "moins": "plus la valeur est basse, mieux c'est"}.get(ind.sens, "")
            parts.append(
                f'<li id="indicateur-{escape(ind.key)}"><b>{escape(ind.label)}</b> '
                f"({escape(ind.unit)}) — colonne <code>{escape(ind.key)}</code>"
                f"{' ; ' + escape(sens) if sens else ''}<br>Sources : {srcs or 'aucune'}"
                f"{'<br>' + escape(note) if note else ''}"
                f"<br><span class=\"note\">{escape(cls.rule) if cls else 'Aucune valeur.'}"
                "</span></li>")
        parts.append("</ul>")
    parts.append(
        "<h2>Méthode</h2><p>France : communes de métropole et des départements d'outre-mer "
        "(univers de <code>pvdgeo typology-stats</code>). Médiane nationale et classes de la "
        "carte sur les communes de France ayant une valeur. Communes comparables (pairs) : "
        "même programme (PVD, ACV ou aucun), même niveau de centralité, population entre la "
        "moitié et le double de celle de la commune ; règle élargie dans un ordre documenté "
        "quand elle donne moins de 5 communes (voir le portrait). Percentile : part des pairs "
        "ayant une valeur inférieure, plus la moitié des ex æquo (50 quand la commune est à la "
        "médiane des pairs) ; seulement quand au moins 5 pairs ont une valeur. « Ce qui "
        "distingue la commune » : les 3 indicateurs où la commune fait le mieux et les 3 où "
        "elle fait le moins bien par rapport à ses pairs, classés par l'écart de son percentile "
        "à 50, parmi les indicateurs dont le sens est établi. Une donnée manquante reste "
        "manquante (« donnée non disponible »), jamais zéro.</p>"
        f"<footer>Généré par pvdgeo {escape(__version__)} le "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</footer>")
    return report.page("Sources du tableau de bord", "\n".join(parts))


# --- the site --------------------------------------------------------------------------------


def _indicator_config(board: Dashboard, classes: Mapping[str, IndicatorClasses | None],
                      medians: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for ind in board.indicators:
        cls = classes.get(ind.key)
        out.append({
            "key": ind.key, "label": ind.label, "unit": ind.unit, "theme": ind.theme,
            "digits": ind.digits, "percent": ind.percent, "signed": ind.signed,
            "sens": ind.sens, "headline": ind.headline, "cell_field": ind.cell_field or None,
            "sources": list(board.sources.get(ind.key, ())),
            "note": board.notes.get(ind.key, ""),
            "classes": list(cls.classes) if cls else [],
            "rule": cls.rule if cls else "",
            "n": int(medians.at[ind.key, "n_france"]),
            "mediane_france": _json_figure(medians.at[ind.key, "mediane_france"]),
        })
    return out


def _filters(table: pd.DataFrame) -> dict[str, Any]:
    deps = (table[["departement", "departement_nom", "region"]].dropna(subset=["departement"])
            .drop_duplicates("departement").sort_values("departement"))
    regs = (table[["region", "region_nom"]].dropna().drop_duplicates("region")
            .sort_values("region_nom"))
    return {
        "typologies": list(communes.TYPOLOGIES),
        "programmes": [{"code": "pvd", "label": "Petites villes de demain (PVD)"},
                       {"code": "acv", "label": "Action Cœur de Ville (ACV)"},
                       {"code": "programme", "label": "PVD ou ACV"},
                       {"code": "aucun", "label": "Hors programme"}],
        "departements": [{"code": d.departement, "nom": d.departement_nom, "region": d.region}
                         for d in deps.itertuples()],
        "regions": [{"code": r.region, "nom": r.region_nom} for r in regs.itertuples()],
    }


def _remove_stale(folder: Path, keep: Collection[str]) -> None:
    """Remove the JSON files of ``folder`` an earlier build wrote that this one did not
    (a town no longer compared, an indicator left out of the registry)."""
    stale = [p for p in folder.glob("*.json") if p.name not in keep]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("site: removed %d file(s) of an earlier build from %s", len(stale), folder)


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def _font_faces() -> dict[str, Any]:
    """The label fonts of the basemap (``font-faces`` of tiles/basemap/basemap.json)."""
    basemap = PROJECT_ROOT / "tiles" / "basemap" / "basemap.json"
    return dict(json.loads(basemap.read_text(encoding="utf-8")).get("font-faces", {}))


def build_site(settings: Settings | None = None, *, out_dir: Path | None = None,
               compare: Iterable[str] | None = None,
               departements: Collection[str] | None = None,
               node_modules: Path | None = None, tiles: bool = True) -> SiteSummary:
    """Build the national dashboard site (see the module docstring).

    Parameters
    ----------
    out_dir
        Site folder (default ``data/out/site``; serve its parent folder).
    compare
        Towns that get a panel compared with their peers (default
        :func:`compared_codes`: every PVD and ACV town and every built town).
    departements
        Draw only the communes of these départements on the map (a regional site, or a
        quick preview); the tables stay national.
    tiles
        Build the tile archives (False: keep those in place).
    """
    s = settings or get_settings()
    out = ensure_writable_dir(Path(out_dir) if out_dir is not None else site_dir(s),
                              what="site folder")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    copy_vendor_files(out / "vendor", node_modules=node_modules)
    seconds["vendor"] = time.perf_counter() - t0

    t = time.perf_counter()
    board = dashboard.build_dashboard(s)
    table = published_table(board)
    parquet = write_parquet(table, national.national_dir(s) / DASHBOARD_FILE, metadata={
        "what": "national dashboard table: one row per commune, the site's indicators",
        "cog_year": board.cog_year, "sources": board.sources, "notes": board.notes,
        "missing_tables": board.missing, "significant_digits": SIGNIFICANT,
        "indicators": {i.key: {"label": i.label, "unit": i.unit, "theme": i.theme,
                               "sens": i.sens} for i in board.indicators},
    })
    csv_path = out / "data" / CSV_NAME
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, encoding="utf-8-sig")
    seconds["table"] = time.perf_counter() - t

    t = time.perf_counter()
    classes = dashboard.indicator_classes(board)
    medians = dashboard.national_medians(board)
    codes = compared_codes(board) if compare is None else list(compare)
    comparisons = dashboard.compare_towns(board, codes, settings=s, medians=medians)
    seconds["peers"] = time.perf_counter() - t

    t = time.perf_counter()
    polygons = communes.commune_polygons(crs="EPSG:4326", settings=s)
    if departements is not None:
        wanted = {str(d) for d in departements}
        polygons = polygons[polygons["insee"].map(communes.departement_of).isin(wanted)]
    index = commune_index(board, polygons, comparisons)
    write_json_atomic(out / "data" / "communes.json", index, indent=None,
                      separators=(",", ":"))
    percentiles = pd.DataFrame(
        {code: comp.table.set_index("indicateur")["percentile_pairs"]
         for code, comp in comparisons.items()},
        index=[i.key for i in board.indicators])
    for ind in board.indicators:
        row = percentiles.loc[ind.key].dropna() if len(comparisons) else pd.Series([])
        pct = {str(c): round(float(v), 1) for c, v in row.items()}
        values = [_json_number(v) for v in table[ind.key]]
        write_json_atomic(out / "data" / "valeurs" / f"{ind.key}.json",
                          {"key": ind.key, "v": values, "p": pct}, indent=None,
                          separators=(",", ":"))
    cards = table.set_index("insee")
    for code, comp in comparisons.items():
        card = {k: cards.at[code, k] for k in ("nom", "departement", "departement_nom",
                                                "region_nom", "epci_nom", "typologie",
                                                "programme", "centralite", "densite",
                                                "population")}
        card["insee"] = code
        card["population"] = _json_number(card["population"])
        write_json_atomic(out / "data" / "fiches" / f"{code}.json",
                          town_sheet(comp, card, _links(code, s.out_dir)), indent=None,
                          separators=(",", ":"))
    _remove_stale(out / "data" / "fiches", {f"{c}.json" for c in comparisons})
    _remove_stale(out / "data" / "valeurs", {f"{i.key}.json" for i in board.indicators})
    seconds["json"] = time.perf_counter() - t

    t = time.perf_counter()
    attribution = ("INSEE · DREES · ANCT · IGN · ministère de la Culture · CNC · Géorisques "
                   "· © contributeurs OpenStreetMap (ODbL)")
    commune_tiles = cell_tiles = None
    tiles_dir = out / "tiles"
    cell_fields = sorted({i.cell_field for i in board.indicators if i.cell_field})
    if tiles:
        path = tiles_dir / "communes.pmtiles"
        poly_file = s.interim_dir / "communes_polygons_wgs84.parquet"
        fp = _fingerprint(["communes-1", sorted(index["insee"]),
                           table.loc[table["pvd"] | table["acv"], "insee"].tolist(),
                           sorted(departements) if departements is not None else None,
                           poly_file.stat().st_mtime_ns if poly_file.is_file() else None])
        if _archive_fingerprint(path) != fp:
            commune_tiles = write_commune_tiles(polygons, board.table, path,
                                                attribution=attribution, fingerprint=fp)
        else:
            commune_tiles = check_pmtiles(path)
            log.info("site: %s up to date", path)
        cells = _town_cells(s, cell_fields)
        cell_path = tiles_dir / "cellules.pmtiles"
        if cells is not None and len(cells):
            fp = _fingerprint(["cells-1", cell_fields, len(cells),
                               pd.util.hash_pandas_object(cells.drop(columns="geometry"),
                                                          index=False).sum()])
            if _archive_fingerprint(cell_path) != fp:
                cell_tiles = write_cell_tiles(cells, cell_path, attribution=attribution,
                                              fingerprint=fp)
            else:
                cell_tiles = check_pmtiles(cell_path)
        elif cell_path.exists():
            cell_path.unlink()
    else:
        for name in ("communes.pmtiles", "cellules.pmtiles"):
            if (tiles_dir / name).is_file():
                existing = check_pmtiles(tiles_dir / name)
                commune_tiles = existing if name.startswith("communes") else commune_tiles
                cell_tiles = existing if name.startswith("cellules") else cell_tiles
    seconds["tiles"] = time.perf_counter() - t

    all_sources = {d for ids in board.sources.values() for d in ids}
    catalogue = _catalogue(all_sources | {"communes_cog", "communes_polygons", "pvd", "acv",
                                          "centralite", "densite"}, s)
    write_text_atomic(out / "sources.html", render_sources_html(board, catalogue, classes))
    built = board.table.loc[board.table["commune_traitee"], "insee"].tolist()
    bounds = (polygons.total_bounds.round(4).tolist() if len(polygons)
              else [-5.2, 41.3, 9.6, 51.1])
    write_json_atomic(out / "data" / "config.json", {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "software": f"pvdgeo {__version__}",
        "cog_year": board.cog_year,
        "themes": [{"key": th.key, "label": th.label, "description": th.description}
                   for th in dashboard.THEMES],
        "indicators": _indicator_config(board, classes, medians),
        "default_indicator": "apl_mg",
        "percentile_classes": list(PERCENTILE_CLASSES),
        "minute_classes": list(MINUTE_CLASSES),
        "nodata_color": dashboard.NODATA_COLOUR,
        "peer_min_count": s.peer_min_count,
        "filters": _filters(board.table),
        "built": {c: _links(c, s.out_dir) for c in built},
        "catalogue": catalogue,
        "missing_tables": board.missing,
        "csv": f"data/{CSV_NAME}",
        "tiles": {
            "communes": "tiles/communes.pmtiles" if commune_tiles else None,
            "cells": "tiles/cellules.pmtiles" if cell_tiles else None,
            "commune_zooms": list(COMMUNE_ZOOMS), "cell_zooms": list(CELL_ZOOMS),
            "bounds": bounds,
            "regional": departements is not None,
            "font_faces": _font_faces(),
            "attribution": attribution,
        },
        "counts": {"communes": len(table), "compared": len(comparisons),
                   "built": len(built)},
    })
    for src in sorted(SITE_SRC.iterdir()):
        if src.is_file():
            _copy(src, out / src.name)
    seconds["total"] = time.perf_counter() - t0
    summary = SiteSummary(index=out / "index.html", communes=len(table),
                          compared=len(comparisons), indicators=len(board.indicators),
                          csv=csv_path, table=parquet, commune_tiles=commune_tiles,
                          cell_tiles=cell_tiles, seconds=seconds)
    log.info("site: %s (%d communes, %d compared towns, %d indicators) in %.0f s (%s)", out,
             summary.communes, summary.compared, summary.indicators, seconds["total"],
             ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total"))
    return summary
