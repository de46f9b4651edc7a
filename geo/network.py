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
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import lzma
import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from geo._io import libosmium_readable
from geo._osm import osm_timestamp
from geo.errors import (
    DataSourceError,
    EmptyGraphError,
    InputFileError,
    MissingColumnsError,
    MissingCrsError,
)
from geo.settings import Settings, get_settings

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "MODES",
    "MODE_LABELS_FR",
    "StreetGraph",
    "Streets",
    "bike_speed_kmh",
    "build_graph",
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

log = logging.getLogger(__name__)

Mode = Literal["walk", "bike"]
#: Travel modes with a street graph.
MODES: tuple[str, ...] = ("walk", "bike")
#: French labels of the travel modes ("temps à pied").
MODE_LABELS_FR: dict[str, str] = {"walk": "à pied", "bike": "à vélo"}

#: Tag columns of :attr:`Streets.ways` (string values as in OSM; missing is <NA>).
WAY_TAGS = (
    "highway", "foot", "bicycle", "access", "oneway_bicycle", "cycleway", "area",
    "motorroad", "service", "name",
)
#: OSM way tags kept from the source (osmnx ``useful_tags_way`` while we read).
_OSM_WAY_TAGS = (
    "highway", "oneway", "junction", "name", "ref", "foot", "bicycle", "access",
    "oneway:bicycle", "cycleway", "cycleway:left", "cycleway:right", "cycleway:both",
    "area", "motorroad", "service", "bridge", "tunnel", "layer",
)
_CYCLEWAY_KEYS = ("cycleway", "cycleway:left", "cycleway:right", "cycleway:both")
#: Overpass filter for every kind of street or path (mode rules are applied afterwards).
_OVERPASS_FILTER = (
    '["highway"]["area"!~"yes"]'
    '["highway"!~"abandoned|construction|no|planned|platform|proposed|raceway|razed"]'
)


# --- the street ways of a source --------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Streets:
    """Street ways of one source as straight segments between vertices (metric CRS).

    Attributes
    ----------
    node_id
        (n,) int64 vertex ids: OSM node ids, or for road lines a stable id packed from the
        rounded coordinates of the vertex.
    xy
        (n, 2) float64 vertex coordinates in ``crs`` (metres).
    seg_a, seg_b
        (m,) int64 vertex indices of each segment, in the order of the way.
    seg_way
        (m,) int64 row of the segment's way in ``ways``.
    ways
        One row per way: ``way_id`` (int64), ``oneway`` (int8: 1 travel only from
        ``seg_a`` to ``seg_b``, -1 only the reverse, 0 both), ``bridge`` and ``tunnel``
        (bool) and the string tags of :data:`WAY_TAGS` (``cycleway`` joins the values of
        ``cycleway``, ``cycleway:left/right/both``).
    crs
        Metric CRS of ``xy``.
    source
        What was read (a path or "Overpass").
    vintage
        Date of the data when known (e.g. "OSM 2022-03-11").
    dropped_ways
        Street ways dropped because they reference nodes missing from the extract.
    incomplete_ways
        All ways (streets or not) referencing missing nodes.
    townhalls
        Points tagged ``amenity=townhall`` in the source (OSM sources), in ``crs``.
    """

    node_id: np.ndarray
    xy: np.ndarray
    seg_a: np.ndarray
    seg_b: np.ndarray
    seg_way: np.ndarray
    ways: pd.DataFrame
    crs: str
    source: str
    vintage: str = ""
    dropped_ways: int = 0
    incomplete_ways: int = 0
    townhalls: gpd.GeoDataFrame | None = None

    @property
    def n_segments(self) -> int:
        """Number of straight segments."""
        return int(self.seg_a.size)

    def clip(self, area: BaseGeometry | None) -> Streets:
        """Segments with at least one end inside ``area`` (same CRS); all when None."""
        if area is None:
            return self
        inside = shapely.contains_xy(area, self.xy[:, 0], self.xy[:, 1])
        keep = inside[self.seg_a] | inside[self.seg_b]
        return _subset(self, keep)


def _subset(st: Streets, keep: np.ndarray) -> Streets:
    """``st`` with only the segments in boolean mask ``keep`` (vertices compacted)."""
    a, b = st.seg_a[keep], st.seg_b[keep]
    used = np.zeros(len(st.node_id), dtype=bool)
    used[a] = used[b] = True
    new_index = np.cumsum(used) - 1
    ways_used, way_index = np.unique(st.seg_way[keep], return_inverse=True)
    return Streets(
        node_id=st.node_id[used], xy=st.xy[used], seg_a=new_index[a], seg_b=new_index[b],
        seg_way=way_index.astype(np.int64), ways=st.ways.iloc[ways_used].reset_index(drop=True),
        crs=st.crs, source=st.source, vintage=st.vintage, dropped_ways=st.dropped_ways,
        incomplete_ways=st.incomplete_ways, townhalls=st.townhalls,
    )


def _check_metric(crs: str) -> str:
    try:
        parsed = CRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises CRSError, a generic Exception subclass
        raise MissingCrsError(f"invalid CRS {crs!r}: {exc}") from None
    if not parsed.is_projected:
        raise MissingCrsError(
            f"street graphs are computed in a metric CRS; {crs!r} is not projected "
            f"(use the town's metric CRS, e.g. EPSG:2154)"
        )
    return str(crs)


def _flag(values: pd.Series) -> np.ndarray:
    """Tag values meaning 'yes' (``bridge=yes|viaduct``, Geofabrik ``T``, ``1``) -> True."""
    v = values.astype("string").str.strip().str.lower()
    return (v.notna() & ~v.isin(["", "no", "f", "0", "false", "none"])).to_numpy(bool)


def _oneway_code(oneway: pd.Series, junction: pd.Series | None = None) -> np.ndarray:
    """OSM ``oneway`` (and ``junction=roundabout``) as 1 along the way, -1 against, 0 both.

    Same reading as osmnx: ``yes|true|1|F`` (Geofabrik) forward, ``-1|reverse|T`` backward;
    a roundabout without one of these values is one-way forward.
    """
    v = oneway.astype("string").str.strip()
    code = np.zeros(len(v), dtype=np.int8)
    code[v.isin(["yes", "true", "1", "F", "True"]).fillna(False).to_numpy(bool)] = 1
    code[v.isin(["-1", "reverse", "T"]).fillna(False).to_numpy(bool)] = -1
    if junction is not None:
        rb = (junction.astype("string") == "roundabout").fillna(False).to_numpy(bool)
        code[rb & (code == 0) & ~v.isin(["yes", "true", "1", "-1", "reverse", "T", "F"])
             .fillna(False).to_numpy(bool)] = 1
    return code


def _ways_frame(records: pd.DataFrame, oneway: np.ndarray) -> pd.DataFrame:
    """Normalized way table from raw OSM-like tag records (columns named like OSM keys)."""
    out = pd.DataFrame({"way_id": records["way_id"].to_numpy(np.int64), "oneway": oneway})
    for col in ("bridge", "tunnel"):
        out[col] = _flag(records[col]) if col in records else False
    for tag in WAY_TAGS:
        key = {"oneway_bicycle": "oneway:bicycle"}.get(tag, tag)
        if tag == "cycleway":
            parts = [records[k].astype("string") for k in _CYCLEWAY_KEYS if k in records]
            if parts:
                joined = pd.concat(parts, axis=1).apply(
                    lambda r: ";".join(x for x in r if isinstance(x, str)), axis=1
                ).astype("string")
                out[tag] = joined.where(joined != "", pd.NA).to_numpy()
            else:
                out[tag] = pd.array([pd.NA] * len(records), dtype="string")
            continue
        if key in records:
            out[tag] = records[key].astype("string").to_numpy()
        else:
            out[tag] = pd.array([pd.NA] * len(records), dtype="string")
    for tag in WAY_TAGS:
        out[tag] = out[tag].astype("string")
    return out


# --- OSM files ---------------------------------------------------------------------------


@dataclass
class _OsmScan:
    """What one pyosmium pass over an OSM file found."""

    ways: list[tuple[int, dict[str, str], list[int]]] = field(default_factory=list)
    coords: dict[int, tuple[float, float]] = field(default_factory=dict)
    townhalls: list[tuple[str, float, float]] = field(default_factory=list)
    incomplete_ways: int = 0
    dropped_ways: int = 0


def _scan_osm(path: Path, area_wgs84: BaseGeometry | None) -> _OsmScan:
    """Stream an OSM file: complete street ways (those touching ``area_wgs84`` when given),
    their node coordinates, town halls, and counts of incomplete ways."""
    import osmium

    scan = _OsmScan()
    prepared = area_wgs84
    if prepared is not None:
        shapely.prepare(prepared)
    # untagged nodes only feed the location cache
    amenity_nodes = osmium.filter.KeyFilter("amenity")
    amenity_nodes.enable_for(osmium.osm.NODE)
    try:
        processor = (
            osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(amenity_nodes)
        )
        for obj in processor:
            tags = obj.tags
            amenity = tags.get("amenity")
            if isinstance(obj, osmium.osm.Node):
                if amenity == "townhall":
                    scan.townhalls.append((tags.get("name") or "", obj.lon, obj.lat))
                continue
            if not isinstance(obj, osmium.osm.Way):  # the processor reads nodes and ways only
                continue
            locations = [(n.ref, n.location) for n in obj.nodes]
            complete = all(loc.valid() for _, loc in locations)
            if not complete:
                scan.incomplete_ways += 1
            highway = tags.get("highway")
            if amenity == "townhall" and complete and locations:
                xs = [loc.lon for _, loc in locations]
                ys = [loc.lat for _, loc in locations]
                scan.townhalls.append((tags.get("name") or "", float(np.mean(xs)),
                                       float(np.mean(ys))))
            if highway is None:
                continue
            if not complete:
                scan.dropped_ways += 1
                continue
            refs = [ref for ref, _ in locations]
            xy = [(loc.lon, loc.lat) for _, loc in locations]
            if prepared is not None and not shapely.contains_xy(
                prepared, *np.asarray(xy, dtype=float).T
            ).any():
                continue
            kept = {k: tags[k] for k in _OSM_WAY_TAGS if k in tags}
            scan.ways.append((obj.id, kept, refs))
            scan.coords.update(zip(refs, xy, strict=True))
    except RuntimeError as exc:  # libosmium reports parse errors as RuntimeError
        raise InputFileError(f"cannot read OSM file {path}: {exc}") from None
    return scan


def _log_dropped(path: Path, scan: _OsmScan) -> None:
    if scan.incomplete_ways:
        log.warning(
            "%s: %d ways reference nodes missing from the extract; %d of them are streets "
            "and were dropped", path.name, scan.incomplete_ways, scan.dropped_ways,
        )


def _osm_vintage(path: Path) -> str:
    """'OSM <date>' from :func:`osm_timestamp`, else ''."""
    stamp = osm_timestamp(path)
    return f"OSM {stamp[:10]}" if stamp else ""


@contextlib.contextmanager
def _osmnx_way_tags() -> Iterator[None]:
    """Make osmnx keep the tags the mode rules need while a graph is built."""
    import osmnx as ox

    before = ox.settings.useful_tags_way
    ox.settings.useful_tags_way = list(dict.fromkeys([*before, *_OSM_WAY_TAGS]))
    try:
        yield
    finally:
        ox.settings.useful_tags_way = before


def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _area_wgs84(area: BaseGeometry | None, crs: str) -> BaseGeometry | None:
    if area is None:
        return None
    return shapely.transform(area, _transformer(crs, "EPSG:4326").transform, interleaved=False)


def _townhall_frame(rows: Sequence[tuple[str, float, float]], crs: str) -> gpd.GeoDataFrame:
    names = [r[0] for r in rows]
    lon = np.array([r[1] for r in rows], dtype=float)
    lat = np.array([r[2] for r in rows], dtype=float)
    x, y = _transformer("EPSG:4326", crs).transform(lon, lat)
    return gpd.GeoDataFrame({"name": pd.array(names, dtype="string")},
                            geometry=shapely.points(x, y), crs=crs)


def read_osm(
    path: str | Path,
    *,
    crs: str,
    area: BaseGeometry | None = None,
    vintage: str | None = None,
) -> Streets:
    """Street ways of an OSM file (XML, optionally .gz/.bz2/.xz compressed, or PBF).

    Parameters
    ----------
    path
        OSM file. XML goes through osmnx (after a pyosmium pass that drops street ways
        with nodes missing from the extract and everything that is not a street); PBF is
        read by pyosmium.
    crs
        Metric CRS of the result (e.g. EPSG:2154).
    area
        Keep only segments with at least one end inside this polygon (in ``crs``).
    vintage
        Date of the data for the outputs' metadata; read from the file when None.

    Raises
    ------
    InputFileError
        Missing, unreadable or corrupt file.
    EmptyGraphError
        No street way in the file (or in ``area``).
    """
    path = Path(path)
    crs = _check_metric(crs)
    if not path.is_file():
        raise InputFileError(f"OSM file {path} does not exist")
    name = path.name.lower()
    with contextlib.ExitStack() as stack:
        # libosmium reads .gz and .bz2 but not .xz
        work = stack.enter_context(libosmium_readable(path))
        scan = _scan_osm(work, _area_wgs84(area, crs))
        _log_dropped(path, scan)
        if not scan.ways:
            raise EmptyGraphError(
                f"no street (highway=*) way in OSM file {path}"
                + (" inside the requested area" if area is not None else "")
            )
        if ".pbf" in name:
            streets = _streets_from_scan(scan, crs)
        else:
            streets = _streets_via_osmnx(scan, crs, stack)
    townhalls = _townhall_frame(scan.townhalls, crs)
    streets = replace(
        streets, source=str(path),
        vintage=vintage if vintage is not None else _osm_vintage(path),
        dropped_ways=scan.dropped_ways, incomplete_ways=scan.incomplete_ways,
        townhalls=townhalls,
    ).clip(area)
    if streets.n_segments == 0:
        raise EmptyGraphError(f"no street of OSM file {path} inside the requested area")
    log.info("%s: %d street ways, %d segments, %d vertices%s", path.name, len(streets.ways),
             streets.n_segments, len(streets.node_id),
             f", {len(townhalls)} town hall(s)" if len(townhalls) else "")
    return streets


def _streets_from_scan(scan: _OsmScan, crs: str) -> Streets:
    """Streets straight from a pyosmium scan (the PBF route)."""
    way_ids = np.array([w[0] for w in scan.ways], dtype=np.int64)
    records = pd.DataFrame([w[1] for w in scan.ways], dtype="string")
    records["way_id"] = way_ids
    oneway = _oneway_code(records.get("oneway", pd.Series(pd.NA, index=records.index)),
                          records.get("junction"))
    ways = _ways_frame(records, oneway)
    node_ids = np.fromiter(scan.coords.keys(), dtype=np.int64, count=len(scan.coords))
    lonlat = np.array(list(scan.coords.values()), dtype=float).reshape(-1, 2)
    order = np.argsort(node_ids)
    node_ids, lonlat = node_ids[order], lonlat[order]
    a_list: list[np.ndarray] = []
    b_list: list[np.ndarray] = []
    w_list: list[np.ndarray] = []
    for i, (_, _, refs) in enumerate(scan.ways):
        r = np.asarray(refs, dtype=np.int64)
        if r.size > 1:
            r = r[np.r_[True, r[1:] != r[:-1]]]  # consecutive duplicates, as osmnx does
        idx = np.searchsorted(node_ids, r)
        a_list.append(idx[:-1])
        b_list.append(idx[1:])
        w_list.append(np.full(max(idx.size - 1, 0), i, dtype=np.int64))
    x, y = _transformer("EPSG:4326", crs).transform(lonlat[:, 0], lonlat[:, 1])
    return Streets(
        node_id=node_ids, xy=np.column_stack([x, y]), seg_a=np.concatenate(a_list),
        seg_b=np.concatenate(b_list), seg_way=np.concatenate(w_list), ways=ways, crs=crs,
        source="",
    )


def _write_clean_xml(scan: _OsmScan, dest: Path) -> None:
    """Write the complete street ways of a scan (and their nodes) as OSM XML."""
    import osmium

    writer = osmium.SimpleWriter(str(dest))
    try:
        for ref in sorted(scan.coords):
            lon, lat = scan.coords[ref]
            writer.add_node(osmium.osm.mutable.Node(id=ref, location=(lon, lat)))
        for way_id, tags, refs in scan.ways:
            writer.add_way(osmium.osm.mutable.Way(id=way_id, nodes=refs, tags=tags))
    finally:
        writer.close()


def _streets_via_osmnx(scan: _OsmScan, crs: str, stack: contextlib.ExitStack) -> Streets:
    """Streets through ``osmnx.graph_from_xml`` on a clean copy of the scanned ways."""
    import osmnx as ox

    tmpdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    clean = tmpdir / "streets.osm"
    _write_clean_xml(scan, clean)
    with _osmnx_way_tags():
        graph = ox.graph_from_xml(clean, bidirectional=False, simplify=False, retain_all=True)
    return streets_from_osmnx(graph, crs=crs)


def streets_from_osmnx(graph: nx.MultiDiGraph, *, crs: str, source: str = "") -> Streets:
    """Streets from an unsimplified osmnx graph (built with the tags of ``_OSM_WAY_TAGS``).

    osmnx already orients one-way ways along their allowed direction and adds the reverse
    of two-way ways with ``reversed=True``; those reverse edges are skipped.
    """
    crs = _check_metric(crs)
    if graph.graph.get("simplified"):
        raise InputFileError("streets_from_osmnx needs an unsimplified osmnx graph")
    ids = np.fromiter(graph.nodes, dtype=np.int64, count=graph.number_of_nodes())
    lon = np.array([d["x"] for _, d in graph.nodes(data=True)], dtype=float)
    lat = np.array([d["y"] for _, d in graph.nodes(data=True)], dtype=float)
    order = np.argsort(ids)
    ids, lon, lat = ids[order], lon[order], lat[order]
    src_crs = graph.graph.get("crs", "EPSG:4326")
    x, y = _transformer(src_crs, crs).transform(lon, lat)
    us, vs, rows = [], [], []
    for u, v, d in graph.edges(data=True):
        if d.get("reversed", False):
            continue
        us.append(u)
        vs.append(v)
        rows.append(d)
    if not rows:
        where = f" of {source}" if source else ""
        raise EmptyGraphError(f"no street edge in the osmnx graph{where}")
    records = pd.DataFrame(
        [{k: d[k] for k in _OSM_WAY_TAGS if k in d and k != "oneway"} for d in rows],
        dtype="string",
    )
    records["way_id"] = np.array([int(d["osmid"]) for d in rows], dtype=np.int64)
    oneway = np.array([1 if d.get("oneway") else 0 for d in rows], dtype=np.int8)
    records["_oneway"] = oneway
    way_codes, way_index = np.unique(records["way_id"].to_numpy(), return_index=True)
    first = records.iloc[way_index]
    ways = _ways_frame(first.reset_index(drop=True), first["_oneway"].to_numpy(np.int8))
    seg_way = np.searchsorted(way_codes, records["way_id"].to_numpy())
    return Streets(
        node_id=ids, xy=np.column_stack([x, y]),
        seg_a=np.searchsorted(ids, np.asarray(us, dtype=np.int64)),
        seg_b=np.searchsorted(ids, np.asarray(vs, dtype=np.int64)),
        seg_way=seg_way.astype(np.int64), ways=ways, crs=crs, source=source,
    )


def read_overpass(
    area: BaseGeometry, *, crs: str, settings: Settings | None = None
) -> Streets:
    """Streets and town halls of a polygon, downloaded from Overpass through osmnx.

    For production towns without a local extract. ``area`` is in ``crs`` (metric); the
    query uses osmnx's settings (endpoint, rate limiting, cache in ``./cache``).
    """
    import osmnx as ox

    crs = _check_metric(crs)
    poly = _area_wgs84(area, crs)
    with _osmnx_way_tags():
        try:
            graph = ox.graph_from_polygon(
                poly, custom_filter=_OVERPASS_FILTER, simplify=False, retain_all=True,
                truncate_by_edge=True,
            )
        except ox._errors.InsufficientResponseError as exc:
            raise EmptyGraphError(f"Overpass returned no street in the area: {exc}") from None
        except Exception as exc:  # requests / HTTP errors surface as many types
            raise DataSourceError(f"Overpass download failed: {exc}") from None
    try:
        halls = ox.features_from_polygon(poly, tags={"amenity": "townhall"})
        points = halls.geometry.representative_point()
        rows = [(str(n) if isinstance(n, str) else "", p.x, p.y)
                for n, p in zip(halls.get("name", pd.Series([""] * len(halls))), points,
                                strict=True)]
    except ox._errors.InsufficientResponseError:
        rows = []
    streets = streets_from_osmnx(graph, crs=crs, source="Overpass")
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    streets = replace(
        streets, source=f"Overpass ({ox.settings.overpass_url})",
        vintage=f"OSM {stamp} (Overpass)", townhalls=_townhall_frame(rows, crs),
    ).clip(area)
    if streets.n_segments == 0:
        raise EmptyGraphError("Overpass returned no street inside the requested area")
    return streets


# --- road lines without node ids ------------------------------------------------------


def _read_line_files(path: Path, members: Iterable[str] | None) -> gpd.GeoDataFrame:
    """Lines from a vector file, or from every (or the selected) GeoJSON of a tar archive."""
    if not path.is_file():
        raise InputFileError(f"road lines file {path} does not exist")
    if ".tar" in path.name:
        wanted = None if members is None else tuple(members)
        frames = []
        try:
            with tarfile.open(path) as tar:
                for member in tar:
                    base = Path(member.name).name
                    if not member.isfile() or not base.endswith((".geojson", ".json")):
                        continue
                    if wanted is not None and not base.startswith(wanted):
                        continue
                    data = tar.extractfile(member)
                    if data is None:
                        continue
                    frame = pyogrio.read_dataframe(io.BytesIO(data.read()))
                    frame["_file"] = base
                    frames.append(frame)
        except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as exc:
            raise InputFileError(f"cannot read road lines archive {path}: {exc}") from None
        if not frames:
            raise EmptyGraphError(
                f"no road lines file in {path}"
                + (f" for {', '.join(wanted)}" if wanted else "")
            )
        crss = {str(f.crs) for f in frames}
        if len(crss) > 1:
            raise InputFileError(f"road lines in {path} mix CRS: {', '.join(sorted(crss))}")
        lines = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
        before = len(lines)
        key = lines["osm_id"].astype("string") if "osm_id" in lines else None
        wkb = shapely.to_wkb(lines.geometry.values)
        dup = (pd.DataFrame({"k": key, "w": wkb}).duplicated() if key is not None
               else pd.Series(wkb).duplicated())
        lines = lines[~dup.to_numpy()].reset_index(drop=True)
        log.info("%s: %d lines in %d files, %d duplicates across files removed",
                 path.name, before, len(frames), before - len(lines))
        return lines
    try:
        return pyogrio.read_dataframe(path)
    except Exception as exc:  # pyogrio raises several error types for corrupt files
        raise InputFileError(f"cannot read road lines {path}: {exc}") from None


_FCLASS_NORMAL = {r"^track_grade\d$": "track"}


def read_road_lines(
    source: str | Path | gpd.GeoDataFrame,
    *,
    crs: str,
    area: BaseGeometry | None = None,
    members: Iterable[str] | None = None,
    vintage: str = "",
) -> Streets:
    """Street ways from road lines without node ids, noded at shared vertices.

    Two lines are connected where they share a vertex (identical coordinates after
    rounding to 1e-7 degree or 1 cm); lines that cross without a shared vertex (bridges,
    tunnels, and mapping errors) stay unconnected.

    Parameters
    ----------
    source
        A GeoDataFrame, a vector file (GeoJSON, GeoPackage, shapefile), or a tar archive
        (.tar, .tar.xz, .tar.gz) of GeoJSON files whose repeated lines are removed. Columns
        follow the Geofabrik ``roads`` layout: ``fclass`` (or ``type`` or ``highway``),
        ``oneway`` (``F``/``T``/``B`` or OSM values), optional ``osm_id``, ``name``,
        ``bridge``, ``tunnel``.
    crs
        Metric CRS of the result.
    area
        Keep only segments with at least one end inside this polygon (in ``crs``).
    members
        For an archive: read only files whose name starts with one of these prefixes
        (e.g. the INSEE codes of the catchment communes).
    vintage
        Date of the data, for the outputs' metadata.
    """
    crs = _check_metric(crs)
    if isinstance(source, gpd.GeoDataFrame):
        lines, label = source, "road lines"
    else:
        path = Path(source)
        lines, label = _read_line_files(path, members), str(path)
    if lines.crs is None:
        raise MissingCrsError(f"{label} have no CRS; set one (e.g. EPSG:4326)")
    kind_col = next((c for c in ("fclass", "highway", "type") if c in lines.columns), None)
    if kind_col is None:
        raise MissingColumnsError(label, ["fclass (or highway, type)"], list(lines.columns))
    geom = shapely.force_2d(lines.geometry.values)
    is_line = np.isin(shapely.get_type_id(geom), [1, 5])  # LineString, MultiLineString
    if not is_line.all():
        log.warning("%s: %d non-line geometries ignored", label, int((~is_line).sum()))
    lines = lines[is_line]
    geom = geom[is_line]
    parts, part_of = shapely.get_parts(geom, return_index=True)
    coords, vertex_of = shapely.get_coordinates(parts, return_index=True)
    if len(coords) == 0:
        raise EmptyGraphError(f"no road line in {label}")
    geographic = CRS.from_user_input(lines.crs).is_geographic
    scale = 1e7 if geographic else 100.0  # 1e-7 degree (OSM precision) or 1 cm
    ix = np.round(coords[:, 0] * scale).astype(np.int64)
    iy = np.round(coords[:, 1] * scale).astype(np.int64)
    key = (ix << 32) | (iy & 0xFFFFFFFF)
    node_id, first, vertex_node = np.unique(key, return_index=True, return_inverse=True)
    node_coords = coords[first]
    same_part = vertex_of[1:] == vertex_of[:-1]
    a = vertex_node[:-1][same_part]
    b = vertex_node[1:][same_part]
    seg_part = vertex_of[:-1][same_part]
    nonzero = a != b
    a, b, seg_part = a[nonzero], b[nonzero], seg_part[nonzero]
    records = lines.drop(columns=lines.geometry.name).reset_index(drop=True)
    highway = records[kind_col].astype("string").str.strip().str.lower()
    for pattern, repl in _FCLASS_NORMAL.items():
        highway = highway.str.replace(pattern, repl, regex=True)
    raw = pd.DataFrame({
        "way_id": (pd.to_numeric(records["osm_id"], errors="coerce").fillna(-1)
                   .astype(np.int64).to_numpy() if "osm_id" in records
                   else np.arange(len(records), dtype=np.int64)),
        "highway": highway.to_numpy(),
    })
    for col in ("name", "bridge", "tunnel"):
        if col in records:
            raw[col] = records[col].astype("string").to_numpy()
    oneway = (_oneway_code(records["oneway"].astype("string").str.strip())
              if "oneway" in records else np.zeros(len(records), dtype=np.int8))
    ways = _ways_frame(raw, oneway)
    if geographic or str(lines.crs) != crs:
        x, y = _transformer(str(lines.crs), crs).transform(node_coords[:, 0], node_coords[:, 1])
        xy = np.column_stack([x, y])
    else:
        xy = node_coords.astype(float)
    streets = Streets(
        node_id=node_id, xy=xy, seg_a=a, seg_b=b, seg_way=part_of[seg_part].astype(np.int64),
        ways=ways, crs=crs, source=label, vintage=vintage,
    ).clip(area)
    if streets.n_segments == 0:
        raise EmptyGraphError(f"no road line of {label} inside the requested area")
    log.info("%s: %d lines, %d segments, %d vertices after noding shared vertices",
             Path(label).name, len(lines), streets.n_segments, len(streets.node_id))
    return streets


def load_streets(
    path: str | Path,
    *,
    crs: str,
    area: BaseGeometry | None = None,
    members: Iterable[str] | None = None,
    vintage: str | None = None,
) -> Streets:
    """Streets of a file, by its type: OSM XML/PBF (:func:`read_osm`) or road lines
    (:func:`read_road_lines`: GeoJSON, GeoPackage, shapefile, tar of GeoJSON)."""
    name = Path(path).name.lower()
    if re.search(r"\.(osm|pbf|xml)(\.(gz|bz2|xz))?$", name):
        return read_osm(path, crs=crs, area=area, vintage=vintage)
    return read_road_lines(path, crs=crs, area=area, members=members, vintage=vintage or "")


# --- mode rules -------------------------------------------------------------------------

#: Values of ``highway`` that are not usable streets (proposed, disused, platforms...).
NOT_STREETS = frozenset({
    "abandoned", "bus_guideway", "busway", "construction", "disused", "emergency_bay",
    "escape", "no", "planned", "platform", "proposed", "raceway", "razed", "rest_area",
    "services", "bus_stop", "via_ferrata", "ladder",
})
MOTORWAYS = frozenset({"motorway", "motorway_link"})
#: Pedestrian-only kinds: cycling only where bicycles are explicitly allowed.
NO_BIKES_BY_DEFAULT = frozenset({
    "footway", "steps", "pedestrian", "corridor", "elevator", "escalator", "bridleway",
})
_ALLOWED = frozenset({"yes", "designated", "permissive", "official", "destination",
                      "dismount"})
_FORBIDDEN = frozenset({"no", "private", "use_sidepath"})


def _values(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().str.lower()


def mode_rules(ways: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Which ways a mode may use, and in which directions.

    Rules
    -----
    Both modes: no ``area=yes``, no proposed/abandoned/platform kinds
    (:data:`NOT_STREETS`), no motorways or ``motorroad=yes``, no ``access=no|private``
    unless the mode's own tag allows it.

    Walking ignores ``oneway`` and excludes ``foot=no|private|use_sidepath``.

    Cycling follows ``oneway`` (``oneway:bicycle=yes|-1`` also makes a street one-way
    for bicycles) except contraflow (``oneway:bicycle=no``, ``cycleway*=opposite*``);
    it excludes ``bicycle=no|private|use_sidepath``, and footways, steps, pedestrian
    streets, corridors and bridleways unless ``bicycle=yes|designated|permissive``.

    Returns
    -------
    DataFrame aligned with ``ways``: ``allowed``, ``forward``, ``backward`` (bool; along
    and against the segment order).
    """
    if mode not in MODES:
        raise ValueError(f"unknown travel mode {mode!r}: expected one of {', '.join(MODES)}")
    highway = _values(ways["highway"])
    access = _values(ways["access"])
    area = _values(ways["area"])
    own = _values(ways["foot" if mode == "walk" else "bicycle"])
    allowed = (
        highway.notna()
        & ~highway.isin(NOT_STREETS)
        & ~highway.isin(MOTORWAYS)
        & (area != "yes").fillna(True)
        & (_values(ways["motorroad"]) != "yes").fillna(True)
        & ~own.isin(_FORBIDDEN).fillna(False)
        & ~(access.isin({"no", "private"}).fillna(False) & ~own.isin(_ALLOWED).fillna(False))
    ).fillna(False).to_numpy(bool)
    oneway = ways["oneway"].to_numpy(np.int8)
    if mode == "walk":
        forward = backward = np.ones(len(ways), dtype=bool)
    else:
        allowed &= ~(highway.isin(NO_BIKES_BY_DEFAULT).fillna(False)
                     & ~own.isin(_ALLOWED).fillna(False)).to_numpy(bool)
        ob = _values(ways["oneway_bicycle"])
        contraflow = (
            (ob == "no").fillna(False)
            | _values(ways["cycleway"]).str.contains("opposite", regex=False).fillna(False)
        ).to_numpy(bool)
        bike_oneway = oneway.copy()
        bike_oneway[contraflow] = 0
        bike_oneway[ob.isin(["yes", "true", "1"]).fillna(False).to_numpy(bool)
                    & (oneway == 0)] = 1
        bike_oneway[(ob == "-1").fillna(False).to_numpy(bool) & (oneway == 0)] = -1
        forward = bike_oneway >= 0
        backward = bike_oneway <= 0
    return pd.DataFrame({"allowed": allowed, "forward": forward, "backward": backward},
                        index=ways.index)


# --- travel time models -------------------------------------------------------------------


def tobler_speed_kmh(slope: np.ndarray | float, flat_kmh: float) -> np.ndarray:
    """Walking speed on a slope (rise over run) by Tobler's hiking function (km/h).

    Tobler (1993): ``6 exp(-3.5 |s + 0.05|)``, rescaled so that flat ground gives
    ``flat_kmh``; fastest at a 5 % descent, symmetric around it.
    """
    s = np.asarray(slope, dtype=float)
    return flat_kmh * np.exp(-3.5 * (np.abs(s + 0.05) - 0.05))


#: Cycling model constants: rider and bicycle mass (kg), rolling resistance coefficient,
#: drag area (m², upright city position), air density (kg/m³), gravity (m/s²).
BIKE_MASS_KG = 90.0
BIKE_CRR = 0.008
BIKE_CDA_M2 = 0.5
AIR_DENSITY = 1.2
GRAVITY = 9.81
#: Sustained power on climbs (W): an everyday cyclist works harder uphill than on the flat.
BIKE_CLIMB_POWER_W = 120.0
#: Speed limit downhill (km/h): riders brake in towns.
BIKE_MAX_KMH = 30.0
#: Below this riding speed (km/h) a cyclist gets off and pushes the bicycle.
BIKE_MIN_RIDE_KMH = 5.0


@functools.lru_cache(maxsize=8)
def _bike_speed_table(flat_kmh: float) -> tuple[np.ndarray, np.ndarray]:
    slopes = np.linspace(-0.5, 0.5, 2001)
    theta = np.arctan(slopes)
    resist = BIKE_MASS_KG * GRAVITY * (np.sin(theta) + BIKE_CRR * np.cos(theta))
    a = 0.5 * AIR_DENSITY * BIKE_CDA_M2
    v0 = flat_kmh / 3.6
    p_flat = v0 * BIKE_MASS_KG * GRAVITY * BIKE_CRR + a * v0**3
    power = np.where(slopes > 0, max(p_flat, BIKE_CLIMB_POWER_W), p_flat)
    v = np.full_like(slopes, 40.0)  # Newton from the right of the largest root: monotone
    for _ in range(60):
        v = v - (a * v**3 + resist * v - power) / (3 * a * v**2 + resist)
    v_kmh = v * 3.6
    v_kmh = np.where(slopes > 0, np.minimum(v_kmh, flat_kmh), v_kmh)
    v_kmh = np.minimum(v_kmh, max(BIKE_MAX_KMH, flat_kmh))
    return slopes, v_kmh


def bike_speed_kmh(
    slope: np.ndarray | float, flat_kmh: float, *, walk_kmh: float = 4.5
) -> np.ndarray:
    """Cycling speed on a slope (rise over run), km/h, from a power balance.

    The rider's power ``P`` balances rolling resistance, gravity and air drag:
    ``P = v m g (sin θ + Crr cos θ) + ½ ρ CdA v³`` (:data:`BIKE_MASS_KG`,
    :data:`BIKE_CRR`, :data:`BIKE_CDA_M2`). On the flat and downhill ``P`` is the power
    that gives ``flat_kmh`` on flat ground, and speed is capped at :data:`BIKE_MAX_KMH`;
    uphill the rider holds :data:`BIKE_CLIMB_POWER_W` but rides no faster than on the
    flat, and where that power gives less than :data:`BIKE_MIN_RIDE_KMH` the cyclist
    pushes the bicycle at walking speed (Tobler, from ``walk_kmh``). Slopes are clipped
    to ±50 %.
    """
    table_s, table_v = _bike_speed_table(float(flat_kmh))
    s = np.clip(np.asarray(slope, dtype=float), -0.5, 0.5)
    ride = np.interp(s, table_s, table_v)
    walk = tobler_speed_kmh(s, walk_kmh)
    return np.where(ride >= BIKE_MIN_RIDE_KMH, np.maximum(ride, walk), walk)


def segment_times(
    xy_a: np.ndarray,
    xy_b: np.ndarray,
    mode: str,
    *,
    flat_kmh: float,
    dem: Dem | None = None,
    flat_mask: np.ndarray | None = None,
    walk_kmh: float = 4.5,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Travel times (s) along straight segments, from a to b and from b to a.

    Without a DEM both are length / flat speed. With a DEM each segment is sampled every
    DEM pixel (at least every 5 m) and every piece gets its own slope; ``flat_mask``
    marks segments timed as flat (bridges and tunnels, whose DEM profile is the ground
    below or above them). ``walk_kmh`` is the flat walking speed (cyclists push their
    bicycle up slopes where walking is faster than riding).

    Returns
    -------
    forward_s, backward_s, n_missing
        Times, and the number of segments without elevation (timed as flat).
    """
    length = np.hypot(*(xy_b - xy_a).T)
    speed_ms = flat_kmh / 3.6
    if dem is None or length.size == 0:
        t = length / speed_ms
        return t, t.copy(), 0
    step = max(dem.pixel_m, 5.0)
    n_sub = np.maximum(1, np.ceil(length / step).astype(np.int64))
    seg_of_piece = np.repeat(np.arange(length.size), n_sub)
    start = np.cumsum(n_sub) - n_sub
    k = np.arange(n_sub.sum()) - np.repeat(start, n_sub)
    frac0 = k / n_sub[seg_of_piece]
    frac1 = (k + 1) / n_sub[seg_of_piece]
    d = xy_b - xy_a
    p0 = xy_a[seg_of_piece] + d[seg_of_piece] * frac0[:, None]
    p1 = xy_a[seg_of_piece] + d[seg_of_piece] * frac1[:, None]
    z0 = dem.sample(p0)
    z1 = dem.sample(p1)
    piece_len = length[seg_of_piece] / n_sub[seg_of_piece]
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(piece_len > 0, (z1 - z0) / piece_len, 0.0)
    missing_piece = ~np.isfinite(slope)
    missing_seg = np.zeros(length.size, dtype=bool)
    np.logical_or.at(missing_seg, seg_of_piece, missing_piece)
    slope[missing_piece] = 0.0
    if flat_mask is not None:
        slope[flat_mask[seg_of_piece]] = 0.0
    if mode == "walk":
        v_up, v_down = tobler_speed_kmh(slope, flat_kmh), tobler_speed_kmh(-slope, flat_kmh)
    else:
        v_up = bike_speed_kmh(slope, flat_kmh, walk_kmh=walk_kmh)
        v_down = bike_speed_kmh(-slope, flat_kmh, walk_kmh=walk_kmh)
    fwd = np.add.reduceat(piece_len / (v_up / 3.6), start)
    bwd = np.add.reduceat(piece_len / (v_down / 3.6), start)
    return fwd, bwd, int(missing_seg.sum())


@dataclass(frozen=True, eq=False)
class Dem:
    """Elevation raster window (metres) with bilinear sampling in a graph's CRS."""

    values: np.ndarray
    transform: Any
    crs: str
    graph_crs: str
    pixel_m: float
    path: str

    @classmethod
    def read(cls, path: str | Path, *, bounds: Sequence[float], crs: str) -> Dem:
        """The part of DEM ``path`` covering ``bounds`` (xmin, ymin, xmax, ymax in ``crs``).

        Raises :class:`InputFileError` when the file cannot be read or does not overlap.
        """
        import rasterio
        from rasterio.windows import from_bounds

        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"DEM file {path} does not exist")
        try:
            with rasterio.open(path) as src:
                if src.crs is None:
                    raise MissingCrsError(f"DEM {path} has no CRS")
                dem_crs = src.crs.to_string()
                xs = [bounds[0], bounds[2], bounds[0], bounds[2]]
                ys = [bounds[1], bounds[1], bounds[3], bounds[3]]
                tx, ty = _transformer(crs, dem_crs).transform(xs, ys)
                res = max(abs(src.res[0]), abs(src.res[1]))
                left, right = min(tx) - 2 * res, max(tx) + 2 * res
                bottom, top = min(ty) - 2 * res, max(ty) + 2 * res
                sb = src.bounds
                if left >= sb.right or right <= sb.left or bottom >= sb.top or top <= sb.bottom:
                    raise InputFileError(
                        f"DEM {path} (bounds {tuple(round(v, 4) for v in sb)} in {dem_crs}) "
                        f"does not cover the street graph"
                    )
                window = from_bounds(max(left, sb.left), max(bottom, sb.bottom),
                                     min(right, sb.right), min(top, sb.top), src.transform)
                window = window.round_offsets().round_lengths()
                band = src.read(1, window=window, masked=True).astype(float)
                values = band.filled(np.nan)
                transform = src.window_transform(window)
                if src.crs.is_geographic:
                    lat = np.radians((bottom + top) / 2)
                    pixel_m = min(abs(src.res[0]) * 111_320 * np.cos(lat),
                                  abs(src.res[1]) * 110_574)
                else:
                    pixel_m = min(abs(src.res[0]), abs(src.res[1]))
        except rasterio.errors.RasterioError as exc:
            raise InputFileError(f"cannot read DEM {path}: {exc}") from None
        return cls(values=values, transform=transform, crs=dem_crs, graph_crs=crs,
                   pixel_m=float(pixel_m), path=str(path))

    def sample(self, xy: np.ndarray) -> np.ndarray:
        """Bilinear elevation at points ``xy`` (graph CRS); NaN outside or on nodata."""
        from scipy.ndimage import map_coordinates

        x, y = _transformer(self.graph_crs, self.crs).transform(xy[:, 0], xy[:, 1])
        inv = ~self.transform
        x, y = np.asarray(x), np.asarray(y)
        col = inv.a * x + inv.b * y + inv.c
        row = inv.d * x + inv.e * y + inv.f
        # pixel centres are at +0.5
        coords = np.vstack([np.asarray(row) - 0.5, np.asarray(col) - 0.5])
        return map_coordinates(self.values, coords, order=1, mode="constant", cval=np.nan)


# --- the graph ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StreetGraph:
    """A street graph for one travel mode, in a metric CRS, with times in seconds.

    Nodes are intersections and dead ends; a link is the street piece between two nodes
    (a chain of straight segments, like osmnx's simplified edges). A link may be
    travelled from ``u`` to ``v`` (``link_forward``), from ``v`` to ``u``
    (``link_backward``) or both; times may differ by direction (slopes).

    Vertex arrays describe every link's polyline: vertices ``vtx_ptr[i]:vtx_ptr[i+1]``
    belong to link ``i``, from ``u`` to ``v``, with the cumulative distance from ``u``
    (``vtx_m``), the time to get there from ``u`` (``vtx_fwd_s``) and the time to get
    back from there to ``u`` (``vtx_bwd_s``), so a point anywhere on a link has exact
    partial times.
    """

    mode: str
    crs: str
    speed_kmh: float
    node_id: np.ndarray
    node_xy: np.ndarray
    link_u: np.ndarray
    link_v: np.ndarray
    link_forward: np.ndarray
    link_backward: np.ndarray
    link_length_m: np.ndarray
    link_fwd_s: np.ndarray
    link_bwd_s: np.ndarray
    links: pd.DataFrame
    vtx_ptr: np.ndarray
    vtx_xy: np.ndarray
    vtx_m: np.ndarray
    vtx_fwd_s: np.ndarray
    vtx_bwd_s: np.ndarray
    source: str = ""
    vintage: str = ""
    dem: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.node_id.size)

    @property
    def n_links(self) -> int:
        """Number of links (undirected street pieces)."""
        return int(self.link_u.size)

    @functools.cached_property
    def vtx_link(self) -> np.ndarray:
        """Link of each vertex."""
        return np.repeat(np.arange(self.n_links), np.diff(self.vtx_ptr))

    @functools.cached_property
    def geometries(self) -> np.ndarray:
        """Link polylines (shapely LineStrings, u to v)."""
        return shapely.linestrings(self.vtx_xy, indices=self.vtx_link)

    @functools.cached_property
    def tree(self) -> shapely.STRtree:
        """Spatial index of the link polylines."""
        return shapely.STRtree(self.geometries)

    @functools.cached_property
    def node_tree(self) -> cKDTree:
        """Spatial index of the nodes (for the nearest node of a point)."""
        return cKDTree(self.node_xy)

    @functools.cached_property
    def vtx_key(self) -> np.ndarray:
        """Position (m) of every vertex with the links laid end to end, 1 m apart: it
        increases over all vertices, and a point ``offset`` metres along link ``i`` is at
        ``vtx_key[vtx_ptr[i]] + offset`` (where ``searchsorted`` finds its segment)."""
        start = np.r_[0.0, np.cumsum(self.link_length_m + 1.0)][:-1]
        return self.vtx_m + start[self.vtx_link]

    @functools.cached_property
    def arcs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Directed arcs (tail, head, seconds) of every allowed link direction, self-loops
        excluded, parallel arcs kept."""
        loop = self.link_u == self.link_v
        fwd = self.link_forward & ~loop
        bwd = self.link_backward & ~loop
        tail = np.concatenate([self.link_u[fwd], self.link_v[bwd]])
        head = np.concatenate([self.link_v[fwd], self.link_u[bwd]])
        cost = np.concatenate([self.link_fwd_s[fwd], self.link_bwd_s[bwd]])
        return tail, head, cost

    @functools.cached_property
    def matrix(self) -> sparse.csr_array:
        """Directed adjacency matrix, travel times in seconds (the fastest of parallel
        links); explicit zeros are zero-time arcs."""
        return _min_csr(*self.arcs, self.n_nodes)

    @functools.cached_property
    def matrix_t(self) -> sparse.csr_array:
        """Transpose of :attr:`matrix` (searches towards a target), as CSR."""
        tail, head, cost = self.arcs
        return _min_csr(head, tail, cost, self.n_nodes)

    def nodes_frame(self) -> gpd.GeoDataFrame:
        """Nodes as points: ``node_id``, geometry."""
        return gpd.GeoDataFrame({"node_id": self.node_id},
                                geometry=shapely.points(self.node_xy), crs=self.crs)

    def edges_frame(self) -> gpd.GeoDataFrame:
        """Links as lines: ``u``, ``v`` (node ids), way attributes, ``length_m``,
        ``<mode>_s`` (u to v) and ``<mode>_reverse_s`` (v to u; NaN where not allowed)."""
        t = f"{self.mode}_s"
        frame = pd.DataFrame({
            "u": self.node_id[self.link_u], "v": self.node_id[self.link_v],
            "way_id": self.links["way_id"].to_numpy(),
            "highway": self.links["highway"].to_numpy(),
            "name": self.links["name"].to_numpy(),
            "length_m": self.link_length_m,
            t: np.where(self.link_forward, self.link_fwd_s, np.nan),
            f"{self.mode}_reverse_s": np.where(self.link_backward, self.link_bwd_s, np.nan),
            "oneway": self.link_forward != self.link_backward,
        })
        return gpd.GeoDataFrame(frame, geometry=self.geometries, crs=self.crs)

    def summary(self) -> str:
        """One line: nodes, links, length and what was dropped."""
        r = self.report
        return (
            f"{self.mode} graph: {self.n_nodes:,} nodes, {self.n_links:,} links, "
            f"{self.link_length_m.sum() / 1000:,.1f} km of streets; "
            f"{r.get('components', '?')} connected component(s), kept the largest, "
            f"dropped {r.get('dropped_nodes', 0):,} vertices in the others"
        )


def graph_from_frames(
    nodes: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, mode: str, *,
    settings: Settings | None = None,
) -> StreetGraph:
    """Rebuild a :class:`StreetGraph` from what the access stage wrote
    (``access_<mode>_nodes.parquet`` and ``access_<mode>_edges.parquet``), so later stages
    (H3 aggregation, E2SFCA) search the same graph without re-reading the streets.

    Link times are exact; times to points inside a link are interpolated along its
    length (exact on flat links, an approximation of the slope profile otherwise).

    Parameters
    ----------
    nodes
        ``node_id`` and point geometries.
    edges
        ``u``, ``v`` (node ids), ``length_m``, ``<mode>_s`` (u to v) and
        ``<mode>_reverse_s`` (v to u; NaN where not allowed), LineStrings from u to v.
    """
    s = settings or get_settings()
    speed = s.speed_kmh(mode)
    t_fwd, t_bwd = f"{mode}_s", f"{mode}_reverse_s"
    for name, frame, cols in (("access nodes", nodes, ["node_id"]),
                              ("access edges", edges, ["u", "v", "length_m", t_fwd, t_bwd])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise MissingColumnsError(name, missing, list(frame.columns))
        if frame.crs is None:
            raise InputFileError(f"{name} have no CRS")
    if len(edges) == 0:
        raise EmptyGraphError(f"the {mode} graph has no link")
    crs = _check_metric(nodes.crs.to_string())
    edges = edges.to_crs(nodes.crs)
    node_id = nodes["node_id"].to_numpy()
    index = pd.Index(node_id)
    u = index.get_indexer(edges["u"].to_numpy())
    v = index.get_indexer(edges["v"].to_numpy())
    if (u < 0).any() or (v < 0).any():
        raise InputFileError(f"{int((u < 0).sum() + (v < 0).sum())} {mode} link end(s) "
                             "are not in the node table")
    coords, which = shapely.get_coordinates(edges.geometry.values, return_index=True)
    counts = np.bincount(which, minlength=len(edges))
    vtx_ptr = np.r_[0, np.cumsum(counts)]
    step = np.r_[0.0, np.hypot(*np.diff(coords, axis=0).T)]
    step[vtx_ptr[:-1]] = 0.0  # first vertex of each link
    cum = np.cumsum(step)
    vtx_m = cum - np.repeat(cum[vtx_ptr[:-1]], counts)
    geom_len = vtx_m[vtx_ptr[1:] - 1]
    length = edges["length_m"].to_numpy(float)
    fwd = edges[t_fwd].to_numpy(float)
    bwd = edges[t_bwd].to_numpy(float)
    flat = length / (speed / 3.6)
    link_fwd = np.where(np.isfinite(fwd), fwd, flat)
    link_bwd = np.where(np.isfinite(bwd), bwd, flat)
    frac = np.divide(vtx_m, np.repeat(np.where(geom_len > 0, geom_len, 1.0), counts))
    vtx_fwd = frac * np.repeat(link_fwd, counts)
    # time back to u from a vertex: the v->u time of the part between u and the vertex
    vtx_bwd = frac * np.repeat(link_bwd, counts)
    links = pd.DataFrame({
        "way_id": edges["way_id"].to_numpy() if "way_id" in edges else pd.NA,
        "highway": edges["highway"].to_numpy() if "highway" in edges else pd.NA,
        "name": edges["name"].to_numpy() if "name" in edges else pd.NA,
        "segments": np.maximum(counts - 1, 1).astype(np.int64),
    })
    return StreetGraph(
        mode=mode, crs=crs, speed_kmh=speed, node_id=node_id,
        node_xy=shapely.get_coordinates(nodes.geometry.values),
        link_u=u.astype(np.int64), link_v=v.astype(np.int64),
        link_forward=np.isfinite(fwd), link_backward=np.isfinite(bwd),
        link_length_m=length, link_fwd_s=link_fwd, link_bwd_s=link_bwd, links=links,
        vtx_ptr=vtx_ptr, vtx_xy=coords, vtx_m=vtx_m * np.repeat(
            np.divide(length, geom_len, out=np.ones_like(length), where=geom_len > 0), counts),
        vtx_fwd_s=vtx_fwd, vtx_bwd_s=vtx_bwd, source="access files",
    )


def _min_csr(tail: np.ndarray, head: np.ndarray, cost: np.ndarray, n: int) -> sparse.csr_array:
    """CSR matrix keeping the smallest cost of duplicate (tail, head) pairs."""
    if tail.size:
        order = np.lexsort((cost, head, tail))
        tail, head, cost = tail[order], head[order], cost[order]
        first = np.r_[True, (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])]
        tail, head, cost = tail[first], head[first], cost[first]
    indptr = np.r_[0, np.cumsum(np.bincount(tail, minlength=n))].astype(np.int32)
    return sparse.csr_array((cost.astype(float), head.astype(np.int32), indptr), shape=(n, n))


def build_graph(
    streets: Streets,
    mode: str,
    *,
    dem: str | Path | Dem | None = None,
    simplify: bool = True,
    keep: Literal["largest", "all"] = "largest",
    settings: Settings | None = None,
) -> StreetGraph:
    """The street graph of one travel mode.

    Parameters
    ----------
    streets
        Street ways from a reader (:func:`read_osm`, :func:`read_road_lines`,
        :func:`read_overpass`).
    mode
        ``walk`` or ``bike``: the rules of :func:`mode_rules` and the flat speed from
        ``settings`` (``walk_speed_kmh``, ``bike_speed_kmh``).
    dem
        Elevation raster (path or :class:`Dem`) for slope-aware, direction-dependent
        times (:func:`segment_times`).
    simplify
        Contract chains of degree-2 vertices into links (intersections and dead ends
        remain nodes). A vertex stays a node where the allowed directions change.
    keep
        ``largest``: keep the largest weakly connected component (what matters for a
        town; the others are counted in ``report``); ``all``: keep everything.

    Raises
    ------
    EmptyGraphError
        When no street of the source is usable by ``mode``.
    """
    s = settings or get_settings()
    speed = s.speed_kmh(mode)
    rules = mode_rules(streets.ways, mode)
    way_ok = rules["allowed"].to_numpy(bool)
    seg_ok = way_ok[streets.seg_way]
    if not seg_ok.any():
        raise EmptyGraphError(
            f"no street usable for {mode} in {streets.source or 'the source'} "
            f"({len(streets.ways)} ways, none allowed by the {mode} rules)"
        )
    st = _subset(streets, seg_ok)
    report: dict[str, Any] = {
        "source": streets.source, "mode": mode,
        "ways": len(streets.ways), "ways_allowed": len(st.ways),
        "dropped_ways_missing_nodes": streets.dropped_ways,
        "incomplete_ways": streets.incomplete_ways,
    }
    # connected components (weak: directions ignored)
    n = len(st.node_id)
    adj = sparse.coo_array((np.ones(st.n_segments), (st.seg_a, st.seg_b)), shape=(n, n))
    n_comp, label = connected_components(adj, directed=False)
    sizes = np.bincount(label)
    report["components"] = int(n_comp)
    report["largest_component_share"] = float(sizes.max() / n)
    if keep == "largest" and n_comp > 1:
        main = int(np.argmax(sizes))
        in_main = label[st.seg_a] == main
        report["dropped_nodes"] = int(n - sizes[main])
        report["dropped_components"] = int(n_comp - 1)
        log.info("%s graph: %d connected components; kept the largest (%d of %d vertices), "
                 "dropped %d vertices in %d smaller components", mode, n_comp, sizes[main], n,
                 n - sizes[main], n_comp - 1)
        st = _subset(st, in_main)
    else:
        report["dropped_nodes"] = 0
        report["dropped_components"] = 0
    rules = mode_rules(st.ways, mode)  # _subset renumbered the ways
    fw = rules["forward"].to_numpy(bool)[st.seg_way]
    bw = rules["backward"].to_numpy(bool)[st.seg_way]
    xa, xb = st.xy[st.seg_a], st.xy[st.seg_b]
    dem_obj: Dem | None
    if dem is None or isinstance(dem, Dem):
        dem_obj = dem
    else:
        lo = st.xy.min(axis=0)
        hi = st.xy.max(axis=0)
        dem_obj = Dem.read(dem, bounds=(lo[0], lo[1], hi[0], hi[1]), crs=st.crs)
    flat = (st.ways["bridge"].to_numpy(bool) | st.ways["tunnel"].to_numpy(bool))[st.seg_way]
    t_f, t_b, missing = segment_times(xa, xb, mode, flat_kmh=speed, dem=dem_obj,
                                      flat_mask=flat, walk_kmh=s.walk_speed_kmh)
    if dem_obj is not None:
        share = missing / max(st.n_segments, 1)
        report["segments_without_elevation"] = missing
        if share > 0.5:
            raise InputFileError(
                f"DEM {dem_obj.path} covers only {100 * (1 - share):.0f}% of the street "
                f"segments of {streets.source}; expected a DEM covering the area"
            )
        if missing:
            log.warning("%d of %d street segments have no elevation in %s: timed as flat",
                        missing, st.n_segments, dem_obj.path)
    length = np.hypot(*(xb - xa).T)
    graph = _contract(st, fw, bw, length, t_f, t_b, simplify=simplify)
    report.update(nodes=graph["node_id"].size, links=graph["link_u"].size,
                  length_km=float(length.sum() / 1000))
    g = StreetGraph(mode=mode, crs=st.crs, speed_kmh=speed, source=streets.source,
                    vintage=streets.vintage, dem=None if dem_obj is None else dem_obj.path,
                    report=report, **graph)
    log.info("%s", g.summary())
    return g


def _interior_vertices(
    a: np.ndarray, b: np.ndarray, fw: np.ndarray, bw: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices a chain passes through (two segments, same allowed directions), and the
    segment pairs they join. One vertex of every pure cycle stays a node."""
    m = a.size
    seg = np.arange(m)
    # incidences (vertex, segment, vertex is the segment's b end), grouped by vertex
    inc_v = np.concatenate([a, b])
    order = np.argsort(inc_v, kind="stable")
    inc_s = np.concatenate([seg, seg])[order]
    inc_end_b = (order >= m)
    deg = np.bincount(inc_v, minlength=n)
    del inc_v, order
    start = np.r_[0, np.cumsum(deg)[:-1]]
    cand = np.flatnonzero(deg == 2)
    s1, s2 = inc_s[start[cand]], inc_s[start[cand] + 1]
    e1b, e2b = inc_end_b[start[cand]], inc_end_b[start[cand] + 1]
    del inc_s, inc_end_b, start
    # into the vertex / out of it along each segment
    in1 = np.where(e1b, fw[s1], bw[s1])
    out1 = np.where(e1b, bw[s1], fw[s1])
    in2 = np.where(e2b, fw[s2], bw[s2])
    out2 = np.where(e2b, bw[s2], fw[s2])
    ok = (in1 == out2) & (out1 == in2)
    interior = np.zeros(n, dtype=bool)
    interior[cand[ok]] = True
    pair_v, pair_a, pair_b = cand[ok], s1[ok], s2[ok]
    if pair_a.size:
        chain = sparse.coo_array((np.ones(pair_a.size, dtype=np.int8), (pair_a, pair_b)),
                                 shape=(m, m))
        _, lab = connected_components(chain, directed=False)
        n_pairs = np.bincount(lab[pair_a], minlength=lab.max() + 1)
        n_segs = np.bincount(lab, minlength=lab.max() + 1)
        cyclic = n_pairs >= n_segs
        if cyclic.any():
            pair_lab = lab[pair_a]
            first_pair = pd.Series(np.arange(pair_a.size)).groupby(pair_lab).first()
            breaks = first_pair[cyclic[first_pair.index.to_numpy()]].to_numpy()
            interior[pair_v[breaks]] = False
            keep_pair = np.ones(pair_a.size, dtype=bool)
            keep_pair[breaks] = False
            pair_a, pair_b = pair_a[keep_pair], pair_b[keep_pair]
    return interior, pair_a, pair_b


def _orient(
    sa: np.ndarray, sb: np.ndarray, new_chain: np.ndarray, interior: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end vertex of each ordered segment, and whether it runs against its way.

    A chain's first segment leaves its end node; the others leave the vertex they share
    with the previous segment.
    """
    prev_a, prev_b = np.r_[-1, sa[:-1]], np.r_[-1, sb[:-1]]
    shares_a = interior[sa] & ((sa == prev_a) | (sa == prev_b))
    del prev_a, prev_b
    start_a = np.where(new_chain, ~interior[sa], shares_a)
    return np.where(start_a, sa, sb), np.where(start_a, sb, sa), ~start_a


def _chain_order(
    pair_a: np.ndarray, pair_b: np.ndarray, starts: np.ndarray, lab: np.ndarray, m: int
) -> np.ndarray:
    """Segments sorted by chain, then by position from the chain's start segment.

    A breadth-first search from a virtual root linked to every start segment gives each
    segment its predecessor in its chain; list ranking (pointer jumping, O(m log L) for
    chains of L segments) turns predecessors into positions. (scipy's depth-first order
    would give the sequence directly but is quadratic in the root's degree.)
    """
    root = m
    rows = np.concatenate([pair_a, pair_b, np.full(starts.size, root)])
    cols = np.concatenate([pair_b, pair_a, starts])
    walk = sparse.csr_array((np.ones(rows.size, dtype=np.int8), (rows, cols)),
                            shape=(m + 1, m + 1))
    _, pred = breadth_first_order(walk, root, directed=True, return_predecessors=True)
    nxt = pred.copy()
    nxt[root] = root
    if (nxt < 0).any():
        raise RuntimeError(f"chain ordering reached {(nxt >= 0).sum() - 1} of {m} segments")
    rank = np.ones(m + 1, dtype=np.int64)
    rank[root] = 0
    while (nxt[:m] != root).any():
        rank = rank + rank[nxt]
        rank[root] = 0
        nxt = nxt[nxt]
    return np.lexsort((rank[:m], lab))


def _contract(
    st: Streets,
    fw: np.ndarray,
    bw: np.ndarray,
    length: np.ndarray,
    t_f: np.ndarray,
    t_b: np.ndarray,
    *,
    simplify: bool,
) -> dict[str, Any]:
    """Chains of segments through degree-2 vertices -> links with vertex arrays."""
    a, b = st.seg_a, st.seg_b
    m, n = a.size, len(st.node_id)
    if simplify:
        interior, pair_a, pair_b = _interior_vertices(a, b, fw, bw, n)
    else:
        interior = np.zeros(n, dtype=bool)
        pair_a = pair_b = np.zeros(0, dtype=np.int64)
    # chains: components of segments joined at interior vertices
    chain = sparse.coo_array((np.ones(pair_a.size, dtype=np.int8), (pair_a, pair_b)),
                             shape=(m, m))
    _, lab = connected_components(chain, directed=False)
    del chain
    # a chain starts at a segment with a vertex that stays a node
    at_end = ~interior[a] | ~interior[b]
    starts = pd.Series(np.flatnonzero(at_end)).groupby(lab[at_end]).min().to_numpy()
    seq = _chain_order(pair_a, pair_b, starts, lab, m)
    del pair_a, pair_b, at_end, starts
    lab_seq = lab[seq]
    new_chain = np.r_[True, lab_seq[1:] != lab_seq[:-1]]
    del lab, lab_seq
    p, q, flip = _orient(a[seq], b[seq], new_chain, interior)
    s_fw = np.where(flip, bw[seq], fw[seq])
    s_bw = np.where(flip, fw[seq], bw[seq])
    s_tf = np.where(flip, t_b[seq], t_f[seq])
    s_tb = np.where(flip, t_f[seq], t_b[seq])
    s_len = length[seq]
    chain_id = np.cumsum(new_chain) - 1
    first_pos = np.flatnonzero(new_chain)
    last_pos = np.r_[first_pos[1:] - 1, m - 1]
    # vertex arrays: p of every segment, plus q of each chain's last segment
    seg_count = np.diff(np.r_[first_pos, m])
    vtx_ptr = np.r_[0, np.cumsum(seg_count + 1)]
    vtx_node = np.empty(vtx_ptr[-1], dtype=np.int64)
    pos_in_vtx = np.arange(m) + chain_id  # each earlier chain adds one extra vertex
    vtx_node[pos_in_vtx] = p
    vtx_node[vtx_ptr[1:] - 1] = q[last_pos]

    def cum(values: np.ndarray) -> np.ndarray:
        out = np.zeros(vtx_ptr[-1])
        c = np.cumsum(values)
        base = np.r_[0.0, c][first_pos]  # cumulative total before each chain
        out[pos_in_vtx + 1] = c - base[chain_id]
        return out

    vtx_m, vtx_fwd, vtx_bwd = cum(s_len), cum(s_tf), cum(s_tb)
    link_u_v, link_v_v = p[first_pos], q[last_pos]
    # nodes: the vertices at link ends
    is_node = np.zeros(n, dtype=bool)
    is_node[link_u_v] = is_node[link_v_v] = True
    node_index = np.cumsum(is_node) - 1
    ways = st.ways.iloc[st.seg_way[seq][first_pos]].reset_index(drop=True)
    return {
        "node_id": st.node_id[is_node],
        "node_xy": st.xy[is_node],
        "link_u": node_index[link_u_v],
        "link_v": node_index[link_v_v],
        "link_forward": s_fw[first_pos],
        "link_backward": s_bw[first_pos],
        "link_length_m": vtx_m[vtx_ptr[1:] - 1],
        "link_fwd_s": vtx_fwd[vtx_ptr[1:] - 1],
        "link_bwd_s": vtx_bwd[vtx_ptr[1:] - 1],
        "links": ways[["way_id", "highway", "name"]].assign(
            segments=seg_count.astype(np.int64)),
        "vtx_ptr": vtx_ptr,
        "vtx_xy": st.xy[vtx_node],
        "vtx_m": vtx_m,
        "vtx_fwd_s": vtx_fwd,
        "vtx_bwd_s": vtx_bwd,
    }
