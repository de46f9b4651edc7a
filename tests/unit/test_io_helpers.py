"""geo._io and geo._locks without the data mirror: atomic writes, stale temporaries,
output checks, tolerant CSV reading, caches, locks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from geo import _io
from geo._locks import LockTimeoutError, file_lock
from geo.errors import BadArgumentError, InputFileError, MissingColumnsError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_atomic_path_writes_only_complete_files(tmp_path):
    target = tmp_path / "out" / "table.parquet"
    with _io.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".parquet"
        tmp.write_bytes(b"complete")
    assert target.read_bytes() == b"complete"
    with pytest.raises(RuntimeError), _io.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed while writing")
    assert target.read_bytes() == b"complete"  # untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.parquet"]


def test_temporaries_of_dead_processes_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".town.gpkg.{pid}-abcd.part.gpkg"
    stale.write_bytes(b"x")
    (tmp_path / (stale.name + "-journal")).write_bytes(b"j")
    mine = _io.temp_path(tmp_path / "other.parquet", tag="", suffix=".parquet")
    mine.write_bytes(b"mine")  # this process is alive: kept
    removed = _io.sweep_stale_temps(tmp_path)
    assert stale in removed and not stale.exists()
    assert not (tmp_path / (stale.name + "-journal")).exists()
    assert mine.exists()


def test_output_names_say_their_format(tmp_path):
    assert _io.check_suffix(tmp_path / "a.parquet", "Parquet").name == "a.parquet"
    with pytest.raises(BadArgumentError, match=r"ending in \.parquet.*'\.gpkg'"):
        _io.check_suffix(tmp_path / "r.gpkg", "Parquet", what="the facility table")
    with pytest.raises(BadArgumentError):
        _io.write_json_atomic(tmp_path / "card.csv", {"a": 1})


def test_parquet_metadata_round_trip_and_cache(tmp_path):
    frame = pd.DataFrame({"insee": ["01306", "2A004"], "n": [3, 4]})
    path = _io.write_parquet(frame, tmp_path / "t.parquet", metadata={"cog_year": 2026})
    assert _io.read_parquet_metadata(path) == {"cog_year": 2026}
    first = _io.read_parquet_cached(path)
    first.loc[0, "n"] = 99  # callers get copies: the cache is not changed
    assert _io.read_parquet_cached(path)["n"].tolist() == [3, 4]
    assert _io.read_parquet_cached(path)["insee"].tolist() == ["01306", "2A004"]


def test_is_stale_is_makes_rule(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    src.write_text("a\n")
    assert _io.is_stale(out, [src])  # missing
    out.write_text("x")
    os.utime(src, (1_000_000, 1_000_000))
    assert not _io.is_stale(out, [src])
    os.utime(src, None)
    os.utime(out, (1_000_000, 1_000_000))
    assert _io.is_stale(out, [src])


def test_a_semicolon_latin1_csv_with_decimal_commas_is_read():
    path = FIXTURES / "apl_semicolon_latin1.csv"
    df = _io.read_delimited(path, label="APL", required=["Code commune"])
    assert df.attrs["csv"]["sep"] == ";" and df.attrs["csv"]["encoding"] != "utf-8"
    assert df["Code commune"].tolist() == ["01001", "01002", "01004"]  # kept as text
    assert df["Libellé de la commune"].iloc[0] == "L'Abergement-Clémenciat"
    values = _io.to_number(df["APL aux médecins généralistes de 65 ans et moins"])
    assert values.iloc[:2].tolist() == [3.2, 2.45] and pd.isna(values.iloc[2])
    with pytest.raises(MissingColumnsError, match="Code INSEE"):
        _io.read_delimited(path, label="APL", required=["Code INSEE"])
    with pytest.raises(InputFileError, match="does not exist"):
        _io.read_delimited(FIXTURES / "none.csv", label="APL")


def test_a_held_lock_times_out_with_a_message(tmp_path):
    lock = tmp_path / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
         "from geo._locks import file_lock\n"
         "with file_lock(sys.argv[2], what='t'):\n print('held', flush=True); time.sleep(30)",
         str(Path(__file__).resolve().parents[2]), str(lock)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeoutError, match=r"town 01306: still locked by pid"), \
                file_lock(lock, what="town 01306", timeout_s=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()
    with file_lock(lock, what="town 01306", timeout_s=5) as path:  # released by the kill
        assert f"pid {os.getpid()}" in path.read_text()
