"""Access targets and the per-node and per-link tables: targets from the facility table
(categories and subcategories), the minutes and counts of every node
(:func:`node_access`), where each facility joins the graph (:func:`facility_snaps`) and the
minutes from each link's midpoint (:func:`link_minutes`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo._categories import CATEGORY_KEYS
from geo.access.searches import _as_mask, cumulative_counts, nearest_times
from geo.access.snapping import _anchors, _anchors_from_snap, snap_points
from geo.errors import MissingColumnsError, SettingsError
from geo.network import StreetGraph
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.access: log lines keep their logger name


#: Facility categories (``data/categories.toml``); each is an access target.
CATEGORIES: tuple[str, ...] = CATEGORY_KEYS


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
