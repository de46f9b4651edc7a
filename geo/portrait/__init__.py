"""Town portrait: similar towns (peers), indicators compared with them and with France,
and national statistics by typology (the Data Territoria tables).

Peers
-----
A town's peers are the other current communes that share the attributes listed in a
:class:`PeerRule` with it, and whose legal population lies within a band around its own:

- ``criteria`` (default ``settings.peer_criteria`` = programme, centralite), each one of
  :data:`PEER_CRITERIA`: ``programme`` (PVD, ACV or neither), ``centralite`` (ANCT/INRAE
  level), ``densite`` (INSEE 7-level grid), ``typologie``, ``ruralite``, ``montagne``
  (massif or none), ``aav_categorie``, ``region``, ``departement``;
- ``population_ratio`` r (default ``settings.peer_population_ratio`` = 0.5): population
  between r x P and P / r (x0.5..x2) for a town of population P.

A criterion the town itself has no value for is not applied (and the report says so).
When fewer than ``settings.peer_min_count`` (5) communes follow the rule, the rule is
widened step by step, in this documented order, until enough peers are found:

1. the geographic criteria (``region``, ``departement``) are dropped;
2. the population band is widened from r to r² (x0.5..x2 becomes x0.25..x4);
3. the other criteria are dropped one at a time, the last listed first (so
   ``programme``, listed first by default, is kept longest);
4. the population band is widened again, from r² to r⁴ (x0.0625..x16);
5. the population band is dropped (all communes).

Every rule tried is kept with its count (:attr:`PeerSelection.steps`) and the report
states it.

Portrait
--------
Every indicator of :data:`INDICATORS` with the town's value, the median over its peers,
the town's percentile among its peers and the median over all communes ("France").
Values come from the national commune tables (``data/interim/``, see ARCHITECTURE.md)
first, then from the town runs (``data/out/<insee>/communes.parquet``: access times,
land cover, chain share), so the town and its peers are compared on the same sources.
Indicators that exist only where a town run was made (access times) are compared with
the peers and communes that have one; the counts are always given. A missing value stays
missing ("n.d." with the reason), never zero.

The percentile is the mid-rank percentile of the town among its peers with a value
(``scipy.stats.percentileofscore(kind="mean")``): the share of peers below the town plus
half the share equal to it, in 0..100; 50 means the town sits at the peers' median.

The package's modules, one job each: :mod:`~geo.portrait.table` (indicators, percentiles,
the indicator table), :mod:`~geo.portrait.peers` (peers), :mod:`~geo.portrait.build` (the
portrait of a town), :mod:`~geo.portrait.render` (its HTML page and CSV files),
:mod:`~geo.portrait.typology` (national statistics by typology). Every name is
re-exported here.
"""

from __future__ import annotations

from geo.portrait.build import (
    DISTINCTION_COLUMNS,  # noqa: F401
    Portrait,
    _french,  # noqa: F401
    build_portrait,
    distinguishing_indicators,  # noqa: F401
    town_values,
)
from geo.portrait.peers import (
    PEER_CRITERIA,
    PeerRule,
    PeerSelection,
    _programme,  # noqa: F401
    _with_programme,  # noqa: F401
    find_peers,
)
from geo.portrait.render import (
    PORTRAIT_SECTIONS,  # noqa: F401
    PRINT_CSS,  # noqa: F401
    render_portrait_html,
    write_portrait,
)

# Every name of the submodules is re-exported (F401 silenced for those outside __all__).
from geo.portrait.table import (
    _INSEE_DIR,  # noqa: F401
    INDICATORS,
    THEME_ACCESS,  # noqa: F401
    THEME_APL,  # noqa: F401
    THEME_CULTURE,  # noqa: F401
    THEME_FACILITIES,  # noqa: F401
    THEME_LANDCOVER,  # noqa: F401
    THEME_POPULATION,  # noqa: F401
    THEME_SOURCES,  # noqa: F401
    Indicator,
    _local_row,  # noqa: F401
    indicator_table,
    local_rows,  # noqa: F401
    percentile_rank,
)
from geo.portrait.typology import (
    PERIODS,  # noqa: F401
    render_typology_html,
    typology_tables,
    write_typology_stats,
)

__all__ = [
    "INDICATORS",
    "PEER_CRITERIA",
    "Indicator",
    "PeerRule",
    "PeerSelection",
    "Portrait",
    "build_portrait",
    "find_peers",
    "indicator_table",
    "percentile_rank",
    "render_portrait_html",
    "render_typology_html",
    "town_values",
    "typology_tables",
    "write_portrait",
    "write_typology_stats",
]
