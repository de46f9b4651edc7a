"""National tables of the built towns, after a batch (``data/national/``).

- ``towns.parquet`` (GeoParquet, EPSG:4326, the town polygon): one row per built town,
  key ``insee``: its card (name, département, région, typology, programmes, centralité,
  density...), every indicator of its own commune in the town run (population, APL,
  facility counts, land cover, access minutes per mode and target), the share of its
  population within 10 and 15 minutes of each target per mode
  (``<mode>_<target>_pop_share_<N>min``), whether it has streets and land cover, and the
  inputs it was built without (``missing_inputs``).
- ``h3_r<res>/departement=<dep>/part-0.parquet`` (GeoParquet, EPSG:4326, partitioned by
  the town's département): the H3 cells of every built town with the ``town`` code of the
  run they come from (catchments overlap, so a cell may appear once per town).

Population shares: the town's H3 cells of the finest resolution are those whose centre
lies in the town's polygon; a cell's population is the aggregate stage's (commune
populations spread by built-up area); a cell without an access time (beyond the street
data) counts as not reached.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo import communes
from geo._io import read_parquet_metadata, write_parquet
from geo.errors import InputFileError
from geo.settings import Settings, get_settings

__all__ = [
    "NATIONAL_CELL_RESOLUTIONS",
    "POP_SHARE_MINUTES",
    "national_dir",
    "population_shares",
    "read_cells",
    "read_towns_table",
    "town_row",
    "towns_table",
    "write_national_tables",
]

log = logging.getLogger(__name__)

#: Time thresholds (minutes) of the population shares.
POP_SHARE_MINUTES: tuple[int, ...] = (10, 15)
#: H3 resolutions gathered nationally.
NATIONAL_CELL_RESOLUTIONS: tuple[int, ...] = (8, 9)

#: Card fields copied into the towns table.
CARD_FIELDS = (
    "insee", "nom", "departement", "departement_nom", "region", "region_nom", "zone",
    "epci_siren", "epci_nom", "population", "pop_2016", "pop_2023", "typologie", "pvd",
    "acv", "centralite", "densite", "ruralite", "montagne", "aav_categorie_libelle",
    "metric_crs",
)


def national_dir(settings: Settings | None = None) -> Path:
    """``data/national``: tables over all towns."""
    s = settings or get_settings()
    return s.data_dir / "national"


def population_shares(cells: pd.DataFrame, *, minutes: Sequence[int] = POP_SHARE_MINUTES
                      ) -> dict[str, float]:
    """Share (0..1) of the cells' population within each threshold of each
    ``<mode>_<target>_minutes_median`` column: cells without a time count as not reached.
    Empty when the cells have no population."""
    pop = pd.to_numeric(cells.get("population"), errors="coerce").fillna(0.0).to_numpy()
    total = float(pop.sum())
    out: dict[str, float] = {}
    if total <= 0:
        return out
    for col in cells.columns:
        if not col.endswith("_minutes_median"):
            continue
        base = col.removesuffix("_minutes_median")
        values = pd.to_numeric(cells[col], errors="coerce").to_numpy(float)
        for limit in minutes:
            reached = np.nan_to_num(values, nan=np.inf) <= limit
            out[f"{base}_pop_share_{limit}min"] = round(float(pop[reached].sum()) / total, 4)
    return out


def _finest_cells(folder: Path) -> tuple[int, Path] | None:
    for res in sorted(NATIONAL_CELL_RESOLUTIONS, reverse=True):
        path = folder / f"h3_r{res}.parquet"
        if path.is_file():
            return res, path
    return None


def town_row(folder: Path) -> dict[str, Any]:
    """The towns-table row of one town folder (see the module docstring)."""
    card = json.loads((folder / "town.json").read_text(encoding="utf-8"))
    insee = card["insee"]
    row: dict[str, Any] = {k: card.get(k) for k in CARD_FIELDS}
    layer = folder / "communes.parquet"
    town_poly = None
    crs: Any = None
    missing: list[str] = []
    if layer.is_file():
        table = gpd.read_parquet(layer)
        own = table[table["insee"] == insee]
        if len(own):
            values = own.drop(columns=[own.geometry.name]).iloc[0]
            for key, value in values.items():
                if key not in row or row[key] is None:
                    row[key] = value
            town_poly = own.geometry.iloc[0]
            crs = table.crs
        missing = list(read_parquet_metadata(layer).get("missing", []))
    else:
        missing.append("aggregate: no communes.parquet")
    if town_poly is None and (folder / communes.CATCHMENT_FILE).is_file():
        c = communes.read_catchment(folder / communes.CATCHMENT_FILE)
        town_poly, crs = c.town, c.crs
    finest = _finest_cells(folder)
    if finest is not None and town_poly is not None:
        _, path = finest
        cells = gpd.read_parquet(path)
        centre = shapely.centroid(cells.geometry.values)
        shapely.prepare(town_poly)
        inside = shapely.contains(town_poly, centre)
        row.update(population_shares(cells[inside]))
    row["has_streets"] = (folder / "access_walk_nodes.parquet").is_file()
    row["has_landcover"] = (folder / "landcover.parquet").is_file()
    row["missing_inputs"] = "; ".join(m.split(":")[0] for m in missing)
    row["geometry"] = (gpd.GeoSeries([town_poly], crs=crs).to_crs("EPSG:4326").iloc[0]
                       if town_poly is not None else None)
    return row


def _built_folders(codes: Iterable[str] | None, s: Settings) -> list[Path]:
    if codes is None:
        folders = sorted(p for p in s.out_dir.iterdir()
                         if p.is_dir() and (p / "town.json").is_file()) \
            if s.out_dir.is_dir() else []
    else:
        folders = [s.town_dir(c) for c in codes if (s.town_dir(c) / "town.json").is_file()]
    return folders


def towns_table(codes: Iterable[str] | None = None, *,
                settings: Settings | None = None) -> gpd.GeoDataFrame:
    """One row per built town (``codes``, default every town folder under
    ``data/out``); see the module docstring. Unreadable towns are left out (logged)."""
    s = settings or get_settings()
    rows = []
    for folder in _built_folders(codes, s):
        try:
            rows.append(town_row(folder))
        except (OSError, ValueError, KeyError, InputFileError) as exc:
            log.warning("national tables: town %s left out (%s)", folder.name, exc)
    if not rows:
        return gpd.GeoDataFrame({"insee": pd.Series([], dtype="string")},
                                geometry=gpd.GeoSeries([], crs="EPSG:4326"))
    frame = pd.DataFrame(rows)
    geometry = frame.pop("geometry")
    frame["insee"] = frame["insee"].astype("string")
    for col in frame.columns:
        if frame[col].dtype == object:
            kinds = {type(v) for v in frame[col].dropna()}
            if kinds <= {bool, np.bool_}:
                frame[col] = frame[col].astype("boolean")
            elif kinds and all(issubclass(k, int | float | np.number) for k in kinds):
                frame[col] = pd.to_numeric(frame[col], errors="coerce")
            else:
                frame[col] = frame[col].astype("string")
    out = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry.values, crs="EPSG:4326"))
    return out.sort_values("insee").reset_index(drop=True)


def _write_cells(folders: Sequence[Path], res: int, target: Path) -> int:
    """Write the H3 cells of ``folders`` at ``res`` as a département-partitioned
    GeoParquet folder, replaced atomically; returns the number of cells."""
    by_dep: dict[str, list[gpd.GeoDataFrame]] = {}
    for folder in folders:
        path = folder / f"h3_r{res}.parquet"
        if not path.is_file():
            continue
        cells = gpd.read_parquet(path).to_crs("EPSG:4326")
        insee = folder.name
        cells.insert(0, "town", insee)
        by_dep.setdefault(communes.departement_of(insee), []).append(cells)
    tmp = target.with_name(f".{target.name}.{time.time_ns()}.tmp")
    tmp.mkdir(parents=True)
    n = 0
    try:
        for dep, parts in sorted(by_dep.items()):
            frame = pd.concat(parts, ignore_index=True)
            frame = gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")
            n += len(frame)
            write_parquet(frame, tmp / f"departement={dep}" / "part-0.parquet",
                          metadata={"resolution": res, "departement": dep,
                                    "towns": sorted(frame["town"].unique().tolist())})
        if target.exists():
            old = target.with_name(f".{target.name}.{time.time_ns()}.old")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return n


def write_national_tables(codes: Iterable[str] | None = None, *,
                          settings: Settings | None = None) -> list[Path]:
    """Write ``towns.parquet`` and the partitioned H3 cells of the built towns (see the
    module docstring) into ``data/national/``; returns the written paths."""
    s = settings or get_settings()
    out = national_dir(s)
    t0 = time.perf_counter()
    folders = _built_folders(codes, s)
    table = towns_table([f.name for f in folders], settings=s)
    towns_path = write_parquet(table, out / "towns.parquet", metadata={
        "what": "one row per built town: card and town-level indicators",
        "cog_year": s.cog_year, "population_year": s.population_year,
        "pop_share_minutes": list(POP_SHARE_MINUTES), "towns": len(table),
    })
    paths = [towns_path]
    for res in NATIONAL_CELL_RESOLUTIONS:
        target = out / f"h3_r{res}"
        n = _write_cells(folders, res, target)
        paths.append(target)
        log.info("national tables: %d H3 r%d cells of %d towns in %s", n, res, len(folders),
                 target)
    log.info("national tables: %d towns in %s (%.0f s)", len(table), towns_path,
             time.perf_counter() - t0)
    return paths


def read_cells(resolution: int = 9, *, departements: Iterable[str] | None = None,
               settings: Settings | None = None) -> gpd.GeoDataFrame:
    """The national H3 cells of the built towns at ``resolution`` (only ``departements``
    when given), with ``departement`` as a string (``01``, ``2A``: a plain Parquet reader
    would read the partition values ``departement=01`` as numbers)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    folder = national_dir(settings) / f"h3_r{resolution}"
    if not folder.is_dir():
        raise InputFileError(f"{folder} does not exist: run `pvdgeo batch` (or `pvdgeo "
                             "national`) first")
    part = ds.partitioning(pa.schema([("departement", pa.string())]), flavor="hive")
    dataset = ds.dataset(folder, format="parquet", partitioning=part)
    flt = ds.field("departement").isin(list(departements)) if departements else None
    table = dataset.to_table(filter=flt)
    if table.num_rows == 0:
        return gpd.GeoDataFrame({"town": [], "departement": []},
                                geometry=gpd.GeoSeries([], crs="EPSG:4326"))
    frame = table.to_pandas()
    geometry = gpd.GeoSeries.from_wkb(frame.pop("geometry"), crs="EPSG:4326")
    return gpd.GeoDataFrame(frame, geometry=geometry)


def read_towns_table(settings: Settings | None = None) -> gpd.GeoDataFrame:
    """``data/national/towns.parquet``."""
    path = national_dir(settings) / "towns.parquet"
    if not path.is_file():
        raise InputFileError(f"{path} does not exist: run `pvdgeo batch` (or `pvdgeo "
                             "national`) first")
    return gpd.read_parquet(path)
