"""The aggregate stage of one town: its inputs read (catchment, facilities, access
nodes, land cover, national tables), the H3 and commune layers computed
(:func:`aggregate_town`) and written with their metadata (:func:`write_aggregate`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo import access, communes, h3grid, landcover, network
from geo._io import read_parquet_cached, read_parquet_metadata, write_parquet
from geo.errors import InputFileError
from geo.facilities import COUNTS_FILE
from geo.indicators.apl import APL_PROFESSIONS, _below, apl_by_commune, area_weighted
from geo.indicators.e2sfca import GP_SUBCATEGORY, gp_accessibility
from geo.indicators.zones import (
    MIN_CELL_POPULATION,
    _per_10k,
    access_by_zone,
    cell_population,
    facility_counts,
)
from geo.network import StreetGraph
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.indicators: log lines keep their logger name


# --- the aggregate stage ---------------------------------------------------------------------


@dataclass
class AggregateResult:
    """Outputs of :func:`aggregate_town`: one cell layer per resolution, the commune
    layer (both in the town's metric CRS), metadata and what was missing."""

    insee: str
    cells: dict[int, gpd.GeoDataFrame]
    communes: gpd.GeoDataFrame
    #: CORINE polygons over the grid (None without land cover).
    landcover: gpd.GeoDataFrame | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def _read_parquet(path: Path, what: str) -> gpd.GeoDataFrame | None:
    if not path.exists():
        return None
    try:
        return gpd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise InputFileError(f"{what} {path} cannot be read: {exc}") from None


def _town_inputs(
    insee: str, town_dir: Path, crs: str
) -> tuple[
    gpd.GeoDataFrame | None, dict[str, tuple[gpd.GeoDataFrame, pd.DataFrame | None]], list[str]
]:
    missing: list[str] = []
    facilities = None
    if (town_dir / "facilities.parquet").exists():
        facilities = access.read_facilities(town_dir / "facilities.parquet", crs=crs)
    else:
        missing.append(f"facilities: no {town_dir / 'facilities.parquet'} (run `pvdgeo "
                       f"facilities {insee}`); no facility counts or E2SFCA")
    graphs: dict[str, tuple[gpd.GeoDataFrame, pd.DataFrame | None]] = {}
    for mode in network.MODES:
        nodes = _read_parquet(town_dir / f"access_{mode}_nodes.parquet", "access nodes")
        if nodes is None:
            missing.append(f"access {mode}: no {town_dir / f'access_{mode}_nodes.parquet'} "
                           f"(no street source for {insee}, or `pvdgeo access {insee}` not "
                           f"run: see logs/access.log); no {mode} times or E2SFCA")
            continue
        edges_path = town_dir / f"access_{mode}_edges.parquet"
        edges = _read_parquet(edges_path, "access edges")
        if edges is None:
            missing.append(f"E2SFCA {mode}: no {edges_path}")
        graphs[mode] = (nodes, edges)
    return facilities, graphs, missing


def aggregate_town(
    insee: str,
    *,
    resolutions: Sequence[int] | None = None,
    landcover_sources: Sequence[landcover.LandCoverSource] | None = None,
    town_dir: Path | None = None,
    town_catchment: communes.Catchment | None = None,
    settings: Settings | None = None,
) -> AggregateResult:
    """H3 and commune indicators of one town (the ``aggregate`` stage).

    Parameters
    ----------
    insee
        Town code.
    resolutions
        H3 resolutions (default ``settings.h3_resolutions``).
    landcover_sources
        CORINE inputs; default the catalogue's land-cover datasets covering the town.
    town_dir
        Folder with the town's stage outputs (``facilities.parquet``,
        ``access_<mode>_nodes.parquet``, ``access_<mode>_edges.parquet``); default
        ``settings.town_dir(insee)``. Missing inputs are logged and their indicators
        left out; everything else is still computed.
    town_catchment
        The town's catchment when already computed (``catchment.parquet`` of the town
        folder); default :func:`geo.communes.catchment`.
    """
    s = settings or get_settings()
    res_list = sorted(set(resolutions or s.h3_resolutions))
    for r in res_list:
        h3grid.check_resolution(r)
    c = town_catchment or communes.catchment(insee, settings=s)
    insee = c.insee
    tdir = Path(town_dir) if town_dir else s.town_dir(insee)
    crs = c.crs
    ref = communes.load_reference(s).set_index("insee")
    zones = communes.commune_polygons(c.insee_codes, crs=crs, full_resolution=True,
                                      settings=s)
    zones = zones.merge(c.communes[["insee", "is_town"]], on="insee", how="left")
    zones["population"] = ref["population"].reindex(zones["insee"]).astype("Float64").to_numpy()
    pop_by_insee = zones.set_index("insee")["population"].astype(float)

    lc_sources = (list(landcover_sources) if landcover_sources is not None
                  else landcover.town_landcover_sources(insee, settings=s))
    missing: list[str] = []
    if not lc_sources:
        missing.append(f"land cover: no CORINE source covers {insee} (pass --landcover "
                       "FILE); land-cover shares empty, population spread by area")
    facilities, graphs, input_missing = _town_inputs(insee, tdir, crs)
    missing += input_missing
    apl = apl_by_commune(s)

    # --- communes -------------------------------------------------------------------
    lc_communes, lc_meta = landcover.landcover_indicators(zones, lc_sources, id_col="insee")
    if lc_sources and (lc_communes["clc_nodata_share"] >= 1.0).all():
        missing.append(f"land cover: {', '.join(s.label for s in lc_sources)} does not "
                       f"cover {insee} (no CORINE class in the town or its catchment "
                       "communes); land-cover shares empty, population spread by area")
    elif lc_sources and lc_meta.get("clc_missing"):
        missing.append(f"land cover change: {lc_meta['clc_missing']}")
    built_communes = landcover.built_up_area(zones, lc_sources, id_col="insee")

    street_graphs = {mode: network.graph_from_frames(nodes, edges, mode, settings=s)
                     for mode, (nodes, edges) in graphs.items() if edges is not None}
    gps = None
    if facilities is not None and street_graphs:
        gps = facilities[facilities["subcategory"] == GP_SUBCATEGORY]
        log.info("E2SFCA: %d general practitioner(s) in the facility table", len(gps))
        if gps.empty:
            gps = None
            missing.append("E2SFCA: no general practitioner (medecin_generaliste) in the "
                           "facility table (unknown supply, not zero); not computed")
    layers: dict[int, gpd.GeoDataFrame] = {}
    finest_pieces: pd.DataFrame | None = None
    finest_cells: gpd.GeoDataFrame | None = None
    for res in res_list:
        layers[res], finest_pieces = _cell_layer(
            c.area, res, crs=crs, zones=zones, population=pop_by_insee,
            lc_sources=lc_sources, built_communes=built_communes, apl=apl,
            facilities=facilities, graphs=graphs, street_graphs=street_graphs, gps=gps,
            settings=s,
        )
        finest_cells = layers[res]

    # --- commune layer -----------------------------------------------------------------
    ctab = zones.drop(columns="geometry").set_index("insee")
    ctab["area_m2"] = zones.set_index("insee").area
    ctab = ctab.join(lc_communes.set_index("insee"))
    ctab = ctab.join(apl.set_index("insee").drop(columns="apl_population"))
    commune_counts, counts_source = _commune_facility_counts(zones, facilities, s)
    if commune_counts is not None:
        ctab = ctab.join(commune_counts)
    for mode, (nodes, _) in graphs.items():
        ctab = ctab.join(access_by_zone(nodes, zones, key="insee", mode=mode, settings=s))
        col = f"e2sfca_mg_{mode}_per_10k"
        if finest_cells is not None and finest_pieces is not None and col in finest_cells:
            ctab[col] = _population_weighted(finest_pieces, finest_cells.set_index("h3")[col])
    commune_layer = gpd.GeoDataFrame(ctab.reset_index().copy(),  # defragmented
                                     geometry=zones.geometry.to_numpy(), crs=crs)

    for m in missing:
        log.warning("%s: %s", insee, m)
    meta = {
        "insee": insee,
        "crs": crs,
        "cog_year": s.cog_year,
        "population_year": s.population_year,
        "h3_resolutions": res_list,
        **lc_meta,
        "apl_vintage": "DREES APL 2021 (populations 2019)",
        "apl_threshold": s.apl_threshold,
        "facility_counts_communes": counts_source,
        "facilities_vintages": _input_metadata(tdir / "facilities.parquet").get("vintages"),
        "streets": {mode: {k: _input_metadata(tdir / f"access_{mode}_nodes.parquet").get(k)
                           for k in ("source", "vintage", "dem")} for mode in graphs},
        "e2sfca": {"supply": GP_SUBCATEGORY, "catchment_min": s.e2sfca_minutes,
                   "decay": "truncated Gaussian"},
        "walk_speed_kmh": s.walk_speed_kmh,
        "bike_speed_kmh": s.bike_speed_kmh,
        "missing": missing,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    coarsest = layers[res_list[0]]
    polygons = landcover.catchment_polygons(coarsest, lc_sources) if lc_sources else None
    return AggregateResult(insee=insee, cells=layers, communes=commune_layer,
                           landcover=polygons, metadata=meta, missing=missing)


def _cell_layer(
    area: Any,
    res: int,
    *,
    crs: str,
    zones: gpd.GeoDataFrame,
    population: pd.Series,
    lc_sources: Sequence[landcover.LandCoverSource],
    built_communes: pd.Series | None,
    apl: pd.DataFrame,
    facilities: gpd.GeoDataFrame | None,
    graphs: dict[str, tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None]],
    street_graphs: dict[str, StreetGraph],
    gps: gpd.GeoDataFrame | None,
    settings: Settings,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """One H3 layer of :func:`aggregate_town` and its cell x commune pieces (with their
    population)."""
    s = settings
    grid = h3grid.h3_grid(area, res, crs=crs)
    pieces = h3grid.cell_commune_pieces(grid, zones)
    pieces.index = pd.Index(pieces["h3"] + "|" + pieces["insee"], name="piece")
    built_pieces = landcover.built_up_area(pieces.reset_index(), lc_sources,
                                          id_col="piece")
    pieces["population"] = cell_population(pieces, population, piece_built=built_pieces,
                                           commune_built=built_communes)["population"]
    cell_pop = pieces.groupby("h3")["population"].sum().reindex(grid["h3"]).fillna(0.0)

    table = grid[["h3", "resolution", "area_m2"]].set_index("h3")
    table["population"] = cell_pop.to_numpy()
    lc_cells, _ = landcover.landcover_indicators(grid, lc_sources, id_col="h3")
    parts = [lc_cells.set_index("h3"),
             area_weighted(pieces, apl, [p.field for p in APL_PROFESSIONS])]
    if facilities is not None:
        f = facilities.assign(h3=h3grid.points_to_cells(facilities, res))
        counts = facility_counts(f, "h3").reindex(table.index).fillna(0).astype("int64")
        parts += [counts, _per_10k(counts, table["population"],
                                   min_population=MIN_CELL_POPULATION)]
    centroids = grid.set_index("h3").geometry.centroid
    for mode, (nodes, _) in graphs.items():
        parts.append(access_by_zone(nodes, grid, key="h3", mode=mode, settings=s))
        if gps is not None and mode in street_graphs:
            parts.append(gp_accessibility(centroids, table["population"], gps,
                                          street_graphs[mode], settings=s).to_frame())
    table = table.join(parts)
    flag = _below(table["apl_mg"], s.apl_threshold).rename("apl_mg_sous_dote")
    at = table.columns.get_loc("apl_sages_femmes") + 1
    table.insert(at, "apl_mg_sous_dote", flag)
    log.info("H3 r%d: %d cells, population %.0f", res, len(grid), cell_pop.sum())
    layer = gpd.GeoDataFrame(table.reset_index().copy(), geometry=grid.geometry.to_numpy(),
                             crs=crs)
    return layer, pieces


def _input_metadata(path: Path) -> dict[str, Any]:
    return read_parquet_metadata(path) if path.exists() else {}


def _commune_facility_counts(
    zones: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame | None, s: Settings
) -> tuple[pd.DataFrame | None, str | None]:
    """Facility counts of the catchment communes: the national commune table
    (``data/interim/facilities_communes.parquet``, complete BPE-based inventory)
    when it has been built, else the town's facility points."""
    national = s.interim_dir / COUNTS_FILE
    if national.exists():
        table = read_parquet_cached(national).set_index("insee")
        cols = [c for c in table.columns if c.startswith("n_")
                or c in ("eolienne_power_mw", "commerces_chain_share")]
        counts = table.reindex(zones["insee"])[cols]
        counts.index.name = "insee"
        return counts, str(national)
    if facilities is None:
        return None, None
    log.info("commune facility counts from the town's facility points (%s not built: "
             "`make facility-counts` gives complete BPE-based counts)", national)
    f = _facility_insee(facilities, zones)
    index = pd.Index(zones["insee"], name="insee")
    counts = facility_counts(f, "insee").reindex(index).fillna(0).astype("int64")
    pop = zones.set_index("insee")["population"].astype(float)
    return counts.join(_per_10k(counts, pop)), "facilities.parquet"


def _facility_insee(facilities: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> pd.DataFrame:
    """Facilities with an ``insee`` column: their own code, else the polygon they are in."""
    f = facilities.copy()
    own = f["insee"] if "insee" in f.columns else pd.Series(pd.NA, index=f.index)
    hit = gpd.sjoin(f[["geometry"]], zones[["insee", "geometry"]], how="left",
                    predicate="within")
    hit = hit[~hit.index.duplicated()]["insee"]
    f["insee"] = own.where(own.notna(), hit.reindex(f.index))
    return f


def _population_weighted(pieces: pd.DataFrame, cell_values: pd.Series) -> pd.Series:
    v = cell_values.reindex(pieces["h3"]).to_numpy(dtype=float)
    w = pieces["population"].to_numpy(dtype=float)
    ok = np.isfinite(v) & (w > 0)
    num = pd.Series(np.where(ok, v * w, 0.0)).groupby(pieces["insee"].to_numpy()).sum()
    den = pd.Series(np.where(ok, w, 0.0)).groupby(pieces["insee"].to_numpy()).sum()
    return num / den.where(den > 0)


def write_aggregate(result: AggregateResult, out_dir: Path) -> list[Path]:
    """Write ``h3_r<res>.parquet``, ``communes.parquet`` and, with land cover,
    ``landcover.parquet`` (CORINE polygons over the grid; a stale one is removed when
    there is no land cover) atomically, with the metadata (vintages, rules, what is
    missing) under the ``pvdgeo`` key."""
    out_dir = Path(out_dir)
    written = []
    for res, layer in sorted(result.cells.items()):
        path = out_dir / f"h3_r{res}.parquet"
        write_parquet(layer, path, metadata={**result.metadata, "layer": f"h3_r{res}"})
        written.append(path)
    path = out_dir / "communes.parquet"
    write_parquet(result.communes, path, metadata={**result.metadata, "layer": "communes"})
    written.append(path)
    path = out_dir / "landcover.parquet"
    if result.landcover is not None:
        write_parquet(result.landcover, path, metadata={
            "layer": "landcover", "insee": result.insee,
            "clc_year": result.metadata.get("clc_year"),
            "clc_sources": result.metadata.get("clc_sources"),
        })
        written.append(path)
    elif path.exists():
        path.unlink()
        log.info("removed %s: no land cover this run", path)
    return written
