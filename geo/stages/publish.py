"""Publish stage: the town GeoPackage for QGIS (``<insee>.gpkg``, styled) and the
PMTiles vector tiles for the viewer (``<insee>.pmtiles``)."""

from __future__ import annotations

import logging
from pathlib import Path

from geo import sources
from geo.errors import GeoError
from geo.export import gpkg, layers, metadata, tiles
from geo.settings import Settings
from geo.stages._core import Stage

__all__ = ["STAGE", "run"]

log = logging.getLogger(__name__)


def run(insee: str, *, out_dir: Path, settings: Settings, only: str | None = None
        ) -> list[Path]:
    """Write ``<insee>.gpkg`` then ``<insee>.pmtiles`` into ``out_dir`` (``only``:
    ``"gpkg"`` or ``"tiles"``; the tiles alone are made from the GeoPackage, both
    together from the same layers read once)."""
    out_dir = Path(out_dir)
    if only == "tiles":
        return [tiles.build_pmtiles(insee, settings=settings, town_dir=out_dir).path]
    town = layers.read_town_layers(insee, settings=settings, town_dir=out_dir)
    prov = metadata.town_provenance(insee, settings=settings, nom=town.nom)
    path = gpkg.write_gpkg(town, out_dir / f"{insee}.gpkg", provenance=prov,
                           settings=settings)
    log.info("GeoPackage: %s (%.1f MB)", path, path.stat().st_size / 1e6)
    if only == "gpkg":
        return [path]
    summary = tiles.write_town_pmtiles(town, out_dir / f"{insee}.pmtiles",
                                       document=gpkg.dataset_document(town, prov),
                                       settings=settings)
    return [path, summary.path]


def _datasets(insee: str, folder: Path, s: Settings) -> list[str]:
    catalogue = sources.load_catalogue(s)
    national = [d.id for d in catalogue.values() if d.scope == "national"]
    return [*national, *(d.id for d in sources.datasets_for_town(insee, settings=s))]


def _prepare(s: Settings) -> None:
    """Every national dataset fetched: the GeoPackage lists them in its provenance (when
    they cannot be fetched, it lists those that are; its fingerprint says which)."""
    catalogue = sources.load_catalogue(s)
    try:
        sources.fetch([d.id for d in catalogue.values() if d.scope == "national"],
                      settings=s)
    except GeoError as exc:
        log.warning("publish: not every national dataset could be fetched (%s); the "
                    "provenance lists those present", exc)


STAGE = Stage(
    name="publish",
    description="GeoPackage and PMTiles",
    modules=("geo.stages.publish",),
    run=run,
    upstream=("card", "facilities", "access", "aggregate"),
    datasets=_datasets,
    prepare=_prepare,
)
