"""The access stage of one town (:func:`run_town`): its streets and facilities read, the
graph of each travel mode built, node, edge and facility tables and the isochrones from
the town's origin (town hall, else the centre of its densest streets) written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geo.access.polygons import isochrones
from geo.access.targets import (
    NodeAccess,
    facility_snaps,
    link_minutes,
    node_access,
    targets_from_facilities,
)
from geo.errors import EmptyGraphError, InputFileError, MissingColumnsError, MissingCrsError
from geo.network import StreetGraph
from geo.settings import Settings, get_settings
from geo.streets import town_streets

if TYPE_CHECKING:
    from geo.communes import Catchment

log = logging.getLogger(__package__)  # geo.access: log lines keep their logger name


# --- the town run ------------------------------------------------------------------------------


def town_origin(
    insee: str,
    town: BaseGeometry,
    *,
    townhalls: gpd.GeoDataFrame | None = None,
    facilities: gpd.GeoDataFrame | None = None,
) -> tuple[Point, str]:
    """Isochrone origin of a town (metric CRS of ``town``) and what it is.

    The OSM ``amenity=townhall`` inside the town polygon (the one nearest the polygon's
    centre if several), else a facility of subcategory ``mairie`` of the town, else the
    commune's centroid (a point on its surface if the centroid falls outside).
    """
    centre = town.centroid if town.contains(town.centroid) else town.representative_point()
    if townhalls is not None and len(townhalls):
        inside = townhalls[townhalls.within(town)]
        if len(inside):
            best = inside.iloc[int(np.argmin(inside.distance(centre)))]
            name = best.get("name") or "townhall"
            return best.geometry, f"OSM amenity=townhall ({name})"
    if facilities is not None and "subcategory" in facilities.columns and len(facilities):
        mairies = facilities[(facilities["subcategory"] == "mairie").fillna(False)]
        if "insee" in mairies.columns:
            mairies = mairies[(mairies["insee"] == insee).fillna(False)]
        mairies = mairies[mairies.within(town.buffer(1.0))]
        if len(mairies):
            best = mairies.iloc[int(np.argmin(mairies.distance(centre)))]
            return best.geometry, f"facility mairie ({best.get('source', '')})"
    return centre, "commune centroid"


#: The isochrone origin of a town without a town-hall point.
STREET_CENTRE = "centre of the commune's densest streets (no town-hall point)"


def street_centre(graph: StreetGraph, town: BaseGeometry, *, radius_m: float = 300.0
                  ) -> Point | None:
    """The town's street centre: the graph node inside ``town`` with the most nodes
    within ``radius_m`` (a town centre has the densest street grid), for towns whose
    source has no town hall (road lines); ``None`` when no node lies in the town. A
    commune's centroid, in a large rural commune, can be fields far from any street."""
    xy = graph.node_xy
    inside = shapely.contains_xy(town, xy[:, 0], xy[:, 1])
    if not inside.any():
        return None
    idx = np.flatnonzero(inside)
    counts = np.array([len(n) for n in graph.node_tree.query_ball_point(xy[idx], radius_m)])
    best = idx[int(np.argmax(counts))]
    return Point(xy[best])


def read_facilities(path: str | Path, *, crs: str) -> gpd.GeoDataFrame:
    """A facilities GeoParquet (``category``, ``subcategory``, geometry), in ``crs``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(
            f"facilities file {path} does not exist (build it with `pvdgeo facilities` or "
            f"pass --facilities FILE)"
        )
    try:
        gdf = gpd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several error types for corrupt files
        raise InputFileError(f"cannot read facilities {path}: {exc}") from None
    missing = [c for c in ("category", "subcategory") if c not in gdf.columns]
    if missing:
        raise MissingColumnsError(str(path), missing, list(gdf.columns))
    if gdf.crs is None:
        raise MissingCrsError(f"facilities {path} have no CRS")
    return gdf.to_crs(crs)


def run_town(
    insee: str,
    modes: Sequence[str] = ("walk", "bike"),
    *,
    streets: str | Path | None = None,
    dem: str | Path | None = None,
    facilities: gpd.GeoDataFrame | str | Path | None = None,
    out_dir: str | Path | None = None,
    overpass: bool = False,
    town_catchment: Catchment | None = None,
    settings: Settings | None = None,
) -> dict[str, Path]:
    """Access times and isochrones of a town, written to its output folder.

    Parameters
    ----------
    insee
        The town.
    modes
        ``walk`` and/or ``bike``.
    streets
        Street file (OSM XML/PBF or road lines); default the town's catalogued street
        source (:func:`geo.streets.town_streets`), else Overpass when ``overpass``.
    dem
        Elevation raster for slope-aware times; default the town's catalogued DEM if any.
    facilities
        Facility points (GeoDataFrame or GeoParquet path); default
        ``<out_dir>/facilities.parquet``.
    out_dir
        Output folder (default ``data/out/<insee>``).
    town_catchment
        The town's catchment when already computed (the card stage's
        ``catchment.parquet``); default :func:`geo.communes.catchment`.

    Writes ``access_<mode>_nodes.parquet``, ``access_<mode>_edges.parquet`` and
    ``access_<mode>_facilities.parquet`` (:func:`facility_snaps`) per mode, and
    ``isochrones.parquet`` (rows of other modes already in it are kept), with provenance
    metadata. Returns the written paths by name.
    """
    from geo import communes, network, sources
    from geo._io import ensure_writable_dir, write_parquet

    s = settings or get_settings()
    for mode in modes:
        network.check_mode(mode)
    c = town_catchment or communes.catchment(insee, settings=s)
    code = c.insee
    out = ensure_writable_dir(Path(out_dir) if out_dir is not None else s.town_dir(code))
    try:
        street_src = town_streets(c, streets=streets, overpass=overpass, settings=s)
    except EmptyGraphError as exc:
        raise EmptyGraphError(f"town {code}: {exc}") from None
    if dem is None:
        dems = sources.datasets_for_town(code, kind="dem", settings=s)
        dem = sources.ensure(dems[0].id, s) if dems else None
    if facilities is None or isinstance(facilities, str | Path):
        fac = read_facilities(facilities or out / "facilities.parquet", crs=c.crs)
    else:
        if facilities.crs is None:
            raise MissingCrsError("facilities have no CRS")
        fac = facilities.to_crs(c.crs)
    targets = targets_from_facilities(fac, settings=s)
    origin, origin_kind = town_origin(code, c.town, townhalls=street_src.townhalls,
                                      facilities=fac)
    paths: dict[str, Path] = {}
    iso_frames = []
    for mode in modes:
        try:
            graph = network.build_graph(street_src, mode, dem=dem, settings=s)
        except EmptyGraphError as exc:
            raise EmptyGraphError(f"town {code}: {exc}") from None
        if origin_kind == "commune centroid":  # no town hall point: the street centre
            centre = street_centre(graph, c.town)
            if centre is not None:
                origin, origin_kind = centre, STREET_CENTRE
        result = node_access(graph, fac, targets, settings=s)
        minutes = result.nodes[[f"{t}_minutes" for t in targets]].rename(
            columns=lambda col: col.removesuffix("_minutes"))
        edges = graph.edges_frame()
        for name, col in link_minutes(graph, minutes, result.snap, targets).items():
            edges[f"{name}_minutes"] = col.to_numpy()
        far = ~result.snap["snapped"].to_numpy(bool)
        left_out = fac.loc[far, [col for col in ("facility_id", "name", "category",
                                                  "subcategory") if col in fac.columns]]
        meta = _metadata(code, graph, s, extra={
            "facilities": len(fac),
            "facilities_left_out": int(far.sum()),
            "facilities_left_out_list": left_out.head(200).astype(str).to_dict("records"),
            "targets": list(targets),
        })
        paths[f"{mode}_nodes"] = write_parquet(
            result.nodes, out / f"access_{mode}_nodes.parquet", metadata=meta)
        paths[f"{mode}_edges"] = write_parquet(
            edges, out / f"access_{mode}_edges.parquet", metadata=meta)
        paths[f"{mode}_facilities"] = write_parquet(
            facility_snaps(graph, fac, result.snap), out / f"access_{mode}_facilities.parquet",
            metadata=meta)
        iso = isochrones(graph, origin, settings=s)
        iso["origin"] = origin_kind
        iso_frames.append(iso)
        _log_mode_summary(code, graph, result, targets)
    iso_path = out / "isochrones.parquet"
    iso_all = pd.concat(iso_frames, ignore_index=True)
    if iso_path.exists():
        old = gpd.read_parquet(iso_path)
        old = old[~old["mode"].isin(list(modes))]
        if len(old) and old.crs is not None and old.crs.equals(iso_all.crs):
            iso_all = pd.concat([old, iso_all], ignore_index=True)
    iso_all = gpd.GeoDataFrame(iso_all, geometry="geometry", crs=c.crs)
    iso_all = iso_all.sort_values(["mode", "minutes"]).reset_index(drop=True)
    paths["isochrones"] = write_parquet(iso_all, iso_path, metadata={
        "insee": code, "crs": c.crs, "origin": origin_kind, "origin_xy": [origin.x, origin.y],
        "buffer_m": s.isochrone_buffer_m, "cell_m": s.isochrone_cell_m,
        "source": street_src.source, "vintage": street_src.vintage,
    })
    for p in paths.values():
        log.info("wrote %s", p)
    return paths


def _metadata(code: str, graph: StreetGraph, s: Settings, extra: dict[str, Any]) -> dict:
    from geo import __version__

    return {
        "insee": code, "mode": graph.mode, "crs": graph.crs, "source": graph.source,
        "vintage": graph.vintage, "speed_kmh": graph.speed_kmh, "dem": graph.dem,
        "snap_max_m": s.snap_max_m, "thresholds_min": list(s.time_thresholds_min),
        "graph": {k: v for k, v in graph.report.items() if k != "source"},
        "created_with": f"pvdgeo {__version__}",
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        **extra,
    }


def _log_mode_summary(code: str, graph: StreetGraph, result: NodeAccess,
                      targets: Mapping[str, np.ndarray]) -> None:
    parts = []
    for name in targets:
        col = result.nodes[f"{name}_minutes"]
        if col.notna().any():
            parts.append(f"{name} {col.median():.1f}")
    log.info("%s %s: median minutes to the nearest facility per node: %s", code, graph.mode,
             ", ".join(parts) or "no facility reachable")
