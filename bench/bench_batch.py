"""Benchmark the national batch: throughput against make, scaling with workers.

Same 20 PVD towns with road lines (archives of 04, 05, 77, 78, 83, 84, 91, 95), same
cached raw data and national tables (built once, then hard-linked into one data folder
per run, so every run starts from the same inputs and writes its own towns), same run:

- ``make``: ``make town INSEE=<code>`` per town, two at a time (what
  ``scripts/run_towns.sh -j 2`` did: ``xargs -P 2``), i.e. one process per stage;
- ``batch_2``: ``pvdgeo batch <codes> --workers 2`` (a LocalCluster of 2 workers);
- ``batch_1``: the same with 1 worker (scaling).

Each run is a fresh process tree; its wall time gives towns per hour, the CPU seconds of
the tree (``RUSAGE_CHILDREN``) its cost. Runs alternate when ``BENCH_REPEATS`` > 1
(default 1) and each figure is the median over the same number of runs per side. The
batch's per-town records (``data/national/batch/towns.csv``) give the median CPU seconds
per town per stage (tippecanoe included). The outputs of ``make`` and ``batch_2`` are
compared (same Parquet content for every town). Results: ``bench/results/batch.csv``
and ``bench/results/batch_stages.csv``.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from _common import RESULTS_DIR, ROOT, mirror_settings, write_rows

from geo import batch

RESULTS = RESULTS_DIR / "batch.csv"
STAGES = RESULTS_DIR / "batch_stages.csv"

#: 20 PVD towns whose streets come from the per-commune road archives.
TOWNS = ("04008", "04018", "04049", "04143", "04173", "05006", "05017", "05065", "77053",
         "77079", "77142", "77159", "78062", "78321", "83004", "83031", "84003", "84026",
         "91045", "95351")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _catalogues(dest: Path) -> None:
    for tracked in (ROOT / "data").iterdir():  # the catalogues make's rules name
        if tracked.is_file():
            shutil.copy2(tracked, dest / tracked.name)  # with its time


def _prepare_for_make(prepared: Path, mirror: str) -> None:
    """Make's own national prerequisites (datasets it fetches, the reference and national
    tables by its rules) built once in ``prepared``, by one town run outside the timing,
    so that the timed runs of both sides start from the same cached national data."""
    _catalogues(prepared)
    make = ["make", "--no-print-directory", "-C", str(ROOT), f"DATA={prepared}"]
    env = _env(prepared, mirror)
    subprocess.run([*make, f"{prepared}/raw/datasets.mk", f"{prepared}/raw/streets.mk"],
                   env=env, check=True, capture_output=True)
    subprocess.run([*make, "town", f"INSEE={TOWNS[0]}"], env=env, check=True,
                   capture_output=True)


def _fresh(prepared: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    _catalogues(dest)
    for sub in ("raw", "interim"):
        subprocess.run(["cp", "-al", str(prepared / sub), str(dest / sub)], check=True)
    return dest


def _env(data: Path, mirror: str) -> dict[str, str]:
    return {**os.environ, "GEO_DATA_DIR": str(data), "GEO_MIRROR": mirror,
            "GEO_LOG_LEVEL": "WARNING"}


def run_make(data: Path, mirror: str) -> tuple[float, float]:
    """make town per town, two at a time (xargs -P 2); wall and CPU seconds."""
    env = _env(data, mirror)
    make = ["make", "--no-print-directory", "-C", str(ROOT), f"DATA={data}"]
    subprocess.run([*make, f"{data}/raw/datasets.mk", f"{data}/raw/streets.mk"], env=env,
                   check=True, capture_output=True)
    cpu, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(["xargs", "-P", "2", "-I{}", *make, "town", "INSEE={}"],
                   input="\n".join(TOWNS), text=True, env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - t0, _children_cpu() - cpu


def run_batch(data: Path, mirror: str, workers: int) -> tuple[float, float]:
    cpu, t0 = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "geo", "-q", "batch", *TOWNS, "--workers",
                    str(workers)], env=_env(data, mirror), check=True, capture_output=True)
    return time.perf_counter() - t0, _children_cpu() - cpu


def same_outputs(a: Path, b: Path) -> bool:
    for insee in TOWNS:
        for path in sorted((a / "out" / insee).glob("*.parquet")):
            other = b / "out" / insee / path.name
            if not other.is_file():
                return False
            ta = pq.read_table(path).replace_schema_metadata(None)
            if not ta.equals(pq.read_table(other).replace_schema_metadata(None)):
                print(f"{insee}/{path.name} differs")
                return False
    return True


def main() -> int:
    repeats = int(os.environ.get("BENCH_REPEATS", "1"))
    with mirror_settings("bench_batch") as s:
        if s is None:
            return 0
        mirror = str(s.mirror)
        root = s.data_dir.parent
        batch.prepare_national(list(TOWNS), s)  # cached raw data and national tables
        _prepare_for_make(s.data_dir, mirror)
        sides = {"make": lambda d: run_make(d, mirror),
                 "batch_2": lambda d: run_batch(d, mirror, 2),
                 "batch_1": lambda d: run_batch(d, mirror, 1)}
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
        last: dict[str, Path] = {}
        for i in range(repeats):
            for name, fn in sides.items():
                data = _fresh(s.data_dir, root / f"{name}-{i}")
                runs[name].append(fn(data))
                print(f"{name} run {i + 1}: {runs[name][-1][0]:.0f} s wall, "
                      f"{runs[name][-1][1]:.0f} CPU s")
                if name in last:
                    shutil.rmtree(last[name], ignore_errors=True)
                last[name] = data
        if not same_outputs(last["make"], last["batch_2"]):
            raise AssertionError("make and the batch wrote different towns")
        rows = []
        wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
        for name in sides:
            rows.append({"run": name, "towns": len(TOWNS), "repeats": repeats,
                         "wall_s": wall[name], "cpu_s": cpu[name],
                         "towns_per_hour": len(TOWNS) / wall[name] * 3600,
                         "cpu_s_per_town": cpu[name] / len(TOWNS)})
        rows.append({"run": "batch_2 vs make", "speedup": wall["make"] / wall["batch_2"],
                     "target": 3.0})
        rows.append({"run": "batch_2 vs batch_1", "speedup": wall["batch_1"] / wall["batch_2"],
                     "target": 1.8})
        write_rows(RESULTS, rows)
        towns = pd.read_csv(last["batch_2"] / "national" / "batch" / "towns.csv",
                            dtype={"insee": str})
        stage_rows = []
        for col in [c for c in towns.columns if c.endswith("_cpu_s")]:
            stage_rows.append({"stage": col.removesuffix("_cpu_s"),
                               "median_cpu_s_per_town": float(towns[col].median()),
                               "max_cpu_s": float(towns[col].max())})
        stage_rows.append({"stage": "peak RSS per town (MB, median / max)",
                           "median_cpu_s_per_town": float(towns["peak_rss_mb"].median()),
                           "max_cpu_s": float(towns["peak_rss_mb"].max())})
        write_rows(STAGES, stage_rows)
    for r in rows:
        print(r)
    for r in stage_rows:
        print(r)
    print(f"wrote {RESULTS} and {STAGES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
