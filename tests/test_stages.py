"""The town run as code (geo.stages): stages in order, fingerprints, the town lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from geo import communes, stages
from geo.cli import main
from geo.settings import Settings, reset_settings
from geo.stages import _core

TOWN = "01306"  # Pont-de-Veyle: OSM streets and POIs, a small graph


def parquet_tables(folder: Path) -> dict[str, object]:
    """Every Parquet file of a folder as an Arrow table without its key-value metadata
    (which holds build times)."""
    out = {}
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path)
        out[path.name] = table.replace_schema_metadata(None)
    return out


def assert_same_parquet(a: Path, b: Path) -> None:
    ta, tb = parquet_tables(a), parquet_tables(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name].equals(tb[name]), name


@pytest.fixture(scope="module")
def town_run(mirror_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    """One full run of Pont-de-Veyle with every stage, into its own folder."""
    out = tmp_path_factory.mktemp("town") / TOWN
    record = stages.run_town(TOWN, out_dir=out, settings=mirror_settings)
    return out, record


def test_a_town_run_builds_every_stage_in_order(town_run):
    out, record = town_run
    assert [r.stage for r in record.stages] == list(stages.STAGE_NAMES)
    assert all(r.status == "built" for r in record.stages)
    for name in ("town.json", "catchment.parquet", "facilities.parquet",
                 "access_walk_nodes.parquet", "isochrones.parquet", "h3_r9.parquet",
                 "communes.parquet", f"{TOWN}.gpkg", f"{TOWN}.pmtiles", "portrait.html"):
        assert (out / name).is_file(), name
    assert (out / ".pvdgeo" / "done.json").is_file()
    # every stage's log is appended in logs/<stage>.log
    for name in stages.STAGE_NAMES:
        assert f"== {name} {TOWN}" in (out / "logs" / f"{name}.log").read_text()


def test_a_second_run_is_up_to_date(town_run, mirror_settings):
    out, _ = town_run
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    record = stages.run_town(TOWN, out_dir=out, settings=mirror_settings)
    assert record.built == []
    assert stages.is_done(TOWN, out, mirror_settings)
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    assert after == before


def test_later_stages_read_the_catchment_from_the_card(town_run, mirror_settings,
                                                        monkeypatch, tmp_path):
    out, _ = town_run
    copy = tmp_path / TOWN
    copy.mkdir()
    for name in ("town.json", "catchment.parquet"):
        (copy / name).write_bytes((out / name).read_bytes())

    def no_recompute(*args, **kwargs):
        raise AssertionError("a stage recomputed the catchment")

    monkeypatch.setattr(communes, "catchment", no_recompute)
    record = stages.run_town(TOWN, ["aggregate"], out_dir=copy, settings=mirror_settings,
                             upstream="missing")
    assert record.built == ["aggregate"]
    # facilities and access were not required files of aggregate: their absence is
    # reported in the layers' metadata, the aggregate still written
    assert (copy / "communes.parquet").is_file()


def test_access_on_a_new_folder_builds_what_it_needs(use_settings, tmp_path, capsys):
    """`pvdgeo access 01306 --mode walk --out NEW_DIR` works on its own."""
    new = tmp_path / "new"
    assert main(["access", TOWN, "--mode", "walk", "--out", str(new)]) == 0
    out = capsys.readouterr().out
    assert f"{TOWN} card" in out and f"{TOWN} facilities" in out and f"{TOWN} access" in out
    for name in ("town.json", "catchment.parquet", "facilities.parquet",
                 "access_walk_nodes.parquet", "isochrones.parquet"):
        assert (new / name).is_file(), name
    assert not (new / "access_bike_nodes.parquet").exists()
    nodes = pq.read_table(new / "access_walk_nodes.parquet")
    assert "france_services_minutes" in nodes.column_names


def test_make_recipes_and_one_process_give_the_same_files(town_run, mirror_settings,
                                                          tmp_path):
    """The stage commands make calls, one process each, give the files of one
    `pvdgeo town` process (same Parquet content)."""
    out, _ = town_run
    other = tmp_path / TOWN
    env = {**os.environ, "GEO_DATA_DIR": str(mirror_settings.data_dir),
           "GEO_MIRROR": str(mirror_settings.mirror)}
    for command, flag in (("card", "--out"), ("facilities", "--out"), ("access", "--out"),
                          ("aggregate", "--out"), ("publish", "--dir"), ("portrait", "--out")):
        subprocess.run([sys.executable, "-m", "geo", "-q", command, TOWN, flag, str(other)],
                       check=True, env=env, capture_output=True)
    assert_same_parquet(out, other)


def test_changed_walking_speed_rebuilds_only_what_depends_on_it(town_run, mirror_settings,
                                                                tmp_path):
    out, _ = town_run
    copy = tmp_path / TOWN
    subprocess.run(["cp", "-a", str(out), str(copy)], check=True)
    kept = {n: (copy / n).stat().st_mtime_ns for n in ("town.json", "catchment.parquet",
                                                        "facilities.parquet")}
    faster = mirror_settings.replace(walk_speed_kmh=5.0)
    record = stages.run_town(TOWN, out_dir=copy, settings=faster)
    assert record.built == ["access", "aggregate", "publish", "portrait"]
    assert {n: (copy / n).stat().st_mtime_ns for n in kept} == kept
    meta = json.loads(pq.read_schema(copy / "access_walk_nodes.parquet").metadata[b"pvdgeo"])
    assert meta["speed_kmh"] == 5.0
    # and back: the files of the first speed again
    back = stages.run_town(TOWN, out_dir=copy, settings=mirror_settings)
    assert back.built == ["access", "aggregate", "publish", "portrait"]
    assert_same_parquet(out, copy)


def test_settings_read_by_each_stage():
    """Each stage's fingerprint covers the settings its modules read, and only those."""
    keys = {st.name: set(_core.settings_keys(st.modules)) for st in stages.STAGES}
    assert "walk_speed_kmh" in keys["access"] and "walk_speed_kmh" in keys["aggregate"]
    assert "walk_speed_kmh" not in keys["facilities"]
    assert "walk_speed_kmh" not in keys["card"] and "catchment_m" in keys["card"]
    assert "peer_criteria" in keys["portrait"] and "peer_criteria" not in keys["access"]
    assert "max_tile_bytes" in keys["publish"]
    assert not set().union(*keys.values()) & {"data_dir", "mirror", "http_retries"}


def test_concurrent_runs_of_a_town_wait_for_each_other(mirror_settings, tmp_path):
    """Two `pvdgeo town` processes on one folder: one waits for the other's lock, both
    succeed, and every output is there when each reports success."""
    folder = tmp_path / "71310"
    env = {**os.environ, "GEO_DATA_DIR": str(mirror_settings.data_dir),
           "GEO_MIRROR": str(mirror_settings.mirror)}
    cmd = [sys.executable, "-m", "geo", "town", "71310", "--out", str(folder)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    time.sleep(1.0)
    second = subprocess.Popen([*cmd, "--force"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    outputs = ("town.json", "facilities.parquet", "communes.parquet", "71310.gpkg",
               "71310.pmtiles", "portrait.html")
    errors = []
    for proc in (first, second):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert all((folder / n).is_file() for n in outputs)
        errors.append(err)
    assert "is being built by pid" in errors[1]  # the second waited for the first
    assert stages.is_done("71310", folder, mirror_settings)


def test_a_held_town_lock_makes_a_run_wait(mirror_settings, tmp_path):
    folder = tmp_path / "lock"
    env = {**os.environ, "GEO_DATA_DIR": str(mirror_settings.data_dir),
           "GEO_MIRROR": str(mirror_settings.mirror)}
    with _core.town_lock(folder, "71310"):
        holder = (folder / ".pvdgeo" / "lock").read_text()
        assert f"pid {os.getpid()}" in holder
        proc = subprocess.Popen([sys.executable, "-m", "geo", "card", "71310", "--out",
                                 str(folder)], env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        waiting = ""
        deadline = time.time() + 120
        while time.time() < deadline and "is being built by" not in waiting:
            waiting += proc.stderr.readline()
        assert f"is being built by pid {os.getpid()}" in waiting
        time.sleep(1)
        assert proc.poll() is None and not (folder / "town.json").exists()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (folder / "town.json").is_file()


@pytest.fixture(autouse=True)
def _reset():
    yield
    reset_settings()
