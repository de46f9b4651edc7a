"""``pvdgeo publish`` and ``pvdgeo viewer`` in-process."""

from __future__ import annotations

import logging
from pathlib import Path

import pyogrio
import pytest

from export.synthetic_town import TOWN, layer_names, write_synthetic_town
from geo.cli import main
from geo.settings import Settings, reset_settings


@pytest.fixture(autouse=True)
def _fresh_cli_state():
    yield
    reset_settings()
    # the CLI's console handler holds the (captured) stderr of the test that made it
    root = logging.getLogger("geo")
    for handler in [h for h in root.handlers if getattr(h, "_geo_console", False)]:
        root.removeHandler(handler)


def test_publish_and_viewer(publish_settings: Settings, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    write_synthetic_town(data / "out" / TOWN, streets=False)
    lock = f"--set=data_dir={data}"
    assert main([lock, "publish", TOWN]) == 0
    out = capsys.readouterr().out
    gpkg = data / "out" / TOWN / f"{TOWN}.gpkg"
    assert f"GeoPackage: {gpkg}" in out
    assert "PMTiles:    " in out and "largest tile" in out
    assert {str(n) for n in pyogrio.list_layers(gpkg)[:, 0]} == {
        *layer_names(streets=False), "layer_styles"}
    assert main([lock, "viewer"]) == 0
    assert (data / "out" / "viewer" / "index.html").is_file()
    assert '"insee": "01306"' in (data / "out" / "viewer" / "towns.json").read_text()


def test_publish_without_layers_is_one_line_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"--set=data_dir={tmp_path}", "publish", "46127"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("pvdgeo publish: error: ")
    assert "no layer to publish for town 46127" in last and "Traceback" not in err
