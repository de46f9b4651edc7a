"""pvdgeo batch on Dask distributed: equal to one-town runs, on a real scheduler, after a
worker or the whole batch is killed, with a town that cannot be built."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import private_data
from test_stages import assert_same_parquet

from geo import batch, national, sources, stages, streets
from geo.settings import Settings

pytestmark = pytest.mark.slow

#: Pont-de-Veyle (OSM streets), Gourdon (land cover), a PVD town of Saône-et-Loire with
#: neither.
TOWNS = ("01306", "46127", "71310")


def _env(s: Settings) -> dict[str, str]:
    return {**os.environ, "GEO_DATA_DIR": str(s.data_dir), "GEO_MIRROR": str(s.mirror)}


@pytest.fixture(scope="module")
def batch_settings(mirror_settings: Settings, tmp_path_factory: pytest.TempPathFactory
                   ) -> Settings:
    """Settings whose data folder starts with the session's raw and interim data (fetched
    once) and has its own town outputs."""
    return private_data(mirror_settings, tmp_path_factory.mktemp("batch") / "data")


@pytest.fixture(scope="module")
def first_batch(batch_settings: Settings):
    return batch.run_batch(list(TOWNS), workers=2, retries=1, settings=batch_settings)


def test_batch_equals_town_runs(first_batch, batch_settings, tmp_path):
    assert first_batch.counts() == {"built": 3}
    for insee in TOWNS:
        folder = batch_settings.town_dir(insee)
        assert stages.is_done(insee, folder, batch_settings)
        alone = tmp_path / insee
        stages.run_town(insee, out_dir=alone, settings=batch_settings)
        assert_same_parquet(folder, alone)
    report = pd.read_csv(first_batch.report_dir / "towns.csv", dtype={"insee": str})
    assert set(report["insee"]) == set(TOWNS) and (report["status"] == "built").all()
    assert (report["peak_rss_mb"] > 100).all() and (report["publish_cpu_s"] > 0).all()
    # the national tables of the built towns
    towns = pd.read_parquet(batch_settings.data_dir / "national" / "towns.parquet")
    assert sorted(towns["insee"]) == sorted(TOWNS)
    pdv = towns.set_index("insee").loc["01306"]
    assert pdv["has_streets"] and 0 <= pdv["walk_sante_pop_share_15min"] <= 1
    assert pd.isna(towns.set_index("insee").loc["71310"].get("walk_sante_minutes_median"))
    cells = national.read_cells(9, settings=batch_settings)
    assert set(cells["town"]) == set(TOWNS)
    assert set(cells["departement"]) == {"01", "46", "71"}
    assert cells.crs == "EPSG:4326" and cells.geometry.notna().all()
    ain = national.read_cells(9, departements=["01"], settings=batch_settings)
    assert set(ain["town"]) == {"01306"} and len(ain) == (cells["town"] == "01306").sum()


def test_a_rerun_skips_done_towns(first_batch, batch_settings):
    folder = batch_settings.town_dir("71310")
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    again = batch.run_batch(list(TOWNS), workers=1, settings=batch_settings)
    assert again.counts() == {"skipped": 3}
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} == before


def test_a_town_that_cannot_be_built_is_a_failure_the_others_finish(first_batch,
                                                                     batch_settings):
    """A town whose street file is corrupt fails at the access stage, after its retries;
    the other town of the batch is built."""
    streets.commune_road_files(sources.get_dataset("roads_77", batch_settings),
                               batch_settings)
    archive = next((batch_settings.interim_dir / "roads" / "roads_77").glob("77051-*"))
    archive.unlink()  # a hard link to the session's file: replace it, do not write in it
    archive.write_text("{ not geojson", encoding="utf-8")
    result = batch.run_batch(["77051", "01305"], workers=2, retries=1,
                             settings=batch_settings)
    assert result.outcomes["01305"].status == "built"
    failure = result.outcomes["77051"]
    assert failure.status == "failed" and failure.stage == "access"
    assert "77051" in failure.error and "cannot read road lines" in failure.error
    table = pd.read_csv(result.report_dir / "failures.csv", dtype={"insee": str})
    assert table.to_dict("records") == [{"insee": "77051", "stage": "access",
                                         "error": failure.error}]


def test_a_killed_worker_is_retried(batch_settings):
    """SIGKILL of the worker running a town: the town is retried and finishes."""
    insee = "04019"  # road lines: the access stage takes a few seconds
    lock = batch_settings.town_dir(insee) / ".pvdgeo" / "lock"
    killed: list[int] = []

    def kill_worker() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            text = lock.read_text() if lock.exists() else ""
            m = re.search(r"pid (\d+)", text)
            log = batch_settings.town_dir(insee) / "logs" / "access.log"
            if m and log.exists() and int(m.group(1)) != os.getpid():
                os.kill(int(m.group(1)), signal.SIGKILL)
                killed.append(int(m.group(1)))
            time.sleep(0.2)

    thread = threading.Thread(target=kill_worker)
    thread.start()
    result = batch.run_batch([insee], workers=1, retries=2, settings=batch_settings)
    thread.join()
    assert killed, "the worker was not killed"
    assert result.outcomes[insee].status == "built"
    assert result.outcomes[insee].record["worker_pid"] != killed[0]
    assert stages.is_done(insee, batch_settings.town_dir(insee), batch_settings)


def test_a_killed_batch_resumes(batch_settings):
    """SIGKILL of the whole batch (client and workers) while towns run, then a rerun:
    towns finished before the kill are not redone, the others complete."""
    towns = ["05179", "77327", "13078"]
    cmd = [sys.executable, "-m", "geo", "batch", *towns, "--workers", "2"]
    proc = subprocess.Popen(cmd, env=_env(batch_settings), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished: dict[str, dict[str, int]] = {}
    deadline = time.time() + 600
    while time.time() < deadline and not finished:
        for insee in towns:  # the last stage of a town's first pass is recorded
            state = stages.TownState.read(batch_settings.town_dir(insee))
            if "publish" in state.stages:
                finished[insee] = {}
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert finished, "no town finished before the kill"
    for insee in finished:
        folder = batch_settings.town_dir(insee)
        finished[insee] = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()
                           if p.suffix in (".parquet", ".gpkg", ".pmtiles")}
    rerun = batch.run_batch(towns, workers=2, settings=batch_settings)
    assert all(rerun.outcomes[c].status in ("built", "up to date") for c in towns)
    for insee, before in finished.items():
        folder = batch_settings.town_dir(insee)
        after = {n: (folder / n).stat().st_mtime_ns for n in before}
        assert after == before  # the finished town's files were not rewritten
        assert rerun.outcomes[insee].record.get("stages_built", "") == ""
    for insee in towns:
        assert stages.is_done(insee, batch_settings.town_dir(insee), batch_settings)
        leftovers = [p for p in batch_settings.town_dir(insee).iterdir()
                     if ".part" in p.name or p.name.startswith(".pvdgeo-tiles-")]
        assert not leftovers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_batch_on_a_real_scheduler_and_two_workers(batch_settings):
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1, as on a cluster."""
    port = _free_port()
    bindir = Path(sys.executable).parent
    address = f"tcp://127.0.0.1:{port}"
    env = _env(batch_settings)
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(3)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(bindir / "dask"), "worker", address, "--nthreads", "1",
                 "--no-dashboard", "--memory-limit", "6GB"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        towns = ["10003", "27151"]  # not built by the other tests of this module
        result = batch.run_batch(towns, scheduler=address, settings=batch_settings)
        assert result.counts() == {"built": 2}
        pids = {result.outcomes[c].record["worker_pid"] for c in towns}
        assert all(p not in (os.getpid(),) for p in pids)
        for insee in towns:
            assert stages.is_done(insee, batch_settings.town_dir(insee), batch_settings)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
