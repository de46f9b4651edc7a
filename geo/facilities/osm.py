"""Facilities from OpenStreetMap files (:func:`read_osm_pois`): one pyosmium pass over the
nodes, ways and relations carrying a facility tag, matched to the subcategories of
``data/categories.toml``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict

import geopandas as gpd
import osmium
import pandas as pd
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.ops import polygonize, unary_union

from geo._categories import Categories, load_categories
from geo._io import libosmium_readable
from geo._osm import osm_timestamp
from geo.errors import InputFileError
from geo.facilities.chains import _chain_flags
from geo.facilities.schema import SourceReport, _finish, _frame
from geo.settings import Settings, get_settings

# --- OSM --------------------------------------------------------------------------------------


def read_osm_pois(
    path: str | Path,
    *,
    crs: str | None = None,
    categories: Categories | None = None,
    settings: Settings | None = None,
) -> gpd.GeoDataFrame:
    """Facilities of an OSM extract (XML or PBF, plain or compressed): nodes, and ways and
    relations as points.

    A way becomes a point on its surface (closed ways) or the middle of its line; a
    relation a point on the surface of the polygons its member ways close, else the centroid
    of its members' nodes. Ways cut by the extract's clip (node references missing from the
    file) use the nodes that are present; objects with no located node at all are reported.
    Chain detection for shops and restaurants: a ``brand`` / ``brand:wikidata`` tag, or a
    brand, name or operator matching a national banner of the categories file.

    Parameters
    ----------
    path
        ``.osm``, ``.osm.pbf``, ``.osm.gz``, ``.osm.bz2`` or ``.osm.xz`` file.
    crs
        Output CRS (default ``settings.publish_crs``).
    """
    s = settings or get_settings()
    cats = categories or load_categories(s)
    path = Path(path)
    report = SourceReport("osm", str(path))
    with _osm_readable(path) as readable:
        records = _scan_osm(readable, cats, report)
    stamp = osm_timestamp(path)
    if stamp:
        report.notes.append(f"OSM data as of {stamp}")
    cols: dict[str, list[Any]] = {k: [] for k in ("source", "source_id", "category",
                                                   "subcategory", "name", "brand", "power_mw",
                                                   "geometry")}
    texts: list[tuple[Any, ...]] = []
    for rec in records:
        for sub in rec["subcategories"]:
            cols["source"].append("osm")
            cols["source_id"].append(rec["id"])
            cols["category"].append(cats.category_of(sub))
            cols["subcategory"].append(sub)
            cols["name"].append(rec["tags"].get("name"))
            cols["brand"].append(rec["tags"].get("brand"))
            cols["power_mw"].append(
                _power_mw(rec["tags"]) if cats.category_of(sub) == "energie" else None
            )
            cols["geometry"].append(rec["point"])
            texts.append((rec["tags"].get("brand:wikidata"), rec["tags"].get("name"),
                          rec["tags"].get("operator")))
    gdf = _frame(cols, crs="EPSG:4326")
    wikidata = pd.Series([t[0] for t in texts], dtype="str", index=gdf.index)
    brand = gdf["brand"].fillna(wikidata.where(wikidata.notna(), None))
    chain, brand = _chain_flags(
        cats, gdf["category"],
        pd.Series([t[1] for t in texts], dtype="str", index=gdf.index),
        pd.Series([t[2] for t in texts], dtype="str", index=gdf.index),
        brand=brand,
    )
    gdf["chain"] = chain
    # Keep the OSM brand tag as is; a banner found from name/operator fills it otherwise.
    gdf["brand"] = gdf["brand"].fillna(brand.where(wikidata.isna() | gdf["brand"].notna()))
    gdf = gdf.to_crs(crs or s.publish_crs) if (crs or s.publish_crs) != "EPSG:4326" else gdf
    return _finish(gdf, report)


@contextlib.contextmanager
def _osm_readable(path: Path) -> Iterator[Path]:
    """A path libosmium can read (``.xz`` is decompressed to a temporary file)."""
    if not path.is_file():
        raise InputFileError(f"OSM extract {path} does not exist")
    with libosmium_readable(path) as readable:
        yield readable


class _OsmRecord(TypedDict):
    id: str  # "n123", "w123", "r123"
    subcategories: list[str]
    tags: dict[str, str]
    point: Point


def _scan_osm(path: Path, cats: Categories, report: SourceReport) -> list[_OsmRecord]:
    """Classified OSM nodes, ways and relations as records with a point each
    (``report.rows_read`` counts the objects looked at: those with a facility key)."""
    anchors = cats.osm_anchor_keys

    def classify(
        obj: osmium.osm.Node | osmium.osm.Way | osmium.osm.Relation,
    ) -> tuple[list[str], dict[str, str]] | None:
        tags = obj.tags
        if not any(k in tags for k in anchors):
            return None
        report.rows_read += 1
        tagd = dict(tags)
        subs, status = cats.classify_osm(tagd)
        if status == "excluded":
            report.excluded["closed or vacant"] += 1
        elif status:
            report.unknown[status] += 1
        return (subs, tagd) if subs else None

    records: list[_OsmRecord] = []
    unlocated = partial = 0
    try:
        # Pass 1: relations worth keeping, and the members whose geometry they need.
        wanted_rel: dict[int, tuple[list[str], dict[str, str]]] = {}
        member_ways: set[int] = set()
        member_nodes: set[int] = set()
        for rel in osmium.FileProcessor(str(path), osmium.osm.RELATION):
            if not isinstance(rel, osmium.osm.Relation):  # (only relations are read)
                continue
            hit = classify(rel)
            if hit:
                wanted_rel[rel.id] = hit
                member_ways.update(m.ref for m in rel.members if m.type == "w")
                member_nodes.update(m.ref for m in rel.members if m.type == "n")
        # Pass 2: nodes and ways with their locations, then the wanted relations
        # (not changesets, which an OSM XML file may hold too).
        way_coords: dict[int, list[tuple[float, float]]] = {}
        node_coords: dict[int, tuple[float, float]] = {}
        entities = osmium.osm.NODE | osmium.osm.WAY | osmium.osm.RELATION
        for obj in osmium.FileProcessor(str(path), entities).with_locations():
            if isinstance(obj, osmium.osm.Node):
                if obj.id in member_nodes and obj.location.valid():
                    node_coords[obj.id] = (obj.location.lon, obj.location.lat)
                hit = classify(obj)
                if hit is None:
                    continue
                if not obj.location.valid():
                    unlocated += 1
                    continue
                point = Point(obj.location.lon, obj.location.lat)
                records.append({"id": f"n{obj.id}", "subcategories": hit[0], "tags": hit[1],
                                "point": point})
            elif isinstance(obj, osmium.osm.Way):
                coords = [(n.location.lon, n.location.lat) for n in obj.nodes
                          if n.location.valid()]
                if obj.id in member_ways:
                    way_coords[obj.id] = coords
                hit = classify(obj)
                if hit is None:
                    continue
                point = _way_point(coords, closed=obj.is_closed())
                if point is None:
                    unlocated += 1
                    continue
                partial += len(coords) < len(obj.nodes)
                records.append({"id": f"w{obj.id}", "subcategories": hit[0], "tags": hit[1],
                                "point": point})
            elif isinstance(obj, osmium.osm.Relation) and obj.id in wanted_rel:
                subs, tagd = wanted_rel[obj.id]
                point = _relation_point(obj, way_coords, node_coords)
                if point is None:
                    unlocated += 1
                    continue
                records.append({"id": f"r{obj.id}", "subcategories": subs, "tags": tagd,
                                "point": point})
    except RuntimeError as exc:
        raise InputFileError(f"OSM extract {path}: cannot be read by libosmium ({exc})") from None
    if unlocated:
        report.excluded["no located node in the extract"] += unlocated
    if partial:
        report.notes.append(f"{partial} way(s) reference nodes missing from the extract (cut "
                            "by its clip): placed from the nodes present")
    return records


def _way_point(coords: list[tuple[float, float]], *, closed: bool) -> Point | None:
    if not coords:
        return None
    if len(coords) == 1:
        return Point(coords[0])
    if closed and len(coords) >= 4:
        poly = Polygon(coords)
        if poly.is_valid and poly.area > 0:
            return poly.point_on_surface()
        return MultiPoint(coords).centroid
    line = LineString(coords)
    return line.interpolate(0.5, normalized=True)


def _relation_point(
    rel: osmium.osm.Relation,
    way_coords: Mapping[int, list[tuple[float, float]]],
    node_coords: Mapping[int, tuple[float, float]],
) -> Point | None:
    lines = []
    points = []
    for m in rel.members:
        if m.type == "w" and len(way_coords.get(m.ref, ())) >= 2:
            lines.append(LineString(way_coords[m.ref]))
            points.extend(way_coords[m.ref])
        elif m.type == "n" and m.ref in node_coords:
            points.append(node_coords[m.ref])
    if lines:
        polys = list(polygonize(unary_union(lines)))
        if polys:
            return unary_union(polys).point_on_surface()
    if points:
        return MultiPoint(points).centroid
    return None


_POWER_RE = re.compile(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*(gw|mw|kw|w)?\b", re.I)


def _power_mw(tags: Mapping[str, str]) -> float | None:
    """Rated power in MW from ``generator:output:electricity`` / ``plant:output:electricity``."""
    for key in ("generator:output:electricity", "plant:output:electricity"):
        m = _POWER_RE.match(tags.get(key, ""))
        if m:
            value = float(m.group(1).replace(",", "."))
            unit = (m.group(2) or "w").lower()
            return value * {"gw": 1000.0, "mw": 1.0, "kw": 1e-3, "w": 1e-6}[unit]
    return None
