"""Indicators per H3 cell and per commune: APL, facilities, access times, E2SFCA.

Pure functions on tables; the town stage that reads the inputs and writes
``h3_r<res>.parquet`` and ``communes.parquet`` is :func:`aggregate_town` /
:func:`write_aggregate` (CLI ``pvdgeo aggregate``).

APL (accessibilité potentielle localisée, DREES, millésime 2021) measures access to
five health professions per commune. :func:`apl_by_commune` reads the five national files,
re-keys them to current communes (COG 2026) and returns one row per commune with the
ARCHITECTURE.md field names:

=====================  ============================================================
``apl_mg``             general practitioners aged 65 or less: consultations per
                       inhabitant per year (standardised by age)
``apl_mg_tous_ages``   general practitioners of any age (the DREES "sans borne d'âge"
                       column), same unit
``apl_dentistes``      dentists aged 65 or less: FTE per 100,000 inhabitants
``apl_infirmiers``     nurses aged 65 or less: FTE per 100,000 inhabitants
``apl_kine``           physiotherapists aged 65 or less: FTE per 100,000 inhabitants
``apl_sages_femmes``   midwives: FTE per 100,000 women
``apl_mg_sous_dote``   ``apl_mg < settings.apl_threshold`` (2.5, the under-served
                       threshold of the Data Territoria study); missing when
                       ``apl_mg`` is missing
``apl_population``     population the APL file gives for the commune (2019)
=====================  ============================================================

The GP indicator is the DREES headline one (practitioners aged 65 or less), the same age
bound as the other four professions. APL 2021 is on the 2021-2022 geography: codes of
communes merged since (and the municipal arrondissements of Paris, Lyon and Marseille)
are mapped with :func:`geo.communes.aggregate_to_current`, APL averaged **weighted by the
APL file's population column**. Communes the DREES left without a value keep a missing
value (never zero).

Rules (each documented where it is applied):

APL per cell
    The mean of the APL of the communes a cell straddles, weighted by the share of the
    cell's area in each (communes without a value left out); ``apl_mg_sous_dote`` is
    then recomputed on the cell's value.

Facilities
    ``n_<category>`` and ``n_<subcategory>``: per cell, the town's facility points
    (``facilities.parquet``) whose H3 index is the cell; per commune, the national
    commune counts (``data/interim/facilities_communes.parquet``, a complete
    BPE-based inventory) when built, else the town's points in the commune (their
    ``insee``, else the polygon they fall in). ``n_<category>_per_10k`` per 10,000
    inhabitants (cells: their estimated population, below; only for cells of at least
    ``MIN_CELL_POPULATION`` = 100 inhabitants).

Access times
    For each mode and target, ``<mode>_<target>_minutes_min`` / ``_median`` over the
    graph nodes inside the zone. A zone with no node takes the time of the node nearest
    to its centre (cells: centroid; communes: a point on the surface) plus the
    straight-line distance to that node at walking speed (for both modes: the leg to
    the network is walked), or nothing when that node is farther than
    ``settings.nearest_node_max_m``. ``<mode>_<target>_count_10min`` / ``_15min`` is
    the median over the zone's nodes of the facilities reachable within 10 / 15 minutes;
    a zone with no node takes the nearest node's count at the largest threshold not
    above ``T - walk leg`` (a lower bound; 0 when no threshold fits).

Population per cell
    Commune legal population (latest INSEE vintage) spread over the commune's pieces
    (cell x commune intersections) in proportion to their artificialised CORINE area
    (classes 1xx) when the commune has land cover with some artificialised area, else
    in proportion to their area (documented assumption: people live in the built-up
    part; CORINE's 25 ha minimum unit misses hamlets, which the area fallback covers
    only for communes with no built-up class at all).

E2SFCA (enhanced two-step floating catchment area; Luo & Qi 2009, Dai 2010)
    Supply: general practitioners (facilities of subcategory ``medecin_generaliste``),
    one practitioner per facility row. Demand: cell populations at the cell centroids.
    Travel time t between a cell and a GP: walk from the centroid to its nearest node,
    shortest path on the mode's street graph, walk from the GP's nearest node to the GP
    (walking legs at walking speed). Decay: a Gaussian truncated at the catchment time
    t0 (``settings.e2sfca_catchment_min``, default the largest time threshold, 20 min):
    W(t) = (exp(-t²/(2 t0²)) - exp(-1/2)) / (1 - exp(-1/2)) for t <= t0, else 0, so
    W(0) = 1 and W(t0) = 0. Step 1: R_j = S_j / sum_k P_k W(t_kj); step 2:
    A_k = sum_j R_j W(t_kj); reported per 10,000 inhabitants
    (``e2sfca_mg_<mode>_per_10k``). GPs and residents outside the grid are not seen
    (edge effect at the catchment border). Communes get the population-weighted mean of
    their finest cells.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from geo import access, communes, h3grid, landcover, network, sources
from geo._categories import CATEGORY_KEYS
from geo._io import (
    is_stale,
    read_delimited,
    read_parquet_cached,
    read_parquet_metadata,
    to_number,
    write_parquet,
)
from geo.errors import InputFileError, MissingColumnsError, MissingCrsError
from geo.facilities import COUNTS_FILE
from geo.network import StreetGraph
from geo.settings import Settings, get_settings

__all__ = [
    "APL_PROFESSIONS",
    "CATEGORIES",
    "COUNT_MINUTES",
    "GP_SUBCATEGORY",
    "AggregateResult",
    "AplProfession",
    "access_by_zone",
    "aggregate_town",
    "apl_by_commune",
    "area_weighted",
    "cell_population",
    "e2sfca",
    "facility_counts",
    "gaussian_decay",
    "gp_accessibility",
    "read_apl_file",
    "write_aggregate",
]

log = logging.getLogger(__name__)

#: Facility categories (ARCHITECTURE.md); every layer gets ``n_<category>`` for each.
CATEGORIES = CATEGORY_KEYS
#: Subcategory of general practitioners (supply of the E2SFCA).
GP_SUBCATEGORY = "medecin_generaliste"
#: Thresholds (minutes) of the ``<mode>_<target>_count_<N>min`` indicators.
COUNT_MINUTES = (10, 15)
#: Cells with fewer estimated inhabitants get no ``n_<category>_per_10k`` (one facility
#: among 10 people would read 1,000 per 10,000).
MIN_CELL_POPULATION = 100.0

_CODE_COL = "Code commune"
_POP_COL = "Population totale"


@dataclass(frozen=True)
class AplProfession:
    """One APL indicator: output field, dataset id, French label and unit."""

    field: str
    dataset: str
    label: str
    unit: str
    #: Lower-cased fragments that identify the value column in the DREES file.
    column_has: tuple[str, ...]


APL_PROFESSIONS: tuple[AplProfession, ...] = (
    AplProfession("apl_mg", "apl_mg", "médecins généralistes de 65 ans et moins",
                  "consultations par habitant et par an", ("médecins généralistes", "65 ans")),
    AplProfession("apl_mg_tous_ages", "apl_mg", "médecins généralistes, tous âges",
                  "consultations par habitant et par an",
                  ("médecins généralistes", "sans borne")),
    AplProfession("apl_dentistes", "apl_dentistes", "chirurgiens-dentistes",
                  "ETP pour 100 000 habitants", ("dentistes",)),
    AplProfession("apl_infirmiers", "apl_infirmiers", "infirmiers",
                  "ETP pour 100 000 habitants", ("infirmi",)),
    AplProfession("apl_kine", "apl_kine", "masseurs-kinésithérapeutes",
                  "ETP pour 100 000 habitants", ("kinésithérapeutes",)),
    AplProfession("apl_sages_femmes", "apl_sages_femmes", "sages-femmes",
                  "ETP pour 100 000 femmes", ("sages-femmes",)),
)


def read_apl_file(path: Path, profession: AplProfession) -> pd.DataFrame:
    """One DREES APL file as ``[code, <field>, apl_population]`` (codes as in the file).

    Any separator, encoding and decimal mark are read (``3,5`` as 3.5). Raises
    :class:`InputFileError` for an unreadable or empty file, a file without data rows or
    without one numeric APL value, and :class:`MissingColumnsError` when the code,
    population or APL column is absent; values that are not numbers are counted in a
    warning and left missing.
    """
    df = read_delimited(path, label=f"APL file ({profession.label})")
    candidates = [
        c for c in df.columns
        if c.lower().startswith("apl") and all(f in c.lower() for f in profession.column_has)
    ]
    missing = [c for c in (_CODE_COL, _POP_COL) if c not in df.columns]
    if not candidates:
        missing.append(f"APL column for {profession.label} "
                       f"(containing {', '.join(profession.column_has)})")
    if missing:
        raise MissingColumnsError(f"APL file {path}", missing, list(df.columns))
    if df.empty:
        raise InputFileError(f"APL file {path} has a header but no data rows: no commune "
                             f"has an APL for {profession.label}")
    column = candidates[0]
    out = pd.DataFrame({
        "code": df[_CODE_COL].str.strip().str.zfill(5),
        profession.field: to_number(df[column]).to_numpy(),
        "apl_population": to_number(df[_POP_COL]).to_numpy(),
    })
    text = df[column].fillna("").str.strip()
    unreadable = (out[profession.field].isna().to_numpy()
                  & ~text.isin(["", "NA", "nan"]).to_numpy())
    if out[profession.field].notna().sum() == 0:
        example = f" (e.g. {text[unreadable].iloc[0]!r})" if unreadable.any() else ""
        raise InputFileError(f"APL file {path}: no numeric value in column {column!r}"
                             f"{example}; expected numbers such as 3.5 or 3,5")
    if unreadable.any():
        log.warning("APL file %s: %d value(s) of %r are not numbers (e.g. %r), left missing",
                    path, int(unreadable.sum()), column, text[unreadable].iloc[0])
    bad = out[profession.field] < 0
    if bad.any():
        raise InputFileError(
            f"APL file {path}: {int(bad.sum())} negative value(s) in {column!r} "
            f"(e.g. commune {out.loc[bad, 'code'].iloc[0]}); APL is >= 0"
        )
    return out


def _build(settings: Settings) -> pd.DataFrame:
    frames = []
    for prof in APL_PROFESSIONS:
        raw = read_apl_file(sources.ensure(prof.dataset, settings), prof)
        agg = communes.aggregate_to_current(
            raw, "code", sum_cols=["apl_population"],
            weighted_cols={prof.field: "apl_population"}, settings=settings,
        )
        log.info("APL %s: %d communes with a value, %d current communes from several codes",
                 prof.label, int(agg[prof.field].notna().sum()),
                 int((agg["n_source_codes"] > 1).sum()))
        frames.append(agg.set_index("insee")[[prof.field, "apl_population"]])
    # the population column is the same in the five files: keep the first one's
    table = frames[0].join([f.drop(columns="apl_population") for f in frames[1:]], how="outer")
    return table[[p.field for p in APL_PROFESSIONS] + ["apl_population"]].sort_index() \
        .reset_index()


def apl_by_commune(settings: Settings | None = None) -> pd.DataFrame:
    """APL of the five professions per current commune (see module doc for fields, units).

    Built from the DREES files and cached in ``data/interim/apl_communes.parquet`` (rebuilt
    when older than its inputs or this module). Communes absent from the DREES files are
    absent here; ``apl_mg_sous_dote`` uses ``settings.apl_threshold``.
    """
    s = settings or get_settings()
    cache = s.interim_dir / "apl_communes.parquet"
    inputs = [sources.ensure(p.dataset, s) for p in APL_PROFESSIONS]
    inputs += [Path(__file__), Path(communes.__file__)]
    if is_stale(cache, inputs):
        table = _build(s)
        write_parquet(table, cache, metadata={
            "what": "APL per current commune", "cog_year": s.cog_year,
            "vintages": {p.field: sources.get_dataset(p.dataset, s).vintage
                         for p in APL_PROFESSIONS},
        })
        log.info("wrote %s (%d communes)", cache, len(table))
    table = read_parquet_cached(cache)
    table["apl_mg_sous_dote"] = (table["apl_mg"] < s.apl_threshold).astype("boolean")
    table.loc[table["apl_mg"].isna(), "apl_mg_sous_dote"] = pd.NA
    return table


# --- APL per cell ---------------------------------------------------------------------------


def _below(values: pd.Series, threshold: float) -> pd.Series:
    flag = pd.array(values < threshold, dtype="boolean")
    flag[values.isna().to_numpy()] = pd.NA
    return pd.Series(flag, index=values.index)


def area_weighted(
    pieces: pd.DataFrame, values: pd.DataFrame, columns: Sequence[str], *,
    key: str = "h3", weight: str = "cell_share",
) -> pd.DataFrame:
    """Mean of commune values per cell, weighted by the area share of each commune.

    Parameters
    ----------
    pieces
        Cell x commune table (:func:`geo.h3grid.cell_commune_pieces`) with ``key``,
        ``insee`` and ``weight``.
    values
        Per-commune values with an ``insee`` column.
    columns
        Value columns to average; for each, communes with a missing value are left out
        of that column's weights.

    Returns
    -------
    DataFrame indexed by ``key`` with one column per value column.
    """
    joined = pieces[[key, "insee", weight]].merge(values[["insee", *columns]], on="insee",
                                                  how="left")
    out = pd.DataFrame(index=pd.Index(pieces[key].unique(), name=key))
    for col in columns:
        v = pd.to_numeric(joined[col], errors="coerce")
        w = joined[weight].where(v.notna())
        num = (v * w).groupby(joined[key]).sum(min_count=1)
        den = w.groupby(joined[key]).sum(min_count=1)
        out[col] = (num / den.where(den > 0)).reindex(out.index)
    return out


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
    """Access-time indicators per zone from graph nodes (see the module docstring).

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


# --- graph travel times and E2SFCA -----------------------------------------------------------


def gaussian_decay(minutes: np.ndarray | float, catchment_min: float) -> np.ndarray:
    """Truncated Gaussian distance decay of the E2SFCA: 1 at 0 min, 0 at and beyond
    ``catchment_min`` (see the module docstring)."""
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


# --- population -------------------------------------------------------------------------------


def cell_population(
    pieces: pd.DataFrame,
    commune_population: pd.Series,
    *,
    piece_built: pd.Series | None = None,
    commune_built: pd.Series | None = None,
) -> pd.DataFrame:
    """Spread commune populations over cells (see the module docstring).

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
