"""Benchmark: CORINE Land Cover shares of every H3 resolution-9 cell covering the Lot.

exactextract (``geo.landcover.class_areas``: exact pixel fractions) against rasterstats
(``zonal_stats(categorical=True)``: pixels whose centre falls in the cell), on the same
cells and the same raster, in the same process. Prints and writes
``bench/results/landcover.csv``: time of each, the ratio rasterstats / exactextract, and
how far rasterstats' centre-counting shares are from the exact ones (largest and mean
absolute difference over every cell and class).

Data: the catalogue's ``clc2018_lot`` raster (EPSG:3035) and the Lot communes (full
resolution), from ``GEO_MIRROR`` (default ``../shared/data``) like the other benchmarks.
Times are CPU seconds of the process (``time.process_time``; both methods are
single-threaded).
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np
import pandas as pd
import shapely
from _common import RESULTS_DIR, mirror_settings, write_rows
from rasterstats import zonal_stats

from geo import communes, h3grid, landcover, sources

RESULTS = RESULTS_DIR / "landcover.csv"
RESOLUTION = 9


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    with mirror_settings("bench_landcover") as s:
        if s is None:
            return 0
        raster = sources.ensure("clc2018_lot", s)
        source = landcover.open_landcover(raster, label="clc2018_lot")
        ref = communes.load_reference(s)
        lot = communes.commune_polygons(ref.loc[ref["departement"] == "46", "insee"],
                                        full_resolution=True, settings=s)
        outline = shapely.union_all(lot.geometry.values)

        t0 = time.process_time()
        cells = h3grid.h3_grid(outline, RESOLUTION, crs=lot.crs)
        t_grid = time.process_time() - t0
        cells = cells.to_crs(source.crs)  # both methods get the cells in the raster's CRS

        t0 = time.process_time()
        areas = landcover.class_areas(cells, source, id_col="h3")
        t_exact = time.process_time() - t0
        codes = [c for c in areas.columns if isinstance(c, int | np.integer)]
        exact = areas[codes].div(areas["valid_area"], axis=0)

        t0 = time.process_time()
        stats = zonal_stats(list(cells.geometry.values), str(raster), categorical=True,
                            nodata=float("nan"))
        t_rs = time.process_time() - t0
    counts = pd.DataFrame(stats, index=cells["h3"].to_numpy()).fillna(0.0)
    counts.columns = [int(float(c)) for c in counts.columns]
    counts = counts.reindex(columns=codes, fill_value=0.0)
    centre = counts.div(counts.sum(axis=1).where(lambda x: x > 0), axis=0)

    diff = (centre - exact.reindex(centre.index)).abs()
    no_centre = int(centre.isna().all(axis=1).sum())  # cells no pixel centre falls in
    per_cell = diff.max(axis=1)
    row = {
        "cells": len(cells),
        "resolution": RESOLUTION,
        "grid_s": round(t_grid, 3),
        "exactextract_s": round(t_exact, 3),
        "rasterstats_s": round(t_rs, 3),
        "ratio_rasterstats_over_exactextract": round(t_rs / t_exact, 2),
        "max_share_diff": round(float(np.nanmax(diff.to_numpy())), 6),
        "mean_abs_share_diff": round(float(np.nanmean(diff.to_numpy())), 6),
        "p99_cell_max_diff": round(float(per_cell.quantile(0.99)), 6),
        "cells_without_pixel_centre": no_centre,
    }
    write_rows(RESULTS, [row])
    print(f"CORINE shares of {len(cells):,} H3 r{RESOLUTION} cells covering the Lot "
          f"(grid built in {t_grid:.1f} s)")
    print(f"  exactextract {t_exact:7.2f} s   rasterstats {t_rs:7.2f} s   "
          f"ratio {t_rs / t_exact:.2f}x")
    print(f"  rasterstats vs exact shares: max |diff| {row['max_share_diff']:.4f}, mean "
          f"{row['mean_abs_share_diff']:.4f}, 99th pct of per-cell max "
          f"{row['p99_cell_max_diff']:.4f}; {no_centre} cells contain no pixel centre")
    print(f"  -> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
