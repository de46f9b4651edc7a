"""Aggregate stage: H3 cells and commune indicators of the town (``h3_r<res>.parquet``,
``communes.parquet``, ``landcover.parquet``) from its facilities, access times, CORINE
land cover and DREES APL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from geo import communes, indicators, landcover, sources
from geo.settings import Settings
from geo.stages._core import Stage

__all__ = ["STAGE", "run"]

log = logging.getLogger(__name__)


def run(insee: str, *, out_dir: Path, settings: Settings,
        resolutions: Sequence[int] | None = None,
        landcover_sources: Sequence[landcover.LandCoverSource] | None = None,
        inputs_dir: Path | None = None) -> list[Path]:
    """Write the aggregate layers into ``out_dir`` (``inputs_dir``: the folder with the
    facilities and access files, default ``out_dir``)."""
    out_dir = Path(out_dir)
    c = communes.read_catchment(out_dir / communes.CATCHMENT_FILE)
    result = indicators.aggregate_town(
        c.insee, resolutions=resolutions, landcover_sources=landcover_sources,
        town_dir=Path(inputs_dir) if inputs_dir else out_dir, town_catchment=c,
        settings=settings,
    )
    paths = indicators.write_aggregate(result, out_dir)
    if result.missing:
        log.warning("%s: written without: %s", result.insee,
                    "; ".join(m.split(":")[0] for m in result.missing))
    return paths


def _datasets(insee: str, folder: Path, s: Settings) -> list[str]:
    local = [d.id for d in sources.datasets_for_town(insee, settings=s)
             if d.kind.startswith(("landcover", "communes"))]
    apl = [p.dataset for p in indicators.APL_PROFESSIONS]
    return [*apl, *local]


def _national(s: Settings) -> list[Path]:
    return [s.interim_dir / name for name in
            ("communes.parquet", "facilities_communes.parquet", "apl_communes.parquet")]


STAGE = Stage(
    name="aggregate",
    description="H3 and commune indicators",
    modules=("geo.stages.aggregate",),
    run=run,
    upstream=("card", "facilities", "access"),
    datasets=_datasets,
    national=_national,
    requires=(communes.CATCHMENT_FILE,),
    produces=("communes.parquet", "h3_r8.parquet", "h3_r9.parquet", "landcover.parquet"),
)
