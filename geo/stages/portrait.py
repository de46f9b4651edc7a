"""Portrait stage: the town compared with similar towns (``portrait.html``,
``portrait.csv``, ``portrait_pairs.csv``, ``portrait_evolution_equipements.csv``,
``portrait_themes.csv``), from the national tables and the rows of every town run present
(the peers' local indicators: access times, land cover)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from geo import portrait, themes, vocab
from geo.settings import Settings
from geo.stages._core import STATE_DIR, Stage, TownState

__all__ = ["STAGE", "run"]


def run(insee: str, *, out_dir: Path, settings: Settings,
        rule: portrait.PeerRule | None = None) -> list[Path]:
    """Write the portrait files into ``out_dir``."""
    result = portrait.build_portrait(insee, rule=rule, settings=settings)
    return portrait.write_portrait(result, Path(out_dir), settings=settings)


def _datasets(insee: str, folder: Path, s: Settings) -> list[str]:
    return [p.dataset for p in vocab.APL_PROFESSIONS]


def _national(s: Settings) -> list[Path]:
    return [s.interim_dir / name for name in
            ("communes.parquet", "facilities_communes.parquet", "apl_communes.parquet",
             "landcover_communes.parquet", "facility_trends_communes.parquet")] + \
        themes.national_inputs(s)


#: Files of a town run the portraits compare (:func:`geo.portrait.local_rows`).
_COMPARED = ("communes.parquet", "facilities.parquet")
_runs_cache: dict[tuple[Any, ...], str] = {}


def _extra(insee: str, folder: Path, s: Settings) -> dict[str, Any]:
    """The versions of every town run's comparison files (the peers' rows)."""
    return {"town_runs": town_runs_digest(s)}


def town_runs_digest(s: Settings) -> str:
    """sha256 of the contents of every town run's compared files, from the sha256 each
    run's state recorded for them (a file touched by make keeps its digest); a run without
    state counts by its files' size and modification time. Cached while no run's state
    changes (one ``stat`` per town)."""
    out = s.out_dir
    if not out.is_dir():
        return ""
    runs = sorted(p for p in out.iterdir() if p.is_dir() and portrait._INSEE_DIR.fullmatch(p.name))
    key: list[Any] = [str(out)]
    for run in runs:
        state = run / STATE_DIR / "state.json"
        try:
            key.append((run.name, state.stat().st_mtime_ns))
        except FileNotFoundError:
            key.append((run.name, tuple((n, (run / n).stat().st_mtime_ns)
                                        for n in _COMPARED if (run / n).is_file())))
    cache_key = tuple(key)
    if cache_key not in _runs_cache:
        h = hashlib.sha256()
        for run in runs:
            recorded = TownState.read(run)
            for name in _COMPARED:
                rec = recorded.output_record(name)
                path = run / name
                if rec is not None:
                    h.update(f"{run.name}/{name}={rec.get('sha256')}\n".encode())
                elif path.is_file():
                    st = path.stat()
                    h.update(f"{run.name}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        _runs_cache.clear()
        _runs_cache[cache_key] = h.hexdigest()
    return _runs_cache[cache_key]


def _prepare(s: Settings) -> None:
    """Build the tables of the themes whose files are downloaded (geo.themes)."""
    themes.build_available(s)


STAGE = Stage(
    name="portrait",
    description="portrait against similar towns",
    modules=("geo.stages.portrait",),
    run=run,
    upstream=("card", "facilities", "aggregate"),
    produces=("portrait.html", "portrait.csv", "portrait_pairs.csv",
              "portrait_evolution_equipements.csv", "portrait_themes.csv"),
    datasets=_datasets,
    national=_national,
    extra=_extra,
    prepare=_prepare,
)
