"""Fixtures of the publishing tests: a town run, its GeoPackage, PMTiles and viewer.

The town folder holds synthetic stage files with the agreed field names
(``synthetic_town.py``); the provenance is real: the datasets the town uses are fetched
from the shared-data mirror, so the lock file and the catalogue give the sources,
licences and vintages recorded in the outputs. Each product is built once per session.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser.harness import require_browser
from synthetic_town import OTHER_TOWN, TOWN, write_synthetic_town

from geo import sources
from geo.export.gpkg import build_gpkg
from geo.export.tiles import PMTilesSummary, build_pmtiles
from geo.export.viewer import build_viewer
from geo.settings import Settings, load_settings

#: Datasets behind the demo town's layers, fetched from the mirror for provenance.
PROVENANCE_DATASETS = ("communes_cog", "apl_mg", "osm_pont_de_veyle")


@pytest.fixture(scope="session")
def publish_settings(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with their own data folder, the mirror, and the town's sources fetched."""
    data_dir = tmp_path_factory.mktemp("publish")
    s = load_settings(environ={}, data_dir=data_dir, mirror=str(shared_data))
    sources.fetch(PROVENANCE_DATASETS, settings=s)
    return s


@pytest.fixture(scope="session")
def town_dir(publish_settings: Settings) -> Path:
    """The demo town's folder with the stage files (streets, no land cover)."""
    return write_synthetic_town(publish_settings.town_dir(TOWN))


@pytest.fixture(scope="session")
def town_gpkg(town_dir: Path, publish_settings: Settings) -> Path:
    return build_gpkg(TOWN, settings=publish_settings)


@pytest.fixture(scope="session")
def town_pmtiles(town_gpkg: Path, publish_settings: Settings) -> PMTilesSummary:
    return build_pmtiles(TOWN, settings=publish_settings)


@pytest.fixture(scope="session")
def other_town_pmtiles(publish_settings: Settings) -> PMTilesSummary:
    insee, nom = OTHER_TOWN
    write_synthetic_town(publish_settings.town_dir(insee), streets=False, landcover=True,
                         insee=insee, nom=nom)
    build_gpkg(insee, settings=publish_settings)
    return build_pmtiles(insee, settings=publish_settings)


@pytest.fixture(scope="session")
def built_viewer(town_pmtiles: PMTilesSummary, other_town_pmtiles: PMTilesSummary,
                 publish_settings: Settings) -> Path:
    """The viewer built into the session's data/out (index.html), with two towns."""
    return build_viewer(publish_settings)


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable, with the npm packages and Chromium (skips, or fails under
    CI, when one is missing)."""
    require_browser()
    return str(shutil.which("node"))
