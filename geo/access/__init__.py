"""Access times on a street graph: nearest facility, cumulative opportunities, isochrones.

Every search is a multi-source shortest-path search on the graph's sparse matrix
(:func:`scipy.sparse.csgraph.dijkstra`), never one search per node:

- points (facilities, an isochrone origin, places) snap to the nearest point of the
  nearest link (:func:`snap_points`); the partial times along that link count, and the
  snap distance is kept. Points farther than ``settings.snap_max_m`` are reported and
  left out;
- :func:`nearest_times`: minutes from every node to the nearest facility of each target
  (one search per target from a virtual source tied to both ends of every facility's
  link, on the reversed graph, so one-way streets and uphill slopes count in the
  direction people travel);
- :func:`times_within`: for many points, the minutes between each point and every node
  within a cutoff, as a long table (what E2SFCA and cumulative counts need);
- :func:`cumulative_counts`: facilities of each target reachable within 5, 10, 15 and
  20 minutes from every node;
- :func:`isochrones`: polygons of what is reachable from a point, from the reachable
  parts of the streets (partly reached links included), never a convex hull;
- :func:`nearest_nodes`: nearest graph node of arbitrary points (H3 cells).

:func:`run_town` reads a town's streets and facilities, computes all of it for walking
and cycling and writes ``access_<mode>_nodes.parquet``, ``access_<mode>_edges.parquet``
and ``isochrones.parquet``.

The package's modules, one job each: :mod:`~geo.access.snapping` (points on the graph),
:mod:`~geo.access.searches` (nearest times, times within a cutoff, cumulative counts),
:mod:`~geo.access.polygons` (isochrone polygons), :mod:`~geo.access.targets` (targets,
per-node and per-link tables), :mod:`~geo.access.town` (the town run). Every name is
re-exported here.
"""

from __future__ import annotations

from geo.access.polygons import (
    Samples,
    isochrones,
    reachable_samples,
)
from geo.access.searches import (
    _away_groups,  # noqa: F401
    _with_sources,  # noqa: F401
    cumulative_counts,
    nearest_times,
    times_within,
)

# Every name of the submodules is re-exported (F401 silenced for those outside __all__).
from geo.access.snapping import (
    Anchors,
    PointsLike,  # noqa: F401
    _anchors_from_snap,  # noqa: F401
    nearest_nodes,
    snap_points,
)
from geo.access.targets import (
    CATEGORIES,
    NodeAccess,
    facility_snaps,
    link_minutes,
    node_access,
    targets_from_facilities,
)
from geo.access.town import (
    STREET_CENTRE,  # noqa: F401
    read_facilities,
    run_town,
    street_centre,  # noqa: F401
    town_origin,
)

__all__ = [
    "CATEGORIES",
    "Anchors",
    "NodeAccess",
    "Samples",
    "cumulative_counts",
    "facility_snaps",
    "isochrones",
    "link_minutes",
    "nearest_nodes",
    "nearest_times",
    "node_access",
    "reachable_samples",
    "read_facilities",
    "run_town",
    "snap_points",
    "targets_from_facilities",
    "times_within",
    "town_origin",
]
