"""Readers turning a street source into :class:`~geo.network.ways.Streets`: OSM XML and
PBF files (pyosmium, then osmnx for XML), Overpass, and road lines without node ids.
"""

from __future__ import annotations

import contextlib
import io
import logging
import lzma
import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer
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
from geo.network.ways import (
    _OSM_WAY_TAGS,
    _OVERPASS_FILTER,
    Streets,
    _check_metric,
    _oneway_code,
    _ways_frame,
)
from geo.settings import Settings

if TYPE_CHECKING:
    import networkx as nx

log = logging.getLogger(__package__)  # geo.network: log lines keep their logger name


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
