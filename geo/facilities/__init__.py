"""One facility table from OSM, BPE, culture and energy sources.

Every source is read into the same schema (:data:`FACILITY_COLUMNS`)::

    facility_id, source, source_id, category, subcategory, name, brand, chain, insee,
    power_mw, geometry

with the category and subcategory keys of ``data/categories.toml``
(``settings.categories_file``): ``sante``, ``commerces``, ``culture``, ``education``,
``services``, ``energie``. ``chain`` is a nullable boolean set for shops, restaurants and
cafés only (True for a brand or a national banner, False for an independent, empty when the
source gives no name); ``power_mw`` is set for energy only.

Readers (``read_*``) take a file in its official or mirror layout and return a
GeoDataFrame in ``crs`` (default ``settings.publish_crs``, EPSG:4326); rows without usable
coordinates keep an empty geometry so that commune counts still see them. Each reader
attaches a :class:`SourceReport` in ``gdf.attrs["report"]``: rows read and kept, unknown
codes or tags (counted, never silently dropped), exclusions with their reason.

Stages:

- :func:`town_facilities`: the facilities of a town and its catchment communes, in the
  town's metric CRS, deduplicated across sources (written to
  ``data/out/<insee>/facilities.parquet``);
- :func:`commune_counts`: facility counts per category and subcategory and per 10,000
  inhabitants for every commune of France from the national sources;
  :func:`facilities_by_commune` caches them in ``data/interim/facilities_communes.parquet``.

The package's modules, one job each: :mod:`~geo.facilities.schema` (the schema, reports
and reader helpers), :mod:`~geo.facilities.chains` (the chain rule and share),
:mod:`~geo.facilities.osm` (OpenStreetMap), :mod:`~geo.facilities.registers` (national
registers and BPE), :mod:`~geo.facilities.locate` (communes of points),
:mod:`~geo.facilities.dedup` (duplicates across sources), :mod:`~geo.facilities.town`
(the town stage), :mod:`~geo.facilities.counts` (national commune counts). Every name is
re-exported here.
"""

from __future__ import annotations

# Every name of the submodules is re-exported (F401 silenced for those outside __all__).
from geo._categories import CATEGORY_KEYS, load_categories
from geo.facilities.chains import chain_share
from geo.facilities.counts import (
    commune_counts,
    facilities_by_commune,
    national_facilities,
    write_commune_counts,
)
from geo.facilities.dedup import (
    deduplicate,
    names_similar,
)
from geo.facilities.locate import (
    CommuneCheck,
    check_communes,
    locate_communes,
)
from geo.facilities.osm import (
    read_osm_pois,
)
from geo.facilities.registers import (
    FRANCE_SERVICES_MOBILE,  # noqa: F401
    read_bpe_counts,
    read_bpe_xy,
    read_cinemas,
    read_festivals,
    read_france_services,
    read_museofile,
    read_wind_turbines,
)
from geo.facilities.schema import (
    COUNTS_FILE,  # noqa: F401
    FACILITY_COLUMNS,
    SOURCE_PRIORITY,
    SourceReport,
    empty_facilities,
)
from geo.facilities.town import (
    read_facility_table,
    summarize,
    town_facilities,
    write_facilities,
)

__all__ = [
    "CATEGORY_KEYS",
    "FACILITY_COLUMNS",
    "SOURCE_PRIORITY",
    "CommuneCheck",
    "SourceReport",
    "chain_share",
    "check_communes",
    "commune_counts",
    "deduplicate",
    "empty_facilities",
    "facilities_by_commune",
    "load_categories",
    "locate_communes",
    "names_similar",
    "national_facilities",
    "read_bpe_counts",
    "read_bpe_xy",
    "read_cinemas",
    "read_facility_table",
    "read_festivals",
    "read_france_services",
    "read_museofile",
    "read_osm_pois",
    "read_wind_turbines",
    "summarize",
    "town_facilities",
    "write_commune_counts",
    "write_facilities",
]
