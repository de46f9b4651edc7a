"""CORINE Land Cover shares per zone (H3 cells, communes).

Shares are exact area fractions, not pixel-centre counts:

- **raster** CORINE (the EEA 100 m GeoTIFF, or extracts of it) goes through exactextract
  (``unique``, ``frac``, ``count``): every pixel is weighted by the exact fraction of its
  area inside the zone. Zones are reprojected to the raster's CRS; the raster is never
  resampled (which would move class boundaries). Pixel values may be CLC codes (111..523)
  or the EEA raster's grid codes (1..44, 48 = no data), which are mapped to CLC codes.
- **vector** CORINE (the polygons production users download: SDES per-département
  GeoPackages, the EEA vector database; a ``code_18``/``CODE_18``-like column) goes
  through an exact polygon overlay: zones are reprojected to the vector's CRS and
  intersected with the CLC polygons, and the shared areas summed per class. Rasterising
  the vector would reintroduce the 100 m staircase that exactextract avoids on rasters
  and depend on an arbitrary pixel size; CLC polygons are large (25 ha minimum mapping
  unit), so the overlay is cheap at town and département scale.

Every share is relative to the zone's *valid* area (pixels or polygons with one of the 44
CLC classes), so level-3 shares, and level-1 shares, each sum to 1 where any valid cover
exists. ``clc_nodata_share`` is the part of the zone without a valid class: nodata pixels,
CLC 990/995/999 (unclassified, no data), and anything outside the source's extent.

Level 1 groups (the first digit of the code): ``artificialise`` (1, territoires
artificialisés), ``agricole`` (2), ``foret_semi_naturel`` (3, forêts et milieux
semi-naturels), ``zone_humide`` (4), ``eau`` (5, surfaces en eau).

With two vintages (e.g. CLC 2012 and 2018) :func:`landcover_indicators` adds the change in
artificialised share, ``clc_artificialise_change_<y0>_<y1>`` = share(y1) - share(y0)
(both over each vintage's valid area; NaN where either vintage has no valid cover).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import rasterio.features
import rasterio.windows
import shapely
from pyproj import CRS
from tqdm.auto import tqdm

from geo import communes, sources
from geo.errors import (
    DataSourceError,
    InputFileError,
    MissingColumnsError,
    MissingCrsError,
)
from geo.settings import Settings, get_settings
from geo.vocab import (  # the CORINE vocabulary, re-exported
    CLC_CODES,
    CLC_LABELS_FR,
    LEVEL1,
    LEVEL1_LABELS_FR,
    LEVEL1_LABELS_INLINE_FR,
)

__all__ = [
    "CLC_CODES",
    "CLC_LABELS_FR",
    "LEVEL1",
    "LEVEL1_LABELS_FR",
    "LEVEL1_LABELS_INLINE_FR",
    "LandCoverSource",
    "built_up_area",
    "catchment_polygons",
    "change_column",
    "class_areas",
    "commune_landcover",
    "landcover_indicators",
    "landcover_shares",
    "national_landcover_sources",
    "open_landcover",
    "shares_from_areas",
    "source_extent",
    "town_landcover_sources",
]

log = logging.getLogger(__name__)

#: EEA raster grid codes: 1..44 are the CLC classes in code order; 48..50 and 128 are
#: no data / unclassified.
_GRID_CODES = dict(zip(range(1, 45), CLC_CODES, strict=True))

_CODE_COLUMN = re.compile(r"^(?:code|clc)_?(\d{2}|\d{4})$", re.IGNORECASE)
_YEAR_IN_NAME = re.compile(r"(?:clc|corine)[_-]?(\d{4}|\d{2})(?!\d)", re.IGNORECASE)

_RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2"}


@dataclass(frozen=True, slots=True)
class LandCoverSource:
    """One CORINE Land Cover input (raster or vector), validated."""

    path: Path
    kind: str  # "raster" or "vector"
    crs: CRS
    #: CLC vintage (2012, 2018...), None when unknown.
    year: int | None
    #: Dataset id or file name, for logs and metadata.
    label: str
    #: Vector only: layer and the column holding the level-3 code.
    layer: str | None = None
    code_column: str | None = None
    #: Raster only: band index (1-based).
    band: int = 1


def _year_from_digits(digits: str) -> int:
    y = int(digits)
    if y >= 1000:
        return y
    return 1900 + y if y >= 90 else 2000 + y


def open_landcover(
    path: str | Path,
    *,
    year: int | None = None,
    layer: str | None = None,
    label: str | None = None,
) -> LandCoverSource:
    """Validate a CORINE raster or vector file and describe it.

    Parameters
    ----------
    path
        GeoTIFF (or any GDAL raster) with CLC codes or EEA grid codes, or a vector file
        (GeoPackage, shapefile, GeoJSON...) of CLC polygons.
    year
        CLC vintage; default: from the code column (``code_18`` -> 2018), the file
        name (``clc2012_...``, ``CLC18_...``) or a raster's band description or tags
        (``CLC2018``); None when none tells it.
    layer
        Vector layer (default: the first layer holding a CLC code column).
    label
        Name in logs and metadata (default: the file name).

    Raises
    ------
    InputFileError
        The file is missing, unreadable or truncated (a GeoTIFF shorter than its blocks
        need), or a vector has no CLC code column.
    MissingCrsError
        The file has no CRS.
    """
    p = Path(path)
    name = label or p.name
    if not p.exists():
        raise InputFileError(f"land cover file {p} does not exist")
    if year is None:
        m = _YEAR_IN_NAME.search(p.name)
        year = _year_from_digits(m.group(1)) if m else None
    if p.suffix.lower() in _RASTER_SUFFIXES:
        try:
            with rasterio.open(p) as ds:
                crs = ds.crs
                count = ds.count
                truncated = _truncated_tiff(ds, p)
                if year is None:
                    year = _year_in_metadata(ds)
        except rasterio.errors.RasterioError as exc:
            raise InputFileError(f"land cover raster {p} cannot be read: {exc}") from None
        if truncated:
            raise InputFileError(f"land cover raster {p} is truncated or corrupt "
                                 f"({truncated}); copy or download it again")
        if crs is None:
            raise MissingCrsError(f"land cover raster {p} has no CRS")
        if count < 1:
            raise InputFileError(f"land cover raster {p} has no band")
        return LandCoverSource(p, "raster", CRS.from_user_input(crs), year, name)
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(p)]
    except Exception as exc:  # pyogrio raises DataSourceError subclasses of its own
        raise InputFileError(
            f"land cover file {p} is neither a raster ({', '.join(sorted(_RASTER_SUFFIXES))}) "
            f"nor a readable vector file: {exc}"
        ) from None
    candidates = [layer] if layer else layers
    for lyr in candidates:
        info = pyogrio.read_info(p, layer=lyr)
        fields = [str(f) for f in info["fields"]]
        # code column -> its vintage (code_18 -> 2018)
        code_years = {f: _year_from_digits(m.group(1)) for f in fields
                      if (m := _CODE_COLUMN.match(f))}
        codes = list(code_years)
        if not codes:
            continue
        if len(codes) > 1:
            if year is None:
                raise InputFileError(
                    f"land cover file {p} layer {lyr!r} has several CLC code columns "
                    f"{codes}; pass year=... (--landcover YEAR=FILE) to pick one"
                )
            wanted = [c for c in codes if code_years[c] == year]
            if not wanted:
                raise InputFileError(
                    f"land cover file {p} layer {lyr!r}: no code column for {year} in {codes}"
                )
            codes = wanted
        col = codes[0]
        col_year = code_years[col]
        if info["crs"] is None:
            raise MissingCrsError(f"land cover file {p} layer {lyr!r} has no CRS")
        return LandCoverSource(
            p, "vector", CRS.from_user_input(info["crs"]), year or col_year, name,
            layer=lyr, code_column=col,
        )
    raise MissingColumnsError(
        f"land cover file {p}" + (f" layer {layer!r}" if layer else ""),
        ["code_18 (or code_12, CODE_18, clc_code_2018...)"],
        [str(f) for lyr in candidates for f in pyogrio.read_info(p, layer=lyr)["fields"]],
    )


#: Blocks of a GeoTIFF checked against the file size (all of them up to this count, else
#: the last row and an even sample).
_MAX_BLOCKS_CHECKED = 50_000


def _truncated_tiff(ds: rasterio.DatasetReader, path: Path) -> str | None:
    """Why a GeoTIFF is cut short (a block ends beyond the end of the file), else None.

    GDAL opens a truncated GeoTIFF (its header is at the start) and fails only when the
    missing blocks are read; the block offsets and sizes of the TIFF tags tell it at
    once."""
    if ds.driver != "GTiff":
        return None
    size = path.stat().st_size
    block_h, block_w = ds.block_shapes[0]
    nx, ny = -(-ds.width // block_w), -(-ds.height // block_h)
    blocks = [(x, y) for y in range(ny) for x in range(nx)]
    if len(blocks) > _MAX_BLOCKS_CHECKED:
        step = len(blocks) // _MAX_BLOCKS_CHECKED + 1
        blocks = blocks[::step] + [(x, ny - 1) for x in range(nx)]
    for band in range(1, ds.count + 1):
        for x, y in blocks:
            offset = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
            length = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
            if offset and length and int(offset) + int(length) > size:
                return (f"{size:,} bytes, but block {x},{y} of band {band} ends at byte "
                        f"{int(offset) + int(length):,}")
    return None


def _year_in_metadata(ds: rasterio.DatasetReader) -> int | None:
    """CLC vintage from a raster's band descriptions or tags (``CLC2018``), else None."""
    texts = [d for d in ds.descriptions if d] + list(ds.tags().values())
    texts += [v for b in range(1, ds.count + 1) for v in ds.tags(b).values()]
    for text in texts:
        m = _YEAR_IN_NAME.search(str(text))
        if m:
            return _year_from_digits(m.group(1))
    return None


def town_landcover_sources(
    insee: str, *, settings: Settings | None = None
) -> list[LandCoverSource]:
    """Land-cover datasets of the catalogue covering town ``insee``, fetched.

    A dataset that cannot be fetched is logged and left out (the town still gets every
    other indicator). The vintage comes from the catalogue's ``year``.
    """
    s = settings or get_settings()
    return _open_datasets(sources.datasets_for_town(insee, kind="landcover", settings=s), s,
                          f" for {insee}")


def _open_datasets(
    datasets: Iterable[sources.Dataset], settings: Settings, where: str = ""
) -> list[LandCoverSource]:
    """Fetch and open catalogued land-cover datasets (vintage from the catalogue's
    ``year``); one that cannot be fetched is logged and left out."""
    out = []
    for ds in datasets:
        try:
            path = sources.ensure(ds.id, settings)
        except DataSourceError as exc:
            log.warning("land cover %s%s unavailable: %s", ds.id, where, exc)
            continue
        year = ds.extra.get("year")
        out.append(open_landcover(path, year=int(year) if year else None, label=ds.id))
    return out


# --- class areas -----------------------------------------------------------------------


#: Lookup table pixel value -> CLC code (0: not a valid class) for integer values
#: 0..999: EEA grid codes 1..44 and the 44 CLC codes themselves.
_CODE_LUT = np.zeros(1000, dtype=np.int32)
_CODE_LUT[list(_GRID_CODES)] = list(_GRID_CODES.values())
_CODE_LUT[list(CLC_CODES)] = list(CLC_CODES)

#: Below this many zones exactextract reads one raster window per zone; above, it reads
#: the raster once, block by block, for all zones (4-5x faster for H3 grids).
_RASTER_SEQUENTIAL_FROM = 200


def _map_codes(values: np.ndarray) -> np.ndarray:
    """Pixel values -> CLC codes (EEA grid codes mapped); 0 where not a valid class."""
    v = np.asarray(values, dtype=float)
    iv = np.where(np.isfinite(v), np.rint(v), -1)
    inside = (iv >= 0) & (iv < len(_CODE_LUT))
    out = np.zeros(v.shape, dtype=np.int32)
    out[inside] = _CODE_LUT[iv[inside].astype(np.int64)]
    return out


def _raster_class_areas(
    zones: gpd.GeoDataFrame, source: LandCoverSource, id_col: str, chunk: int
) -> pd.DataFrame:
    from exactextract import exact_extract

    with rasterio.open(source.path) as ds:
        t = ds.transform
        pixel_area = abs(t.a * t.e - t.b * t.d)
    z = zones[[id_col, "geometry"]].to_crs(source.crs)
    zone_area = pd.Series(z.area.to_numpy(), index=z[id_col].to_numpy())
    strategy = ("raster-sequential" if len(z) >= _RASTER_SEQUENTIAL_FROM
                else "feature-sequential")
    if len(z) > chunk:  # spatially compact chunks: each reads a compact part of the raster
        z = z.iloc[np.argsort(z.geometry.hilbert_distance().to_numpy(), kind="stable")]
    parts = []
    starts = range(0, len(z), chunk)
    for start in tqdm(starts, desc=f"land cover {source.label}", unit="chunk", disable=None,
                      leave=False):
        try:
            df = exact_extract(
                str(source.path), z.iloc[start : start + chunk], ["unique", "frac", "count"],
                include_cols=[id_col], output="pandas", strategy=strategy,
            )
        except (rasterio.errors.RasterioError, RuntimeError) as exc:
            raise InputFileError(f"land cover raster {source.path} cannot be read "
                                 f"(truncated or corrupt?): {exc}") from None
        lengths = df["unique"].map(len).to_numpy()
        if lengths.sum() == 0:
            continue
        # fractions of the zone's non-nodata pixel area, per distinct value
        covered = df["count"].to_numpy(dtype=float) * pixel_area
        parts.append(pd.DataFrame({
            "zone": np.repeat(df[id_col].to_numpy(), lengths),
            "code": _map_codes(np.concatenate(df["unique"].to_numpy())),
            "area": np.concatenate(df["frac"].to_numpy()) * np.repeat(covered, lengths),
        }))
    return _assemble(parts, zone_area)


def _vector_class_areas(
    zones: gpd.GeoDataFrame, source: LandCoverSource, id_col: str, chunk: int
) -> pd.DataFrame:
    z = zones[[id_col, "geometry"]].to_crs(source.crs)
    zone_area = pd.Series(z.area.to_numpy(), index=z[id_col].to_numpy())
    # Spatially compact chunks (Hilbert order), each reading only the CLC polygons in its
    # bounding box: memory stays bounded with a national vector file.
    order = np.argsort(z.geometry.hilbert_distance().to_numpy(), kind="stable")
    z = z.iloc[order]
    parts: list[pd.DataFrame] = []
    starts = range(0, len(z), chunk)
    for start in tqdm(starts, desc=f"land cover {source.label}", unit="chunk", disable=None,
                      leave=False):
        part = z.iloc[start : start + chunk]
        try:
            clc = pyogrio.read_dataframe(
                source.path, layer=source.layer, columns=[source.code_column],
                bbox=tuple(part.total_bounds),
            )
        except Exception as exc:  # pyogrio raises several error types for corrupt files
            raise InputFileError(f"land cover file {source.path} cannot be read: {exc}") \
                from None
        if clc.empty:
            continue
        geoms = np.asarray(clc.geometry.values)
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            log.debug("%s: repairing %d invalid CLC polygons", source.label, int(bad.sum()))
            geoms[bad] = shapely.make_valid(geoms[bad])
        codes = _map_codes(pd.to_numeric(clc[source.code_column], errors="coerce").to_numpy())
        zgeom = np.asarray(part.geometry.values)
        tree = shapely.STRtree(geoms)
        zi, ci = tree.query(zgeom, predicate="intersects")
        areas = shapely.area(shapely.intersection(zgeom[zi], geoms[ci]))
        parts.append(pd.DataFrame({"zone": part[id_col].to_numpy()[zi], "code": codes[ci],
                                   "area": areas}))
    return _assemble(parts, zone_area)


def _assemble(parts: Sequence[pd.DataFrame], zone_area: pd.Series) -> pd.DataFrame:
    """Long ``zone, code, area`` pieces -> one row per zone, one column per CLC code,
    plus ``valid_area`` and ``zone_area`` (invalid codes, 0, are dropped)."""
    long = (pd.concat(parts, ignore_index=True) if parts
            else pd.DataFrame({"zone": [], "code": [], "area": []}))
    long = long[(long["code"] > 0) & (long["area"] > 0)]
    wide = long.pivot_table(index="zone", columns="code", values="area", aggfunc="sum",
                            fill_value=0.0)
    wide = wide.reindex(zone_area.index, fill_value=0.0)
    wide.columns = [int(c) for c in wide.columns]
    wide = wide[sorted(wide.columns)]
    wide["valid_area"] = wide.sum(axis=1)
    wide["zone_area"] = zone_area.to_numpy()
    wide.index.name = "zone"
    return wide


def class_areas(
    zones: gpd.GeoDataFrame,
    source: LandCoverSource,
    *,
    id_col: str,
    chunk: int = 20_000,
) -> pd.DataFrame:
    """Area of each CLC class in each zone, in the source CRS's squared units.

    Parameters
    ----------
    zones
        Polygons with an id column and a CRS (any; reprojected to the source's CRS).
    source
        From :func:`open_landcover`.
    id_col
        Unique zone id column (``h3``, ``insee``).
    chunk
        Zones per exactextract call (progress granularity).

    Returns
    -------
    DataFrame
        Index: zone id; one column per CLC code present (int), then ``valid_area`` (area
        with a valid class) and ``zone_area`` (zone area in the same units).
    """
    if id_col not in zones.columns:
        raise MissingColumnsError("zones", [id_col], list(zones.columns))
    if zones.crs is None:
        raise MissingCrsError("zones for land-cover shares have no CRS")
    if zones[id_col].duplicated().any():
        dup = zones.loc[zones[id_col].duplicated(), id_col].head(3).tolist()
        raise InputFileError(f"zones: {id_col} is not unique (e.g. {dup})")
    if len(zones) == 0:
        return _assemble([], pd.Series([], dtype=float))
    if source.kind == "raster":
        areas = _raster_class_areas(zones, source, id_col, chunk)
    else:
        areas = _vector_class_areas(zones, source, id_col, chunk)
    log.debug("land cover %s: %d of %d zone(s) without any CORINE class", source.label,
              int((areas["valid_area"] <= 0).sum()), len(areas))
    return areas


def _report_uncovered(shares: pd.DataFrame, labels: str, *, level: int) -> int:
    """Log zones no source covers (all of them at ``level``, some at INFO); returns how
    many there are."""
    uncovered = int((shares["clc_nodata_share"] >= 1.0).sum())
    if uncovered and uncovered == len(shares):
        log.log(level, "land cover %s does not cover any of the %d zone(s) (no CORINE class "
                "under them: outside its extent, or nodata); their shares are empty",
                labels, len(shares))
    elif uncovered:
        log.info("land cover %s: %d of %d zone(s) without any CORINE class (outside its "
                 "extent, or nodata)", labels, uncovered, len(shares))
    return uncovered


def shares_from_areas(areas: pd.DataFrame, *, level3: bool = True) -> pd.DataFrame:
    """Class areas (from :func:`class_areas`) -> ``clc_*_share`` columns.

    Level-1 shares (all five, always) and, with ``level3``, ``clc_<code>_share`` for each
    code present; both over the valid area (NaN where there is none), plus
    ``clc_nodata_share`` = 1 - valid / zone area (clipped to 0..1).
    """
    codes = [c for c in areas.columns if isinstance(c, int | np.integer)]
    valid = areas["valid_area"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.where(valid > 0, valid, np.nan)
        out = pd.DataFrame(index=areas.index)
        for digit, key in LEVEL1.items():
            cols = [c for c in codes if c // 100 == digit]
            total = areas[cols].sum(axis=1).to_numpy() if cols else np.zeros(len(areas))
            out[f"clc_{key}_share"] = total / denom
        if level3:
            for c in codes:
                out[f"clc_{c}_share"] = areas[c].to_numpy(dtype=float) / denom
        zone_area = areas["zone_area"].to_numpy(dtype=float)
        nodata = 1.0 - valid / np.where(zone_area > 0, zone_area, np.nan)
    out["clc_nodata_share"] = np.clip(np.nan_to_num(nodata, nan=1.0), 0.0, 1.0)
    return out


def landcover_shares(
    zones: gpd.GeoDataFrame,
    source: LandCoverSource,
    *,
    id_col: str,
    level3: bool = True,
) -> pd.DataFrame:
    """CLC shares per zone from one source (see the module docstring).

    Returns
    -------
    DataFrame
        ``id_col`` then ``clc_<level1>_share`` (5 groups), ``clc_<code>_share`` (codes
        present, with ``level3``) and ``clc_nodata_share``; one row per zone, in the
        zones' order.
    """
    shares = shares_from_areas(class_areas(zones, source, id_col=id_col), level3=level3)
    _report_uncovered(shares, source.label, level=logging.WARNING)
    shares.index.name = id_col
    return shares.reset_index()


def change_column(year0: int, year1: int) -> str:
    """Name of the artificialisation change column between two vintages."""
    return f"clc_artificialise_change_{year0}_{year1}"


def _best_per_zone(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Combine class areas of several sources of one vintage: per zone, the source with
    the largest valid area (sources of one vintage carry the same classification)."""
    if len(frames) == 1:
        return frames[0]
    cols = sorted({c for f in frames for c in f.columns if isinstance(c, int | np.integer)})
    aligned = [f.reindex(columns=[*cols, "valid_area", "zone_area"], fill_value=0.0)
               for f in frames]
    stack = np.stack([f["valid_area"].to_numpy() for f in aligned])
    best = stack.argmax(axis=0)
    out = aligned[0].copy()
    for i, f in enumerate(aligned[1:], start=1):
        out.loc[best == i] = f.loc[best == i]
    return out


def _latest(sources_: Sequence[LandCoverSource]) -> tuple[int, list[LandCoverSource]]:
    """The latest vintage (0 when undated) and its sources."""
    latest = max(s.year or 0 for s in sources_)
    return latest, [s for s in sources_ if (s.year or 0) == latest]


def built_up_area(
    zones: gpd.GeoDataFrame, sources_: Sequence[LandCoverSource], *, id_col: str
) -> pd.Series | None:
    """Artificialised area (CLC classes 1xx) per zone from the latest vintage.

    Returns
    -------
    Series or None
        Indexed by ``id_col``, in the source CRS's squared units (as :func:`class_areas`);
        NaN (unknown) for zones less than half covered by land cover; None without a
        source.
    """
    if not sources_:
        return None
    _, latest = _latest(sources_)
    best = _best_per_zone([class_areas(zones, s, id_col=id_col) for s in latest])
    cols = [c for c in best.columns if isinstance(c, int | np.integer) and c // 100 == 1]
    built = best[cols].sum(axis=1) if cols else pd.Series(0.0, index=best.index)
    return built.where(best["valid_area"] >= 0.5 * best["zone_area"])


def landcover_indicators(
    zones: gpd.GeoDataFrame,
    sources_: Iterable[LandCoverSource],
    *,
    id_col: str,
    level3: bool = True,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Land-cover shares per zone from the latest vintage, and the change in
    artificialised share when two vintages exist.

    Parameters
    ----------
    zones
        Polygons with ``id_col`` and a CRS.
    sources_
        Land-cover sources (any mix of vintages, rasters and vectors). Several sources of
        one vintage are combined zone by zone (the one covering the zone best).
    id_col
        Zone id column.

    Returns
    -------
    (DataFrame, dict)
        Shares as in :func:`landcover_shares` plus the change column
        (``clc_artificialise_change_<first>_<last>``, NaN without two vintages); and
        metadata: vintages used, sources, what is missing, ``clc_uncovered_zones``
        (zones without any CORINE class: outside the sources or nodata).
    """
    srcs = list(sources_)
    meta: dict[str, object] = {"clc_sources": [s.label for s in srcs]}
    if not srcs:
        frame = pd.DataFrame({id_col: zones[id_col].to_numpy()})
        for key in LEVEL1.values():
            frame[f"clc_{key}_share"] = np.nan
        frame["clc_nodata_share"] = 1.0
        frame[change_column(2012, 2018)] = np.nan
        meta["clc_missing"] = "no land cover source covers these zones"
        return frame, meta
    undated = [s.label for s in srcs if s.year is None]
    if undated and len(srcs) == 1:
        log.warning("land cover %s has no vintage (not in its name, code column or "
                    "metadata): outputs record it as unknown; give it as YEAR=FILE",
                    undated[0])
    if undated and len(srcs) > 1:
        raise InputFileError(
            f"land cover sources {undated} have no vintage; give it as YEAR=FILE so they "
            "can be ordered with the others"
        )
    by_year: dict[int | None, list[pd.DataFrame]] = {}
    for s in srcs:
        by_year.setdefault(s.year, []).append(class_areas(zones, s, id_col=id_col))
    years = sorted(by_year, key=lambda y: -1 if y is None else y)
    latest = years[-1]
    areas = _best_per_zone(by_year[latest])
    shares = shares_from_areas(areas, level3=level3)
    meta["clc_year"] = latest
    meta["clc_uncovered_zones"] = _report_uncovered(
        shares, ", ".join(s.label for s in srcs), level=logging.INFO)
    if len(years) >= 2:
        first = years[0]
        old = shares_from_areas(_best_per_zone(by_year[first]), level3=False)
        col = change_column(int(first), int(latest))  # type: ignore[arg-type]
        shares[col] = shares["clc_artificialise_share"] - old["clc_artificialise_share"]
        meta["clc_change_years"] = [first, latest]
        n_missing = int(shares[col].isna().sum())
        if n_missing:
            log.info("%s: %d of %d zones lack one of the vintages %s and %s", col,
                     n_missing, len(shares), first, latest)
    else:
        col = change_column(2012, 2018)
        shares[col] = np.nan
        meta["clc_missing"] = (
            f"only one CLC vintage ({latest}); the artificialisation change needs two"
        )
        log.debug("land cover: only CLC %s available; %s left empty", latest, col)
    shares.index.name = id_col
    return shares.reset_index(), meta


# --- national table: shares per commune wherever land cover exists ---------------------------


def national_landcover_sources(*, settings: Settings | None = None) -> list[LandCoverSource]:
    """Every land-cover dataset of the catalogue that covers whole départements, fetched
    (one that cannot be fetched is logged and left out)."""
    s = settings or get_settings()
    return _open_datasets((ds for ds in sources.load_catalogue(s).values()
                           if ds.kind == "landcover"
                           and (ds.departements or ds.scope == "national")), s)


def source_extent(source: LandCoverSource) -> shapely.Polygon:
    """Bounding box of a land-cover source, in EPSG:4326."""
    if source.kind == "raster":
        with rasterio.open(source.path) as ds:
            bounds = tuple(ds.bounds)
    else:
        bounds = tuple(pyogrio.read_info(source.path, layer=source.layer)["total_bounds"])
    box = gpd.GeoSeries([shapely.box(*bounds)], crs=source.crs).to_crs("EPSG:4326")
    return box.iloc[0]


def commune_landcover(
    sources_: Sequence[LandCoverSource] | None = None,
    *,
    departements: Iterable[str] | None = None,
    settings: Settings | None = None,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Land-cover shares of every commune that a land-cover source covers (at least in
    part), on full-resolution polygons where they exist.

    Parameters
    ----------
    sources_
        Land-cover inputs (default: :func:`national_landcover_sources`).
    departements
        Restrict to communes of these départements.

    Returns
    -------
    (DataFrame, dict)
        ``insee``, ``nom``, ``departement`` and the columns of
        :func:`landcover_indicators` (read ``clc_nodata_share`` for partial coverage);
        and metadata.
    """
    s = settings or get_settings()
    srcs = list(sources_) if sources_ is not None else national_landcover_sources(settings=s)
    if not srcs:
        raise DataSourceError(
            "no land-cover source available: fetch a CORINE dataset (pvdgeo fetch ...) or "
            "pass files (--landcover FILE)"
        )
    polys = communes.commune_polygons(None, crs="EPSG:4326", full_resolution=True, settings=s)
    ref = communes.load_reference(s).set_index("insee")
    polys["departement"] = ref["departement"].reindex(polys["insee"]).to_numpy()
    if departements is not None:
        polys = polys[polys["departement"].isin(list(departements))]
    extent = shapely.union_all([source_extent(src) for src in srcs])
    polys = polys[polys.intersects(extent)].reset_index(drop=True)
    log.info("land-cover shares of %d communes from %s", len(polys),
             ", ".join(src.label for src in srcs))
    shares, meta = landcover_indicators(polys, srcs, id_col="insee")
    covered = shares["clc_nodata_share"] < 1.0
    out = polys[["insee", "nom", "departement"]].merge(shares[covered], on="insee")
    meta["communes"] = len(out)
    meta["communes_fully_covered"] = int((out["clc_nodata_share"] < 1e-6).sum())
    return out.reset_index(drop=True), meta


# --- CORINE polygons of a catchment (the map's land-cover layer) ----------------------------


def catchment_polygons(
    area: gpd.GeoDataFrame | gpd.GeoSeries,
    sources_: Sequence[LandCoverSource],
) -> gpd.GeoDataFrame | None:
    """CORINE polygons of the latest vintage clipped to ``area``, in the area's CRS.

    Raster sources are polygonised (adjacent pixels of one class merged, edges along
    pixel sides, reprojected vertex by vertex), vector sources clipped.

    Returns
    -------
    GeoDataFrame or None
        ``code_<yy>`` (level-3 CLC code, e.g. ``code_18``), ``clc_level1`` (group key),
        ``label`` (French), ``area_m2``, ``geometry``; None without a source.
    """
    if not sources_:
        return None
    if area.crs is None:
        raise MissingCrsError("the area to clip land cover to has no CRS")
    latest, latest_sources = _latest(sources_)
    outline = shapely.union_all(np.asarray(area.geometry.values))
    parts = []
    for src in latest_sources:
        local = gpd.GeoSeries([outline], crs=area.crs).to_crs(src.crs).iloc[0]
        if src.kind == "raster":
            with rasterio.open(src.path) as ds:
                w = rasterio.windows.from_bounds(*local.bounds, transform=ds.transform)
                c0, r0 = int(np.floor(w.col_off)) - 1, int(np.floor(w.row_off)) - 1
                c1 = int(np.ceil(w.col_off + w.width)) + 1
                r1 = int(np.ceil(w.row_off + w.height)) + 1
                c0, r0 = max(c0, 0), max(r0, 0)
                c1, r1 = min(c1, ds.width), min(r1, ds.height)
                if c1 <= c0 or r1 <= r0:
                    continue  # the area is outside this raster
                win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
                try:
                    values = ds.read(src.band, window=win)
                except rasterio.errors.RasterioError as exc:
                    raise InputFileError(f"land cover raster {src.path} cannot be read "
                                         f"(truncated or corrupt?): {exc}") from None
                transform = ds.window_transform(win)
            codes = _map_codes(values)
            shapes = rasterio.features.shapes(codes, mask=codes > 0, transform=transform)
            geoms, vals = zip(*((shapely.geometry.shape(g), int(v)) for g, v in shapes),
                              strict=True) if codes.any() else ((), ())
        else:
            clc = pyogrio.read_dataframe(src.path, layer=src.layer, columns=[src.code_column],
                                         bbox=tuple(local.bounds))
            vals = tuple(_map_codes(pd.to_numeric(clc[src.code_column], errors="coerce")
                                    .to_numpy()))
            geoms = tuple(shapely.make_valid(np.asarray(clc.geometry.values)))
        part = gpd.GeoDataFrame({"code": list(vals)}, geometry=list(geoms), crs=src.crs)
        parts.append(part[part["code"] > 0].to_crs(area.crs))
    if not parts:
        return None
    gdf = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=area.crs)
    gdf["geometry"] = gdf.geometry.intersection(outline)
    gdf = gdf[~gdf.geometry.is_empty & (gdf.area > 0)]
    gdf = gdf.dissolve(by="code", as_index=False).explode(index_parts=False)
    col = f"code_{latest % 100:02d}" if latest else "code"
    out = gpd.GeoDataFrame({
        col: gdf["code"].astype("int32").to_numpy(),
        "clc_level1": gdf["code"].map(lambda c: LEVEL1[c // 100]).to_numpy(),
        "label": gdf["code"].map(CLC_LABELS_FR).to_numpy(),
        "area_m2": gdf.area.to_numpy(),
    }, geometry=gdf.geometry.to_numpy(), crs=area.crs)
    return out.reset_index(drop=True)
