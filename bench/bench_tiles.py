"""Benchmark the tippecanoe feed: the previous per-value GeoJSON writer against the
FlatGeobuf feed with only the attributes the map views read.

Both build the PMTiles archive of the same town GeoPackage (Pont-de-Veyle 01306, OSM
streets; Forcalquier 04088, road lines of the 04 archive; a PVD town without streets,
71310) in the same process, interleaved, three rounds; each figure is the median.
"before" is the previous implementation, kept here as the baseline: every attribute of
every layer written as GeoJSONSeq by a Python loop over values (7-decimal coordinates,
4-decimal floats, per-feature ``tippecanoe.minzoom``), the archive up to
``settings.tiles_max_zoom`` whatever its layers. "after" is
:func:`geo.export.tiles.write_pmtiles`. CPU seconds include tippecanoe's (the child
process). The results are compared: the decoded z14 tile over the town has the same H3
cells with the same values of the attributes the views read.

Results: ``bench/results/tiles.csv``.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
from _common import RESULTS_DIR, mirror_settings, write_rows

from geo import stages
from geo.export import tiles
from geo.export.layers import layer_spec
from geo.export.views import load_views, tile_fields

RESULTS = RESULTS_DIR / "tiles.csv"
TOWNS = ("01306", "04088", "71310")


def _cpu() -> float:
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def _value(value, kind):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return round(float(value), 4)
    return value.item() if hasattr(value, "item") else str(value)


def before(gpkg: Path, out: Path, s) -> None:
    """The previous feed: all attributes, a Python GeoJSON writer, maximum zoom 15."""
    layers = tiles._read_gpkg_layers(gpkg, s.publish_crs)
    types = tiles.attribute_types(layers)
    zooms = {n: max(layer_spec(n).minzoom, s.tiles_min_zoom) for n in layers}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for name, gdf in layers.items():
            src = Path(tmp) / f"{name}.geojsons"
            cols = [c for c in gdf.columns if c != gdf.geometry.name]
            geoms = gpd.GeoSeries(gdf.geometry).set_precision(1e-7)
            with src.open("w", encoding="utf-8") as fh:
                for geom, values in zip(geoms, gdf[cols].astype(object).to_numpy(),
                                        strict=True):
                    if geom is None or geom.is_empty:
                        continue
                    props = {c: v for c, v in ((c, _value(v, types[c]))
                                               for c, v in zip(cols, values, strict=True))
                             if v is not None}
                    fh.write(json.dumps({"type": "Feature",
                                         "tippecanoe": {"minzoom": zooms[name]},
                                         "properties": props,
                                         "geometry": geom.__geo_interface__},
                                        ensure_ascii=False, separators=(",", ":")) + "\n")
            inputs.append(src)
        cmd = [str(tiles.find_tippecanoe()), "-o", str(out), "--force", "--quiet",
               f"--minimum-zoom={s.tiles_min_zoom}", f"--maximum-zoom={s.tiles_max_zoom}",
               "--drop-densest-as-needed", f"--maximum-tile-bytes={s.max_tile_bytes}",
               "--detect-shared-borders"]
        cmd += ["--named-layer=" + json.dumps({"file": str(p), "layer": n})
                for n, p in zip(layers, inputs, strict=True)]
        cmd += [f"--attribute-type={c}:{k}" for c, k in sorted(types.items())]
        subprocess.run(cmd, check=True, capture_output=True)


def after(gpkg: Path, out: Path, s) -> None:
    tiles.write_pmtiles(gpkg, out, settings=s)


def _decode(path: Path, z: int, x: int, y: int) -> dict[str, list[dict]]:
    """Features per layer of one tile (tippecanoe-decode)."""
    out = subprocess.run([str(tiles.find_tippecanoe("tippecanoe-decode")), str(path), str(z),
                          str(x), str(y)], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    return {layer["properties"]["layer"]: layer["features"] for layer in doc["features"]}


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _summary(path: Path) -> dict:
    sm = tiles.check_pmtiles(path)
    return {"bytes": sm.bytes, "tiles": sm.tiles, "max_zoom": sm.max_zoom,
            "largest_tile_bytes": sm.max_tile_bytes}


def main() -> int:
    rows = []
    with mirror_settings("bench_tiles") as s:
        if s is None:
            return 0
        used = tile_fields(load_views())["h3_r9"]
        for insee in TOWNS:
            stages.run_town(insee, settings=s)
            gpkg = s.town_dir(insee) / f"{insee}.gpkg"
            runs: dict[str, list[float]] = {"before": [], "after": []}
            outs = {k: s.town_dir(insee) / f"bench_{k}.pmtiles" for k in runs}
            for _ in range(3):
                for name, fn in (("before", before), ("after", after)):
                    t0 = _cpu()
                    fn(gpkg, outs[name], s)
                    runs[name].append(_cpu() - t0)
            town = gpd.read_file(gpkg, layer="communes").to_crs(4326)
            pt = town[town["is_town"].astype(bool)].geometry.iloc[0].representative_point()
            x, y = _tile_of(pt.x, pt.y, 14)
            cells = {k: {f["properties"]["h3"]: f["properties"]
                         for f in _decode(outs[k], 14, x, y).get("h3_r9", [])} for k in runs}
            same = cells["before"].keys() == cells["after"].keys() and all(
                cells["before"][h].get(f) == cells["after"][h].get(f)
                for h in cells["after"] for f in used)
            if not same:
                raise AssertionError(f"{insee}: the two archives disagree on the z14 tile")
            b, a = statistics.median(runs["before"]), statistics.median(runs["after"])
            row = {"town": insee, "rounds": 3, "before_cpu_s": b, "after_cpu_s": a,
                   "speedup": b / a, "z14_cells_compared": len(cells["after"])}
            for k in runs:
                row.update({f"{k}_{f}": v for f, v in _summary(outs[k]).items()})
            rows.append(row)
            print(f"{insee}: {b:.2f} -> {a:.2f} CPU s (x{b / a:.1f}); "
                  f"{row['before_bytes'] / 1e6:.1f} -> {row['after_bytes'] / 1e6:.1f} MB, "
                  f"largest tile {row['before_largest_tile_bytes'] / 1e3:.0f} -> "
                  f"{row['after_largest_tile_bytes'] / 1e3:.0f} kB, max zoom "
                  f"{row['before_max_zoom']} -> {row['after_max_zoom']}")
            for p in outs.values():
                p.unlink(missing_ok=True)
    write_rows(RESULTS, rows)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
