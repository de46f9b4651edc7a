"""Shared fixtures.

Real data comes from the mirror located by ``GEO_TEST_DATA`` (default ``../shared/data``
beside the project root). When it is missing, tests that need it are skipped, except
under ``CI=true`` where they fail: CI must never pass without having run them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_data import IN_CI, require_shared, shared_data_dir

from geo.settings import Settings, load_settings, reset_settings, set_settings

__all__ = ["IN_CI", "require_shared", "shared_data_dir"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real-data mirror."""
    return require_shared()


@pytest.fixture(scope="session")
def mirror_settings(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings that fetch from the real mirror into one data folder per test session
    (raw files and the commune reference are built once and shared by the tests)."""
    data_dir = tmp_path_factory.mktemp("data")
    return load_settings(environ={}, data_dir=data_dir, mirror=str(shared_data))


def private_data(settings: Settings, folder: Path) -> Settings:
    """``settings`` with a data folder of its own in ``folder`` that starts with the raw
    and interim files of ``settings`` (hard links: every output is replaced by rename,
    never written in place), for tests whose outputs would change other tests' inputs."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("raw", "interim"):
        src = settings.data_dir / sub
        if src.exists():
            subprocess.run(["cp", "-al", str(src), str(folder / sub)], check=True)
    return settings.replace(data_dir=folder)


@pytest.fixture
def use_settings(mirror_settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """Install ``mirror_settings`` as the process-wide settings for one test, and in the
    environment (``GEO_DATA_DIR``, ``GEO_MIRROR``) so that ``geo.cli.main``, which loads
    its settings from the environment, uses them too when a test calls it in-process."""
    monkeypatch.setenv("GEO_DATA_DIR", str(mirror_settings.data_dir))
    monkeypatch.setenv("GEO_MIRROR", str(mirror_settings.mirror))
    set_settings(mirror_settings)
    yield mirror_settings
    reset_settings()


# --- street networks (geo.network, geo.access) --------------------------------------------


@pytest.fixture(scope="session")
def pdv_streets(mirror_settings: Settings):
    """Streets of Pont-de-Veyle (01306) from the mirror's raw Overpass XML, Lambert-93."""
    from geo import network, sources

    return network.read_osm(sources.ensure("osm_pont_de_veyle", mirror_settings),
                            crs="EPSG:2154")


@pytest.fixture(scope="session")
def sgl_streets(mirror_settings: Settings):
    """Streets of Saint-Germain-en-Laye (78551): the largest routable OSM graph here."""
    from geo import network, sources

    return network.read_osm(sources.ensure("osm_saint_germain", mirror_settings),
                            crs="EPSG:2154")
