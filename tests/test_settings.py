"""geo.settings: defaults, TOML file, GEO_* variables, per-call overrides, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geo.errors import SettingsError
from geo.settings import (
    PROJECT_ROOT,
    Settings,
    get_settings,
    load_settings,
    reset_settings,
    set_settings,
)


def test_defaults() -> None:
    s = load_settings(environ={})
    assert s == Settings()
    assert s.work_crs == "EPSG:2154" and s.publish_crs == "EPSG:4326"
    assert s.raw_dir == PROJECT_ROOT / "data" / "raw"
    assert s.lock_file == s.raw_dir / "sources.lock.json"
    assert s.town_dir("01306") == PROJECT_ROOT / "data" / "out" / "01306"
    # 15 km/h for 20 minutes
    assert s.catchment_m == pytest.approx(5000.0)
    assert s.crs_for_department("974") == "EPSG:2975"
    assert s.crs_for_department("2A") == "EPSG:2154"
    assert s.speed_kmh("walk") == 4.5
    with pytest.raises(SettingsError, match="unknown travel mode 'car'"):
        s.speed_kmh("car")


def test_toml_file_env_and_overrides_in_priority_order(tmp_path: Path) -> None:
    toml = tmp_path / "conf" / "pvdgeo.toml"
    toml.parent.mkdir()
    toml.write_text(
        "[geo]\nwalk_speed_kmh = 4.0\nbike_speed_kmh = 12\ndata_dir = 'mydata'\n"
        "h3_resolutions = [7, 8]\n",
        encoding="utf-8",
    )
    s = load_settings(file=toml, environ={})
    assert s.walk_speed_kmh == 4.0 and s.bike_speed_kmh == 12.0
    assert s.h3_resolutions == (7, 8)
    assert s.data_dir == toml.parent / "mydata"  # relative to the file
    env = {"GEO_SETTINGS_FILE": str(toml), "GEO_WALK_SPEED_KMH": "5",
           "GEO_TIME_THRESHOLDS_MIN": "5,10", "GEO_MIRROR": "../shared/data",
           "GEO_OVERSEAS_CRS": "974=EPSG:2975", "GEO_TEST_DATA": "/elsewhere"}
    s = load_settings(environ=env)
    assert s.walk_speed_kmh == 5.0  # env beats file
    assert s.bike_speed_kmh == 12.0  # file beats default
    assert s.time_thresholds_min == (5, 10)
    assert s.mirror == "../shared/data"
    assert s.overseas_crs == {"974": "EPSG:2975"}
    s = load_settings(environ=env, walk_speed_kmh=3.5)
    assert s.walk_speed_kmh == 3.5  # call beats env
    r = s.replace(bike_speed_kmh="20")
    assert r.bike_speed_kmh == 20.0 and s.bike_speed_kmh == 12.0  # frozen copy
    assert load_settings(environ={"GEO_MIRROR": ""}).mirror is None  # empty = unset


def test_top_level_toml_keys(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("apl_threshold = 3.0\ncatchment_buffer_m = 2500\n", encoding="utf-8")
    s = load_settings(file=toml, environ={})
    assert s.apl_threshold == 3.0 and s.catchment_m == 2500.0


def test_unknown_keys_are_rejected_with_their_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"GEO_WALK_SPEED": "5"})
    msg = str(err.value)
    assert "'walk_speed'" in msg and "GEO_WALK_SPEED" in msg
    assert "did you mean walk_speed_kmh" in msg
    toml = tmp_path / "s.toml"
    toml.write_text("[geo]\nh3_resolution = 9\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"'h3_resolution' from file {toml}.*h3_resolutions"):
        load_settings(file=toml, environ={})
    with pytest.raises(SettingsError, match="unknown setting 'colour' from argument"):
        load_settings(environ={}, colour="red")
    with pytest.raises(SettingsError, match="unknown setting 'speed'"):
        get_settings().replace(speed=3)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("walk_speed_kmh", "fast", r"bad value for setting 'walk_speed_kmh'.*'fast'"),
        ("http_retries", "2.5", r"bad value for setting 'http_retries'.*'2.5'"),
        ("h3_resolutions", "8,x", r"bad value for setting 'h3_resolutions'"),
        ("walk_speed_kmh", "-1", r"walk_speed_kmh must be > 0 \(got -1.0\)"),
        ("time_thresholds_min", "10,5", r"time_thresholds_min must be increasing"),
        ("h3_resolutions", "16", r"h3_resolutions must be in 0..15"),
        ("work_crs", "2154", r"work_crs must be an 'EPSG:nnnn' code \(got '2154'\)"),
        ("tiles_min_zoom", "16", r"tiles zooms must satisfy"),
        ("peer_population_ratio", "1.5", r"peer_population_ratio must be in \(0, 1\)"),
        ("http_retries", "-1", r"http_retries must be >= 0"),
    ],
)
def test_bad_values_are_rejected_with_their_name(key: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=expected) as err:
        load_settings(environ={f"GEO_{key.upper()}": value})
    assert key in str(err.value)
    with pytest.raises(SettingsError, match=expected):
        load_settings(environ={}, **{key: value})


def test_bad_toml_file(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("walk_speed_kmh = = 4\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"settings file {toml} is not valid TOML"):
        load_settings(file=toml, environ={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(file=tmp_path / "missing.toml", environ={})
    toml.write_text("h3_resolutions = 8\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"'h3_resolutions' from file .*: 8"):
        load_settings(file=toml, environ={})


def test_process_wide_settings() -> None:
    try:
        custom = load_settings(environ={}, walk_speed_kmh=4.0)
        set_settings(custom)
        assert get_settings() is custom
        assert get_settings(walk_speed_kmh=5).walk_speed_kmh == 5.0
        assert get_settings() is custom  # per-call overrides do not stick
    finally:
        reset_settings()


# --- settings accepted before issue 13, through each channel the CLI reads -----------------

#: (setting, value in GEO_* / --set, the same in TOML, the one-line message expected after
#: "pvdgeo fetch: error: "); ``{origin}`` is where the value came from.
_REFUSED = [
    ("bike_speed_kmh", "inf", "bike_speed_kmh = inf",
     "bad value for setting 'bike_speed_kmh' from {origin}: {value} (expected a finite "
     "number); expected float"),
    ("data_dir", "", 'data_dir = ""',
     "bad value for setting 'data_dir' from {origin}: '' (a path is required, not an empty "
     "value); expected Path"),
    ("max_tile_bytes", "-5", "max_tile_bytes = -5",
     "invalid settings: max_tile_bytes must be > 0 (got -5)"),
    ("overseas_crs", "974=UTM40S", 'overseas_crs = {"974" = "UTM40S"}',
     "invalid settings: overseas_crs['974'] must be an 'EPSG:nnnn' code (got 'UTM40S')"),
    ("overseas_crs", "974=EPSG:4326", 'overseas_crs = {"974" = "EPSG:4326"}',
     "invalid settings: overseas_crs['974'] 'EPSG:4326' (WGS 84) is not a projected CRS in "
     "metres; distances and areas are computed in it"),
    ("access_subcategories", "pharmacy", 'access_subcategories = ["pharmacy"]',
     "invalid settings: access_subcategories: unknown subcategory 'pharmacy' of "
     "categories.toml (did you mean pharmacie?)"),
    ("work_crs", "EPSG:abc", 'work_crs = "EPSG:abc"',
     "invalid settings: work_crs must be an 'EPSG:nnnn' code (got 'EPSG:abc')"),
]


@pytest.mark.parametrize("channel", ["env", "toml", "set"])
@pytest.mark.parametrize(("key", "value", "toml_line", "message"), _REFUSED,
                         ids=[f"{r[0]}={r[1]}" for r in _REFUSED])
def test_refused_settings_through_every_channel(
    key: str, value: str, toml_line: str, message: str, channel: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from geo.cli import main

    for name in [k for k in os.environ if k.startswith("GEO_") and k != "GEO_TEST_DATA"]:
        monkeypatch.delenv(name)
    argv = ["fetch", "--list"]
    if channel == "env":
        monkeypatch.setenv(f"GEO_{key.upper()}", value)
        origin, shown = f"environment variable GEO_{key.upper()}", repr(value)
    elif channel == "toml":
        toml = tmp_path / "pvdgeo.toml"
        toml.write_text(f"[geo]\n{toml_line}\n", encoding="utf-8")
        argv = ["--settings", str(toml), *argv]
        origin, shown = f"file {toml}", "inf" if value == "inf" else repr(value)
    else:
        argv = ["--set", f"{key}={value}", *argv]
        origin, shown = "argument", repr(value)
    try:
        status = main(argv)
    finally:
        reset_settings()
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "pvdgeo fetch: error: " + message.format(
        origin=origin, value=shown)


def test_toml_boolean_is_not_a_number(tmp_path: Path) -> None:
    """TOML ``true`` used to become 1 km/h."""
    toml = tmp_path / "s.toml"
    toml.write_text("walk_speed_kmh = true\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"bad value for setting 'walk_speed_kmh' from "
                       rf"file {toml}: True \(expected a number, not true/false\)"):
        load_settings(file=toml, environ={})
    toml.write_text("demo_insee = 1306\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"expected a string, got int \(quote it\)"):
        load_settings(file=toml, environ={})
    with pytest.raises(SettingsError, match="'walk_speed_kmh' from environment variable"):
        load_settings(environ={"GEO_WALK_SPEED_KMH": "true"})
