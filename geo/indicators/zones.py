"""Indicators per zone (H3 cell or commune): facility counts and counts per 10,000
inhabitants (:func:`facility_counts`), access times and counts from the graph nodes inside
the zone or the nearest one (:func:`access_by_zone`), and the population of a cell
(:func:`cell_population`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from geo._categories import CATEGORY_KEYS
from geo.errors import MissingColumnsError, MissingCrsError
from geo.settings import Settings, get_settings

#: Facility categories (ARCHITECTURE.md); every layer gets ``n_<category>`` for each.
CATEGORIES = CATEGORY_KEYS

#: Thresholds (minutes) of the ``<mode>_<target>_count_<N>min`` indicators.
COUNT_MINUTES = (10, 15)
#: Cells with fewer estimated inhabitants get no ``n_<category>_per_10k`` (one facility
#: among 10 people would read 1,000 per 10,000).
MIN_CELL_POPULATION = 100.0


# --- facilities -----------------------------------------------------------------------------


def facility_counts(
    facilities: pd.DataFrame, key: str, *, subcategories: Iterable[str] | None = None
) -> pd.DataFrame:
    """``n_<category>`` (all of :data:`CATEGORIES`) and ``n_<subcategory>`` per zone.

    Parameters
    ----------
    facilities
        Facility table with ``category``, ``subcategory`` and the zone column ``key``
        (rows with a missing key are ignored).
    subcategories
        Subcategories to count (default: those present).

    Returns
    -------
    DataFrame indexed by ``key`` (zones with at least one facility), integer counts.
    """
    missing = [c for c in ("category", "subcategory", key) if c not in facilities.columns]
    if missing:
        raise MissingColumnsError("facilities", missing, list(facilities.columns))
    f = facilities[facilities[key].notna()]
    cats = pd.crosstab(f[key], f["category"]).reindex(columns=list(CATEGORIES), fill_value=0)
    cats.columns = [f"n_{c}" for c in cats.columns]
    subs_wanted = sorted(set(f["subcategory"].dropna()) if subcategories is None
                         else set(subcategories))
    subs = pd.crosstab(f[key], f["subcategory"]).reindex(columns=subs_wanted, fill_value=0)
    subs.columns = [f"n_{c}" for c in subs.columns]
    out = cats.join(subs, how="outer").fillna(0).astype("int64")
    out.index.name = key
    return out


def _per_10k(
    counts: pd.DataFrame, population: pd.Series, *, min_population: float = 0.0
) -> pd.DataFrame:
    """``n_<category>_per_10k``; missing where the population is 0 or below
    ``min_population``."""
    pop = population.reindex(counts.index).astype(float)
    pop = pop.where((pop > 0) & (pop >= min_population))
    out = pd.DataFrame(index=counts.index)
    for cat in CATEGORIES:
        col = f"n_{cat}"
        if col in counts:
            out[f"{col}_per_10k"] = counts[col] / pop * 10_000
    return out


# --- access times ---------------------------------------------------------------------------

_MIN_RE = re.compile(r"^(?P<target>.+)_minutes$")
_COUNT_RE = re.compile(r"^(?P<target>.+)_count_(?P<n>\d+)min$")


def _node_columns(nodes: pd.DataFrame) -> tuple[list[str], dict[str, dict[int, str]]]:
    """Targets with a ``<target>_minutes`` column, and their count columns by minutes."""
    targets = [m.group("target") for c in nodes.columns if (m := _MIN_RE.match(str(c)))]
    counts: dict[str, dict[int, str]] = {}
    for c in nodes.columns:
        if m := _COUNT_RE.match(str(c)):
            counts.setdefault(m.group("target"), {})[int(m.group("n"))] = str(c)
    return targets, counts


def _walk_minutes(distance_m: np.ndarray, settings: Settings) -> np.ndarray:
    return np.asarray(distance_m, dtype=float) / (settings.walk_speed_kmh * 1000.0 / 60.0)


def access_by_zone(
    nodes: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame,
    *,
    key: str,
    mode: str,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Access-time indicators per zone from graph nodes (rules: :mod:`geo.indicators`).

    Parameters
    ----------
    nodes
        Access nodes (``access_<mode>_nodes.parquet``): point geometries and
        ``<target>_minutes`` / ``<target>_count_<N>min`` columns.
    zones
        Polygons with the id column ``key`` (cells or communes).
    mode
        ``walk`` or ``bike`` (the column prefix).

    Returns
    -------
    DataFrame indexed by ``key``: ``<mode>_<target>_minutes_min``, ``_minutes_median``,
    ``_count_10min``, ``_count_15min`` for every target, and ``<mode>_nodes`` (number of
    graph nodes in the zone).
    """
    s = settings or get_settings()
    s.speed_kmh(mode)  # validates the mode
    if nodes.crs is None or zones.crs is None:
        raise MissingCrsError("access nodes and zones need a CRS")
    targets, count_cols = _node_columns(nodes)
    if not targets:
        raise MissingColumnsError("access nodes", ["<target>_minutes"], list(nodes.columns))
    pts = nodes[[*nodes.columns.difference(["geometry"])]].copy()
    pts = gpd.GeoDataFrame(pts, geometry=nodes.geometry.to_crs(zones.crs).values,
                           crs=zones.crs)
    joined = gpd.sjoin(pts, zones[[key, "geometry"]], how="inner", predicate="within")
    grouped = joined.groupby(key)
    index = pd.Index(zones[key].to_numpy(), name=key)
    n_nodes = grouped.size().reindex(index).fillna(0).astype("int64")
    cols: dict[str, pd.Series] = {f"{mode}_nodes": n_nodes}

    # Zones without nodes: the nearest node, plus a walked leg.
    empty = (n_nodes == 0).to_numpy()
    near_zone = np.zeros(len(index), dtype=bool)  # zones filled from a nearest node
    near_idx = np.zeros(0, dtype=np.int64)
    leg = np.zeros(0)
    if empty.any() and len(pts):
        xy = np.column_stack([pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy()])
        zempty = zones.set_index(key).loc[index[empty]]
        centre = zempty.geometry.centroid
        outside = ~zempty.geometry.contains(centre)
        centre[outside] = zempty.geometry[outside].representative_point()
        dist, idx = cKDTree(xy).query(np.column_stack([centre.x, centre.y]))
        ok = dist <= s.nearest_node_max_m
        near_zone[np.flatnonzero(empty)[ok]] = True
        near_idx, leg = idx[ok], _walk_minutes(dist[ok], s)

    def per_zone(col: str, how: str) -> np.ndarray:
        values = pd.to_numeric(joined[col], errors="coerce").groupby(joined[key])
        return np.array(getattr(values, how)().reindex(index), dtype=float)

    def at_nearest(col: str) -> np.ndarray:
        return pd.to_numeric(pts[col], errors="coerce").to_numpy(dtype=float)[near_idx]

    for target in targets:
        col = f"{target}_minutes"
        tmin, tmed = per_zone(col, "min"), per_zone(col, "median")
        fill = at_nearest(col) + leg
        tmin[near_zone] = fill
        tmed[near_zone] = fill
        cols[f"{mode}_{target}_minutes_min"] = pd.Series(tmin, index=index)
        cols[f"{mode}_{target}_minutes_median"] = pd.Series(tmed, index=index)
        available = count_cols.get(target, {})
        for limit in COUNT_MINUTES:
            counts = (per_zone(available[limit], "median") if limit in available
                      else np.full(len(index), np.nan))
            if available:
                # lower bound: the node's count at the largest threshold <= limit - leg
                lower = np.zeros(len(near_idx))
                for n in sorted(available):
                    lower = np.where(n <= limit - leg, at_nearest(available[n]), lower)
                counts[near_zone] = lower
            cols[f"{mode}_{target}_count_{limit}min"] = pd.Series(counts, index=index)
    return pd.DataFrame(cols, index=index)


# --- population -------------------------------------------------------------------------------


def cell_population(
    pieces: pd.DataFrame,
    commune_population: pd.Series,
    *,
    piece_built: pd.Series | None = None,
    commune_built: pd.Series | None = None,
) -> pd.DataFrame:
    """Spread commune populations over cells (see the docstring of :mod:`geo.indicators`).

    Parameters
    ----------
    pieces
        Cell x commune pieces with ``h3``, ``insee``, ``commune_share`` and a unique
        index.
    commune_population
        Population by ``insee``.
    piece_built, commune_built
        Artificialised area of each piece (aligned on ``pieces``' index) and of each
        whole commune (by ``insee``), in the same unit; None without land cover.

    Returns
    -------
    DataFrame aligned on ``pieces``: ``population`` of the piece and ``weighting``
    (``built`` or ``area``).
    """
    pop = commune_population.reindex(pieces["insee"]).to_numpy(dtype=float)
    weight = pieces["commune_share"].to_numpy(dtype=float)
    how = np.full(len(pieces), "area", dtype=object)
    if piece_built is not None and commune_built is not None:
        cb = commune_built.reindex(pieces["insee"]).to_numpy(dtype=float)
        pb = piece_built.reindex(pieces.index).to_numpy(dtype=float)
        use = np.isfinite(cb) & (cb > 0) & np.isfinite(pb)
        weight = np.where(use, pb / np.where(use, cb, 1.0), weight)
        how = np.where(use, "built", how)
    return pd.DataFrame({"population": np.nan_to_num(pop) * weight, "weighting": how},
                        index=pieces.index)
