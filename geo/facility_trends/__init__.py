"""Facility trends: the change of a commune's offer between BPE vintages.

Vintages
--------
Every catalogue dataset with a ``bpe_year`` is a BPE vintage (:func:`available_vintages`):
the per-commune counts of BPE 2009 and 2013 (mirror) and, in production, the geolocated
files of BPE 2018-2021 and 2023 once downloaded (``pvdgeo fetch bpe_xy_2021``...). Each is
read as equipments per commune code and TYPEQU code (:func:`read_vintage`); old commune
codes are re-keyed to the current COG with :func:`geo.communes.aggregate_to_current`
(counts summed over merged communes). A département that a vintage does not cover
(Mayotte before BPE 2013) has no count for it: empty, never zero.

One nomenclature
----------------
TYPEQU codes map to the subcategories of ``data/categories.toml`` (its ``bpe_2013`` and
``bpe_2021`` codes; a code never maps to two subcategories). The table de passage
``data/bpe_passage.toml`` (``settings.bpe_passage_file``, :func:`load_passage`) documents
how those codes changed: a code observed in two consecutive vintages is one type;
renumbered, split, merged and regrouped codes are joined into one *harmonised type*
(:func:`harmonise`, connected components of the codes over the vintages); redefined,
created and removed codes are types of their own vintages. A type therefore spans a range
of consecutive vintages. Between two vintages ``a < b`` a key (subcategory, group of
subcategories or category) is compared on the types present in both (*champ constant*):

- ``comparable``: every type of the key present in ``a`` or ``b`` is present in both;
- ``partiel``: some types are present in one vintage only; they are left out of the change
  and reported (``hors_champ_debut``, ``hors_champ_fin``);
- ``non comparable``: no type in both; no change is computed.

A type present in one vintage only is thus never counted as facilities created or closed.

Populations
-----------
Per 10,000 inhabitants uses, for each vintage, the legal population of the nearest year
the commune reference has (:data:`geo.communes.POPULATION_YEARS`, 2016-2023; ties go to
the earlier year): BPE 2009 and 2013 use the 2016 legal population (the earliest in the
reference; no older legal population is in the mirror, nor in the BPE count files), BPE
2018 uses 2019, 2021 uses 2020, 2023 uses 2023. With one population for both 2009 and
2013, their per-10k change is the absolute change over that population.

Outputs
-------
- :func:`commune_trends` / :func:`facility_trends_by_commune`: the national commune table
  ``data/interim/facility_trends_communes.parquet`` (fields in ARCHITECTURE.md);
- :func:`typology_trends`, :func:`write_typology_trends`: the trend by petites / moyennes /
  grandes villes, PVD, ACV and France for ``pvdgeo typology-stats --out DIR``;
- :func:`town_trend`, :func:`render_portrait_section`: the town's section of its portrait
  (town, peers, France, a chart over vintages).

The chain / independent split of shops stays a snapshot (OpenStreetMap names and brands,
or the latest geolocated BPE): its trend needs establishments with creation and closure
dates (SIRENE), see :data:`SNAPSHOT_NOTE`.

The package's modules, one job each: :mod:`~geo.facility_trends.passage` (table de passage
and harmonised types), :mod:`~geo.facility_trends.vintages` (BPE vintages, population
years, pairs), :mod:`~geo.facility_trends.keys` (trend keys),
:mod:`~geo.facility_trends.table` (the national commune table),
:mod:`~geo.facility_trends.typology` (statistics by typology),
:mod:`~geo.facility_trends.town` (the portrait's section). Every name is re-exported
here.
"""

from __future__ import annotations

from geo.facility_trends.keys import (
    KEY_SUBCATEGORIES,
    PORTRAIT_CHART_KEYS,  # noqa: F401
    TrendKey,
    trend_keys,
)

# Every name of the submodules is re-exported (F401 silenced for those outside __all__).
from geo.facility_trends.passage import (
    CONNECTING_KINDS,  # noqa: F401
    SEPARATE_KINDS,  # noqa: F401
    HarmonisedType,
    Link,
    Passage,
    bpe_code_subcategories,
    harmonise,
    load_passage,
)
from geo.facility_trends.table import (
    STATUS_LABELS,  # noqa: F401
    TRENDS_FILE,
    Status,  # noqa: F401
    commune_trends,
    facility_trends_by_commune,
    pair_status,  # noqa: F401
    write_commune_trends,
)
from geo.facility_trends.town import (
    TownTrend,
    render_portrait_section,
    town_trend,
    write_town_trend,
)
from geo.facility_trends.typology import (
    SNAPSHOT_NOTE,
    TYPOLOGY_COLUMNS,  # noqa: F401
    render_typology_section,
    types_table,  # noqa: F401
    typology_charts,  # noqa: F401
    typology_trends,
    write_typology_trends,
)
from geo.facility_trends.vintages import (
    Vintage,
    available_vintages,
    population_year_for,
    read_vintage,
    trend_pairs,
)

__all__ = [
    "KEY_SUBCATEGORIES",
    "SNAPSHOT_NOTE",
    "TRENDS_FILE",
    "HarmonisedType",
    "Link",
    "Passage",
    "TownTrend",
    "TrendKey",
    "Vintage",
    "available_vintages",
    "bpe_code_subcategories",
    "commune_trends",
    "facility_trends_by_commune",
    "harmonise",
    "load_passage",
    "population_year_for",
    "read_vintage",
    "render_portrait_section",
    "render_typology_section",
    "town_trend",
    "trend_keys",
    "trend_pairs",
    "typology_trends",
    "write_commune_trends",
    "write_town_trend",
    "write_typology_trends",
]
