"""E2SFCA (enhanced two-step floating catchment area) of general practitioners: the
truncated Gaussian decay (:func:`gaussian_decay`), the two steps on a table of travel
times (:func:`e2sfca`) and the cell values from the street graph (:func:`gp_accessibility`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import pandas as pd

from geo import access
from geo.errors import MissingColumnsError
from geo.indicators.zones import _walk_minutes
from geo.network import StreetGraph
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.indicators: log lines keep their logger name


#: Subcategory of general practitioners (supply of the E2SFCA).
GP_SUBCATEGORY = "medecin_generaliste"


# --- graph travel times and E2SFCA -----------------------------------------------------------


def gaussian_decay(minutes: np.ndarray | float, catchment_min: float) -> np.ndarray:
    """Truncated Gaussian distance decay of the E2SFCA: 1 at 0 min, 0 at and beyond
    ``catchment_min`` (see the docstring of :mod:`geo.indicators`)."""
    t = np.asarray(minutes, dtype=float)
    floor = np.exp(-0.5)
    w = (np.exp(-0.5 * (t / catchment_min) ** 2) - floor) / (1.0 - floor)
    return np.where((t >= 0) & (t < catchment_min), w, 0.0)


def e2sfca(
    times: pd.DataFrame,
    supply: pd.Series,
    demand: pd.Series,
    *,
    catchment_min: float,
    decay: Callable[[np.ndarray, float], np.ndarray] = gaussian_decay,
) -> pd.Series:
    """Enhanced two-step floating catchment area accessibility (per inhabitant).

    Parameters
    ----------
    times
        Long table ``supply``, ``demand``, ``minutes``: travel time from each demand
        location to each supply location (pairs beyond ``catchment_min`` may be absent).
    supply
        Capacity per supply id (e.g. 1 per practitioner).
    demand
        Population per demand id.
    catchment_min
        Catchment time t0 (minutes).
    decay
        ``decay(minutes, catchment_min)`` -> weights in 0..1.

    Returns
    -------
    Series indexed like ``demand``: supply per inhabitant (0 where no supply is in reach).
    """
    missing = [c for c in ("supply", "demand", "minutes") if c not in times.columns]
    if missing:
        raise MissingColumnsError("E2SFCA travel times", missing, list(times.columns))
    t = times[times["minutes"].notna()].copy()
    t["w"] = decay(t["minutes"].to_numpy(dtype=float), catchment_min)
    t = t[(t["w"] > 0) & t["supply"].isin(supply.index) & t["demand"].isin(demand.index)]
    t["pop"] = demand.reindex(t["demand"]).to_numpy(dtype=float)
    weighted_demand = (t["pop"] * t["w"]).groupby(t["supply"]).sum()
    ratio = supply.reindex(weighted_demand.index).astype(float) / weighted_demand.where(
        weighted_demand > 0
    )
    t["r"] = ratio.reindex(t["supply"]).to_numpy()
    access = (t["r"] * t["w"]).groupby(t["demand"]).sum(min_count=1)
    return access.reindex(demand.index).fillna(0.0).rename("e2sfca")


def gp_accessibility(
    demand_points: gpd.GeoSeries,
    population: pd.Series,
    gps: gpd.GeoDataFrame,
    graph: StreetGraph,
    *,
    settings: Settings | None = None,
) -> pd.Series:
    """E2SFCA GPs per 10,000 inhabitants at each demand point, on a street graph.

    Parameters
    ----------
    demand_points
        Points (cell centroids) indexed by zone id, in a metric CRS.
    population
        Population per zone id (same index).
    gps
        General practitioner points (one practitioner per row). They snap to the nearest
        street link (:func:`geo.access.times_within`); those farther than
        ``settings.snap_max_m`` are left out (logged).
    graph
        The mode's street graph (e.g. :func:`geo.network.graph_from_frames` of the
        access stage's files); its mode names the output.

    Returns
    -------
    Series ``e2sfca_mg_<mode>_per_10k`` indexed like ``demand_points``: GPs per 10,000
    inhabitants; NaN where the point is farther than ``settings.nearest_node_max_m``
    from the graph.
    """
    s = settings or get_settings()
    t0 = s.e2sfca_minutes
    name = f"e2sfca_mg_{graph.mode}_per_10k"
    near = access.nearest_nodes(graph, demand_points, settings=s)
    on_graph = near["node"].to_numpy() >= 0
    result = pd.Series(np.nan, index=demand_points.index, name=name)
    result[on_graph] = 0.0
    if len(gps) == 0 or not on_graph.any():
        return result
    # minutes from every node within t0 to each GP (the direction patients travel)
    reach = access.times_within(graph, gps.geometry, t0, direction="to", settings=s)
    unsnapped = len(gps) - reach["point"].nunique()
    if unsnapped:
        log.debug("E2SFCA %s: %d GP(s) not within reach of any node", graph.mode, unsnapped)
    demand = pd.DataFrame({
        "zone": demand_points.index[on_graph],
        "node": near["node"].to_numpy()[on_graph],
        "leg": _walk_minutes(near["distance_m"].to_numpy()[on_graph], s),
    })
    pairs = reach.merge(demand, on="node")
    times = pd.DataFrame({"supply": pairs["point"], "demand": pairs["zone"],
                          "minutes": pairs["minutes"] + pairs["leg"]})
    pop = population.reindex(demand["zone"]).fillna(0.0)
    supply = pd.Series(1.0, index=pd.RangeIndex(len(gps)))
    acc = e2sfca(times, supply, pop, catchment_min=t0)
    result[acc.index] = acc.to_numpy() * 10_000
    return result
