"""The town run as code: one module per stage, run in order by :func:`run_town`.

========== =================================================== ========================
stage      writes (in the town folder)                          reads
========== =================================================== ========================
card       ``town.json``, ``catchment.parquet``                 the commune reference
facilities ``facilities.parquet``                               card; OSM, BPE, registers
access     ``access_<mode>_{nodes,edges,facilities}.parquet``,  card, facilities; streets
           ``isochrones.parquet`` (none without streets)
aggregate  ``h3_r<res>.parquet``, ``communes.parquet``,         card, facilities, access;
           ``landcover.parquet``                                APL, CORINE
publish    ``<insee>.gpkg``, ``<insee>.pmtiles``                every layer above
portrait   ``portrait.html``, ``portrait.csv``,                 card, aggregate; the other
           ``portrait_pairs.csv``                               towns' rows
========== =================================================== ========================

Each stage module has ``run(insee, *, out_dir, settings) -> list[Path]`` and a
:class:`Stage` declaration (``STAGE``). :func:`run_town` runs the stages asked for and the
earlier stages they need, each only when it is not up to date (see
:mod:`geo.stages._core`: code, settings and input fingerprints), under the town's lock,
with each stage's log appended to ``logs/<stage>.log``. The batch
(:mod:`geo.batch`), ``pvdgeo town`` and every make recipe go through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo import communes
from geo._io import ensure_writable_dir, write_json_atomic
from geo.errors import GeoError, SettingsError
from geo.settings import Settings, get_settings
from geo.stages import access, aggregate, card, facilities, portrait, publish
from geo.stages._core import (
    STATE_DIR,
    Stage,
    StageResult,
    TownState,
    file_record,
    run_logged,
    touch,
    town_lock,
)

__all__ = [
    "STAGES",
    "STAGE_NAMES",
    "Stage",
    "StageFailed",
    "StageResult",
    "TownRecord",
    "TownState",
    "is_done",
    "run_town",
    "stage",
]

log = logging.getLogger("geo.stages")

#: Every town stage, in run order.
STAGES: tuple[Stage, ...] = (card.STAGE, facilities.STAGE, access.STAGE, aggregate.STAGE,
                             publish.STAGE, portrait.STAGE)
STAGE_NAMES: tuple[str, ...] = tuple(st.name for st in STAGES)
_BY_NAME = {st.name: st for st in STAGES}

#: The marker a finished town run writes last.
DONE_FILE = "done.json"


class StageFailed(GeoError, RuntimeError):  # noqa: N818 - named for what happened
    """A stage of a town run failed; ``stage`` and ``insee`` say where."""

    def __init__(self, insee: str, stage: str, message: str) -> None:
        super().__init__(f"town {insee}, stage {stage}: {message}")
        self.insee = insee
        self.stage = stage
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across Dask workers
        return (StageFailed, (self.insee, self.stage, self.message))


def stage(name: str) -> Stage:
    """The stage called ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise SettingsError(f"unknown stage {name!r}: expected one of "
                            f"{', '.join(STAGE_NAMES)}") from None


def _needed(targets: Iterable[str], folder: Path, upstream: str) -> list[Stage]:
    """``targets`` and the stages they need, in run order: every earlier stage they read
    from (``upstream="stale"``, each then runs when not up to date), or only those
    producing a required file that is missing (``upstream="missing"``: make, which
    keeps the earlier files up to date itself)."""
    producer = {name: st for st in STAGES for name in st.produces}
    want: set[str] = set()
    todo = list(targets)
    while todo:
        name = todo.pop()
        if name in want:
            continue
        want.add(name)
        st = stage(name)
        if upstream == "stale":
            todo.extend(st.upstream)
        else:
            todo.extend(producer[f].name for f in st.requires
                        if f in producer and not (folder / f).is_file())
    return [st for st in STAGES if st.name in want]


def _upstream_files(st: Stage, state: TownState) -> list[str]:
    """The files of the town folder ``st`` reads: what its upstream stages recorded
    writing, and the files they produce that exist (written by an earlier version or by
    hand)."""
    names: set[str] = set()
    for up in st.upstream:
        names.update(state.stages.get(up, {}).get("outputs", {}))
        names.update(n for n in stage(up).produces if (state.folder / n).is_file())
    return sorted(names)


@dataclass
class TownRecord:
    """What :func:`run_town` did for one town."""

    insee: str
    out_dir: Path
    stages: list[StageResult] = field(default_factory=list)

    @property
    def built(self) -> list[str]:
        """Stages that ran (were not up to date)."""
        return [r.stage for r in self.stages if r.status == "built"]

    @property
    def outputs(self) -> list[Path]:
        return [self.out_dir / name for r in self.stages for name in r.outputs]


def _town_code(query: str, out_dir: str | Path | None, s: Settings, wanted: list[str],
               upstream: str) -> str:
    """The current INSEE code of a town (:func:`geo.communes.resolve_insee`, which reads
    the commune reference), or the code as given when it is well formed and the run does
    not build the card: its folder then already says which town it is."""
    text = str(query).strip()
    try:
        code = communes.validate_insee(text)
    except GeoError:
        return communes.resolve_insee(text, s)
    folder = Path(out_dir) if out_dir is not None else s.town_dir(code)
    builds_card = any(st.name == "card" for st in _needed(wanted, folder, upstream))
    return communes.resolve_insee(code, s) if builds_card else code


def fingerprints(insee: str, out_dir: Path, settings: Settings,
                 names: Sequence[str] = STAGE_NAMES) -> dict[str, str]:
    """Current fingerprint of each stage of a town folder (from its recorded state)."""
    state = TownState.read(out_dir)
    return {name: stage(name).fingerprint(insee, out_dir, settings, state,
                                          _upstream_files(stage(name), state))
            for name in names}


def is_done(insee: str, out_dir: Path, settings: Settings) -> bool:
    """Whether the town run in ``out_dir`` is finished and still up to date: its done
    marker exists and every stage is up to date with the current code, settings and
    inputs."""
    marker = Path(out_dir) / STATE_DIR / DONE_FILE
    if not marker.is_file():
        return False
    state = TownState.read(out_dir)
    for st in STAGES:
        st.prepared(settings)
        fp = st.fingerprint(insee, out_dir, settings, state, _upstream_files(st, state))
        if not state.up_to_date(st.name, fp):
            return False
    return True


def run_town(
    insee: str,
    targets: Sequence[str] | None = None,
    *,
    out_dir: str | Path | None = None,
    settings: Settings | None = None,
    force: bool | Sequence[str] = False,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    lock: bool = True,
    upstream: str = "stale",
    touch_targets: bool = False,
) -> TownRecord:
    """Run the stages ``targets`` (default all) of town ``insee`` and those they need.

    Parameters
    ----------
    insee
        INSEE code or name of the town.
    targets
        Stage names (:data:`STAGE_NAMES`); the stages they read from run first when they
        are not up to date.
    out_dir
        Town folder (default ``settings.town_dir(insee)``).
    force
        Run the target stages even when up to date (``True``), or these stages.
    options
        Per-stage keyword options of its ``run`` (e.g. ``{"access": {"modes": ["walk"]}}``):
        a stage run with options is recorded as such and runs again on the next plain run.
    lock
        Hold the town's lock (one run of a town at a time).
    upstream
        ``"stale"``: the earlier stages the targets read from run first when they are not
        up to date; ``"missing"``: only when a file the target requires is missing (the
        stage commands that make calls, since make keeps those files up to date).
    touch_targets
        Set the modification time of up-to-date target files to now (for make, which
        ran the recipe because a prerequisite is newer, and must see the target fresh).

    Raises
    ------
    StageFailed
        Naming the stage that failed and why (earlier stages' files are kept).
    """
    s = settings or get_settings()
    if upstream not in ("stale", "missing"):
        raise SettingsError(f"upstream must be 'stale' or 'missing', got {upstream!r}")
    wanted = list(targets or STAGE_NAMES)
    code = _town_code(insee, out_dir, s, wanted, upstream)
    folder = ensure_writable_dir(Path(out_dir) if out_dir is not None else s.town_dir(code),
                                 what="town folder")
    forced = set(wanted if force is True else (force or ()))
    options = options or {}
    record = TownRecord(insee=code, out_dir=folder)
    if lock:
        with town_lock(folder, code):
            _run(code, _needed(wanted, folder, upstream), wanted, folder, s, forced, options,
                 record, touch_targets)
    else:
        _run(code, _needed(wanted, folder, upstream), wanted, folder, s, forced, options,
             record, touch_targets)
    return record


def _run(code: str, todo: list[Stage], wanted: list[str], folder: Path, s: Settings,
         forced: set[str], options: Mapping[str, Mapping[str, Any]], record: TownRecord,
         touch_targets: bool) -> None:
    state = TownState.read(folder)
    marker = folder / STATE_DIR / DONE_FILE
    for st in todo:
        st.prepared(s)
        fp = st.fingerprint(code, folder, s, state, _upstream_files(st, state))
        opts = dict(options.get(st.name, {}))
        if not opts and st.name not in forced and state.up_to_date(st.name, fp):
            if touch_targets and st.name in wanted:  # make: the target must look fresh
                outs = [folder / n for n in state.stages[st.name].get("outputs", {})]
                touch(outs)
                touch([folder / "logs" / f"{st.name}.log"])  # a stage that wrote no file
                state.stages[st.name]["outputs"] = {p.name: file_record(p) for p in outs}
                state.write()
            record.stages.append(StageResult(st.name, "up to date", 0.0, 0.0,
                                             list(state.stages[st.name].get("outputs", {}))))
            continue
        marker.unlink(missing_ok=True)
        try:
            paths, wall, cpu = run_logged(st, code, folder, s, opts)
        # not chained ("from None"): the cause may not pickle (a GDAL error), and the
        # failure has to travel from a Dask worker to the batch; -v logs the traceback
        except GeoError as exc:
            log.debug("stage %s of %s failed", st.name, code, exc_info=True)
            raise StageFailed(code, st.name, str(exc)) from None
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            log.debug("stage %s of %s failed", st.name, code, exc_info=True)
            raise StageFailed(code, st.name, f"{type(exc).__name__}: {exc}") from None
        outputs = {Path(p).name: file_record(Path(p)) for p in paths
                   if Path(p).parent.resolve() == folder.resolve() and Path(p).is_file()}
        # recorded with the inputs as they are now: datasets the stage fetched and national
        # tables it built are part of it, so that the next run finds it up to date
        fp = st.fingerprint(code, folder, s, state, _upstream_files(st, state))
        if touch_targets and st.name in wanted:  # make: even a file left as it was is fresh
            touch(folder / n for n in outputs)
            outputs = {n: file_record(folder / n) for n in outputs}
        state.stages[st.name] = {
            "fingerprint": fp if not opts else f"custom:{fp}",
            "outputs": outputs,
            "seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        state.write()
        record.stages.append(StageResult(st.name, "built", wall, cpu, list(outputs)))
    if set(STAGE_NAMES) <= {r.stage for r in record.stages}:
        write_json_atomic(marker, {
            "insee": code,
            "stages": {name: state.stages[name]["fingerprint"] for name in STAGE_NAMES},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
