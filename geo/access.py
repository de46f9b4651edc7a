"""Access times on a street graph: nearest facility, cumulative opportunities, isochrones.

Every search is a multi-source shortest-path search on the graph's sparse matrix
(:func:`scipy.sparse.csgraph.dijkstra`), never one search per node:

- points (facilities, an isochrone origin, places) snap to the nearest point of the
  nearest link (:func:`snap_points`); the partial times along that link count, and the
  snap distance is kept. Points farther than ``settings.snap_max_m`` are reported and
  left out;
- :func:`nearest_times`: minutes from every node to the nearest facility of each target
  (one search per target from a virtual source tied to both ends of every facility's
  link, on the reversed graph, so one-way streets and uphill slopes count in the
  direction people travel);
- :func:`times_within`: for many points, the minutes between each point and every node
  within a cutoff, as a long table (what E2SFCA and cumulative counts need);
- :func:`cumulative_counts`: facilities of each target reachable within 5, 10, 15 and
  20 minutes from every node;
- :func:`isochrones`: polygons of what is reachable from a point, from the reachable
  parts of the streets (partly reached links included), never a convex hull;
- :func:`nearest_nodes`: nearest graph node of arbitrary points (H3 cells).

:func:`run_town` reads a town's streets and facilities, computes all of it for walking
and cycling and writes ``access_<mode>_nodes.parquet``, ``access_<mode>_edges.parquet``
and ``isochrones.parquet``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.ndimage import minimum_filter1d
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import MultiPolygon, Point
from shapely.geometry.base import BaseGeometry

from geo._categories import CATEGORY_KEYS
from geo.errors import (
    BadArgumentError,
    EmptyGraphError,
    InputFileError,
    MissingColumnsError,
    MissingCrsError,
    SettingsError,
)
from geo.network import StreetGraph
from geo.settings import Settings, get_settings
from geo.streets import town_streets

if TYPE_CHECKING:
    from geo.communes import Catchment

__all__ = [
    "CATEGORIES",
    "Anchors",
    "NodeAccess",
    "Samples",
    "cumulative_counts",
    "facility_snaps",
    "isochrones",
    "link_minutes",
    "nearest_nodes",
    "nearest_times",
    "node_access",
    "reachable_samples",
    "read_facilities",
    "run_town",
    "snap_points",
    "targets_from_facilities",
    "times_within",
    "town_origin",
]

log = logging.getLogger(__name__)

#: Facility categories (``data/categories.toml``); each is an access target.
CATEGORIES: tuple[str, ...] = CATEGORY_KEYS

#: Points accepted by the snapping functions: geometries with a CRS, or bare geometries or
#: an (n, 2) array of coordinates already in the graph's CRS.
PointsLike: TypeAlias = gpd.GeoDataFrame | gpd.GeoSeries | Sequence[BaseGeometry] | np.ndarray


# --- points on the graph -------------------------------------------------------------------


def _points_xy(points: PointsLike, graph: StreetGraph, what: str) -> np.ndarray:
    """(n, 2) coordinates of ``points`` in the graph's CRS (NaN for empty geometries)."""
    if isinstance(points, np.ndarray) and points.dtype != object:
        return np.asarray(points, dtype=float).reshape(-1, 2)
    if isinstance(points, gpd.GeoDataFrame | gpd.GeoSeries):
        if points.crs is None:
            raise MissingCrsError(f"{what} have no CRS; expected {graph.crs} or any CRS to "
                                  f"reproject from")
        if not points.crs.equals(graph.crs):
            points = points.to_crs(graph.crs)
        geoms = np.asarray(points.geometry.values if isinstance(points, gpd.GeoDataFrame)
                           else points.values)
    else:
        geoms = np.asarray(points, dtype=object)
    out = np.full((len(geoms), 2), np.nan)
    if len(geoms) == 0:
        return out
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    pts = geoms[ok]
    not_point = shapely.get_type_id(pts) != 0
    if not_point.any():
        pts = pts.copy()
        pts[not_point] = shapely.point_on_surface(pts[not_point])
    out[ok] = shapely.get_coordinates(pts)
    return out


def _interp(graph: StreetGraph, link: np.ndarray, offset: np.ndarray,
            arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Values of per-vertex cumulative ``arrays`` at ``offset`` metres along ``link``."""
    if link.size == 0:
        return [np.zeros(0) for _ in arrays]
    key = graph.vtx_key
    j = np.searchsorted(key, key[graph.vtx_ptr[link]] + offset, side="right") - 1
    lo = graph.vtx_ptr[link]
    hi = graph.vtx_ptr[link + 1] - 2
    j = np.clip(j, lo, hi)
    seg_len = graph.vtx_m[j + 1] - graph.vtx_m[j]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(seg_len > 0, (offset - graph.vtx_m[j]) / seg_len, 0.0)
    frac = np.clip(frac, 0.0, 1.0)
    return [arr[j] + frac * (arr[j + 1] - arr[j]) for arr in arrays]


@dataclass(frozen=True)
class Anchors:
    """Points placed on links: for each point, its link and the partial times (s).

    ``to_from_u`` is the time to reach the point from the link's ``u`` end (travelling
    u -> v), ``to_from_v`` from ``v``; ``from_to_u`` / ``from_to_v`` the times to leave
    the point towards each end. ``inf`` where the link's direction forbids it.
    """

    link: np.ndarray
    offset_m: np.ndarray
    to_from_u: np.ndarray
    to_from_v: np.ndarray
    from_to_u: np.ndarray
    from_to_v: np.ndarray

    def __len__(self) -> int:
        return int(self.link.size)

    def take(self, idx: np.ndarray) -> Anchors:
        """A subset of the anchors."""
        return Anchors(*(getattr(self, f)[idx] for f in
                         ("link", "offset_m", "to_from_u", "to_from_v", "from_to_u",
                          "from_to_v")))


def _anchors(graph: StreetGraph, link: np.ndarray, offset: np.ndarray) -> Anchors:
    fwd, bwd = _interp(graph, link, offset, (graph.vtx_fwd_s, graph.vtx_bwd_s))
    f_ok, b_ok = graph.link_forward[link], graph.link_backward[link]
    inf = np.inf
    return Anchors(
        link=link, offset_m=offset,
        to_from_u=np.where(f_ok, fwd, inf),
        to_from_v=np.where(b_ok, graph.link_bwd_s[link] - bwd, inf),
        from_to_u=np.where(b_ok, bwd, inf),
        from_to_v=np.where(f_ok, graph.link_fwd_s[link] - fwd, inf),
    )


def snap_points(
    graph: StreetGraph,
    points: PointsLike,
    *,
    max_distance_m: float | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Snap points to the nearest point of the nearest link of ``graph``.

    Parameters
    ----------
    points
        Points (GeoDataFrame/GeoSeries in any CRS, shapely geometries or an (n, 2) array
        in the graph's CRS). Other geometries use a point on their surface.
    max_distance_m
        Points farther than this from every link are not snapped (default
        ``settings.snap_max_m``).

    Returns
    -------
    DataFrame, one row per point in input order: ``snapped`` (bool), ``link``, ``offset_m``
    (distance along the link from its ``u`` end), ``snap_distance_m``, ``x``, ``y``
    (snapped position), and the partial times in seconds ``to_from_u_s``,
    ``to_from_v_s`` (reaching the point from each end), ``from_to_u_s``, ``from_to_v_s``
    (leaving it towards each end; inf where the link's direction forbids it).
    """
    s = settings or get_settings()
    limit = s.snap_max_m if max_distance_m is None else float(max_distance_m)
    xy = _points_xy(points, graph, "points")
    n = len(xy)
    link = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.nan)
    ok = np.isfinite(xy).all(axis=1)
    if ok.any():
        pts = shapely.points(xy[ok])
        (src, hit), d = graph.tree.query_nearest(
            pts, max_distance=limit, return_distance=True, all_matches=False
        )
        idx = np.flatnonzero(ok)[src]
        link[idx] = hit
        dist[idx] = d
    snapped = link >= 0
    offset = np.full(n, np.nan)
    sx = np.full(n, np.nan)
    sy = np.full(n, np.nan)
    cols = {k: np.full(n, np.inf) for k in ("to_from_u", "to_from_v", "from_to_u",
                                            "from_to_v")}
    if snapped.any():
        li = link[snapped]
        geoms = graph.geometries[li]
        off = shapely.line_locate_point(geoms, shapely.points(xy[snapped]))
        offset[snapped] = off
        at = shapely.get_coordinates(shapely.line_interpolate_point(geoms, off))
        sx[snapped], sy[snapped] = at[:, 0], at[:, 1]
        anchors = _anchors(graph, li, off)
        for k in cols:
            cols[k][snapped] = getattr(anchors, k)
    index = points.index if isinstance(points, pd.DataFrame | pd.Series) else None
    return pd.DataFrame({
        "snapped": snapped, "link": link, "offset_m": offset, "snap_distance_m": dist,
        "x": sx, "y": sy, **{f"{k}_s": v for k, v in cols.items()},
    }, index=index)


def _anchors_from_snap(snap: pd.DataFrame) -> Anchors:
    ok = snap["snapped"].to_numpy(bool)
    return Anchors(
        link=snap["link"].to_numpy(np.int64)[ok], offset_m=snap["offset_m"].to_numpy()[ok],
        to_from_u=snap["to_from_u_s"].to_numpy()[ok],
        to_from_v=snap["to_from_v_s"].to_numpy()[ok],
        from_to_u=snap["from_to_u_s"].to_numpy()[ok],
        from_to_v=snap["from_to_v_s"].to_numpy()[ok],
    )


def nearest_nodes(
    graph: StreetGraph,
    points: PointsLike,
    *,
    max_distance_m: float | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Nearest graph node of each point (straight-line distance).

    Returns a DataFrame in input order: ``node`` (node index, -1 when no node is within
    ``max_distance_m``, default ``settings.nearest_node_max_m``), ``node_id`` (<NA> then)
    and ``distance_m``.
    """
    s = settings or get_settings()
    limit = s.nearest_node_max_m if max_distance_m is None else float(max_distance_m)
    xy = _points_xy(points, graph, "points")
    ok = np.isfinite(xy).all(axis=1)
    dist = np.full(len(xy), np.nan)
    node = np.full(len(xy), -1, dtype=np.int64)
    if ok.any():
        d, i = graph.node_tree.query(xy[ok], distance_upper_bound=limit)
        found = np.isfinite(d)
        dist[np.flatnonzero(ok)[found]] = d[found]
        node[np.flatnonzero(ok)[found]] = i[found]
    node_id = pd.array(np.where(node >= 0, graph.node_id[np.maximum(node, 0)], 0),
                       dtype="Int64")
    node_id[node < 0] = pd.NA
    index = points.index if isinstance(points, pd.DataFrame | pd.Series) else None
    return pd.DataFrame({"node": node, "node_id": node_id, "distance_m": dist}, index=index)


# --- searches ----------------------------------------------------------------------------------


def _with_sources(
    matrix: sparse.csr_array, groups: Sequence[tuple[np.ndarray, np.ndarray]]
) -> sparse.csr_array:
    """``matrix`` plus one virtual source row per group of (head nodes, seconds).

    Virtual sources get arcs only out of them, so they never shortcut each other.
    """
    n = matrix.shape[0]
    k = len(groups)
    rows_idx, rows_data, counts = [], [], []
    for heads, secs in groups:
        keep = np.isfinite(secs)
        heads, secs = heads[keep], secs[keep]
        if heads.size:
            order = np.lexsort((secs, heads))
            heads, secs = heads[order], secs[order]
            first = np.r_[True, heads[1:] != heads[:-1]]
            heads, secs = heads[first], secs[first]
        rows_idx.append(heads.astype(np.int32))
        rows_data.append(secs.astype(float))
        counts.append(heads.size)
    indptr = np.r_[matrix.indptr, matrix.indptr[-1] + np.cumsum(counts, dtype=np.int64)]
    indices = np.concatenate([matrix.indices, *rows_idx])
    data = np.concatenate([matrix.data, *rows_data])
    index_dtype = np.int32 if indices.size < 2**31 - 1 else np.int64
    return sparse.csr_array(
        (data, indices.astype(index_dtype), indptr.astype(index_dtype)), shape=(n + k, n + k)
    )


def _toward_groups(graph: StreetGraph, anchors: Anchors) -> tuple[np.ndarray, np.ndarray]:
    """Arcs of a virtual source on the reversed graph: reach the anchor from u and v."""
    u, v = graph.link_u[anchors.link], graph.link_v[anchors.link]
    return np.r_[u, v], np.r_[anchors.to_from_u, anchors.to_from_v]


def _away_groups(graph: StreetGraph, anchors: Anchors) -> tuple[np.ndarray, np.ndarray]:
    """Arcs of a virtual source on the graph: leave the anchor towards u and v."""
    u, v = graph.link_u[anchors.link], graph.link_v[anchors.link]
    return np.r_[u, v], np.r_[anchors.from_to_u, anchors.from_to_v]


def nearest_times(
    graph: StreetGraph,
    facilities: PointsLike,
    targets: Mapping[str, np.ndarray] | None = None,
    *,
    snap: pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Minutes from every node to the nearest facility of each target.

    Parameters
    ----------
    facilities
        Facility points.
    targets
        Target name -> boolean mask (or positions) over ``facilities``; default one
        target ``all``.
    snap
        :func:`snap_points` result for ``facilities`` (computed when None).

    Returns
    -------
    DataFrame indexed by node index, one float column per target (minutes; NaN where no
    facility of the target can be reached).
    """
    snap = snap if snap is not None else snap_points(graph, facilities, settings=settings)
    targets = {"all": np.ones(len(snap), dtype=bool)} if targets is None else targets
    n = graph.n_nodes
    ok = snap["snapped"].to_numpy(bool)
    anchors = _anchors_from_snap(snap)  # the snapped facilities, in order
    masks = {name: (_as_mask(sel, len(snap)) & ok)[ok] for name, sel in targets.items()}
    heads, secs = _toward_groups(graph, anchors)
    groups = [(heads[np.r_[m, m]], secs[np.r_[m, m]]) for m in masks.values()]
    augmented = _with_sources(graph.matrix_t, groups)
    out = {}
    for k, (name, mask) in enumerate(masks.items()):
        if not mask.any():
            out[name] = np.full(n, np.nan)
            continue
        dist = dijkstra(augmented, directed=True, indices=n + k)[:n]
        dist[np.isinf(dist)] = np.nan
        out[name] = dist / 60.0
    return pd.DataFrame(out)


def _as_mask(sel: Any, n: int) -> np.ndarray:
    arr = np.asarray(sel)
    if arr.dtype == bool:
        if arr.size != n:
            raise BadArgumentError(f"target mask has {arr.size} values for {n} facilities")
        return arr
    mask = np.zeros(n, dtype=bool)
    mask[arr.astype(np.int64)] = True
    return mask


def _reach(
    graph: StreetGraph,
    anchors: Anchors,
    limit_s: float,
    *,
    toward: bool,
    max_cells: int = 8_000_000,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Chunks of (anchor position, node index, seconds) for nodes within ``limit_s``.

    ``toward``: times from the nodes to the anchors (reversed graph), else from the
    anchors to the nodes. One virtual source per anchor; dense results are produced for
    at most ``max_cells`` (anchors x nodes) at a time and turned into triplets.
    """
    n = graph.n_nodes
    base = graph.matrix_t if toward else graph.matrix
    u, v = graph.link_u[anchors.link], graph.link_v[anchors.link]
    if toward:
        w_u, w_v = anchors.to_from_u, anchors.to_from_v
    else:
        w_u, w_v = anchors.from_to_u, anchors.from_to_v
    groups = [(np.array([u[i], v[i]]), np.array([w_u[i], w_v[i]])) for i in range(len(anchors))]
    augmented = _with_sources(base, groups)
    chunk = max(1, max_cells // (n + len(anchors)))
    for start in range(0, len(anchors), chunk):
        idx = np.arange(start, min(start + chunk, len(anchors)))
        dist = dijkstra(augmented, directed=True, indices=n + idx, limit=limit_s)[:, :n]
        rows, cols = np.nonzero(dist <= limit_s)
        yield idx[rows], cols, dist[rows, cols]


def times_within(
    graph: StreetGraph,
    points: PointsLike,
    max_minutes: float,
    *,
    direction: Literal["to", "from"] = "to",
    snap: pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Minutes between points and every node within ``max_minutes``, as a long table.

    Parameters
    ----------
    points
        Points (e.g. facilities for E2SFCA). They snap to the nearest link
        (:func:`snap_points`); unsnapped points have no row.
    max_minutes
        Cutoff (minutes); node-point pairs beyond it are left out.
    direction
        ``to``: time from each node to the point (people travelling to a facility);
        ``from``: time from the point to each node.

    Returns
    -------
    DataFrame ``point`` (position in ``points``), ``node`` (node index), ``node_id``,
    ``minutes``; sorted by point then node.
    """
    if not max_minutes > 0:
        raise BadArgumentError(f"max_minutes must be > 0, got {max_minutes!r}")
    snap = snap if snap is not None else snap_points(graph, points, settings=settings)
    ok = np.flatnonzero(snap["snapped"].to_numpy(bool))
    anchors = _anchors_from_snap(snap)
    parts_p, parts_n, parts_t = [], [], []
    for p, node, secs in _reach(graph, anchors, max_minutes * 60.0, toward=direction == "to"):
        parts_p.append(ok[p])
        parts_n.append(node)
        parts_t.append(secs)
    point = np.concatenate(parts_p) if parts_p else np.zeros(0, np.int64)
    node = np.concatenate(parts_n) if parts_n else np.zeros(0, np.int64)
    secs = np.concatenate(parts_t) if parts_t else np.zeros(0)
    order = np.lexsort((node, point))
    return pd.DataFrame({
        "point": point[order].astype(np.int64), "node": node[order].astype(np.int64),
        "node_id": graph.node_id[node[order]], "minutes": secs[order] / 60.0,
    })


def cumulative_counts(
    graph: StreetGraph,
    facilities: PointsLike,
    targets: Mapping[str, np.ndarray] | None = None,
    *,
    thresholds_min: Sequence[int] | None = None,
    snap: pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Number of facilities of each target reachable from every node within each
    threshold (minutes).

    Facilities at the same place on the same link are searched once. Returns a DataFrame
    indexed by node index with int32 columns ``<target>_count_<N>min``.
    """
    s = settings or get_settings()
    thresholds = tuple(s.time_thresholds_min if thresholds_min is None else thresholds_min)
    snap = snap if snap is not None else snap_points(graph, facilities, settings=s)
    targets = {"all": np.ones(len(snap), dtype=bool)} if targets is None else targets
    ok = snap["snapped"].to_numpy(bool)
    weights = np.column_stack(
        [(_as_mask(sel, len(snap)) & ok) for sel in targets.values()]
    ).astype(np.int32) if targets else np.zeros((len(snap), 0), np.int32)
    n = graph.n_nodes
    out = np.zeros((n, len(targets), len(thresholds)), dtype=np.int32)
    used = weights.any(axis=1)
    if used.any():
        sub = snap[used]
        key = pd.DataFrame({"link": sub["link"].to_numpy(),
                            "off": np.round(sub["offset_m"].to_numpy(), 2)})
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(key))
        w = np.zeros((len(uniques), weights.shape[1]), dtype=np.int32)
        np.add.at(w, codes, weights[used])
        first_of = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
        anchors = _anchors_from_snap(sub.iloc[first_of])
        limits = np.asarray(thresholds, dtype=float) * 60.0
        nb = len(limits)
        for p, node, secs in _reach(graph, anchors, float(limits.max()), toward=True):
            # counted in the first threshold >= secs, then in every later one (cumsum)
            cell = node * nb + np.searchsorted(limits, secs, side="left")
            for k in range(weights.shape[1]):
                out[:, k] += np.bincount(cell, weights=w[p, k],
                                         minlength=n * nb).reshape(n, nb).astype(np.int32)
        np.cumsum(out, axis=2, out=out)
    cols = {}
    for k, name in enumerate(targets):
        for j, t in enumerate(thresholds):
            cols[f"{name}_count_{t}min"] = out[:, k, j]
    return pd.DataFrame(cols)


# --- isochrones ------------------------------------------------------------------------------


def isochrones(
    graph: StreetGraph,
    origin: BaseGeometry | tuple[float, float],
    *,
    minutes: Sequence[int] | None = None,
    buffer_m: float | None = None,
    cell_m: float | None = None,
    settings: Settings | None = None,
) -> gpd.GeoDataFrame:
    """Isochrone polygons around ``origin`` (graph CRS), one per threshold.

    Exact times are computed along every reachable link, including the reachable part of
    links reached at one end only, sampled every half cell. The places within
    ``buffer_m`` of a street point reachable in ``T`` minutes form the ``T``-minute
    isochrone, computed on a grid of ``cell_m`` cells (a disk-shaped minimum filter of the
    time of the street points in each cell) and traced along cell edges. Polygons are
    therefore valid, exactly nested (``T1 < T2`` implies polygon 1 within polygon 2),
    and have holes where no street is reachable; never a convex hull.

    Parameters
    ----------
    origin
        Start point (shapely Point or (x, y)) in the graph's CRS; it snaps to the
        nearest link within ``settings.snap_max_m``.
    minutes
        Thresholds (default ``settings.time_thresholds_min``).
    buffer_m, cell_m
        Reach off the street and grid resolution (defaults ``settings.isochrone_buffer_m``
        and ``settings.isochrone_cell_m``; the cell grows so that the grid stays under
        4 million cells).

    Returns
    -------
    GeoDataFrame ``mode``, ``minutes``, ``area_m2``, ``street_km`` (reachable street
    length), geometry (MultiPolygon), in the graph's CRS.
    """
    s = settings or get_settings()
    mins = tuple(s.time_thresholds_min if minutes is None else minutes)
    if not mins or list(mins) != sorted(set(mins)) or mins[0] <= 0:
        raise BadArgumentError(
            f"isochrone minutes must be increasing positive values, got {mins}")
    buffer = s.isochrone_buffer_m if buffer_m is None else float(buffer_m)
    cell = s.isochrone_cell_m if cell_m is None else float(cell_m)
    pt = origin if isinstance(origin, BaseGeometry) else Point(*origin)
    snap = snap_points(graph, [pt], settings=s)
    if not snap["snapped"].iloc[0]:
        raise InputFileError(
            f"isochrone origin {pt.wkt} is more than {s.snap_max_m:g} m from every "
            f"{graph.mode} street of the graph"
        )
    limit = mins[-1] * 60.0
    samples = reachable_samples(graph, snap, limit, step_m=cell / 2)
    reach = samples.seconds <= limit
    xy, t = samples.xy[reach], samples.seconds[reach]
    lo = xy.min(axis=0) - buffer - 2 * cell
    hi = xy.max(axis=0) + buffer + 2 * cell
    cell = max(cell, float(np.sqrt((hi - lo).prod() / 4e6)))
    ncol = int(np.ceil((hi[0] - lo[0]) / cell))
    nrow = int(np.ceil((hi[1] - lo[1]) / cell))
    top = lo[1] + nrow * cell
    col = np.floor((xy[:, 0] - lo[0]) / cell).astype(np.int64)
    row = np.floor((top - xy[:, 1]) / cell).astype(np.int64)
    grid = np.full(nrow * ncol, np.inf, dtype=np.float32)
    np.minimum.at(grid, row * ncol + col, t.astype(np.float32))
    # earliest time of the street points within buffer_m of each cell; traced cell edges
    # lie half a cell beyond the cell centres tested, hence the half-cell smaller disk
    near = _disk_min_filter(grid.reshape(nrow, ncol), max(buffer / cell - 0.5, 0.0))
    rows = []
    for m in mins:
        geom = _trace(near <= np.float32(m * 60.0), lo[0], top, cell)
        rows.append({"mode": graph.mode, "minutes": int(m), "area_m2": geom.area,
                     "street_km": samples.street_m(m * 60.0) / 1000, "geometry": geom})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=graph.crs)


@dataclass(frozen=True)
class Samples:
    """Points along links with the time (s) to reach them from an origin."""

    xy: np.ndarray
    seconds: np.ndarray
    link: np.ndarray
    offset_m: np.ndarray

    def street_m(self, limit_s: float) -> float:
        """Length of street (m) reachable within ``limit_s``, to the sampling step."""
        same = self.link[1:] == self.link[:-1]
        both = (self.seconds[1:] <= limit_s) & (self.seconds[:-1] <= limit_s) & same
        return float((self.offset_m[1:] - self.offset_m[:-1])[both].sum())


def _trace(inside: np.ndarray, left: float, top: float, cell: float) -> MultiPolygon:
    """The cells of a boolean grid as polygons traced along cell edges (4-connected, so
    parts touching at a corner are separate polygons and the result is valid)."""
    from rasterio.features import shapes
    from rasterio.transform import from_origin

    rows_any = np.flatnonzero(inside.any(axis=1))
    if rows_any.size == 0:
        return MultiPolygon()
    cols_any = np.flatnonzero(inside.any(axis=0))
    r0, r1, c0, c1 = rows_any[0], rows_any[-1] + 1, cols_any[0], cols_any[-1] + 1
    crop = np.ascontiguousarray(inside[r0:r1, c0:c1])
    transform = from_origin(left + c0 * cell, top - r0 * cell, cell, cell)
    polys = [
        shapely.polygons(shapely.linearrings(np.asarray(g["coordinates"][0])),
                         holes=[shapely.linearrings(np.asarray(h))
                                for h in g["coordinates"][1:]] or None)
        for g, _ in shapes(crop.view(np.uint8), mask=crop, connectivity=4,
                           transform=transform)
    ]
    return MultiPolygon(polys)


def _disk_min_filter(values: np.ndarray, radius: float) -> np.ndarray:
    """Minimum of ``values`` over a disk of ``radius`` cells around each cell.

    The disk is the union of its rows: a 1-D minimum filter of the row's half-width,
    shifted by the row's offset (exact for a digital disk, O(cells x radius)).
    """
    r = int(np.floor(radius))
    out = values.copy()
    by_width: dict[int, np.ndarray] = {}
    for dy in range(-r, r + 1):
        w = int(np.floor(np.sqrt(max(radius**2 - dy**2, 0.0))))
        if w not in by_width:
            by_width[w] = minimum_filter1d(values, size=2 * w + 1, axis=1, mode="constant",
                                           cval=np.inf)
        row_min = by_width[w]
        if dy > 0:
            np.minimum(out[dy:], row_min[:-dy], out=out[dy:])
        elif dy < 0:
            np.minimum(out[:dy], row_min[-dy:], out=out[:dy])
        else:
            np.minimum(out, row_min, out=out)
    return out


def reachable_samples(
    graph: StreetGraph,
    origin_snap: pd.DataFrame,
    limit_s: float,
    *,
    step_m: float,
) -> Samples:
    """Points at most ``step_m`` apart along every link reachable from a snapped origin
    within ``limit_s``, with the exact time (s) to reach each point: links reached at
    one end only are sampled whole, their far points getting times above ``limit_s``
    (or inf where the link's direction forbids them).
    """
    anchors = _anchors_from_snap(origin_snap)
    n = graph.n_nodes
    augmented = _with_sources(graph.matrix, [_away_groups(graph, anchors)])
    t_node = dijkstra(augmented, directed=True, indices=n, limit=limit_s)[:n]
    tu, tv = t_node[graph.link_u], t_node[graph.link_v]
    near = (np.minimum(tu, tv) <= limit_s)
    near[anchors.link] = True
    links = np.flatnonzero(near)
    length = graph.link_length_m[links]
    n_s = np.maximum(2, np.ceil(length / step_m).astype(np.int64) + 1)
    link_of = np.repeat(links, n_s)
    k = np.arange(n_s.sum()) - np.repeat(np.cumsum(n_s) - n_s, n_s)
    off = length[np.repeat(np.arange(links.size), n_s)] * k / np.repeat(n_s - 1, n_s)
    fwd, bwd = _interp(graph, link_of, off, (graph.vtx_fwd_s, graph.vtx_bwd_s))
    via_u = np.where(graph.link_forward[link_of], tu[link_of] + fwd, np.inf)
    via_v = np.where(graph.link_backward[link_of],
                     tv[link_of] + graph.link_bwd_s[link_of] - bwd, np.inf)
    t = np.minimum(via_u, via_v)
    o_link, o_off = int(anchors.link[0]), float(anchors.offset_m[0])
    on = link_of == o_link
    if on.any():
        (o_fwd, o_bwd) = _interp(graph, np.array([o_link]), np.array([o_off]),
                                 (graph.vtx_fwd_s, graph.vtx_bwd_s))
        ahead = on & (off >= o_off) & graph.link_forward[o_link]
        behind = on & (off <= o_off) & graph.link_backward[o_link]
        t[ahead] = np.minimum(t[ahead], fwd[ahead] - o_fwd[0])
        t[behind] = np.minimum(t[behind], o_bwd[0] - bwd[behind])
    return Samples(xy=_xy_along(graph, link_of, off), seconds=t, link=link_of, offset_m=off)


def _xy_along(graph: StreetGraph, link: np.ndarray, offset: np.ndarray) -> np.ndarray:
    x, y = _interp(graph, link, offset, (graph.vtx_xy[:, 0], graph.vtx_xy[:, 1]))
    return np.column_stack([x, y])


# --- targets and the per-node table ----------------------------------------------------------


def targets_from_facilities(
    facilities: pd.DataFrame,
    *,
    subcategories: Iterable[str] | None = None,
    settings: Settings | None = None,
) -> dict[str, np.ndarray]:
    """Access targets: every category of :data:`CATEGORIES` (plus any other category
    present) and the key subcategories (default ``settings.access_subcategories``), as
    boolean masks over ``facilities``. Targets without facilities are kept (so every
    town has the same columns)."""
    s = settings or get_settings()
    missing = [c for c in ("category", "subcategory") if c not in facilities.columns]
    if missing:
        raise MissingColumnsError("facilities", missing, list(facilities.columns))
    subs = tuple(s.access_subcategories if subcategories is None else subcategories)
    category = facilities["category"].astype("string")
    subcategory = facilities["subcategory"].astype("string")
    extra = sorted(set(category.dropna()) - set(CATEGORIES))
    out: dict[str, np.ndarray] = {}
    for cat in (*CATEGORIES, *extra):
        out[cat] = (category == cat).fillna(False).to_numpy(bool)
    for sub in subs:
        if sub in out:
            raise SettingsError(f"access_subcategories: {sub!r} is a category key, not a "
                                "subcategory")
        out[sub] = (subcategory == sub).fillna(False).to_numpy(bool)
    return out


@dataclass(frozen=True)
class NodeAccess:
    """Access of every node of a graph: the node table and the facility snap report."""

    nodes: gpd.GeoDataFrame
    snap: pd.DataFrame
    targets: tuple[str, ...]


def node_access(
    graph: StreetGraph,
    facilities: gpd.GeoDataFrame,
    targets: Mapping[str, np.ndarray] | None = None,
    *,
    thresholds_min: Sequence[int] | None = None,
    settings: Settings | None = None,
) -> NodeAccess:
    """Nearest-facility minutes and cumulative counts for every node.

    Returns the node table (``node_id``, ``<target>_minutes``,
    ``<target>_count_<N>min``, geometry) and the snap report of the facilities (one row
    per facility: ``snapped``, ``snap_distance_m``...). Facilities farther than
    ``settings.snap_max_m`` from the graph are logged and left out.
    """
    s = settings or get_settings()
    if targets is None:
        targets = targets_from_facilities(facilities, settings=s)
    snap = snap_points(graph, facilities, settings=s)
    far = ~snap["snapped"].to_numpy(bool)
    if far.any():
        log.warning("%d of %d facilities are more than %g m from the %s graph: left out",
                    int(far.sum()), len(snap), s.snap_max_m, graph.mode)
    minutes = nearest_times(graph, facilities, targets, snap=snap, settings=s)
    counts = cumulative_counts(graph, facilities, targets, thresholds_min=thresholds_min,
                               snap=snap, settings=s)
    table = pd.concat([minutes.add_suffix("_minutes"), counts], axis=1)
    nodes = graph.nodes_frame()
    for col in table.columns:
        nodes[col] = table[col].to_numpy()
    nodes = nodes[["node_id", *table.columns, "geometry"]]
    return NodeAccess(nodes=nodes, snap=snap, targets=tuple(targets))


def facility_snaps(
    graph: StreetGraph, facilities: gpd.GeoDataFrame, snap: pd.DataFrame
) -> gpd.GeoDataFrame:
    """Where each facility joins the street graph: the facility's identifying columns,
    ``snapped`` (False: farther than ``snap_max_m``, left out), ``snap_distance_m``, the
    link (``u``, ``v`` node ids) and ``offset_m`` from ``u``; geometry: the snapped point
    on the street (the facility's own point when left out)."""
    keep = [c for c in ("facility_id", "source", "category", "subcategory", "name")
            if c in facilities.columns]
    out = pd.DataFrame(facilities[keep].reset_index(drop=True))
    ok = snap["snapped"].to_numpy(bool)
    link = snap["link"].to_numpy(np.int64)
    out["snapped"] = ok
    out["snap_distance_m"] = snap["snap_distance_m"].to_numpy()
    ids = pd.array(np.zeros(len(out), dtype=np.int64), dtype="Int64")
    u, v = ids.copy(), ids.copy()
    u[ok] = graph.node_id[graph.link_u[link[ok]]]
    v[ok] = graph.node_id[graph.link_v[link[ok]]]
    u[~ok] = pd.NA
    v[~ok] = pd.NA
    out["u"], out["v"] = u, v
    out["offset_m"] = snap["offset_m"].to_numpy()
    own = facilities.geometry.to_numpy()
    geometry = np.where(ok, shapely.points(snap[["x", "y"]].to_numpy()), own)
    return gpd.GeoDataFrame(out, geometry=geometry, crs=graph.crs)


def link_minutes(
    graph: StreetGraph,
    node_minutes: pd.DataFrame,
    snap: pd.DataFrame,
    targets: Mapping[str, np.ndarray],
) -> pd.DataFrame:
    """Minutes from the middle of every link to the nearest facility of each target.

    Leaves the midpoint towards either end (then the node's time) or goes straight to a
    facility on the same link, in the directions the link allows. ``node_minutes`` is
    :func:`nearest_times`' result and ``snap`` the facilities' :func:`snap_points`.
    """
    links = np.arange(graph.n_links)
    mid = _anchors(graph, links, graph.link_length_m / 2)
    ok = snap["snapped"].to_numpy(bool)
    out = {}
    for name, sel in targets.items():
        t_node = node_minutes[name].to_numpy() * 60.0
        t_node = np.where(np.isnan(t_node), np.inf, t_node)
        best = np.minimum(mid.from_to_u + t_node[graph.link_u],
                          mid.from_to_v + t_node[graph.link_v])
        f = _anchors_from_snap(snap[_as_mask(sel, len(snap)) & ok])
        if len(f):
            m = mid.take(f.link)
            ahead = f.offset_m >= m.offset_m
            with np.errstate(invalid="ignore"):  # inf - inf where the direction is closed
                direct = np.where(ahead, f.to_from_u - m.to_from_u, m.from_to_u - f.from_to_u)
            direct = np.where(np.isnan(direct), np.inf, direct)
            np.minimum.at(best, f.link, direct)
        out[name] = np.where(np.isfinite(best), best / 60.0, np.nan)
    return pd.DataFrame(out)


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
