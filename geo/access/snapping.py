"""Points on the street graph: points (facilities, an isochrone origin, places) snapped to
the nearest point of the nearest link (:func:`snap_points`, with the partial times along
that link and the snap distance), and the nearest graph node of arbitrary points
(:func:`nearest_nodes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.errors import MissingCrsError
from geo.network import StreetGraph
from geo.settings import Settings, get_settings

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
