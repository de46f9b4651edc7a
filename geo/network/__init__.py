"""Walking and cycling street graphs from OSM files, Overpass and road lines.

A reader turns a source into :class:`Streets`: the street ways of the source as straight
segments between vertices, with the tags the mode rules need, in a metric CRS.

- OSM XML (``.osm``, ``.osm.gz``, ``.osm.bz2``): :func:`read_osm`. The file is first
  streamed by pyosmium, which keeps the ``highway=*`` ways whose nodes are all in the
  extract (ways cut by a clip are dropped and counted) and the town halls; osmnx then
  builds the graph from that clean copy (``osmnx.graph_from_xml`` crashes on ways with
  missing nodes and keeps buildings as edges).
- OSM PBF (``.osm.pbf``): :func:`read_osm` reads it with pyosmium directly. pyosmium is
  the Python binding of libosmium, the reference C++ OSM library: it streams PBF with a
  node-location cache, reports missing node locations instead of failing, is already a
  dependency, and is maintained (osmnx has no PBF reader; pyrosm's last release predates
  Python 3.12 and pandas 2).
- Overpass: :func:`read_overpass` downloads the streets of a polygon through osmnx (its
  query splitting, rate limiting and cache).
- Road lines without node ids (Geofabrik ``roads`` layout, IGN-like lines):
  :func:`read_road_lines` nodes the lines at shared vertices (identical coordinates);
  lines that only cross (bridges, tunnels) stay unconnected.

:func:`build_graph` applies the rules of one travel mode (:func:`mode_rules`), keeps the
largest connected component, computes travel times per segment (flat speeds from the
settings, or slope-aware from a DEM: Tobler's hiking function for walking and a cycling
power model, both direction-dependent) and contracts chains of degree-2 vertices into
links, giving a :class:`StreetGraph`. Its sparse matrix (seconds) feeds
:mod:`geo.access`.

The package's modules, one job each: :mod:`~geo.network.rules` (travel modes and mode
rules), :mod:`~geo.network.ways` (the :class:`Streets` of a source),
:mod:`~geo.network.readers` (OSM, Overpass and road-line readers),
:mod:`~geo.network.speeds` (speeds, DEM and segment times), :mod:`~geo.network.graph`
(graph building and contraction). Every name is re-exported here.
"""

from __future__ import annotations

# Every name of the submodules is re-exported (F401 silenced for those outside __all__).
from geo._osm import osm_timestamp
from geo.network.graph import (
    StreetGraph,
    build_graph,
    graph_from_frames,
)
from geo.network.readers import (
    load_streets,
    read_osm,
    read_overpass,
    read_road_lines,
    streets_from_osmnx,  # noqa: F401
)
from geo.network.rules import (
    MODE_LABELS_FR,
    MODES,
    MOTORWAYS,  # noqa: F401
    NO_BIKES_BY_DEFAULT,  # noqa: F401
    NOT_STREETS,  # noqa: F401
    Mode,  # noqa: F401
    check_mode,
    mode_rules,
)
from geo.network.speeds import (
    AIR_DENSITY,  # noqa: F401
    BIKE_CDA_M2,  # noqa: F401
    BIKE_CLIMB_POWER_W,  # noqa: F401
    BIKE_CRR,  # noqa: F401
    BIKE_MASS_KG,  # noqa: F401
    BIKE_MAX_KMH,  # noqa: F401
    BIKE_MIN_RIDE_KMH,  # noqa: F401
    GRAVITY,  # noqa: F401
    Dem,  # noqa: F401
    bike_speed_kmh,
    segment_times,
    tobler_speed_kmh,
)
from geo.network.ways import (
    WAY_TAGS,  # noqa: F401
    Streets,
    _oneway_code,  # noqa: F401
)

__all__ = [
    "MODES",
    "MODE_LABELS_FR",
    "StreetGraph",
    "Streets",
    "bike_speed_kmh",
    "build_graph",
    "check_mode",
    "graph_from_frames",
    "load_streets",
    "mode_rules",
    "osm_timestamp",
    "read_osm",
    "read_overpass",
    "read_road_lines",
    "segment_times",
    "tobler_speed_kmh",
]
