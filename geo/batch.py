"""Many towns at once on Dask distributed: ``pvdgeo batch``.

One task per town, on a ``LocalCluster`` (worker processes with one thread each and a
memory limit) or on an existing cluster (``scheduler="tcp://host:8786"`` or
``DASK_SCHEDULER_ADDRESS``). A task receives the INSEE code and the settings, reads every
large input itself from paths inside the task (the data folder must be on a file system
the workers share, or ``GEO_MIRROR`` an http(s) URL they reach), runs the town's stages
(:func:`geo.stages.run_town`, under the town's lock) and returns a small record: status,
seconds and CPU seconds per stage, peak memory, outputs.

The run:

1. the national tables every town reads are built once, before any town (commune
   reference and polygons, facility counts, APL, land cover per commune, the road
   archives unpacked, the towns' local datasets fetched);
2. towns already done (their done marker and every stage up to date with the current
   code, settings and inputs, :func:`geo.stages.is_done`) are skipped; the others are
   submitted largest first (towns with streets, then by catchment size), each retried
   ``retries`` times on failure, also when its worker dies (killed for memory: the
   others go on); failures land in ``failures.csv`` with the stage and the last error
   line;
3. the national tables of the built towns (:mod:`geo.national`);
4. the portraits, which compare each town with every built peer;
5. the viewer's town index.

Progress is logged as towns done of N, towns per hour, time left and failures; the
records of the run go to ``data/national/batch/`` (``towns.csv``, ``failures.csv``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from geo import communes, sources, stages, streets
from geo._io import write_text_atomic
from geo.errors import GeoError, SettingsError
from geo.settings import Settings, get_settings

__all__ = [
    "BatchResult",
    "TownOutcome",
    "prepare_national",
    "run_batch",
    "town_order",
    "town_task",
]

log = logging.getLogger(__name__)

#: Environment of the worker processes: return freed memory to the OS promptly (glibc),
#: a bounded GDAL block cache (MB), one thread per native library (one task per worker).
WORKER_ENV: dict[str, str] = {
    "MALLOC_TRIM_THRESHOLD_": "65536",
    "GDAL_CACHEMAX": "256",
    "TIPPECANOE_MAX_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

#: Stages of a batch's first pass (the portraits come after every town is built).
FIRST_PASS = tuple(name for name in stages.STAGE_NAMES if name != "portrait")


# --- one town, in a worker ---------------------------------------------------------------


class _PeakMemory:
    """Peak resident memory of this process while in the block (sampled every 50 ms)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def town_task(insee: str, settings: Settings, targets: Sequence[str] = FIRST_PASS,
              force: bool = False) -> dict[str, Any]:
    """Run the stages ``targets`` of one town (in a worker); the record of what it did.

    Raises :class:`geo.stages.StageFailed` (naming the stage) so that Dask retries it.
    """
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    start = time.perf_counter()
    failure: stages.StageFailed | None = None
    with _PeakMemory() as mem:
        try:
            record = stages.run_town(insee, list(targets), settings=settings, force=force)
        except stages.StageFailed as exc:
            # raised again outside the handler: a failure without its chain of causes,
            # which may not pickle (GDAL errors) on its way back from the worker
            failure = stages.StageFailed(exc.insee, exc.stage, exc.message)
    if failure is not None:
        raise failure
    return {
        "insee": record.insee,
        "status": "built" if record.built else "up to date",
        "stages_built": ",".join(record.built),
        "seconds": round(time.perf_counter() - start, 3),
        "cpu_seconds": round(sum(r.cpu_seconds for r in record.stages), 3),
        **{f"{r.stage}_s": round(r.seconds, 3) for r in record.stages},
        **{f"{r.stage}_cpu_s": round(r.cpu_seconds, 3) for r in record.stages},
        "peak_rss_mb": round(mem.peak / 2**20, 1),
        "worker_pid": os.getpid(),
        "outputs": len(record.outputs),
    }


def portraits_task(codes: Sequence[str], settings: Settings) -> list[dict[str, Any]]:
    """The portrait (and done marker) of several towns, in one worker: the national
    tables and the peers' rows are read once for all of them."""
    out = []
    for insee in codes:
        try:
            out.append(town_task(insee, settings, stages.STAGE_NAMES))
        except GeoError as exc:
            stage = getattr(exc, "stage", "portrait")
            out.append({"insee": insee, "status": "failed", "stage": stage,
                        "error": _last_line(exc)})
    return out


def _last_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


# --- before the towns ----------------------------------------------------------------------


def prepare_national(codes: Sequence[str], settings: Settings | None = None) -> None:
    """Build once, before any town, what every town reads: the commune reference and
    polygons, the national facility counts (and their trends over BPE vintages) and APL
    tables, the land cover per commune, the unpacked road archives and the towns' own
    datasets (OSM extracts, land cover, elevation)."""
    from geo import facilities, facility_trends, indicators, landcover

    s = settings or get_settings()
    t0 = time.perf_counter()
    communes.load_reference(s)
    communes.commune_polygons(codes[:1], crs="EPSG:4326", settings=s)
    facilities.facilities_by_commune(s)
    facility_trends.facility_trends_by_commune(s)  # read by every portrait
    indicators.apl_by_commune(s)
    lc_path = s.interim_dir / "landcover_communes.parquet"
    if not lc_path.exists():
        from geo._io import write_parquet

        table, meta = landcover.commune_landcover(None, settings=s)
        write_parquet(table, lc_path, metadata=meta)
    catalogue = sources.load_catalogue(s)
    for ds in catalogue.values():
        if ds.kind == "roads_departement":
            streets.commune_road_files(ds, s)
    local = {d.id for c in codes for d in sources.datasets_for_town(c, settings=s)
             if d.kind != "roads_departement"}
    sources.fetch(sorted(local), settings=s)
    log.info("batch: national tables ready in %.0f s", time.perf_counter() - t0)


def town_order(codes: Sequence[str], settings: Settings | None = None) -> list[str]:
    """``codes`` largest first: towns with a street source (graphs take most of the
    time) before the others, each by the number of communes their catchment reaches
    (the town polygon buffered by ``settings.catchment_m``, computed for all at once)."""
    import geopandas as gpd
    import shapely

    s = settings or get_settings()
    polys = communes.commune_polygons(list(codes), crs=s.work_crs, settings=s)
    polys = polys.drop_duplicates("insee").set_index("insee").reindex(list(codes))
    allp = communes.commune_polygons(crs=s.work_crs, settings=s)
    tree = shapely.STRtree(allp.geometry.values)
    geoms = gpd.GeoSeries(polys.geometry.values)
    size = pd.Series(0, index=list(codes), dtype="int64")
    ok = (~(geoms.isna() | geoms.is_empty)).to_numpy()
    if ok.any():
        buffered = shapely.buffer(geoms[ok].values, s.catchment_m)
        hit, _ = tree.query(buffered, predicate="intersects")
        counts = pd.Series(hit).value_counts()
        size.iloc[ok.nonzero()[0]] = counts.reindex(range(int(ok.sum())), fill_value=0).values
    with_streets = pd.Series([streets.has_streets(c, s) for c in codes], index=list(codes))
    order = pd.DataFrame({"streets": with_streets, "size": size})
    return list(order.sort_values(["streets", "size"], ascending=False, kind="stable").index)


# --- the batch -----------------------------------------------------------------------------


@dataclass
class TownOutcome:
    """The last record of a town in a batch."""

    insee: str
    status: str  # built, up to date, skipped (done before), failed
    stage: str = ""
    error: str = ""
    attempts: int = 1
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchResult:
    """What a batch did."""

    outcomes: dict[str, TownOutcome]
    seconds: float
    workers: int
    report_dir: Path

    @property
    def failures(self) -> list[TownOutcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes.values():
            out[o.status] = out.get(o.status, 0) + 1
        return out


class _Progress:
    """Towns done of N, towns per hour, time left and failures, logged as they come."""

    def __init__(self, total: int, every_s: float = 10.0,
                 sink: Callable[[str], None] | None = None) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.start = time.perf_counter()
        self.every_s, self.last = every_s, 0.0
        self.sink = sink or (lambda line: log.info("%s", line))

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed * 3600 if elapsed > 0 and self.done else 0.0
        left = (self.total - self.done) / rate * 3600 if rate else float("nan")
        eta = "?" if left != left else _duration(left)
        return (f"batch: {self.done}/{self.total} towns ({self.done / max(self.total, 1):.0%}), "
                f"{rate:.0f} towns/h, {eta} left, {self.failed} failed")

    def step(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            self.sink(self.line())


def _duration(seconds: float) -> str:
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}" if h else f"{m}min{sec:02d}" if m else f"{sec}s"


@contextlib.contextmanager
def _client(workers: int, scheduler: str | None, memory_limit: str | None,
            retries: int) -> Iterator[Any]:
    """A Dask client: on ``scheduler`` (or ``DASK_SCHEDULER_ADDRESS``) when given, else on
    a new ``LocalCluster`` of ``workers`` single-threaded worker processes."""
    import dask
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    config = {
        # a worker dying (e.g. killed for memory) reschedules its task; after this many
        # deaths the task fails (KilledWorker) and the batch goes on without it
        "distributed.scheduler.allowed-failures": max(retries, 0) + 1,
        "distributed.nanny.pre-spawn-environ": WORKER_ENV,
        "distributed.worker.daemon": False,  # tasks may start subprocesses (tippecanoe)
        "distributed.admin.tick.limit": "60s",
        "distributed.logging.distributed": "warning",
    }
    with dask.config.set(config):
        if address:
            log.info("batch: on the existing Dask cluster at %s", address)
            with Client(address, timeout="30s") as client:
                yield client
            return
        import psutil

        limit = memory_limit or f"{int(psutil.virtual_memory().total * 0.8 / workers)}B"
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          memory_limit=limit, dashboard_address=None,
                          silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
            log.info("batch: LocalCluster of %d worker(s), 1 thread each, memory limit %s "
                     "per worker", workers, limit)
            yield client


def run_batch(
    codes: Sequence[str],
    *,
    workers: int = 2,
    scheduler: str | None = None,
    retries: int = 2,
    force: bool = False,
    memory_limit: str | None = None,
    portraits_per_task: int = 25,
    settings: Settings | None = None,
) -> BatchResult:
    """Build every town of ``codes`` (see the module docstring).

    Parameters
    ----------
    codes
        INSEE codes (current; resolve names first).
    workers
        Worker processes of the LocalCluster (ignored on an existing cluster).
    scheduler
        Address of an existing Dask scheduler (else ``DASK_SCHEDULER_ADDRESS``, else a
        LocalCluster).
    retries
        Extra attempts of a failing town (also after its worker died).
    force
        Rebuild every town, done or not.
    memory_limit
        Per-worker memory limit of the LocalCluster (default 80 % of RAM / workers).
    portraits_per_task
        Towns per portrait task.
    """
    from distributed import as_completed

    s = settings or get_settings()
    if workers < 1:
        raise SettingsError(f"--workers must be at least 1, got {workers}")
    if retries < 0:
        raise SettingsError(f"--retries must be 0 or more, got {retries}")
    start = time.perf_counter()
    codes = list(dict.fromkeys(codes))
    if not codes:
        raise SettingsError("no town to build: give INSEE codes, --pvd, --acv or "
                            "--departement")
    report_dir = s.data_dir / "national" / "batch"
    report_dir.mkdir(parents=True, exist_ok=True)
    prepare_national(codes, s)
    outcomes: dict[str, TownOutcome] = {}
    todo = codes if force else [c for c in codes if not stages.is_done(c, s.town_dir(c), s)]
    for c in codes:
        if c not in todo:
            outcomes[c] = TownOutcome(c, "skipped")
    log.info("batch: %d towns, %d already done and up to date, %d to build", len(codes),
             len(codes) - len(todo), len(todo))
    order = town_order(todo, s) if todo else []
    progress = _Progress(len(order))
    with _client(workers, scheduler, memory_limit, retries) as client:
        futures = {}
        for rank, insee in enumerate(order):
            fut = client.submit(town_task, insee, s, FIRST_PASS, force, key=f"town-{insee}",
                                retries=retries, pure=False, priority=len(order) - rank)
            futures[fut] = insee
        for fut in as_completed(futures):
            insee = futures[fut]
            outcome = _outcome(insee, fut)
            outcomes[insee] = outcome
            progress.step(outcome.status != "failed")
            if outcome.status == "failed":
                log.warning("batch: %s failed at %s: %s", insee, outcome.stage, outcome.error)
            fut.release()
        _write_reports(outcomes, report_dir)
        built = [c for c in codes if outcomes[c].status != "failed"]
        from geo import national

        national.write_national_tables(built, settings=s)
        # the portraits compare each town with every built peer: after all towns
        chunks = [built[i:i + portraits_per_task]
                  for i in range(0, len(built), portraits_per_task)]
        log.info("batch: portraits of %d towns in %d tasks", len(built), len(chunks))
        pfuts = [client.submit(portraits_task, chunk, s, key=f"portraits-{i}", pure=False,
                               retries=retries) for i, chunk in enumerate(chunks)]
        for fut in as_completed(pfuts):
            try:
                rows = fut.result()
            except Exception as exc:  # a worker died repeatedly: those portraits fail
                rows = [{"insee": c, "status": "failed", "stage": "portrait",
                         "error": _last_line(exc)} for c in chunks[pfuts.index(fut)]]
            for row in rows:
                if row.get("status") == "failed":
                    outcomes[row["insee"]] = TownOutcome(row["insee"], "failed", "portrait",
                                                         row["error"])
    from geo.export import viewer

    if viewer.viewer_dir(s).is_dir():
        viewer.write_town_index(s)
    result = BatchResult(outcomes, time.perf_counter() - start, workers, report_dir)
    _write_reports(outcomes, report_dir)
    log.info("batch: %s in %s; reports in %s", ", ".join(
        f"{n} {k}" for k, n in sorted(result.counts().items())), _duration(result.seconds),
        report_dir)
    return result


def _outcome(insee: str, fut: Any) -> TownOutcome:
    from distributed import KilledWorker

    if fut.status == "finished":
        rec = fut.result()
        return TownOutcome(insee, rec["status"], record=rec)
    exc = fut.exception()
    if isinstance(exc, stages.StageFailed):
        return TownOutcome(insee, "failed", exc.stage, _last_line(exc))
    if isinstance(exc, KilledWorker):
        return TownOutcome(insee, "failed", "?", "its worker died every attempt (killed, "
                           "e.g. for memory: raise --memory-limit or lower --workers)")
    return TownOutcome(insee, "failed", "?", f"{type(exc).__name__}: {_last_line(exc)}")


def _write_reports(outcomes: dict[str, TownOutcome], folder: Path) -> None:
    rows = []
    for o in outcomes.values():
        row = {"insee": o.insee, "status": o.status, "stage": o.stage, "error": o.error}
        row.update({k: v for k, v in o.record.items() if k not in row})
        rows.append(row)
    table = pd.DataFrame(rows)
    write_text_atomic(folder / "towns.csv", table.to_csv(index=False))
    fails = table[table["status"] == "failed"][["insee", "stage", "error"]] if len(table) \
        else pd.DataFrame(columns=["insee", "stage", "error"])
    write_text_atomic(folder / "failures.csv", fails.to_csv(index=False))
