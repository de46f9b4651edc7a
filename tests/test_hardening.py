"""Bad input and faults (issue 13): every error a user can cause or meet is one line
naming the input and what was expected, exit status 2, no traceback, nothing
half-written under a final name.

Cases that need a real fault run the CLI in a subprocess inside a user and mount
namespace (``unshare -rm``) where a small or read-only tmpfs is mounted: tests may run as
root, for whom ``chmod`` does not stop writes. Without ``unshare`` (and as root) they are
skipped; as another user, ``chmod`` is used instead.
"""

from __future__ import annotations

import errno
import gzip
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from geo import _io, access, h3grid, indicators, landcover, network
from geo.cli import main, user_error_message
from geo.errors import BadArgumentError, GeoError, InputFileError, OutputError
from geo.export import qml
from geo.settings import PROJECT_ROOT, reset_settings

PVDGEO = str(Path(sys.executable).with_name("pvdgeo"))
APL_MG = "apl/apl_medecins_generalistes_2021_drees.csv.gz"
CAHORS_2154 = "landcover/corine/clc2018_cahors_100m_epsg2154.tif"
LOT_RASTER = "landcover/corine/clc2018_lot46_100m_epsg3035.tif"


@pytest.fixture(autouse=True)
def _fresh_cli_state():
    yield
    reset_settings()
    root = logging.getLogger("geo")  # the CLI's console handler holds a captured stderr
    for handler in [h for h in root.handlers if getattr(h, "_geo_console", False)]:
        root.removeHandler(handler)


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``pvdgeo argv`` in-process; assert exit 2 and exactly one error line, no
    traceback; return that line."""
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


def _assert_one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _no_temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".part" in p.name)


# --- namespaces for real faults ---------------------------------------------------------


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _in_tmpfs(mount: Path, script: str, *, size: str = "4m", readonly: bool = False,
              prepare: str = "", env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    """Run shell ``script`` in a private mount namespace where ``mount`` is a fresh
    tmpfs of ``size`` (``prepare`` runs first, then it is made read-only if asked)."""
    if not _unshare_works():
        pytest.skip("needs `unshare -rm` (user and mount namespaces) to mount a tmpfs")
    mount.mkdir(parents=True, exist_ok=True)
    remount = f"mount -o remount,ro {mount} && " if readonly else ""
    shell = (f"mount -t tmpfs -o size={size} tmpfs {mount} && {prepare or 'true'} && "
             f"{remount}{script}")
    return subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True,
                          text=True, check=False, env={**os.environ, **(env or {})},
                          cwd=PROJECT_ROOT, timeout=600)


def _cli_env(settings) -> dict[str, str]:
    return {"GEO_DATA_DIR": str(settings.data_dir), "GEO_MIRROR": str(settings.mirror)}


# --- outputs: extension, read-only folder, full disk ------------------------------------


def test_output_extension_decides_the_format(use_settings, tmp_path, capsys) -> None:
    """`pvdgeo facilities 35236 --out r.gpkg` used to write Parquet named r.gpkg."""
    out = tmp_path / "r.gpkg"
    line = _cli_error(["facilities", "35236", "--out", str(out)], capsys)
    assert line == (f"pvdgeo facilities: error: {out}: the facility table (--out) is "
                    "written as Parquet; give a file name ending in .parquet (got '.gpkg')")
    assert not out.exists()
    with pytest.raises(BadArgumentError, match="written as Parquet"):
        _io.write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    with pytest.raises(BadArgumentError, match="written as JSON"):
        _io.write_json_atomic(tmp_path / "card.txt", {})
    line = _cli_error(["landcover-communes", "--out", str(tmp_path / "x.gpkg")],
                      capsys)
    assert "the land-cover table (--out) is written as Parquet" in line


def test_read_only_output_folder_fails_before_the_work(mirror_settings, tmp_path) -> None:
    """A read-only output folder is reported at once (it used to be an OSError traceback
    after the whole street graph was computed)."""
    folder = tmp_path / "ro"
    if os.geteuid() != 0:  # chmod stops writes for ordinary users
        folder.mkdir()
        folder.chmod(0o555)
        try:
            with pytest.raises(OutputError, match=f"output folder {folder} is not writable"):
                _io.ensure_writable_dir(folder)
        finally:
            folder.chmod(0o755)
    proc = _in_tmpfs(folder, f"exec {PVDGEO} -q access 01306 --out {folder}/01306",
                     readonly=True, prepare=f"mkdir {folder}/01306", env=_cli_env(mirror_settings))
    line = _assert_one_error_line(proc)
    assert line == (f"pvdgeo access: error: town folder {folder}/01306 is not writable: "
                    "read-only file system; write to a writable folder (the command's "
                    "output option, or data_dir)")
    proc = _in_tmpfs(folder, f"exec {PVDGEO} -q facilities 01306 --out {folder}/new/f.parquet",
                     readonly=True, env=_cli_env(mirror_settings))
    assert "cannot create output folder" in _assert_one_error_line(proc)


def test_full_disk_keeps_the_previous_file(mirror_settings, tmp_path) -> None:
    """ENOSPC while writing: one line, the previous good file intact, no temporary."""
    disk = tmp_path / "disk"
    old = b"previous good file"
    script = (f"printf '{old.decode()}' > {disk}/f.parquet && "
              f"(dd if=/dev/zero of={disk}/fill bs=64k 2>/dev/null; true) && "
              f"{PVDGEO} -q facilities 01306 --out {disk}/f.parquet; rc=$?; "
              f"cat {disk}/f.parquet > {tmp_path}/kept; ls -a {disk} > {tmp_path}/ls; "
              "exit $rc")
    proc = _in_tmpfs(disk, script, size="2m", env=_cli_env(mirror_settings))
    line = _assert_one_error_line(proc)
    assert line == (f"pvdgeo facilities: error: cannot write {disk}/f.parquet: no space left "
                    "on the device; free some space, or write to another disk (the "
                    "command's output option)")
    assert (tmp_path / "kept").read_bytes() == old
    assert ".part" not in (tmp_path / "ls").read_text()


def test_full_disk_inside_a_library_writer(tmp_path, monkeypatch) -> None:
    """Writers that report a full disk in their own words (pyogrio "Failed to commit
    transaction", Arrow) become OutputError when the disk is full; the final file is
    untouched and the temporary (and SQLite journals) removed."""
    final = tmp_path / "t.gpkg"
    final.write_bytes(b"old")

    class FakeDriverError(RuntimeError):
        __module__ = "pyogrio.errors"

    monkeypatch.setattr(_io, "_disk_full", lambda folder, below=1 << 20: True)
    with pytest.raises(OutputError, match=f"cannot write {final}: no space left"), \
            _io.atomic_path(final) as tmp:
        tmp.write_bytes(b"partial")
        Path(str(tmp) + "-journal").write_bytes(b"j")
        raise FakeDriverError("Failed to commit transaction")
    assert final.read_bytes() == b"old"
    assert _no_temp_files(tmp_path) == []

    import pyarrow.parquet as pq

    real_write = pq.write_table

    def enospc(table, where, *args, **kwargs):
        if isinstance(where, pa.NativeFile):  # the in-memory pass
            return real_write(table, where, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", enospc)
    with pytest.raises(OutputError, match="no space left on the device"):
        _io.write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists() and _no_temp_files(tmp_path) == []


def test_stale_temporaries_are_swept(tmp_path) -> None:
    """Temporaries of a killed writer (dead pid) are removed by the next write to the
    folder; those of a live process (a parallel run) are kept."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    killed = tmp_path / f".t.gpkg.{dead}-abc123.part.gpkg"
    killed.write_bytes(b"half")
    journal = tmp_path / f".t.gpkg.{dead}-abc123.part.gpkg-journal"
    journal.write_bytes(b"j")
    live = tmp_path / f".t.gpkg.{os.getppid()}-def456.part.gpkg"
    live.write_bytes(b"in progress")
    legacy = tmp_path / ".t.gpkg.k2j3h4g5.part.gpkg"  # earlier versions: no pid
    legacy.write_bytes(b"old")
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    with _io.atomic_path(tmp_path / "t.gpkg") as tmp:
        tmp.write_bytes(b"new")
    assert (tmp_path / "t.gpkg").read_bytes() == b"new"
    assert not killed.exists() and not journal.exists() and not legacy.exists()
    assert live.exists()


def test_write_parquet_hands_arrow_no_python_file(tmp_path, monkeypatch) -> None:
    """The exit-134 abort: Arrow's I/O threads read an io.BytesIO through Python buffers
    and freed the last one after the command returned, taking the GIL while the
    interpreter exited ("terminate called without an active exception"). write_parquet
    must give Arrow only Arrow-native streams."""
    import pyarrow.parquet as pq

    seen = []
    real = pq.read_table

    def spy(source, *args, **kwargs):
        seen.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    frame = pd.DataFrame({f"c{i}": np.arange(1000.0) for i in range(10)})
    _io.write_parquet(frame, tmp_path / "t.parquet", metadata={"x": 1})
    assert seen and all(isinstance(s, pa.NativeFile) for s in seen)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), frame)


# --- settings and arguments --------------------------------------------------------------


def test_bad_crs_setting_is_one_line(capsys) -> None:
    """`--set work_crs=EPSG:abc` used to end in a pyproj CRSError traceback."""
    line = _cli_error(["--set", "work_crs=EPSG:abc", "fetch", "--list"], capsys)
    assert line == ("pvdgeo fetch: error: invalid settings: work_crs must be an "
                    "'EPSG:nnnn' code (got 'EPSG:abc')")
    line = _cli_error(["--set", "work_crs=EPSG:4326", "fetch", "--list"], capsys)
    assert "work_crs 'EPSG:4326' (WGS 84) is not a projected CRS in metres" in line


def test_bad_arguments_raise_geo_errors() -> None:
    """Places that raised bare ValueError on user input raise geo.errors classes (still
    ValueErrors for callers that catch those)."""
    with pytest.raises(BadArgumentError, match=r"H3 resolution must be an integer in 0\.\.15"):
        h3grid.check_resolution(16)
    with pytest.raises(BadArgumentError, match="unknown travel mode 'car'"):
        network.check_mode("car")
    with pytest.raises(BadArgumentError, match="not valid H3 cell ids"):
        h3grid.cell_polygons(["nope"])
    with pytest.raises(InputFileError, match="unsupported colour 'teal'"):
        qml._rgba("teal")
    with pytest.raises(BadArgumentError, match="max_minutes must be > 0"):
        access.times_within(None, None, 0)  # type: ignore[arg-type]
    assert issubclass(BadArgumentError, ValueError) and issubclass(OutputError, OSError)


def test_user_errors_and_bugs_are_told_apart() -> None:
    """OS and geodata-library errors reach users as one line; a bug keeps its traceback."""
    full = OSError(errno.ENOSPC, "No space left on device", "/data/out/x.gpkg")
    assert user_error_message(full) == "no space left on the device (/data/out/x.gpkg)"
    gone = FileNotFoundError(errno.ENOENT, "No such file or directory", "streets.osm")
    assert user_error_message(gone) == "streets.osm does not exist"

    class CRSError(Exception):
        __module__ = "pyproj.exceptions"

    assert user_error_message(CRSError("Invalid projection: EPSG:abc")) == (
        "Invalid projection: EPSG:abc (pyproj CRSError; -v for details)")
    assert user_error_message(KeyError("a bug")) is None
    assert user_error_message(InputFileError("bad file")) == "bad file"


# --- APL, CSV ------------------------------------------------------------------------------


def _apl_lines(shared_data: Path) -> list[str]:
    with gzip.open(shared_data / APL_MG, "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def test_apl_with_decimal_commas_semicolons_and_latin1(shared_data, tmp_path, caplog) -> None:
    """A French-style export of the real APL file (';', decimal commas, Windows-1252)
    gives the same values as the original, not NaN everywhere."""
    lines = _apl_lines(shared_data)
    french = tmp_path / "apl_fr.csv"
    french.write_text("\n".join(line.replace(",", ";").replace(".", ",")
                                for line in lines[:2001]) + "\n", encoding="cp1252")
    prof = indicators.APL_PROFESSIONS[0]
    with caplog.at_level(logging.INFO, logger="geo"):
        got = indicators.read_apl_file(french, prof)
    assert "read apl_fr.csv as ';'-separated Windows-1252 text" in caplog.text
    original = pd.read_csv(shared_data / APL_MG, dtype={"Code commune": str}, nrows=2000)
    column = "APL aux médecins généralistes de 65 ans et moins"
    np.testing.assert_allclose(got["apl_mg"].to_numpy(), original[column].to_numpy())
    assert got["code"].tolist() == original["Code commune"].tolist()


def test_apl_header_only_empty_and_not_numbers(shared_data, tmp_path, caplog) -> None:
    lines = _apl_lines(shared_data)
    prof = indicators.APL_PROFESSIONS[0]
    header = tmp_path / "header.csv"
    header.write_text(lines[0] + "\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=f"APL file {header} has a header but no data "
                       "rows: no commune has an APL for médecins généralistes"):
        indicators.read_apl_file(header, prof)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError,
                       match=r"APL file \(médecins généralistes de 65 ans et moins\): .*empty"
                       r"\.csv is empty \(no header line\)"):
        indicators.read_apl_file(empty, prof)
    words = tmp_path / "words.csv"
    rows = [line.split(",") for line in lines[1:11]]
    words.write_text("\n".join([lines[0]] + [",".join([*r[:4], "n.d.", *r[5:]]) for r in rows]),
                     encoding="utf-8")
    with pytest.raises(InputFileError, match="no numeric value in column 'APL aux médecins "
                       r"généralistes de 65 ans et moins' \(e.g. 'n.d.'\)"):
        indicators.read_apl_file(words, prof)
    some = tmp_path / "some.csv"
    some.write_text("\n".join([lines[0], lines[1]] + [",".join([*r[:4], "n.d.", *r[5:]])
                                                       for r in rows[1:]]), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="geo"):
        got = indicators.read_apl_file(some, prof)
    assert got["apl_mg"].notna().sum() == 1
    assert "9 value(s) of 'APL aux médecins généralistes de 65 ans et moins' are not " \
           "numbers (e.g. 'n.d.'), left missing" in caplog.text


def test_to_number_reads_french_and_international_numbers() -> None:
    got = _io.to_number(["3.5", "3,5", "1 234,5", "1\u202f234,5", "1,234.5", "1.234,5",
                         "", "n.d.", None])
    np.testing.assert_array_equal(got.to_numpy()[:6], [3.5, 3.5, 1234.5, 1234.5, 1234.5,
                                                       1234.5])
    assert got.iloc[6:].isna().all()


# --- land cover ------------------------------------------------------------------------------


def test_truncated_geotiff_is_refused(shared_data, use_settings, tmp_path, capsys) -> None:
    """A truncated copy of the real Lot raster: a clear error at open, not a
    rasterio CPLE_AppDefinedError traceback when its blocks are read."""
    data = (shared_data / LOT_RASTER).read_bytes()
    cut = tmp_path / "clc2018_lot_cut.tif"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(InputFileError, match=f"land cover raster {cut} is truncated or "
                       rf"corrupt \({len(data) * 6 // 10:,} bytes, but block 0,\d+ of band 1 "
                       "ends at byte"):
        landcover.open_landcover(cut)
    line = _cli_error(["aggregate", "01306", "--out", str(tmp_path / "out"),
                       "--landcover", str(cut)], capsys)
    assert "is truncated or corrupt" in line and "copy or download it again" in line


def test_raster_without_vintage(shared_data, use_settings, tmp_path, capsys) -> None:
    """A raster whose name has no year: the year comes from its band description when it
    has one (the Lot raster says CLC2018), else the CLI asks for YEAR=FILE instead of
    writing vintage None."""
    lot = tmp_path / "occupation_sol_lot.tif"
    shutil.copy(shared_data / LOT_RASTER, lot)
    assert landcover.open_landcover(lot).year == 2018
    cahors = tmp_path / "occupation_sol_cahors.tif"
    shutil.copy(shared_data / CAHORS_2154, cahors)
    assert landcover.open_landcover(cahors).year is None
    line = _cli_error(["aggregate", "01306", "--out", str(tmp_path / "out"),
                       "--landcover", str(cahors)], capsys)
    assert line == (f"pvdgeo aggregate: error: --landcover {cahors}: no CORINE vintage in "
                    "the file name (clc2018_..., CLC18_...), its code column or its metadata; "
                    f"give it as --landcover YEAR={cahors} (e.g. 2018={cahors})")


def test_landcover_outside_the_town_is_reported(shared_data, use_settings, tmp_path,
                                                caplog) -> None:
    """`aggregate 01306 --landcover 2018=<Cahors raster>` used to give all-NaN shares with
    nothing logged; now it warns and lists land cover among what was written without."""
    status = None
    with caplog.at_level(logging.WARNING, logger="geo"):
        status = main(["aggregate", "01306", "--out", str(tmp_path / "01306"),
                       "--landcover", f"2018={shared_data / CAHORS_2154}"])
    assert status == 0
    assert ("01306: land cover: clc2018_cahors_100m_epsg2154.tif does not cover 01306 (no "
            "CORINE class in the town or its catchment communes); land-cover shares empty, "
            "population spread by area") in caplog.text
    written_without = [r.getMessage() for r in caplog.records
                       if "written without" in r.getMessage()]
    assert written_without and "land cover" in written_without[0]
    table = pd.read_parquet(tmp_path / "01306" / "communes.parquet")
    assert table["clc_artificialise_share"].isna().all()
    assert (table["clc_nodata_share"] == 1.0).all()


# --- fetch -----------------------------------------------------------------------------------


def test_fetch_unknown_id_suggests_only_close_ids(capsys) -> None:
    line = _cli_error(["fetch", "nonexistent_id"], capsys)
    assert line.startswith("pvdgeo fetch: error: unknown dataset id 'nonexistent_id'; ")
    assert "did you mean" not in line and "`pvdgeo fetch --list` lists the" in line
    line = _cli_error(["fetch", "apl_mgg"], capsys)
    assert "unknown dataset id 'apl_mgg' (did you mean apl_mg?)" in line
    line = _cli_error(["fetch", "museo"], capsys)
    assert "(did you mean museofile?)" in line


def test_geo_errors_keep_their_builtin_bases() -> None:
    assert issubclass(InputFileError, GeoError) and issubclass(InputFileError, ValueError)
