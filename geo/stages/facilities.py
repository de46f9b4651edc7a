"""Facilities stage: the facility points of the town and its catchment communes
(``facilities.parquet``) from OSM, the BPE and the national registers."""

from __future__ import annotations

from pathlib import Path

from geo import communes, facilities, sources
from geo.settings import Settings
from geo.stages._core import Stage, osm_extract_input

__all__ = ["STAGE", "run"]

#: National registers every town reads (one kind of facility each).
REGISTERS = ("museofile", "cinemas", "festivals", "eoliennes", "france_services")


def run(insee: str, *, out_dir: Path, settings: Settings, osm: str | Path | None = None,
        bpe_xy: str | Path | None = None) -> list[Path]:
    """Write ``facilities.parquet`` into ``out_dir`` (``osm``, ``bpe_xy``: other input
    files than the catalogue's)."""
    out_dir = Path(out_dir)
    c = communes.read_catchment(out_dir / communes.CATCHMENT_FILE)
    table = facilities.town_facilities(c.insee, osm=osm, bpe_xy=bpe_xy, town_catchment=c,
                                       settings=settings)
    return [facilities.write_facilities(table, out_dir / "facilities.parquet")]


def _datasets(insee: str, folder: Path, s: Settings) -> list[str]:
    osm = [d.id for d in sources.datasets_for_town(insee, kind="osm", settings=s)]
    xy = ["bpe_xy"] if sources.dataset_path("bpe_xy", s).is_file() else []
    return [*osm, *REGISTERS, *xy, "communes_cog", "communes_polygons"]


STAGE = Stage(
    name="facilities",
    description="facility points of the town and its catchment",
    modules=("geo.stages.facilities",),
    run=run,
    upstream=("card",),
    datasets=_datasets,
    extra=osm_extract_input,
    requires=(communes.CATCHMENT_FILE,),
    produces=("facilities.parquet",),
)
