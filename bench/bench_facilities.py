"""Benchmark the facilities stage: OSM reading, cross-source deduplication, commune counts.

Each figure is a ratio to a baseline run in the same process, so results compare across
machines:

- ``osm_read``: :func:`geo.facilities.read_osm_pois` on the raw Redon extract against a
  bare pyosmium pass over the same file with node locations (the parsing floor);
- ``dedup_<n>``: :func:`geo.facilities.deduplicate` on ``n`` synthetic facilities (two
  sources, a third of them near-duplicates) against a brute-force all-pairs distance
  search over the same points (chunked numpy), and the scaling of the STRtree version;
- ``commune_counts``: :func:`geo.facilities.commune_counts` for every commune of France
  against reading its largest input (the BPE 2013 counts) with plain pandas.

Times are CPU seconds of the process (``time.process_time``), so that other jobs on a
shared machine do not skew the ratios. Real data come from ``GEO_MIRROR`` (default
``../shared/data``); results go to ``bench/results/facilities.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely
from _common import RESULTS_DIR, best_of, mirror_settings, write_rows

from geo import facilities, sources

RESULTS = RESULTS_DIR / "facilities.csv"


def bare_osm_pass(path: Path) -> int:
    n = 0
    for obj in osmium.FileProcessor(str(path)).with_locations():
        n += len(obj.tags)
    return n


def synthetic(n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` pharmacies and bakeries over 20 x 20 km, a third duplicated by a second source
    within 30 m under the same name."""
    rng = np.random.default_rng(seed)
    n_base = n * 3 // 4
    x = 840_000 + rng.uniform(0, 20_000, n_base)
    y = 6_570_000 + rng.uniform(0, 20_000, n_base)
    sub = rng.choice(["pharmacie", "boulangerie"], n_base)
    names = [f"Commerce {i}" for i in range(n_base)]
    dup = rng.choice(n_base, n - n_base, replace=False)
    rows = {
        "source": ["osm"] * n_base + ["bpe"] * len(dup),
        "source_id": [f"n{i}" for i in range(n_base)] + [f"L{i}" for i in dup],
        "subcategory": list(sub) + list(sub[dup]),
        "name": names + [names[i].upper() for i in dup],
        "x": np.r_[x, x[dup] + rng.uniform(-20, 20, len(dup))],
        "y": np.r_[y, y[dup] + rng.uniform(-20, 20, len(dup))],
    }
    cat = ["sante" if s == "pharmacie" else "commerces" for s in rows["subcategory"]]
    table = facilities.empty_facilities("EPSG:2154")
    data = {
        "facility_id": [f"{s}:{i}" for s, i in zip(rows["source"], rows["source_id"],
                                                   strict=True)],
        "source": rows["source"], "source_id": rows["source_id"], "category": cat,
        "subcategory": rows["subcategory"], "name": rows["name"],
    }
    frame = {k: pd.array(data.get(k, [None] * n), dtype=table[k].dtype)
             for k in facilities.FACILITY_COLUMNS if k != "geometry"}
    return gpd.GeoDataFrame(frame, geometry=shapely.points(rows["x"], rows["y"]),
                            crs="EPSG:2154")


def brute_force_pairs(gdf: gpd.GeoDataFrame, d: float) -> int:
    """Candidate pairs within ``d`` of each other, by computing every distance."""
    xy = np.column_stack([gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()])
    n = 0
    for start in range(0, len(xy), 2000):
        block = xy[start:start + 2000]
        dist = np.hypot(block[:, None, 0] - xy[None, :, 0], block[:, None, 1] - xy[None, :, 1])
        n += int((dist <= d).sum())
    return n


def main() -> int:
    rows = []
    with mirror_settings("bench_facilities") as s:
        if s is None:
            return 0
        osm = sources.ensure("osm_redon", s)
        base = best_of(lambda: bare_osm_pass(osm))
        t = best_of(lambda: facilities.read_osm_pois(osm, settings=s))
        n = len(facilities.read_osm_pois(osm, settings=s))
        rows.append(("osm_read", n, t, base))

        previous = None
        for size in (2_000, 8_000, 32_000):
            table = synthetic(size)
            t = best_of(lambda table=table: facilities.deduplicate(table, settings=s), repeat=2)
            base = best_of(lambda table=table: brute_force_pairs(table, s.dedup_distance_m),
                           repeat=1) if size <= 8_000 else float("nan")
            rows.append((f"dedup_{size}", size, t, base))
            if previous:
                rows.append((f"dedup_scaling_{previous[0]}_to_{size}", size, t, previous[1]))
            previous = (size, t)

        bpe = sources.ensure("bpe_2013_counts", s)
        base = best_of(lambda: pd.read_csv(bpe, dtype=str), repeat=1)
        facilities.commune_counts(settings=s)  # warm the commune reference and polygon caches
        t = best_of(lambda: facilities.commune_counts(settings=s), repeat=1)
        rows.append(("commune_counts", 34_969, t, base))

    write_rows(RESULTS, [{"benchmark": name, "n": n, "seconds": t, "baseline_seconds": base,
                          "ratio": t / base} for name, n, t, base in rows])
    print(f"{'benchmark':<28}{'n':>8}{'seconds':>10}{'baseline':>10}{'ratio':>8}")
    for name, n, t, base in rows:
        print(f"{name:<28}{n:>8}{t:>10.3f}{base:>10.3f}{t / base:>8.2f}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
