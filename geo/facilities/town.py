"""The facilities stage of one town (:func:`town_facilities`): OSM, BPE and the national
registers over the town and its catchment communes, deduplicated, written and read back
(:func:`write_facilities`, :func:`read_facility_table`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geo import communes, sources
from geo._categories import CATEGORY_KEYS, load_categories
from geo._io import read_parquet_metadata, write_parquet
from geo.errors import InputFileError
from geo.facilities.dedup import deduplicate
from geo.facilities.locate import locate_communes
from geo.facilities.osm import read_osm_pois
from geo.facilities.registers import (
    read_bpe_xy,
    read_cinemas,
    read_festivals,
    read_france_services,
    read_museofile,
    read_wind_turbines,
)
from geo.facilities.schema import FACILITY_COLUMNS, SourceReport, _report, empty_facilities
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.facilities: log lines keep their logger name


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
