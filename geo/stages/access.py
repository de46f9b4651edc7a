"""Access stage: walking and cycling street graphs, minutes to the nearest facilities,
counts within the time thresholds and isochrones (``access_<mode>_*.parquet``,
``isochrones.parquet``). A town without a street source gets none: the stage says why
in its log and writes nothing, so the town run goes on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from geo import access, communes, network, sources, streets
from geo.errors import GeoError
from geo.settings import Settings
from geo.stages._core import Stage, osm_extract_input

__all__ = ["STAGE", "access_files", "run"]

log = logging.getLogger(__name__)


def access_files(modes: Sequence[str] = network.MODES) -> list[str]:
    """Names of the files the access stage writes for ``modes``."""
    names = [f"access_{m}_{kind}.parquet" for m in modes
             for kind in ("nodes", "edges", "facilities")]
    return [*names, "isochrones.parquet"]


def run(insee: str, *, out_dir: Path, settings: Settings,
        modes: Sequence[str] = network.MODES, streets_file: str | Path | None = None,
        dem: str | Path | None = None, facilities_file: str | Path | None = None,
        overpass: bool = False) -> list[Path]:
    """Write the access files into ``out_dir``; nothing when the town has no street
    source (and neither ``streets_file`` nor ``overpass``)."""
    out_dir = Path(out_dir)
    c = communes.read_catchment(out_dir / communes.CATCHMENT_FILE)
    if streets_file is None and not overpass and not streets.has_streets(c.insee, settings):
        log.info("access: no street source for %s in the catalogue (OSM extract or road "
                 "lines of the town); access times and isochrones skipped. Add one to "
                 "data/sources.toml, or run pvdgeo access %s --osm FILE | --roads FILE | "
                 "--overpass", c.insee, c.insee)
        return []
    paths = access.run_town(
        c.insee, tuple(modes), streets=streets_file, dem=dem,
        facilities=facilities_file, out_dir=out_dir, overpass=overpass,
        town_catchment=c, settings=settings,
    )
    return list(paths.values())


def _datasets(insee: str, folder: Path, s: Settings) -> list[str]:
    local = [d.id for d in sources.datasets_for_town(insee, settings=s)
             if d.kind in ("osm", "roads", "dem")]
    try:
        members = communes.read_catchment(folder / communes.CATCHMENT_FILE).insee_codes
    except GeoError:  # no catchment yet: the card stage runs first and this is recomputed
        members = [insee]
    return [*local, *(d.id for d in streets.street_datasets(members, s))]


STAGE = Stage(
    name="access",
    description="street graphs, access times and isochrones",
    modules=("geo.stages.access",),
    run=run,
    upstream=("card", "facilities"),
    datasets=_datasets,
    extra=osm_extract_input,
    requires=(communes.CATCHMENT_FILE, "facilities.parquet"),
    produces=tuple(access_files()),
)
