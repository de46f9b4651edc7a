"""Helpers shared by the benchmarks: the data mirror, CPU timings, CSV results."""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from geo.settings import Settings, load_settings  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"


@contextlib.contextmanager
def mirror_settings(name: str) -> Iterator[Settings | None]:
    """Settings reading from ``GEO_MIRROR`` (default ``../shared/data``) into a temporary
    data folder; None (and a message) when there is no mirror."""
    mirror = os.environ.get("GEO_MIRROR") or str(ROOT.parent / "shared" / "data")
    if not Path(mirror).is_dir():
        print(f"{name}: no data mirror at {mirror} (set GEO_MIRROR); skipped")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="pvdgeo-bench-") as tmp:
        yield load_settings(environ={}, mirror=mirror, data_dir=Path(tmp) / "data")


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best CPU time of ``repeat`` runs (seconds)."""
    return interleaved({"fn": fn}, rounds=repeat)["fn"]


def interleaved(fns: Mapping[str, Callable[[], object]], rounds: int,
                inner: Mapping[str, int] | None = None) -> dict[str, float]:
    """Best CPU time (``time.process_time``) of each function over ``rounds`` rounds that
    run them in turn (each ``inner[name]`` times per round, default once), so that every
    ratio compares runs made under the same machine load."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range((inner or {}).get(name, 1)):
                t0 = time.process_time()
                fn()
                best[name] = min(best[name], time.process_time() - t0)
    return best


def write_rows(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """Rows (dicts) as a CSV with the union of their keys as columns; floats to 6 digits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path
