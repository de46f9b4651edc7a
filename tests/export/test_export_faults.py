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
import pytest

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
    # killed as soon as SQLite has begun the GeoPackage's temporary (it exists only
    # while the write runs; a fixed delay after it could land after the rename)
    while (not any(n.endswith(".part.gpkg") for n in _temporaries(folder))
           and run.poll() is None and time.monotonic() < deadline):
        time.sleep(0.001)
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


def test_full_disk_during_the_geopackage_write(town_dir: Path, publish_settings: Settings,
                                               tmp_path: Path) -> None:
    """A disk that fills during the GeoPackage write (SQLite: "Failed to commit
    transaction") gives one line and leaves neither a GeoPackage nor a temporary."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs `unshare -rm` to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    inputs = [p for p in town_dir.iterdir() if p.suffix == ".parquet" or p.name == "town.json"]
    size_kb = sum(p.stat().st_size for p in inputs) // 1024 + 300  # inputs + 300 kB
    folder = disk / TOWN
    copy = " && ".join(f"cp {p} {folder}/" for p in inputs)
    script = (f"mount -t tmpfs -o size={size_kb}k tmpfs {disk} && mkdir {folder} && {copy} "
              f"&& {PVDGEO} -q publish {TOWN} --gpkg --out {folder}; rc=$?; "
              f"ls -a {folder} > {tmp_path}/ls; exit $rc")
    env = {**os.environ, "GEO_DATA_DIR": str(publish_settings.data_dir),
           "GEO_MIRROR": str(publish_settings.mirror)}
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"pvdgeo publish: error: town {TOWN}, stage publish: cannot write {folder}/{TOWN}.gpkg: "
        "no space left on the "
        "device; free some space, or write to another disk (the command's output option)")
    left = (tmp_path / "ls").read_text().split()
    assert f"{TOWN}.gpkg" not in left and not [n for n in left if ".part" in n]
