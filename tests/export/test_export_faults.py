"""A town run killed during the GeoPackage write, then run again (issue 13)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyogrio

from export.synthetic_town import TOWN
from geo.export.gpkg import read_gpkg_provenance
from geo.settings import PROJECT_ROOT, Settings

PVDGEO = str(Path(sys.executable).with_name("pvdgeo"))


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def test_sigkill_during_the_geopackage_write_then_rerun(town_dir: Path,
                                                        publish_settings: Settings,
                                                        tmp_path: Path) -> None:
    """SIGKILL of `pvdgeo publish --gpkg` on the real demo town while SQLite writes the
    GeoPackage: the temporary file and its journal stay beside the target (never the
    final name); the rerun completes the GeoPackage and removes them."""
    folder = tmp_path / TOWN
    folder.mkdir()
    for path in town_dir.iterdir():
        if path.suffix == ".parquet" or path.name == "town.json":
            shutil.copy(path, folder / path.name)
    env = {**os.environ, "GEO_DATA_DIR": str(publish_settings.data_dir),
           "GEO_MIRROR": str(publish_settings.mirror)}
    argv = [PVDGEO, "-q", "publish", TOWN, "--gpkg", "--dir", str(folder)]
    run = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not _temporaries(folder) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.2)  # well inside the write (it takes seconds)
    run.send_signal(signal.SIGKILL)
    run.wait(30)
    assert run.returncode == -signal.SIGKILL, "the write ended before it could be killed"
    left = _temporaries(folder)
    assert any(name.endswith(".part.gpkg") for name in left), left
    assert not (folder / f"{TOWN}.gpkg").exists()  # never half-written under its name

    rerun = subprocess.run(argv, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                           check=False, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert _temporaries(folder) == []
    gpkg = folder / f"{TOWN}.gpkg"
    layers = {str(name) for name in pyogrio.list_layers(gpkg)[:, 0]}
    assert {"communes", "facilities", "h3_r9", "isochrones", "network_edges"} <= layers
    assert read_gpkg_provenance(gpkg)["pvdgeo:provenance"]["town"]["insee"] == TOWN
