"""The street ways of one source (:class:`Streets`): straight segments between vertices
with the tags the mode rules need, in a metric CRS, and the tag normalisation every
reader shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from geo.errors import MissingCrsError

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
