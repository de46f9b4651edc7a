"""Fixtures of the publishing tests.

- The demo town, Pont-de-Veyle (01306), is a real town run: the stages (town card,
  facilities, access, aggregation) run on the shared-data mirror into the session's own
  data folder, once; its GeoPackage, PMTiles and the viewer are built from that.
- Synthetic stage files with the agreed field names (``synthetic_town.py``) cover what
  the real town lacks: land cover without a street network (a second town in the
  viewer), missing fields, known values, bad inputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser.harness import require_browser

from export.synthetic_town import OTHER_TOWN, TOWN, write_synthetic_town
from geo import access, communes, facilities, indicators
from geo._io import write_json_atomic
from geo.export.gpkg import build_gpkg
from geo.export.tiles import PMTilesSummary, build_pmtiles
from geo.export.viewer import build_viewer
from geo.settings import Settings, load_settings


@pytest.fixture(scope="session")
def publish_settings(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with their own data folder, fetching from the mirror."""
    data_dir = tmp_path_factory.mktemp("publish")
    return load_settings(environ={}, data_dir=data_dir, mirror=str(shared_data))


@pytest.fixture(scope="session")
def town_dir(publish_settings: Settings) -> Path:
    """The demo town run on real data: town card, facilities, access, aggregation."""
    s = publish_settings
    out = s.town_dir(TOWN)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "town.json", communes.town_card(TOWN, settings=s))
    facilities.write_facilities(facilities.town_facilities(TOWN, settings=s),
                                out / "facilities.parquet")
    access.run_town(TOWN, settings=s, out_dir=out)
    indicators.write_aggregate(indicators.aggregate_town(TOWN, settings=s, town_dir=out), out)
    return out


@pytest.fixture(scope="session")
def synthetic_gpkg(publish_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GeoPackage of synthetic stage files (streets, no land cover): known values."""
    folder = write_synthetic_town(tmp_path_factory.mktemp("synthetic") / TOWN)
    return build_gpkg(TOWN, settings=publish_settings, town_dir=folder)


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
