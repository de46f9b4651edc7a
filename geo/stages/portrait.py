"""Portrait stage: the town compared with similar towns (``portrait.html``,
``portrait.csv``, ``portrait_pairs.csv``, ``portrait_evolution_equipements.csv``,
``portrait_themes.csv``), from the national tables and the rows of every town run present
(the peers' local indicators: access times, land cover)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from geo import indicators, portrait, themes
from geo.settings import Settings
from geo.stages._core import Stage

__all__ = ["STAGE", "run"]


def run(insee: str, *, out_dir: Path, settings: Settings,
        rule: portrait.PeerRule | None = None) -> list[Path]:
    """Write the portrait files into ``out_dir``."""
    result = portrait.build_portrait(insee, rule=rule, settings=settings)
    return portrait.write_portrait(result, Path(out_dir), settings=settings)


def _datasets(insee: str, folder: Path, s: Settings) -> list[str]:
    return [p.dataset for p in indicators.APL_PROFESSIONS]


def _national(s: Settings) -> list[Path]:
    return [s.interim_dir / name for name in
            ("communes.parquet", "facilities_communes.parquet", "apl_communes.parquet",
             "landcover_communes.parquet", "facility_trends_communes.parquet")] + \
        themes.national_inputs(s)


def _extra(insee: str, folder: Path, s: Settings) -> dict[str, Any]:
    """The versions of every town run's comparison files (the peers' rows)."""
    return {"town_runs": hashlib.sha256(portrait.town_runs_version(s).encode()).hexdigest()}


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
