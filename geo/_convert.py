"""Converters: official download format -> the mirror's layout.

Each dataset of the catalogue whose official download differs from the mirror file
(``../shared/data``, described in its ``SOURCES.md``) names a converter here
(``convert = "..."`` in ``data/sources.toml``). A converter takes the downloaded files
(in the order of the catalogue's ``urls``) and the output path, and writes the file in
exactly the mirror's layout: same columns in the same order, same text rendering of
values (5-character INSEE codes, ``860.0`` where the mirror has floats), same
compression. Where the mirror cannot be rebuilt byte for byte from the official file
(compressed files carry a timestamp; some mirror files were derived from a copy of an
older export), the converter produces the same columns and semantics and
:func:`geo.sources.fetch` warns that the sha256 differs from the catalogue pin.

Compressed outputs are deterministic (gzip without name or timestamp), so a dataset
converted twice has the same sha256.
"""

from __future__ import annotations

import gzip
import json
import logging
import lzma
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from geo.errors import InputFileError, MissingColumnsError

__all__ = [
    "decoupage_communes",
    "decoupage_epci",
    "decoupage_population_history",
    "gzip_csv_strip_bom",
]

log = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"


# --- shared helpers ---------------------------------------------------------------------


def _one(paths: Sequence[Path], name: str, n: int = 1) -> list[Path]:
    """Check that a converter got ``n`` downloaded files."""
    if len(paths) != n:
        raise InputFileError(f"converter {name} expects {n} downloaded file(s), got {len(paths)}")
    return [Path(p) for p in paths]


def _write_bytes(data: bytes, out: Path) -> None:
    """Write ``data`` to ``out``, gzip-compressed (deterministically) if it ends in .gz."""
    out = Path(out)
    if out.suffix == ".gz":
        with out.open("wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0
        ) as gz:
            gz.write(data)
    elif out.suffix == ".xz":
        out.write_bytes(lzma.compress(data, preset=9))
    else:
        out.write_bytes(data)


def _write_csv(df: pd.DataFrame, out: Path) -> None:
    """Write a table as the mirror does: UTF-8, ',' separated, '\\n' line ends, no index."""
    _write_bytes(df.to_csv(index=False, lineterminator="\n").encode("utf-8"), out)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{path}: not a valid JSON {what} ({exc})") from None


def _records(path: Path, what: str, required: Sequence[str]) -> list[dict[str, Any]]:
    data = _read_json(path, what)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputFileError(f"{path}: expected a JSON array of {what} objects")
    if not data:
        raise InputFileError(f"{path}: no {what} records")
    missing = [k for k in required if k not in data[0]]
    if missing:
        raise MissingColumnsError(str(path), missing, list(data[0]))
    return data


def _zfill(series: pd.Series, width: int) -> pd.Series:
    """Re-pad codes that lost their leading zeros (``1001`` -> ``01001``); blanks stay."""
    text = series.astype("string").str.strip()
    text = text.str.replace(r"\.0$", "", regex=True)  # 1001.0 written by a float column
    return text.where(text.isna() | (text == ""), text.str.zfill(width))


# --- @etalab/decoupage-administratif (COG, EPCI, populations) ---------------------------

_COMMUNES_COLUMNS = [
    "code", "nom", "type", "zone", "departement", "region", "arrondissement", "siren",
    "population", "codesPostaux", "chefLieu", "commune", "rangChefLieu", "typeLiaison",
    "anciensCodes", "siren_epci",
]


def _epci_members(path: Path) -> list[dict[str, Any]]:
    """Rows commune x EPCI from ``epci.json`` (one object per EPCI with its ``membres``)."""
    rows = []
    for epci in _records(path, "EPCI", ("code", "nom", "type", "membres")):
        for m in epci["membres"]:
            rows.append({
                "siren_epci": epci["code"],
                "nom_epci": epci["nom"],
                "type_epci": epci["type"],
                "mode_financement": epci.get("modeFinancement"),
                "code_commune": m["code"],
                "siren_commune": m.get("siren"),
                "nom_commune": m.get("nom"),
                "population_totale": m.get("populationTotale"),
                "population_municipale": m.get("populationMunicipale"),
            })
    return rows


def decoupage_communes(paths: Sequence[Path], out: Path) -> None:
    """``communes.json`` + ``epci.json`` of @etalab/decoupage-administratif -> CSV.gz.

    One row per record (communes actuelles, déléguées, associées, arrondissements
    municipaux); list fields (``codesPostaux``, ``anciensCodes``) joined with ``;``;
    ``siren_epci`` joined from the EPCI members by ``code``.
    """
    communes_json, epci_json = _one(paths, "decoupage_communes", 2)
    df = pd.DataFrame(_records(communes_json, "commune", ("code", "nom", "type")))
    for col in _COMMUNES_COLUMNS[:-1]:
        if col not in df:
            df[col] = None
    for col in ("codesPostaux", "anciensCodes"):
        df[col] = df[col].map(lambda v: ";".join(v) if isinstance(v, list) else v)
    for col in ("population", "rangChefLieu", "typeLiaison"):
        df[col] = pd.to_numeric(df[col]).astype("float64")  # the mirror writes 860.0
    epci_of = {r["code_commune"]: r["siren_epci"] for r in _epci_members(epci_json)}
    df["siren_epci"] = df["code"].map(epci_of)
    _write_csv(df[_COMMUNES_COLUMNS], out)


def decoupage_epci(paths: Sequence[Path], out: Path) -> None:
    """``epci.json`` of @etalab/decoupage-administratif -> one row per member commune."""
    (epci_json,) = _one(paths, "decoupage_epci")
    df = pd.DataFrame(_epci_members(epci_json))
    for col in ("population_totale", "population_municipale"):
        df[col] = pd.to_numeric(df[col]).astype("Int64")
    _write_csv(df, out)


#: The catalogue's ``populations`` URLs, in order: npm version of the package, the
#: millésime of its legal populations and the COG year it is laid out in.
POPULATION_VINTAGES: tuple[tuple[str, int, str], ...] = (
    ("0.7.0", 2016, "2019"),
    ("1.1.1", 2019, "2021/2022"),
    ("2.3.1", 2020, "2022"),
    ("4.1.0", 2022, "2024"),
    ("6.0.0", 2023, "2026"),
)


def decoupage_population_history(paths: Sequence[Path], out: Path) -> None:
    """``communes.json`` of five package versions -> legal populations in long format.

    Files are given in the order of :data:`POPULATION_VINTAGES`; only
    ``commune-actuelle`` records of each version are kept.
    """
    files = _one(paths, "decoupage_population_history", len(POPULATION_VINTAGES))
    parts = []
    for path, (version, millesime, cog) in zip(files, POPULATION_VINTAGES, strict=True):
        df = pd.DataFrame(_records(path, "commune", ("code", "nom", "type", "departement")))
        if "population" not in df:
            raise MissingColumnsError(str(path), ["population"], list(df.columns))
        df = df[df["type"] == "commune-actuelle"]
        parts.append(pd.DataFrame({
            "pop_millesime": millesime,
            "npm_version": version,
            "cog_package_year": cog,
            "code": df["code"],
            "nom": df["nom"],
            "departement": df["departement"],
            "population": pd.to_numeric(df["population"]).astype("Int64"),
        }))
    _write_csv(pd.concat(parts, ignore_index=True), out)


# --- plain CSV files ---------------------------------------------------------------------


def gzip_csv_strip_bom(paths: Sequence[Path], out: Path) -> None:
    """A UTF-8 CSV (with or without a byte-order mark) -> the same bytes, BOM stripped,
    gzip-compressed."""
    (path,) = _one(paths, "gzip_csv_strip_bom")
    data = path.read_bytes()
    data = data.removeprefix(_BOM)
    try:
        first = data[: data.find(b"\n") if b"\n" in data else len(data)].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not a UTF-8 CSV file ({exc})") from None
    if "," not in first:
        raise InputFileError(f"{path}: expected a ','-separated CSV header, got {first!r}")
    _write_bytes(data, out)


