"""The whole PVD list: ``pvdgeo batch --pvd --workers 2`` on this machine, from the mirror.

Not part of ``make bench`` (it takes about an hour on 2 cores): ``make bench-pvd``. The
batch runs in a fresh data folder (``BENCH_PVD_DATA``, default a folder under
``bench/results/``) so that it starts from nothing; with ``--interrupt-after S`` it is
killed (SIGKILL of the whole process tree) after S seconds and run again, to show the
resume. Reports wall time, towns per hour, peak memory per worker, failures and their
reasons, from the batch's own records. Results: ``bench/results/pvd_batch.csv`` and
``bench/results/pvd_failures.csv``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _common import RESULTS_DIR, ROOT, write_rows

RESULTS = RESULTS_DIR / "pvd_batch.csv"
FAILURES = RESULTS_DIR / "pvd_failures.csv"


def _run(cmd: list[str], env: dict[str, str], log: Path, kill_after: float | None) -> float:
    t0 = time.perf_counter()
    with log.open("a", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=ROOT)
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            fh.write(f"\n=== killed after {kill_after:.0f} s\n")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interrupt-after", type=float, metavar="S",
                    help="SIGKILL the batch after S seconds, then resume it")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    mirror = os.environ.get("GEO_MIRROR") or str(ROOT.parent / "shared" / "data")
    data = Path(os.environ.get("BENCH_PVD_DATA", RESULTS_DIR / "pvd_data"))
    data.mkdir(parents=True, exist_ok=True)
    log = RESULTS_DIR / "pvd_batch.log"
    env = {**os.environ, "GEO_DATA_DIR": str(data), "GEO_MIRROR": mirror}
    cmd = [sys.executable, "-m", "geo", "batch", "--pvd", "--workers", str(args.workers)]
    rows = []
    first = _run(cmd, env, log, args.interrupt_after)
    rows.append({"run": "first" + (" (killed)" if args.interrupt_after else ""),
                 "wall_s": first})
    if args.interrupt_after:
        second = _run(cmd, env, log, None)
        rows.append({"run": "resume", "wall_s": second})
    towns = pd.read_csv(data / "national" / "batch" / "towns.csv", dtype={"insee": str})
    total = sum(r["wall_s"] for r in rows)
    built = towns[towns["status"] != "failed"]
    rows.append({
        "run": "total", "wall_s": total, "wall_min": total / 60, "towns": len(towns),
        "built": int((towns["status"] != "failed").sum()),
        "failed": int((towns["status"] == "failed").sum()),
        "towns_per_hour": len(towns) / total * 3600,
        "with_streets": int(pd.read_parquet(data / "national" / "towns.parquet")
                            ["has_streets"].sum()),
        "median_cpu_s_per_town": float(built["cpu_seconds"].median()),
        "peak_rss_mb_max": float(built["peak_rss_mb"].max()),
        "target_min": 90,
    })
    per_worker = built.groupby("worker_pid")["peak_rss_mb"].max()
    for pid, mb in per_worker.items():
        rows.append({"run": f"worker {pid}", "peak_rss_mb_max": float(mb),
                     "towns": int((built["worker_pid"] == pid).sum())})
    write_rows(RESULTS, rows)
    fails = towns[towns["status"] == "failed"][["insee", "stage", "error"]]
    fails.to_csv(FAILURES, index=False)
    for r in rows:
        print(r)
    print(f"{len(fails)} failures (see {FAILURES}); wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
