"""The facility schema every source is read into (:data:`FACILITY_COLUMNS`), the report a
reader attaches (:class:`SourceReport`), and the helpers the readers share: empty and
finished frames, points from coordinates, current INSEE codes, tabular columns.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from geo import sources
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.facilities: log lines keep their logger name


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
