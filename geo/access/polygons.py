"""Isochrone polygons from a point: the reachable parts of the streets (partly reached links
included) sampled and traced into polygons, never a convex hull (:func:`isochrones`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.ndimage import minimum_filter1d
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import MultiPolygon, Point
from shapely.geometry.base import BaseGeometry

from geo.access.searches import _away_groups, _with_sources
from geo.access.snapping import _anchors_from_snap, _interp, snap_points
from geo.errors import BadArgumentError, InputFileError
from geo.network import StreetGraph
from geo.settings import Settings, get_settings

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
