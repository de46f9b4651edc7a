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

The package's modules, one job each: :mod:`~geo.indicators.apl` (APL files and APL per
cell), :mod:`~geo.indicators.zones` (facility counts, access times and population per
zone), :mod:`~geo.indicators.e2sfca` (E2SFCA), :mod:`~geo.indicators.aggregate` (the
stage). Every name is re-exported here.
"""

from __future__ import annotations

from geo.indicators.aggregate import (
    AggregateResult,
    aggregate_town,
    write_aggregate,
)

# Every name of the submodules is re-exported (F401 silenced for those outside __all__).
from geo.indicators.apl import (
    APL_PROFESSIONS,
    AplProfession,
    apl_by_commune,
    area_weighted,
    read_apl_file,
)
from geo.indicators.e2sfca import (
    GP_SUBCATEGORY,
    e2sfca,
    gaussian_decay,
    gp_accessibility,
)
from geo.indicators.zones import (
    CATEGORIES,
    COUNT_MINUTES,
    MIN_CELL_POPULATION,  # noqa: F401
    access_by_zone,
    cell_population,
    facility_counts,
)

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
