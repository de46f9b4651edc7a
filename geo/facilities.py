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
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Literal, TypedDict

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import pyogrio
import pyproj
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.ops import polygonize, unary_union

from geo import communes, sources
from geo._categories import CATEGORY_KEYS, Categories, load_categories, normalize_text
from geo._io import (
    head_text,
    is_stale,
    libosmium_readable,
    read_parquet_cached,
    read_parquet_metadata,
    write_parquet,
)
from geo._io import read_delimited as _read_csv
from geo._osm import osm_timestamp
from geo.errors import GeoError, InputFileError, MissingColumnsError, MissingCrsError
from geo.settings import Settings, get_settings

__all__ = [
    "CATEGORY_KEYS",
    "FACILITY_COLUMNS",
    "SOURCE_PRIORITY",
    "CommuneCheck",
    "SourceReport",
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

log = logging.getLogger(__name__)

#: Columns of every facility table, in order.
FACILITY_COLUMNS = [
    "facility_id", "source", "source_id", "category", "subcategory", "name", "brand", "chain",
    "insee", "power_mw", "geometry",
]

#: Which source's row is kept (and listed first) when duplicates are merged: the national
#: single-kind registers first, then OSM (names, brands), then the BPE.
SOURCE_PRIORITY = ("eoliennes", "museofile", "cinemas", "festivals", "france_services", "osm",
                   "bpe")

#: File name of the national counts in ``settings.interim_dir``.
COUNTS_FILE = "facilities_communes.parquet"

_DTYPES = {
    "facility_id": "str", "source": "str", "source_id": "str", "category": "str",
    "subcategory": "str", "name": "str", "brand": "str", "chain": "boolean", "insee": "str",
    "power_mw": "float64",
}

# --- reports ---------------------------------------------------------------------------


@dataclass
class SourceReport:
    """What a reader did with one input: counts, unknown codes or tags, exclusions."""

    source: str
    path: str
    #: rows of the file (OSM: objects carrying a facility tag key)
    rows_read: int = 0
    kept: int = 0
    #: unknown code or ``key=value`` tag -> number of rows (or equipments for BPE counts)
    unknown: Counter[str] = field(default_factory=Counter)
    #: reason -> number of rows left out on purpose
    excluded: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    #: what ``rows_read`` and ``kept`` count (BPE counts: equipments)
    unit: str = "rows"

    @property
    def n_unknown(self) -> int:
        """Rows with an unknown code or tag."""
        return sum(self.unknown.values())

    def summary(self) -> str:
        """One line: kept/read, exclusions, unknown codes (most frequent first)."""
        if self.source == "osm":
            parts = [f"osm: {self.kept:,} facility rows from {self.rows_read:,} objects with "
                     "facility tags"]
        else:
            parts = [f"{self.source}: kept {self.kept:,} of {self.rows_read:,} {self.unit}"]
        if self.excluded:
            parts.append(
                "excluded " + ", ".join(f"{n:,} {why}" for why, n in self.excluded.most_common())
            )
        if self.unknown:
            top = ", ".join(f"{k} ({n})" for k, n in self.unknown.most_common(8))
            more = len(self.unknown) - 8
            parts.append(
                f"{self.n_unknown:,} with {len(self.unknown)} unknown code(s)/tag(s): {top}"
                + (f" and {more} more" if more > 0 else "")
            )
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for output metadata)."""
        return {
            "source": self.source, "path": self.path, "rows_read": self.rows_read,
            "kept": self.kept, "unknown": dict(self.unknown.most_common()),
            "excluded": dict(self.excluded), "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceReport:
        """The report :meth:`as_dict` wrote (read back from output metadata)."""
        return cls(source=str(data.get("source", "")), path=str(data.get("path", "")),
                   rows_read=int(data.get("rows_read", 0)), kept=int(data.get("kept", 0)),
                   unknown=Counter(data.get("unknown", {})),
                   excluded=Counter(data.get("excluded", {})),
                   notes=list(data.get("notes", [])))

    def log(self) -> None:
        """Log the summary (a warning when there are unknown codes or tags) and the notes."""
        level = logging.WARNING if self.unknown else logging.INFO
        log.log(level, "%s", self.summary())
        for note in self.notes:
            log.info("%s: %s", self.source, note)


def _report(gdf: pd.DataFrame) -> SourceReport:
    """The :class:`SourceReport` a reader of this module attached to its table."""
    rep = gdf.attrs.get("report")
    if not isinstance(rep, SourceReport):  # every reader attaches one: a bug if missing
        raise TypeError(f"table has no SourceReport in attrs['report'] (got {rep!r})")
    return rep


# --- schema helpers ------------------------------------------------------------------------


def empty_facilities(crs: str | None = None) -> gpd.GeoDataFrame:
    """An empty facility table with the schema's columns and dtypes."""
    return _frame({k: [] for k in FACILITY_COLUMNS}, crs=crs or get_settings().publish_crs)


def _frame(columns: Mapping[str, Sequence[Any]], *, crs: str) -> gpd.GeoDataFrame:
    """A facility table from its columns (a column left out is all null)."""
    data = {}
    n = len(columns["geometry"])
    for col in FACILITY_COLUMNS[:-1]:
        values = columns.get(col)
        data[col] = pd.array([None] * n if values is None else list(values), dtype=_DTYPES[col])
    geoms = gpd.GeoSeries(list(columns["geometry"]), crs=crs)
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


def _finish(gdf: gpd.GeoDataFrame, report: SourceReport) -> gpd.GeoDataFrame:
    gdf["facility_id"] = gdf["source"] + ":" + gdf["source_id"]
    report.kept = len(gdf)
    gdf.attrs["report"] = report
    report.log()
    return gdf


def _points_from_xy(
    x: pd.Series, y: pd.Series, *, src_crs: str | pd.Series, crs: str
) -> gpd.GeoSeries:
    """Points from coordinate columns (strings with '.' or ',' decimals) in ``src_crs``
    (one CRS, or one per row), reprojected to ``crs``; empty where a coordinate is missing."""
    xs = pd.to_numeric(x.astype("str").str.replace(",", ".", regex=False), errors="coerce")
    ys = pd.to_numeric(y.astype("str").str.replace(",", ".", regex=False), errors="coerce")
    out = np.full(len(xs), None, dtype=object)
    groups = (
        pd.Series(src_crs, index=xs.index) if isinstance(src_crs, str) else src_crs
    ).reset_index(drop=True)
    xv, yv = xs.to_numpy(dtype=float), ys.to_numpy(dtype=float)
    ok = np.isfinite(xv) & np.isfinite(yv)
    for code in groups[ok].unique():
        sel = ok & (groups == code).to_numpy()
        tr = pyproj.Transformer.from_crs(code, crs, always_xy=True)
        tx, ty = tr.transform(xv[sel], yv[sel])
        out[sel] = shapely.points(tx, ty)
    return gpd.GeoSeries(out, crs=crs)


_INSEE_CODE = re.compile(r"[0-9][0-9AB][0-9]{3}")


def _current_code(code: object, code_map: Mapping[str, str] | None) -> str | None:
    """Current COG code of a commune code (old, merged or an arrondissement, through
    :func:`geo.communes.current_code_map`); unknown codes are kept as they are."""
    if code is None or (isinstance(code, float) and code != code) or code is pd.NA:
        return None
    text = str(code).strip()
    if not text:
        return None
    if text.isdigit() and len(text) < 5:
        text = text.zfill(5)
    if text.strip("0") == "":
        return None  # "00000": a placeholder for an unknown commune
    if not _INSEE_CODE.fullmatch(text.upper()):
        return None  # a malformed code (e.g. "2B14"): the point says where it is
    if code_map:
        return code_map.get(text, text)
    return text


def _current_codes(codes: pd.Series, code_map: Mapping[str, str] | None) -> pd.Series:
    uniq = {c: _current_code(c, code_map) for c in codes.dropna().unique()}
    return codes.map(uniq).astype("str")


# --- tabular input -------------------------------------------------------------------------

def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` or an all-missing string column."""
    if name in df.columns:
        return df[name]
    return pd.Series(pd.array([None] * len(df), dtype="str"), index=df.index)


def _dataset_file(path: str | Path | None, dataset_id: str, settings: Settings) -> Path:
    return Path(path) if path is not None else sources.ensure(dataset_id, settings)


def _chain_flags(
    cats: Categories, categories: pd.Series, *texts: pd.Series, brand: pd.Series | None = None
) -> tuple[pd.Series, pd.Series]:
    """(chain, brand) for rows of a table: banner matched on the texts; NA outside commerces
    or when no text is given."""
    n = len(categories)
    chain = pd.array([None] * n, dtype="boolean")
    brands = pd.array([None] * n, dtype="str") if brand is None else brand.array.copy()
    cat = categories.to_numpy()
    cols = [t.to_numpy(dtype=object, na_value=None) for t in texts]
    bcol = None if brand is None else brand.to_numpy(dtype=object, na_value=None)
    for i in range(n):
        if cat[i] != "commerces":
            continue
        vals = [c[i] for c in cols if c[i]]
        given_brand = bcol[i] if bcol is not None else None
        if given_brand:
            chain[i] = True
            continue
        if not vals:
            continue
        banner = cats.match_banner(*vals)
        chain[i] = banner is not None
        if banner is not None:
            brands[i] = banner
    return pd.Series(chain, index=categories.index), pd.Series(brands, index=categories.index)


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


# --- culture ---------------------------------------------------------------------------------


def read_museofile(
    path: str | Path | None = None, *, crs: str | None = None, settings: Settings | None = None
) -> gpd.GeoDataFrame:
    """Musées de France (Muséofile): one ``musee`` per museum, from lat/lon.

    The file has no INSEE code (postcode and town name only): ``insee`` is empty; assign it
    with :func:`locate_communes` (done by :func:`national_facilities`).
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "museofile", s)
    df = _read_csv(path, label="Muséofile", required=["Identifiant", "Nom_officiel", "lat", "lon"],
                   optional=["Ville", "Code_postal"])
    return _single_kind_frame(
        df, cats, source="museofile", path=path, id_col="Identifiant", name_col="Nom_officiel",
        code_col=None, x_col="lon", y_col="lat", src_crs="EPSG:4326",
        crs=crs or s.publish_crs, code_map=None,
    )


def read_cinemas(
    path: str | Path | None = None,
    *,
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Active cinemas (CNC): one ``cinema`` per establishment, INSEE code from the file
    (municipal arrondissements mapped to their commune; old codes through ``code_map``)."""
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "cinemas", s)
    df = _read_csv(path, label="CNC cinemas",
                   required=["N° auto", "nom", "code INSEE", "latitude", "longitude"])
    return _single_kind_frame(
        df, cats, source="cinemas", path=path, id_col="N° auto", name_col="nom",
        code_col="code INSEE", x_col="longitude", y_col="latitude", src_crs="EPSG:4326",
        crs=crs or s.publish_crs, code_map=code_map,
    )


def read_festivals(
    path: str | Path | None = None,
    *,
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Festivals (Ministère de la Culture): one ``festival`` per festival, at its main
    venue's commune (INSEE code from the file) and coordinates."""
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "festivals", s)
    df = _read_csv(path, label="festivals",
                   required=["Identifiant", "Nom du festival", "Code Insee commune", "lat", "lon"])
    return _single_kind_frame(
        df, cats, source="festivals", path=path, id_col="Identifiant", name_col="Nom du festival",
        code_col="Code Insee commune", x_col="lon", y_col="lat", src_crs="EPSG:4326",
        crs=crs or s.publish_crs, code_map=code_map,
    )


def _single_kind_frame(
    df: pd.DataFrame, cats: Categories, *, source: str, path: Path, id_col: str, name_col: str,
    code_col: str | None, x_col: str, y_col: str, src_crs: str | pd.Series, crs: str,
    code_map: Mapping[str, str] | None, power: pd.Series | None = None,
    report: SourceReport | None = None,
) -> gpd.GeoDataFrame:
    """A national register of one kind of facility (``cats.source_subcategory[source]``)
    in the facility schema; ``code_col`` None: the file has no INSEE code."""
    report = report or SourceReport(source, str(path), rows_read=len(df))
    sub = cats.source_subcategory[source]
    geom = _points_from_xy(df[x_col], df[y_col], src_crs=src_crs, crs=crs)
    missing = int(geom.isna().sum())
    if missing:
        report.notes.append(f"{missing} row(s) without coordinates: kept for commune counts, "
                            "no point")
    columns: dict[str, Sequence[Any]] = {
        "source": [source] * len(df), "source_id": df[id_col].astype("str"),
        "category": [cats.category_of(sub)] * len(df), "subcategory": [sub] * len(df),
        "name": df[name_col], "geometry": geom,
    }
    if code_col is not None:
        insee = _current_codes(df[code_col], code_map)
        columns["insee"] = insee
        no_code = int(insee.isna().sum())
        if no_code:
            report.notes.append(f"{no_code} row(s) without an INSEE code (empty or 00000)")
    if power is not None:
        columns["power_mw"] = power
    gdf = _frame(columns, crs=crs)
    return _finish(gdf, report)


# --- energy ------------------------------------------------------------------------------------


def read_wind_turbines(
    path: str | Path | None = None,
    *,
    as_of: date | str | None = None,
    undated: Literal["keep", "drop"] = "keep",
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Onshore wind turbines (Géorisques ICPE register): one ``eolienne`` per turbine with
    its power (MW), from Lambert-93 (or the ``epsg`` column's) x/y.

    Turbines whose commissioning date (``date_mise_en_service``) is after the reference
    date are not commissioned yet: they are left out and reported. The reference date is
    ``as_of`` if given, else the record's update date (``date_maj``), else today.
    Turbines without a commissioning date are kept by default (``undated="keep"``) and
    counted in the report: the register is of authorised installations, and undated
    records are mostly turbines in service whose date was not filled in (in the 2022
    register their power brings the total to the national installed capacity).
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "eoliennes", s)
    df = _read_csv(
        path, label="Géorisques wind turbines",
        required=["id_aerogenerateur", "code_insee", "puissance", "x_aerogenerateur",
                  "y_aerogenerateur", "date_mise_en_service"],
        optional=["epsg", "date_maj", "nom_eolienne", "id_parc", "nom_commune"],
    )
    report = SourceReport("eoliennes", str(path), rows_read=len(df))
    power = pd.to_numeric(df["puissance"].str.replace(",", ".", regex=False), errors="coerce")
    commissioned = pd.to_datetime(df["date_mise_en_service"], errors="coerce", format="mixed")
    bad_dates = int((commissioned.isna() & df["date_mise_en_service"].notna()).sum())
    if bad_dates:
        report.notes.append(f"{bad_dates} unreadable commissioning date(s), treated as undated")
    if as_of is not None:
        ref = pd.Series(pd.Timestamp(as_of), index=df.index)
    else:
        ref = pd.to_datetime(_col(df, "date_maj"), errors="coerce", format="mixed")
        ref = ref.fillna(pd.Timestamp(date.today()))
    future = commissioned.notna() & (commissioned > ref)
    undated_mask = commissioned.isna()
    if future.any():
        report.excluded["not yet commissioned"] += int(future.sum())
        report.notes.append(
            f"left out {int(future.sum())} turbine(s) ({power[future].sum():.1f} MW) "
            f"not yet commissioned (date after the register's update): "
            + ", ".join(sorted(df.loc[future, "id_aerogenerateur"].astype(str))[:10])
        )
    if undated_mask.any():
        what = "kept" if undated == "keep" else "left out"
        report.notes.append(
            f"{what} {int(undated_mask.sum())} turbine(s) ({power[undated_mask].sum():.1f} MW) "
            "without a commissioning date"
        )
        if undated == "drop":
            report.excluded["no commissioning date"] += int(undated_mask.sum())
    keep = ~future & (~undated_mask if undated == "drop" else True)
    df, power = df[keep].reset_index(drop=True), power[keep].reset_index(drop=True)
    if "epsg" in df.columns:
        src = ("EPSG:" + df["epsg"].fillna("2154").str.strip().str.replace(
            r"\.0$", "", regex=True)).astype(object)
    else:
        src = "EPSG:2154"
    df["_name"] = _col(df, "nom_eolienne")
    return _single_kind_frame(
        df, cats, source="eoliennes", path=path, id_col="id_aerogenerateur", name_col="_name",
        code_col="code_insee", x_col="x_aerogenerateur", y_col="y_aerogenerateur",
        src_crs=src, crs=crs or s.publish_crs, code_map=code_map, power=power, report=report,
    )


# --- public services ----------------------------------------------------------------------------

#: France services categories (``categorie``) that are mobile units: their point is a base,
#: not a counter open at that place, so they are left out (reported).
FRANCE_SERVICES_MOBILE = ("fs itinerante", "antenne itinerante")


def read_france_services(
    path: str | Path | None = None,
    *,
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """France services (ANCT): one ``france_services`` per labelled counter, at its point.

    Reads the ANCT GeoJSON as published (``MATRICULE``, ``lib_france_services``,
    ``insee_com``, ``LATITUDE``/``LONGITUDE`` in WGS84, ``categorie``). Mobile units
    (:data:`FRANCE_SERVICES_MOBILE`, a bus touring several communes from a base) are left
    out and reported; commune codes of the list's COG are mapped to the current one
    through ``code_map``.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "france_services", s)
    if not path.is_file():
        raise InputFileError(f"France services file {path} does not exist "
                             "(`pvdgeo fetch france_services`)")
    try:
        df = pyogrio.read_dataframe(path, read_geometry=False)
    except Exception as exc:  # pyogrio raises several error types for corrupt files
        raise InputFileError(f"cannot read France services {path}: {exc}") from None
    required = ["MATRICULE", "lib_france_services", "insee_com", "LATITUDE", "LONGITUDE"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MissingColumnsError(str(path), missing, list(df.columns))
    report = SourceReport("france_services", str(path), rows_read=len(df))
    kind = _col(df, "categorie").astype("string").str.strip().map(
        lambda v: normalize_text(v) if isinstance(v, str) else v)
    mobile = kind.isin(FRANCE_SERVICES_MOBILE).fillna(False).to_numpy(bool)
    if mobile.any():
        report.excluded["mobile unit (no fixed counter)"] += int(mobile.sum())
    df = df[~mobile].reset_index(drop=True)
    return _single_kind_frame(
        df, cats, source="france_services", path=path, id_col="MATRICULE",
        name_col="lib_france_services", code_col="insee_com", x_col="LONGITUDE",
        y_col="LATITUDE", src_crs="EPSG:4326", crs=crs or s.publish_crs, code_map=code_map,
        report=report,
    )


# --- BPE ------------------------------------------------------------------------------------


def _bpe_map(
    codes: pd.Series, cats: Categories, nomenclature: Literal["2013", "2021"],
    report: SourceReport, weights: pd.Series | None = None,
) -> pd.Series:
    """Subcategory per TYPEQU code ("" ignored, NA unknown), counting unknown and ignored."""
    lookup = {c: cats.bpe_subcategory(c, nomenclature) for c in codes.dropna().unique()}
    sub = codes.map(lookup)
    w = weights if weights is not None else pd.Series(1, index=codes.index)
    unknown = sub.isna()
    if unknown.any():
        for code, n in w[unknown].groupby(codes[unknown].fillna("(empty)")).sum().items():
            report.unknown[f"TYPEQU={code}"] += int(n)
    ignored = sub == ""
    if ignored.any():
        report.excluded["TYPEQU outside the categories"] += int(w[ignored].sum())
    return sub.where(~unknown & ~ignored)


def read_bpe_xy(
    path: str | Path | None = None,
    *,
    communes: Iterable[str] | None = None,
    nomenclature: Literal["2013", "2021"] | None = None,
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """The geolocated BPE (INSEE ``BPE23.csv``, ``bpeNN_ensemble_xy.csv``) in its production
    layout: ``;``-separated, ``TYPEQU``, ``DEPCOM`` (or ``DCIRIS``), ``LAMBERT_X``/``LAMBERT_Y``
    in Lambert-93 (UTM overseas; the ``EPSG`` column when present), optional ``NOMRS`` /
    ``CNOMRS`` names and ``AN`` year. A ``.zip`` holding the CSV is read directly.

    Parameters
    ----------
    communes
        Keep only equipments of these (current) INSEE codes.
    nomenclature
        ``"2021"`` (revised codes, D265 médecin généraliste...) or ``"2013"``; default from
        the ``AN`` column (2021 and later: ``"2021"``), else ``"2021"``.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "bpe_xy", s)
    head = head_text(Path(path)).splitlines()[0].upper() if Path(path).is_file() else ""
    code_col = "DEPCOM" if "DEPCOM" in head or "DCIRIS" not in head else "DCIRIS"
    df = _read_csv(
        path, label="BPE (geolocated)", upper=True,
        required=["TYPEQU", code_col, "LAMBERT_X", "LAMBERT_Y"],
        optional=["NOMRS", "CNOMRS", "EPSG", "AN", "DEP", "QUALITE_XY", "SIRET"],
    )
    report = SourceReport("bpe", str(path), rows_read=len(df))
    df["_line"] = pd.RangeIndex(2, len(df) + 2).astype(str)
    df["insee"] = _current_codes(df[code_col].str[:5], code_map)
    if communes is not None:
        keep = set(communes)
        df = df[df["insee"].isin(keep)].reset_index(drop=True)
        report.notes.append(f"{len(df):,} equipment(s) in the {len(keep)} requested commune(s)")
    if nomenclature is None:
        years = pd.to_numeric(_col(df, "AN"), errors="coerce")
        nomenclature = "2013" if years.notna().any() and years.max() < 2021 else "2021"
    sub = _bpe_map(df["TYPEQU"].str.strip(), cats, nomenclature, report)
    df, sub = df[sub.notna()].reset_index(drop=True), sub[sub.notna()].reset_index(drop=True)
    if "EPSG" in df.columns:
        src = ("EPSG:" + df["EPSG"].str.strip().str.replace(r"\.0$", "", regex=True))
        src = src.where(df["EPSG"].notna(), None)
    else:
        src = pd.Series(None, index=df.index, dtype=object)
    deps = df["insee"].str[:3].where(df["insee"].str.startswith("97"), df["insee"].str[:2])
    fallback = deps.map(lambda d: s.crs_for_department(d) if isinstance(d, str) else s.work_crs)
    src = src.fillna(fallback).astype(object)
    geom = _points_from_xy(df["LAMBERT_X"], df["LAMBERT_Y"], src_crs=src, crs=crs or s.publish_crs)
    no_xy = int(geom.isna().sum())
    if no_xy:
        report.notes.append(f"{no_xy:,} equipment(s) without coordinates: kept for counts, "
                            "no point")
    category = sub.map(cats.category_of)
    name = _col(df, "NOMRS")
    chain, brand = _chain_flags(cats, category, name, _col(df, "CNOMRS"))
    gdf = _frame({
        "source": ["bpe"] * len(df), "source_id": "L" + df["_line"],
        "category": category, "subcategory": sub, "name": name, "brand": brand,
        "chain": chain, "insee": df["insee"], "geometry": geom,
    }, crs=crs or s.publish_crs)
    report.notes.append(f"nomenclature {nomenclature}")
    return _finish(gdf, report)


def read_bpe_counts(
    path: str | Path | None = None,
    *,
    nomenclature: Literal["2013", "2021"] = "2013",
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """BPE equipment counts per commune and TYPEQU (long layout: ``depcom``, ``typequ``,
    ``nb_equip``; mirror files of the 2009 and 2013 vintages) mapped to subcategories.

    Returns a DataFrame ``insee, category, subcategory, n`` (old commune codes mapped to
    the current ones and summed); ``attrs["report"]`` counts unknown codes in equipments.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "bpe_2013_counts", s)
    df = _read_csv(path, label="BPE counts", upper=True,
                   required=["DEPCOM", "TYPEQU", "NB_EQUIP"], optional=["ANNEE"])
    report = SourceReport("bpe", str(path), unit="equipments")
    n = pd.to_numeric(df["NB_EQUIP"].str.replace(",", ".", regex=False), errors="coerce")
    bad = int(n.isna().sum())
    if bad:
        report.excluded["unreadable nb_equip"] += bad
    n = n.fillna(0).astype("int64")
    report.rows_read = int(n.sum())
    sub = _bpe_map(df["TYPEQU"].str.strip(), cats, nomenclature, report, weights=n)
    out = pd.DataFrame({
        "insee": _current_codes(df["DEPCOM"].str.strip(), code_map), "subcategory": sub, "n": n,
    })[sub.notna()]
    out = out.groupby(["insee", "subcategory"], as_index=False)["n"].sum()
    out.insert(1, "category", out["subcategory"].map(cats.category_of))
    report.kept = int(out["n"].sum())
    report.notes.append(f"{int(n.sum()):,} equipments in {df['DEPCOM'].nunique():,} commune "
                        f"codes; {report.kept:,} in the categories (nomenclature {nomenclature})")
    out.attrs["report"] = report
    report.log()
    return out


# --- communes ----------------------------------------------------------------------------------


def locate_communes(
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    polygons: gpd.GeoDataFrame,
    *,
    max_distance_m: float = 250.0,
) -> pd.Series:
    """INSEE code of the commune polygon containing each point.

    Points outside every polygon (simplified coastlines, borders) take the nearest polygon
    within ``max_distance_m``; others get ``NA``. Empty geometries get ``NA``.

    Parameters
    ----------
    points
        Points with a CRS.
    polygons
        Communes with ``insee`` and a geometry (reprojected to the points' CRS if needed).
    """
    geo = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if geo.crs is None or polygons.crs is None:
        raise MissingCrsError("locate_communes: points and commune polygons need a CRS")
    if "insee" not in polygons.columns:
        raise MissingColumnsError("commune polygons", ["insee"], list(polygons.columns))
    polys = polygons[["insee", polygons.geometry.name]]
    if not polys.crs.equals(geo.crs):
        polys = polys.to_crs(geo.crs)
    pts = gpd.GeoDataFrame({"_i": np.arange(len(geo))}, geometry=geo.reset_index(drop=True),
                           crs=geo.crs)
    pts = pts[~(pts.geometry.isna() | pts.geometry.is_empty)]
    out = pd.Series(pd.array([None] * len(geo), dtype="str"))
    if pts.empty:
        out.index = geo.index
        return out
    hit = gpd.sjoin(pts, polys, how="inner", predicate="within")
    hit = hit[~hit["_i"].duplicated()]
    out.iloc[hit["_i"].to_numpy()] = hit["insee"].to_numpy()
    rest = pts[~pts["_i"].isin(hit["_i"])]
    if len(rest) and max_distance_m > 0:
        if rest.crs.is_geographic:
            # Web Mercator distances are stretched by 1/cos(latitude): scale them back.
            lat = np.radians(rest.geometry.y.to_numpy())
            rest_m, polys_m = rest.to_crs("EPSG:3857"), polys.to_crs("EPSG:3857")
            near = gpd.sjoin_nearest(rest_m, polys_m, how="inner",
                                     max_distance=max_distance_m / np.cos(np.radians(60)),
                                     distance_col="_d")
            scale = pd.Series(np.cos(lat), index=rest.index)
            near = near[near["_d"] * scale.loc[near.index] <= max_distance_m]
        else:
            near = gpd.sjoin_nearest(rest, polys, how="inner", max_distance=max_distance_m,
                                     distance_col="_d")
        near = near.sort_values("_d")
        near = near[~near["_i"].duplicated()]
        out.iloc[near["_i"].to_numpy()] = near["insee"].to_numpy()
    out.index = geo.index
    return out


@dataclass(frozen=True)
class CommuneCheck:
    """Declared INSEE codes against the commune polygon each point falls in."""

    source: str
    n_checked: int
    n_mismatch: int
    n_unlocated: int
    #: rows whose declared and located codes differ: source_id, name, declared, located
    mismatches: pd.DataFrame

    @property
    def mismatch_rate(self) -> float:
        """Share of located points whose polygon differs from the declared code."""
        return self.n_mismatch / self.n_checked if self.n_checked else 0.0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{self.source}: {self.n_mismatch} of {self.n_checked} points "
                f"({self.mismatch_rate:.1%}) fall in another commune than their INSEE code; "
                f"{self.n_unlocated} outside every commune polygon")


def check_communes(
    facilities: gpd.GeoDataFrame, polygons: gpd.GeoDataFrame, *, max_distance_m: float = 250.0
) -> CommuneCheck:
    """Point-in-polygon check of the ``insee`` codes of ``facilities`` (rows with a code and
    a point), against ``polygons`` (``insee``, geometry)."""
    has = facilities["insee"].notna() & ~(facilities.geometry.isna() | facilities.geometry.is_empty)
    sub = facilities[has]
    located = locate_communes(sub, polygons, max_distance_m=max_distance_m)
    unlocated = located.isna()
    differs = ~unlocated & (located != sub["insee"])
    mism = pd.DataFrame({
        "source_id": sub["source_id"], "name": sub["name"], "declared": sub["insee"],
        "located": located,
    })[differs.fillna(False).astype(bool)]
    src = ",".join(sorted(set(facilities["source"].dropna()))) or "facilities"
    return CommuneCheck(src, int((~unlocated).sum()), len(mism), int(unlocated.sum()),
                        mism.reset_index(drop=True))


# --- deduplication -----------------------------------------------------------------------------

_STOPWORDS = frozenset({
    "le", "la", "les", "l", "de", "du", "des", "d", "et", "a", "au", "aux", "en", "sur",
    "sous", "un", "une", "the", "of", "saint", "st", "ste",
})


def _name_tokens(name: object, generic: frozenset[str]) -> frozenset[str]:
    return frozenset(t for t in normalize_text(name).split() if t not in _STOPWORDS
                     and t not in generic)


def names_similar(a: object, b: object, *, generic: Iterable[str] = ()) -> bool | None:
    """Whether two facility names designate the same place.

    Names are compared without accents, case, stop words and ``generic`` words (what the
    facility is, e.g. "pharmacie", "cinema"): similar when one's words contain
    the other's, or when their sorted words are at least 80 % alike. ``None`` when either
    name is missing or only generic words.
    """
    gen = frozenset(generic)
    ta, tb = _name_tokens(a, gen), _name_tokens(b, gen)
    if not ta or not tb:
        return None
    if ta <= tb or tb <= ta:
        return True
    return SequenceMatcher(None, " ".join(sorted(ta)), " ".join(sorted(tb))).ratio() >= 0.8


_GENERIC_EXTRA = {
    "commerces": {"sarl", "sas", "eurl", "sa", "ets", "magasin", "boutique"},
    "sante": {"cabinet", "docteur", "dr", "centre", "medical", "medicale"},
    "culture": {"cine", "espace", "salle"},
    "education": {"groupe", "scolaire", "public", "publique", "prive", "privee"},
    "services": {"agence"},
}


def _generic_words(cats: Categories) -> dict[str, frozenset[str]]:
    """Words that say what a facility is rather than which one: the words of the category's
    subcategory keys ("pharmacie", "cinema", "ecole") and a few more."""
    words: dict[str, set[str]] = {c: set(_GENERIC_EXTRA.get(c, ())) for c in CATEGORY_KEYS}
    for sub in cats.subcategories.values():
        words[sub.category] |= set(sub.key.split("_"))
    return {c: frozenset(w) for c, w in words.items()}


def deduplicate(
    facilities: gpd.GeoDataFrame,
    *,
    distance_m: float | None = None,
    settings: Settings | None = None,
) -> gpd.GeoDataFrame:
    """Merge the same facility seen by several sources.

    Two rows of different sources are the same facility when they have the same category,
    lie within ``distance_m`` (default ``settings.dedup_distance_m``) and have similar names
    (:func:`names_similar`), or have the same subcategory and a missing name (wind turbines,
    unnamed OSM objects). Closest pairs are merged first; a merged facility never holds two
    rows of one source. The row of the preferred source (:data:`SOURCE_PRIORITY`) is kept,
    its empty fields filled from the others; ``source`` and ``source_id`` list every source
    and id, ``;``-separated, in the same order.

    Requires a metric CRS.
    """
    s = settings or get_settings()
    d = s.dedup_distance_m if distance_m is None else float(distance_m)
    if facilities.crs is None:
        raise MissingCrsError("deduplicate: the facilities have no CRS")
    if facilities.crs.is_geographic:
        raise GeoError(
            f"deduplicate: facilities are in a geographic CRS ({facilities.crs.to_string()}); "
            "project them to a metric CRS (e.g. EPSG:2154) first"
        )
    gdf = facilities.reset_index(drop=True)
    n = len(gdf)
    if n < 2:
        return gdf
    cats = load_categories(s)
    generic = _generic_words(cats)
    geoms = gdf.geometry.to_numpy()
    valid = ~(pd.isna(geoms) | shapely.is_empty(geoms))
    idx = np.flatnonzero(valid)
    tree = shapely.STRtree(geoms[idx])
    left, right = tree.query(geoms[idx], predicate="dwithin", distance=d)
    left, right = idx[left], idx[right]
    keep = left < right
    left, right = left[keep], right[keep]
    first_src = gdf["source"].str.split(";").str[0].to_numpy()
    cat = gdf["category"].to_numpy()
    subc = gdf["subcategory"].to_numpy()
    names = gdf["name"].to_numpy(dtype=object, na_value=None)
    ok = (cat[left] == cat[right]) & (first_src[left] != first_src[right])
    left, right = left[ok], right[ok]
    dist = shapely.distance(geoms[left], geoms[right])
    order = np.argsort(dist, kind="stable")

    parent = list(range(n))
    members: dict[int, set[str]] = {i: set(str(first_src[i]).split(";")) for i in range(n)}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k in order:
        a, b = int(left[k]), int(right[k])
        similar = names_similar(names[a], names[b], generic=generic[cat[a]])
        if not (similar or (similar is None and subc[a] == subc[b])):
            continue
        ra, rb = find(a), find(b)
        if ra == rb or members[ra] & members[rb]:
            continue
        parent[rb] = ra
        members[ra] |= members.pop(rb)

    roots = np.array([find(i) for i in range(n)])
    if len(set(roots)) == n:
        return gdf
    prio = {src: i for i, src in enumerate(SOURCE_PRIORITY)}
    rank = np.array([prio.get(src, len(prio)) for src in first_src])
    work = gdf.assign(_root=roots, _rank=rank, _order=np.arange(n))
    work = work.sort_values(["_root", "_rank"], kind="stable")
    grouped = work[work["_root"].duplicated(keep=False)].groupby("_root", sort=False)
    out = work[~work["_root"].duplicated()].set_index("_root")
    merged = grouped.size().index
    out.loc[merged, "source"] = grouped["source"].agg(";".join)
    out.loc[merged, "source_id"] = grouped["source_id"].agg(";".join)
    for col in ("name", "brand", "chain", "power_mw", "insee"):
        # the first non-empty value, in source priority order
        out.loc[merged, col] = out.loc[merged, col].fillna(grouped[col].first())
    out = out.sort_values("_order").reset_index(drop=True)
    out = gpd.GeoDataFrame(out[FACILITY_COLUMNS], geometry="geometry", crs=gdf.crs)
    log.info("deduplicate: %d rows -> %d facilities (%d merged across sources, %.0f m)",
             n, len(out), n - len(out), d)
    return out[FACILITY_COLUMNS]


# --- the national point sources ------------------------------------------------------------


def national_facilities(
    *,
    settings: Settings | None = None,
    crs: str | None = None,
    polygons: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Museums, cinemas, festivals and commissioned wind turbines of all France, with their
    current INSEE code (Muséofile: located by point in polygon).

    ``attrs["reports"]`` holds the :class:`SourceReport` of each source and
    ``attrs["checks"]`` the :class:`CommuneCheck` of declared codes against the polygons.
    """
    s = settings or get_settings()
    code_map = communes.current_code_map(s)
    out_crs = crs or s.publish_crs
    parts = [
        read_museofile(settings=s, crs=out_crs),
        read_cinemas(settings=s, crs=out_crs, code_map=code_map),
        read_festivals(settings=s, crs=out_crs, code_map=code_map),
        read_wind_turbines(settings=s, crs=out_crs, code_map=code_map),
        read_france_services(settings=s, crs=out_crs, code_map=code_map),
    ]
    reports = {p["source"].iloc[0] if len(p) else _report(p).source: _report(p) for p in parts}
    if polygons is None:
        polygons = communes.commune_polygons(crs="EPSG:4326", settings=s)
    checks = {}
    for p in parts[1:]:
        if len(p):
            check = check_communes(p.to_crs("EPSG:4326"), polygons)
            checks[check.source] = check
            log.info("%s", check.summary())
    # Muséofile has no INSEE code; other rows may lack one ("00000"): point in polygon.
    for p in parts:
        todo = p["insee"].isna() & ~(p.geometry.isna() | p.geometry.is_empty)
        if todo.any():
            p.loc[todo, "insee"] = locate_communes(p[todo].to_crs("EPSG:4326"), polygons,
                                                   max_distance_m=1000.0)
            rep = _report(p)
            n_out = int(p.loc[todo, "insee"].isna().sum())
            rep.notes.append(f"{int(todo.sum()) - n_out} row(s) without an INSEE code located "
                             f"in their commune polygon; {n_out} outside every polygon")
    gdf = pd.concat(parts, ignore_index=True)
    gdf = gpd.GeoDataFrame(gdf, geometry="geometry", crs=out_crs)
    gdf.attrs["reports"] = reports
    gdf.attrs["checks"] = checks
    return gdf


# --- a town --------------------------------------------------------------------------------------


def _town_osm_extract(insee: str, settings: Settings) -> Path | None:
    """The catalogued raw OSM extract of a town (fetched if needed), or None."""
    from geo.extracts import town_extract

    found = sources.datasets_for_town(insee, kind="osm", settings=settings)
    if not found:
        return town_extract(insee, settings)  # cut from a national PBF, if any
    return sources.ensure(found[0].id, settings)


def town_facilities(
    insee: str,
    *,
    osm: str | Path | None = None,
    bpe_xy: str | Path | None = None,
    town_catchment: communes.Catchment | None = None,
    settings: Settings | None = None,
) -> gpd.GeoDataFrame:
    """Facilities of a town and its catchment communes, in the town's metric CRS.

    ``town_catchment`` is the town's catchment when already computed (the town folder's
    ``catchment.parquet``); default :func:`geo.communes.catchment`.

    Sources: the town's OSM extract (``osm``, default the catalogued extract covering the
    town), Muséofile, CNC cinemas, festivals, Géorisques wind turbines, and the geolocated
    BPE when available (``bpe_xy``, default ``data/raw`` if already downloaded). Rows are
    kept when their commune (declared code, or point in polygon) is one of the catchment
    communes; rows without a point are left out (reported); duplicates across sources are
    merged (:func:`deduplicate`).

    ``attrs["reports"]`` maps each source to its :class:`SourceReport`; ``attrs["meta"]``
    holds what the output metadata records (vintages, CRS, catchment).
    """
    s = settings or get_settings()
    catch = town_catchment or communes.catchment(insee, settings=s)
    crs = str(catch.crs)
    polys = catch.communes[["insee", catch.communes.geometry.name]].to_crs(crs)
    codes = set(polys["insee"])
    code_map = communes.current_code_map(s)
    parts: list[gpd.GeoDataFrame] = []
    reports: dict[str, SourceReport] = {}
    used: dict[str, str] = {}

    osm_path = Path(osm) if osm is not None else _town_osm_extract(insee, s)
    if osm_path is None:
        log.warning("%s: no OSM extract catalogued for this town; facilities come from the "
                    "national sources only", insee)
    else:
        pois = read_osm_pois(osm_path, crs=crs, settings=s)
        reports["osm"] = _report(pois)
        pois["insee"] = locate_communes(pois, polys, max_distance_m=100.0)
        outside = int(pois["insee"].isna().sum())
        if outside:
            log.info("osm: %d object(s) outside the catchment communes left out", outside)
        parts.append(pois[pois["insee"].notna()])
        used["osm"] = str(osm_path)

    # The national registers, read once per process, cut to the catchment's communes
    # (and, for rows without a code, to the points near its bounding box).
    w, so, e, n = gpd.GeoSeries([catch.area], crs=crs).to_crs("EPSG:4326").total_bounds
    margin = 0.05  # degrees (~4 km): points up to 100 m from a catchment commune
    readers: list[tuple[str, Any]] = []
    for name, national in _national_registers(s, code_map):
        xy = national.geometry
        near = (xy.x.between(w - margin, e + margin) & xy.y.between(so - margin, n + margin))
        mine = national["insee"].isin(codes) | (national["insee"].isna() & near.to_numpy())
        part = national[mine.to_numpy()].to_crs(crs)
        part.attrs["report"] = copy.deepcopy(_report(national))
        readers.append((name, lambda part=part: part))
    bpe_path = Path(bpe_xy) if bpe_xy is not None else sources.dataset_path("bpe_xy", s)
    if bpe_path.is_file():
        readers.append(("bpe", lambda: read_bpe_xy(bpe_path, communes=codes, crs=crs,
                                                   settings=s, code_map=code_map)))
    elif bpe_xy is None:
        log.info("geolocated BPE not downloaded (%s): facilities from OSM and the national "
                 "registers (`pvdgeo fetch bpe_xy` adds it)", bpe_path)
    for name, read in readers:
        part = read()
        reports[name] = _report(part)
        used[name] = _report(part).path
        todo = part["insee"].isna()  # Muséofile, and codes missing from the file
        if todo.any():
            part.loc[todo, "insee"] = locate_communes(part[todo], polys, max_distance_m=100.0)
        part = part[part["insee"].isin(codes)]
        no_point = part.geometry.isna() | part.geometry.is_empty
        if no_point.any():
            log.info("%s: %d row(s) of the catchment without coordinates left out", name,
                     int(no_point.sum()))
        parts.append(part[~no_point])

    table = pd.concat([p for p in parts if len(p)] or [empty_facilities(crs)],
                      ignore_index=True)
    table = gpd.GeoDataFrame(table, geometry="geometry", crs=crs)
    table = deduplicate(table, settings=s)
    table = table.sort_values(["category", "subcategory", "facility_id"], kind="stable")
    table = table.reset_index(drop=True)[FACILITY_COLUMNS]
    table.attrs["reports"] = reports
    table.attrs["meta"] = {
        "insee": insee, "crs": crs, "catchment_communes": sorted(codes),
        "catchment_buffer_m": s.catchment_m, "dedup_distance_m": s.dedup_distance_m,
        "inputs": used, "vintages": _vintages(used, s),
        "categories_file": str(s.categories_file),
        "categories_version": load_categories(s).version, "cog_year": s.cog_year,
    }
    return table


#: National registers read by :func:`town_facilities`: name -> (dataset id, reader).
_REGISTERS: dict[str, tuple[str, Any]] = {
    "museofile": ("museofile", lambda s, cm: read_museofile(settings=s, crs="EPSG:4326")),
    "cinemas": ("cinemas", lambda s, cm: read_cinemas(settings=s, crs="EPSG:4326",
                                                        code_map=cm)),
    "festivals": ("festivals", lambda s, cm: read_festivals(settings=s, crs="EPSG:4326",
                                                              code_map=cm)),
    "eoliennes": ("eoliennes", lambda s, cm: read_wind_turbines(settings=s, crs="EPSG:4326",
                                                                  code_map=cm)),
    "france_services": ("france_services", lambda s, cm: read_france_services(
        settings=s, crs="EPSG:4326", code_map=cm)),
}
_register_cache: dict[tuple[Any, ...], gpd.GeoDataFrame] = {}


def _national_registers(s: Settings, code_map: Mapping[str, str]
                        ) -> list[tuple[str, gpd.GeoDataFrame]]:
    """Every national register in EPSG:4326, read once per process and file version
    (a batch worker reads each file once, not once per town)."""
    out = []
    cats = Path(s.categories_file).stat()
    for name, (ds_id, read) in _REGISTERS.items():
        path = sources.ensure(ds_id, s)
        st = path.stat()
        key = (name, str(path), st.st_mtime_ns, st.st_size, cats.st_mtime_ns, id(code_map))
        if key not in _register_cache:
            for old in [k for k in _register_cache if k[0] == name]:
                del _register_cache[old]
            _register_cache[key] = read(s, code_map)
        out.append((name, _register_cache[key]))
    return out


def _vintages(used: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """Dataset vintage for each input path that is a catalogued dataset."""
    cat = sources.load_catalogue(settings)
    by_path = {str(settings.raw_dir / d.local_name): d for d in cat.values()}
    out = {}
    for name, path in used.items():
        ds = by_path.get(str(path))
        out[name] = f"{ds.id}: {ds.vintage}" if ds else str(path)
    return out


def write_facilities(
    facilities: gpd.GeoDataFrame, path: str | Path, *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write a facility table as GeoParquet, atomically, with its metadata (inputs,
    vintages, reports) under the ``pvdgeo`` key."""
    meta = dict(facilities.attrs.get("meta", {}))
    reports = facilities.attrs.get("reports", {})
    if reports:
        meta["reports"] = {k: r.as_dict() for k, r in reports.items() if r is not None}
    meta.update(metadata or {})
    out = gpd.GeoDataFrame(facilities[FACILITY_COLUMNS], geometry="geometry",
                           crs=facilities.crs)
    out.attrs = {}
    write_parquet(out, path, metadata=meta)
    log.info("wrote %d facilities to %s", len(out), path)
    return Path(path)


def read_facility_table(path: str | Path) -> gpd.GeoDataFrame:
    """A facility table written by :func:`write_facilities`, with its ``attrs["meta"]``
    and ``attrs["reports"]`` (:class:`SourceReport` per source) restored."""
    path = Path(path)
    try:
        table = gpd.read_parquet(path)
        meta = read_parquet_metadata(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read facilities {path}: {exc}") from None
    reports = meta.pop("reports", {})
    table.attrs["meta"] = meta
    table.attrs["reports"] = {k: SourceReport.from_dict(v) for k, v in reports.items()}
    return table


def summarize(facilities: pd.DataFrame) -> pd.DataFrame:
    """Counts by category (rows) and primary source (columns), with totals."""
    primary = facilities["source"].str.split(";").str[0]
    table = pd.crosstab(facilities["category"], primary, margins=True, margins_name="total")
    order = [c for c in CATEGORY_KEYS if c in table.index] + ["total"]
    return table.reindex(order)


# --- national commune counts ------------------------------------------------------------------


def commune_counts(
    *,
    settings: Settings | None = None,
    bpe: Literal["auto", "xy", "2013", "2009"] = "auto",
) -> pd.DataFrame:
    """Facility counts for every current commune of France from the national sources.

    Sources: the BPE (the geolocated file when downloaded, else the 2013 per-commune
    counts; ``bpe`` forces one), Muséofile (``musee``), CNC (``cinema``), festivals
    (``festival``) and Géorisques (``eolienne`` and ``eolienne_power_mw``). A subcategory
    that has its own national register is counted from it only. Old commune codes are
    mapped to the current COG. Subcategories no national source measures (cafés, heritage,
    town halls in the BPE 2013...) are empty, not zero, and left out of category totals
    (``attrs["meta"]["sources_by_subcategory"]`` says where each count comes from).

    Returns
    -------
    DataFrame
        One row per commune of the reference: ``insee``, ``nom``, ``population``,
        ``n_<category>``, ``n_<category>_per_10k``, ``n_<subcategory>``,
        ``n_<subcategory>_per_10k``, ``eolienne_power_mw`` and ``commerces_chain_share``
        (share of named shops and restaurants that are chains; only from the geolocated
        BPE, else empty). BPE-based columns are empty for départements the BPE vintage
        does not cover. ``attrs["meta"]`` records sources, vintages and reports.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    ref = communes.load_reference(settings=s)
    code_map = communes.current_code_map(s)
    reports: dict[str, SourceReport] = {}

    xy_path = sources.dataset_path("bpe_xy", s)
    use_xy = bpe == "xy" or (bpe == "auto" and xy_path.is_file())
    chain_share = None
    if use_xy:
        pts = read_bpe_xy(xy_path, settings=s, code_map=code_map)
        reports["bpe"] = _report(pts)
        bpe_long = (pts.groupby(["insee", "subcategory"], as_index=False).size()
                    .rename(columns={"size": "n"}))
        shops = pts[pts["category"] == "commerces"]
        named = shops[shops["chain"].notna()]
        chain_share = named.groupby("insee")["chain"].mean()
        bpe_id = "bpe_xy"
    else:
        bpe_id = "bpe_2009_counts" if bpe == "2009" else "bpe_2013_counts"
        bpe_long = read_bpe_counts(sources.ensure(bpe_id, s), settings=s, code_map=code_map)
        reports["bpe"] = _report(bpe_long)

    national = national_facilities(settings=s)
    reports.update(national.attrs["reports"])
    dedicated = set(cats.source_subcategory.values())
    bpe_long = bpe_long[~bpe_long["subcategory"].isin(dedicated)]
    nat_long = (national[national["insee"].notna()]
                .groupby(["insee", "subcategory"], as_index=False).size()
                .rename(columns={"size": "n"}))
    long = pd.concat([bpe_long[["insee", "subcategory", "n"]], nat_long], ignore_index=True)

    known = set(ref["insee"])
    unmatched = long[~long["insee"].isin(known)]
    if len(unmatched):
        log.warning("commune counts: %d facilities with %d commune code(s) unknown to the COG "
                    "%d reference left out (e.g. %s)", int(unmatched["n"].sum()),
                    unmatched["insee"].nunique(), s.cog_year,
                    ", ".join(sorted(unmatched["insee"].unique())[:8]))
    wide = long[long["insee"].isin(known)].pivot_table(
        index="insee", columns="subcategory", values="n", aggfunc="sum", fill_value=0)
    subs = cats.subcategory_keys()
    wide = wide.reindex(columns=subs, fill_value=0).reindex(ref["insee"], fill_value=0)
    wide.columns = [f"n_{c}" for c in wide.columns]

    # Subcategories measured nationally: from their own register, or from the BPE vintage's
    # nomenclature. The others (cafés, heritage, town halls before BPE 2021...) stay empty.
    bpe_subs = {k for k, v in cats.subcategories.items()
                if (v.bpe_2021 if use_xy else v.bpe_2013) and k not in dedicated}
    measured = [k for k in subs if k in dedicated or k in bpe_subs]
    out = ref[["insee", "nom", "population"]].set_index("insee")
    out = out.join(wide.astype("Int64"))
    for k in subs:
        if k not in measured:
            out[f"n_{k}"] = pd.array([pd.NA] * len(out), dtype="Int64")
    for cat in CATEGORY_KEYS:
        cols = [f"n_{k}" for k in cats.subcategory_keys(cat) if k in measured]
        out[f"n_{cat}"] = out[cols].sum(axis=1).astype("Int64")
    mw = national[(national["subcategory"] == "eolienne") & national["insee"].notna()]
    out["eolienne_power_mw"] = (mw.groupby("insee")["power_mw"].sum().reindex(out.index)
                                .fillna(0.0).round(3))

    # BPE-based columns are unknown (not zero) where the BPE vintage has no commune.
    covered_deps = {communes.departement_of(c) for c in bpe_long["insee"].unique()}
    uncovered = ~out.index.map(communes.departement_of).isin(covered_deps)
    if uncovered.any():
        deps = sorted({communes.departement_of(c) for c in out.index[uncovered]})
        log.info("BPE has no commune in département(s) %s: their BPE-based counts are empty",
                 ", ".join(deps))
        out.loc[uncovered, [f"n_{k}" for k in bpe_subs]] = pd.NA
        for cat in CATEGORY_KEYS:
            if any(cats.category_of(k) == cat for k in bpe_subs):
                out.loc[uncovered, f"n_{cat}"] = pd.NA

    pop = pd.to_numeric(out["population"], errors="coerce").astype("float64")
    per_10k = 10_000 / pop.where(pop > 0)
    for key in (*CATEGORY_KEYS, *subs):
        out[f"n_{key}_per_10k"] = (out[f"n_{key}"].astype("Float64") * per_10k).round(3)
    out["commerces_chain_share"] = (chain_share.reindex(out.index).astype("Float64")
                                    if chain_share is not None
                                    else pd.array([pd.NA] * len(out), dtype="Float64"))
    cat_cols = [c for k in CATEGORY_KEYS for c in (f"n_{k}", f"n_{k}_per_10k")]
    sub_cols = [c for k in subs for c in (f"n_{k}", f"n_{k}_per_10k")]
    out = out.reset_index()[["insee", "nom", "population", *cat_cols, *sub_cols,
                             "eolienne_power_mw", "commerces_chain_share"]]
    used = {"bpe": str(xy_path if use_xy else sources.dataset_path(bpe_id, s))}
    used.update({k: r.path for k, r in national.attrs["reports"].items()})
    out.attrs["meta"] = {
        "what": "facility counts per commune from national sources",
        "cog_year": s.cog_year, "population_year": s.population_year,
        "bpe": bpe_id, "inputs": used, "vintages": _vintages(used, s),
        "sources_by_subcategory": {
            k: next((src for src, sub in cats.source_subcategory.items() if sub == k), bpe_id)
            for k in measured
        },
        "not_measured": [k for k in subs if k not in measured],
        "reports": {k: r.as_dict() for k, r in reports.items()},
        "checks": {k: {"n_checked": c.n_checked, "n_mismatch": c.n_mismatch,
                       "mismatch_rate": round(c.mismatch_rate, 4), "n_unlocated": c.n_unlocated}
                   for k, c in national.attrs["checks"].items()},
        "categories_version": cats.version,
    }
    return out


def write_commune_counts(
    counts: pd.DataFrame, path: str | Path | None = None, *, settings: Settings | None = None
) -> Path:
    """Write :func:`commune_counts` to Parquet (default
    ``data/interim/facilities_communes.parquet``), atomically, with its metadata."""
    s = settings or get_settings()
    target = Path(path) if path is not None else s.interim_dir / COUNTS_FILE
    meta = dict(counts.attrs.get("meta", {}))
    frame = counts.copy()
    frame.attrs = {}
    write_parquet(frame, target, metadata=meta)
    log.info("wrote facility counts of %d communes to %s", len(frame), target)
    return target


def facilities_by_commune(settings: Settings | None = None) -> pd.DataFrame:
    """:func:`commune_counts`, cached in ``data/interim/facilities_communes.parquet``.

    Rebuilt when the cache is missing or older than its inputs (raw files, the categories
    file, this module, the commune reference code) or when the geolocated BPE has been
    downloaded since.
    """
    s = settings or get_settings()
    cache = s.interim_dir / COUNTS_FILE
    ids = ["museofile", "cinemas", "festivals", "eoliennes", "france_services",
           "communes_polygons",
           "communes_cog"]
    xy = sources.dataset_path("bpe_xy", s)
    inputs = [sources.ensure(i, s) for i in ids]
    inputs += [xy] if xy.is_file() else [sources.ensure("bpe_2013_counts", s)]
    inputs += [Path(__file__), Path(load_categories.__code__.co_filename),
               Path(s.categories_file), Path(communes.__file__)]
    if is_stale(cache, inputs):
        write_commune_counts(commune_counts(settings=s), cache, settings=s)
    return read_parquet_cached(cache)
