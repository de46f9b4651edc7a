"""Per-town OSM extracts cut from a national or regional PBF: the production street (and
POI) source for every town of France.

``osmium extract --config`` (osmium-tool, Debian package ``osmium-tool``) cuts many
polygons out of one PBF in a single read of the input, with the ``complete_ways``
strategy: every way crossing a polygon is kept whole, with all its nodes, so street
graphs are not cut at the catchment's edge. osmium's memory grows with the number of
extracts of a pass and with the highest node id of the input, not with its size: each
extract keeps bitmaps over the whole id range (its documentation: at least twice the
highest node id / 8 bytes per extract for ``complete_ways``). Measured here on a 0.5 MB
PBF whose node ids reach 1.03e10 (2022): 0.9 GB for one extract, 7.2 GB for eight. With
2026 ids (about 1.3e10) that is about 1.2 GB per extract, so a 24 GB machine cuts about
15 towns per pass, whatever the input (France or a département). Hence:

- the towns are grouped (by département): a first level cuts one extract per group
  (the union of its towns' catchments) out of the big file, a second cuts each group's
  much smaller file into its towns; each osmium run takes at most ``max_per_pass``
  extracts, by default as many as ``memory_gb`` holds at highest-node-id / 8 bytes each
  (:func:`extracts_per_pass`), so a pass over France is shared by a dozen départements
  and the towns are cut from the département files;
- the extract of a town is cached in ``data/interim/osm_extracts/<insee>.osm.pbf`` with
  a sidecar (``<insee>.json``: the source file's name, size and date, the polygon's
  hash): a rerun cuts only the towns whose catchment or source changed. Files appear
  under their final name only once complete.

The stages use a town's extract (:func:`town_extract`) before any catalogued source:
streets (:mod:`geo.streets`) and OSM points of interest (:mod:`geo.facilities`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geo._insee import departement_of
from geo._io import write_json_atomic
from geo.errors import DataSourceError, InputFileError
from geo.settings import Settings, get_settings

__all__ = [
    "EXTRACTS_DIR",
    "extract_polygons",
    "find_osmium",
    "split_pbf",
    "town_extract",
    "town_extracts",
]

log = logging.getLogger(__name__)

#: Folder of ``data/interim`` holding the per-town extracts.
EXTRACTS_DIR = "osm_extracts"
#: Extracts per osmium pass (osmium's memory grows with it).
MAX_PER_PASS = 500


def find_osmium() -> Path:
    """The ``osmium`` binary of osmium-tool."""
    found = shutil.which("osmium")
    if not found:
        raise DataSourceError("osmium (osmium-tool) not found on PATH: install it "
                              "(Debian/Ubuntu: apt-get install osmium-tool)")
    return Path(found)


def highest_node_id(pbf: Path) -> int:
    """The highest node id of an OSM file (``osmium fileinfo -e``: reads the file once)."""
    proc = subprocess.run([str(find_osmium()), "fileinfo", "-e", "-g", "data.maxid.nodes",
                           str(pbf)], capture_output=True, text=True, check=False)
    try:
        return int(proc.stdout.strip())
    except ValueError:
        raise InputFileError(f"cannot read the node ids of {pbf}: "
                             f"{proc.stderr.strip() or proc.stdout.strip()}") from None


def extracts_per_pass(pbf: Path, memory_gb: float) -> int:
    """How many ``complete_ways`` extracts of ``pbf`` fit in ``memory_gb`` (osmium's bitmaps
    take up to highest node id / 8 bytes each), between 1 and :data:`MAX_PER_PASS`."""
    per_extract = max(highest_node_id(pbf), 1) / 8
    return int(min(MAX_PER_PASS, max(1, memory_gb * 1e9 // per_extract)))


def _run_pass(osmium: Path, pbf: Path, polygons: Mapping[str, BaseGeometry],
              out_dir: Path, strategy: str) -> dict[str, Path]:
    """One osmium pass: each polygon (EPSG:4326) of ``polygons`` to
    ``out_dir/<name>.osm.pbf`` (written under temporary names, renamed once complete)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pvdgeo-extract-", dir=out_dir) as tmp:
        tmpdir = Path(tmp)
        extracts = []
        for name, geom in polygons.items():
            poly_file = tmpdir / f"{name}.geojson"
            poly_file.write_text(json.dumps({"type": "Feature", "properties": {},
                                             "geometry": mapping(geom)}), encoding="utf-8")
            extracts.append({"output": f"{name}.osm.pbf", "description": name,
                             "polygon": {"file_name": str(poly_file),
                                         "file_type": "geojson"}})
        config = tmpdir / "config.json"
        config.write_text(json.dumps({"directory": str(tmpdir), "extracts": extracts}),
                          encoding="utf-8")
        cmd = [str(osmium), "extract", "--config", str(config), "--strategy", strategy,
               "--overwrite", "--no-progress", str(pbf)]
        log.info("osmium extract: %d extract(s) from %s", len(extracts), pbf.name)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "; ".join(proc.stderr.strip().splitlines()[-3:])
            raise InputFileError(f"osmium extract failed on {pbf} (exit {proc.returncode}): "
                                 f"{tail}")
        out = {}
        for name in polygons:
            done = tmpdir / f"{name}.osm.pbf"
            final = out_dir / f"{name}.osm.pbf"
            done.replace(final)
            out[name] = final
    return out


def split_pbf(
    pbf: str | Path,
    polygons: Mapping[str, BaseGeometry],
    out_dir: str | Path,
    *,
    groups: Mapping[str, str] | None = None,
    max_per_pass: int | None = None,
    memory_gb: float = 8.0,
    strategy: str = "complete_ways",
) -> dict[str, Path]:
    """Cut ``pbf`` into one extract per polygon (EPSG:4326), ``out_dir/<name>.osm.pbf``.

    Parameters
    ----------
    groups
        Name -> group: a first pass cuts one extract per group (union of its polygons),
        then each group's file is cut into its polygons. ``None``: one level.
    max_per_pass
        Extracts per osmium run (more runs over the input, less memory); default what
        ``memory_gb`` holds (:func:`extracts_per_pass`).
    memory_gb
        Memory osmium may use (GB).
    """
    pbf = Path(pbf)
    if not pbf.is_file():
        raise InputFileError(f"OSM file {pbf} does not exist")
    if max_per_pass is not None and max_per_pass < 1:
        raise InputFileError(f"max_per_pass must be at least 1, got {max_per_pass}")
    osmium = find_osmium()
    out_dir = Path(out_dir)
    names = list(polygons)
    if groups is None:
        per_pass = max_per_pass or extracts_per_pass(pbf, memory_gb)
        out: dict[str, Path] = {}
        for i in range(0, len(names), per_pass):
            chunk = {n: polygons[n] for n in names[i:i + per_pass]}
            out.update(_run_pass(osmium, pbf, chunk, out_dir, strategy))
        return out
    members: dict[str, list[str]] = {}
    for n in names:
        members.setdefault(groups[n], []).append(n)
    with tempfile.TemporaryDirectory(prefix=".pvdgeo-groups-", dir=out_dir.parent
                                     if out_dir.parent.exists() else None) as tmp:
        unions = {f"group-{g}": shapely.union_all([polygons[n] for n in ns])
                  for g, ns in members.items()}
        group_files = split_pbf(pbf, unions, Path(tmp), max_per_pass=max_per_pass,
                                memory_gb=memory_gb, strategy=strategy)
        out = {}
        for g, ns in members.items():
            out.update(split_pbf(group_files[f"group-{g}"], {n: polygons[n] for n in ns},
                                 out_dir, max_per_pass=max_per_pass, memory_gb=memory_gb,
                                 strategy=strategy))
    return out


# --- per-town extracts ------------------------------------------------------------------------


def _extracts_dir(s: Settings) -> Path:
    return s.interim_dir / EXTRACTS_DIR


def town_extract(insee: str, settings: Settings | None = None) -> Path | None:
    """The cached extract of a town (see :func:`town_extracts`), or None."""
    s = settings or get_settings()
    path = _extracts_dir(s) / f"{insee}.osm.pbf"
    return path if path.is_file() else None


def extract_polygons(codes: Iterable[str], *, settings: Settings | None = None
                     ) -> dict[str, BaseGeometry]:
    """Catchment area of each town in EPSG:4326 (the town folder's ``catchment.parquet``
    when it exists, else computed)."""
    from geo import communes

    s = settings or get_settings()
    out = {}
    for code in codes:
        path = s.town_dir(code) / communes.CATCHMENT_FILE
        c = communes.read_catchment(path) if path.is_file() else communes.catchment(
            code, settings=s)
        out[c.insee] = gpd.GeoSeries([c.area], crs=c.crs).to_crs("EPSG:4326").iloc[0]
    return out


def _sidecar(pbf: Path, geom: BaseGeometry, strategy: str) -> dict[str, object]:
    st = pbf.stat()
    return {"source": pbf.name, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
            "strategy": strategy,
            "polygon_sha256": hashlib.sha256(shapely.to_wkb(geom)).hexdigest()}


def town_extracts(
    pbf: str | Path,
    codes: Sequence[str],
    *,
    max_per_pass: int | None = None,
    memory_gb: float = 8.0,
    force: bool = False,
    settings: Settings | None = None,
) -> dict[str, Path]:
    """Cut the catchment of each town of ``codes`` out of ``pbf`` (grouped by
    département, see the module docstring); towns whose cached extract is of this file and
    polygon are not cut again. Returns every town's extract."""
    s = settings or get_settings()
    pbf = Path(pbf)
    if not pbf.is_file():
        raise InputFileError(f"OSM file {pbf} does not exist")
    polygons = extract_polygons(codes, settings=s)
    folder = _extracts_dir(s)
    todo = {}
    for code, geom in polygons.items():
        side = folder / f"{code}.json"
        want = _sidecar(pbf, geom, "complete_ways")
        try:
            have = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            have = None
        if force or have != want or not (folder / f"{code}.osm.pbf").is_file():
            todo[code] = geom
    log.info("OSM extracts: %d town(s), %d to cut from %s", len(polygons), len(todo), pbf)
    if todo:
        groups = {code: departement_of(code) for code in todo}
        split_pbf(pbf, todo, folder, groups=groups if len(set(groups.values())) > 1 else None,
                  max_per_pass=max_per_pass, memory_gb=memory_gb)
        for code, geom in todo.items():
            write_json_atomic(folder / f"{code}.json", _sidecar(pbf, geom, "complete_ways"))
    return {code: folder / f"{code}.osm.pbf" for code in polygons}
