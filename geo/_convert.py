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

import csv
import gzip
import io
import json
import logging
import lzma
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from geo.errors import InputFileError, MissingColumnsError

__all__ = [
    "anct_acv_js",
    "anct_pvd_2021_csv",
    "anct_pvd_geojson",
    "culture_festivals_csv",
    "culture_museofile_csv",
    "decoupage_communes",
    "decoupage_epci",
    "decoupage_population_history",
    "drees_apl_xlsx",
    "geoapi_communes_geojson",
    "gzip_csv_strip_bom",
    "insee_appartenance_zip",
    "insee_bpe_counts_xlsx",
    "insee_bpe_xy_zip",
    "semicolon_csv_to_gz",
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


def _norm(name: Any) -> str:
    """Header key insensitive to case, accents and punctuation: ``Code Insee commune``,
    ``code_insee_commune`` (the field name of an Opendatasoft export) -> the same key."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _pad(value: str, width: int) -> str:
    """Zero-pad a numeric code that lost its leading zeros (``6004`` -> ``06004``)."""
    value = value.strip()
    if value.endswith(".0") and value[:-2].isdigit():
        value = value[:-2]
    return value.zfill(width) if value.isdigit() and len(value) < width else value


def _decode(data: bytes, path: Path) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputFileError(f"{path}: neither UTF-8 nor Windows-1252 text")  # pragma: no cover


def _read_delimited(path: Path, delimiters: str = ";|,\t") -> tuple[list[str], list[list[str]]]:
    """Header and rows (all text) of a delimited file; see :func:`_parse_delimited`."""
    return _parse_delimited(_decode(Path(path).read_bytes(), path), path, delimiters)


def _parse_delimited(
    text: str, source: Path, delimiters: str = ";|,\t"
) -> tuple[list[str], list[list[str]]]:
    """Header and rows (all text) of delimited ``text``; the delimiter is the one of
    ``delimiters`` most frequent in the header line; blank lines are skipped."""
    first = text.split("\n", 1)[0]
    delimiter = max(delimiters, key=first.count)
    if first.count(delimiter) == 0:
        raise InputFileError(f"{source}: no delimiter ({delimiters!r}) in the header {first!r}")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise InputFileError(f"{source}: empty file")
    rows = [r for r in reader if any(c.strip() for c in r)]
    bad = [i for i, r in enumerate(rows, 2) if len(r) != len(header)]
    if bad:
        raise InputFileError(
            f"{source}: {len(bad)} row(s) do not have the {len(header)} columns of the "
            f"header (first at data row {bad[0] - 1})"
        )
    return [h.strip() for h in header], rows


def _write_rows(header: Sequence[str], rows: Iterable[Sequence[Any]], out: Path) -> None:
    """Write text rows as a ','-separated CSV (minimal quoting, '\n' line ends)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in r] for r in rows)
    _write_bytes(buf.getvalue().encode("utf-8"), out)


def _column_index(header: Sequence[str], wanted: Sequence[str], source: Path) -> list[int]:
    """Positions of the ``wanted`` columns in ``header``, matched with :func:`_norm`."""
    keys = {_norm(h): i for i, h in enumerate(header)}
    missing = [w for w in wanted if _norm(w) not in keys]
    if missing:
        raise MissingColumnsError(str(source), missing, list(header))
    return [keys[_norm(w)] for w in wanted]


def _cell_text(value: Any) -> str:
    """An Excel cell as the mirror writes it: integral numbers without ``.0``."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _excel_sheets(book: Path | io.BytesIO, source: Path | None = None) -> dict[str, pd.DataFrame]:
    """Every sheet of a workbook as raw cells (no header, values as stored)."""
    try:
        return pd.read_excel(book, sheet_name=None, header=None, dtype=object,
                             engine="openpyxl")
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise InputFileError(f"{source or book}: not a readable .xlsx workbook ({exc})") from None


def _find_header(sheets: dict[str, pd.DataFrame], match: Callable[[list[str]], bool],
                 path: Path, what: str,
                 prefer: Sequence[str] = (), max_rows: int = 30) -> tuple[pd.DataFrame, int]:
    """The sheet and row index of the first row (within ``max_rows``) for which
    ``match(list_of_normalised_cells)`` is true; sheets named in ``prefer`` first."""
    names = [n for n in prefer if n in sheets] + [n for n in sheets if n not in prefer]
    for name in names:
        sheet = sheets[name]
        for i in range(min(max_rows, len(sheet))):
            if match([_norm(v) for v in sheet.iloc[i].tolist()]):
                return sheet, i
    raise InputFileError(
        f"{path}: no {what} header row in the first {max_rows} rows of sheets "
        f"{', '.join(map(repr, sheets))}"
    )


def _zip_member(path: Path, suffixes: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """Name of the largest member of zip ``path`` ending in one of ``suffixes``."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [
                i for i in zf.infolist()
                if i.filename.lower().endswith(tuple(suffixes))
                and not any(x in i.filename.lower() for x in exclude)
            ]
    except zipfile.BadZipFile:
        raise InputFileError(f"{path}: not a valid zip archive") from None
    if not members:
        raise InputFileError(f"{path}: the archive holds no {'/'.join(suffixes)} file")
    return max(members, key=lambda i: i.file_size).filename


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




def semicolon_csv_to_gz(paths: Sequence[Path], out: Path) -> None:
    """A ';'-separated CSV (Opendatasoft export, Géorisques table) -> ','-separated CSV.gz.

    Values are kept as text; INSEE commune codes are zero-padded to 5 characters and
    département codes to 2 (``code INSEE``, ``code_insee``, ``DEP``, ``code_dept``); the
    ``geolocalisation`` column (a copy of latitude/longitude) is dropped.
    """
    (path,) = _one(paths, "semicolon_csv_to_gz")
    header, rows = _read_delimited(path, ";")
    widths = {"code_insee": 5, "code_commune": 5, "dep": 2, "code_dept": 2,
              "code_departement": 2}
    drop = {"geolocalisation", "geo_point_2d", "geo_point"}
    keep = [i for i, h in enumerate(header) if _norm(h) not in drop]
    pad = {i: widths[_norm(header[i])] for i in keep if _norm(header[i]) in widths}
    _write_rows(
        [header[i] for i in keep],
        ([_pad(r[i], pad[i]) if i in pad else r[i] for i in keep] for r in rows),
        out,
    )


# --- ANCT programmes (PVD, ACV) -------------------------------------------------------

_LISTE_GEO = re.compile(r"\s*([^;]+?)\s*\(([0-9][0-9AB][0-9]{3})\)\s*(?:[;,]|$)")


def _liste_geo(text: str) -> list[tuple[str, str]]:
    """``"Béthune (62119); Bruay-la-Buissière (62178)"`` -> [(name, code), ...]."""
    return [(m.group(1), m.group(2)) for m in _LISTE_GEO.finditer(text or "")]


def _point(geometry: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """Longitude and latitude of a GeoJSON Point (mean of a MultiPoint)."""
    if not geometry or not geometry.get("coordinates"):
        return None, None
    coords = geometry["coordinates"]
    if geometry.get("type") == "Point":
        coords = [coords]
    lon = sum(c[0] for c in coords) / len(coords)
    lat = sum(c[1] for c in coords) / len(coords)
    return lon, lat


def _features(path: Path, what: str) -> list[dict[str, Any]]:
    doc = _read_json(path, what)
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise InputFileError(f"{path}: expected a GeoJSON FeatureCollection of {what}")
    return doc["features"]


def anct_pvd_geojson(paths: Sequence[Path], out: Path) -> None:
    """ANCT superposeur ``pvd_geom.geojson`` (one point per PVD territory, its communes
    in ``liste_geo``) -> one row per commune.

    Columns: ``id_pvd, lib_territoire, date_signature, insee_com, lib_com,
    n_communes_territoire, lon_territoire, lat_territoire`` (territory point, 6 decimals).
    """
    (path,) = _one(paths, "anct_pvd_geojson")
    rows = []
    for f in _features(path, "PVD territories"):
        props = f.get("properties") or {}
        if "liste_geo" not in props or "id_territoire" not in props:
            raise MissingColumnsError(str(path), ["id_territoire", "liste_geo"], list(props))
        communes = _liste_geo(props["liste_geo"])
        if not communes:
            raise InputFileError(
                f"{path}: territory {props['id_territoire']}: no 'Name (code)' in "
                f"liste_geo {props['liste_geo']!r}"
            )
        lon, lat = _point(f.get("geometry"))
        for name, code in communes:
            rows.append({
                "id_pvd": props["id_territoire"],
                "lib_territoire": props.get("lib_territoire"),
                "date_signature": props.get("date_signature"),
                "insee_com": code,
                "lib_com": name,
                "n_communes_territoire": len(communes),
                "lon_territoire": None if lon is None else round(lon, 6),
                "lat_territoire": None if lat is None else round(lat, 6),
            })
    _write_csv(pd.DataFrame(rows), out)


#: Columns of the 2021 PVD list that hold personal data (mayor's name, e-mail, site).
PVD_2021_PERSONAL = ("nom_maire", "mel_mairie", "site_mairie")


def anct_pvd_2021_csv(paths: Sequence[Path], out: Path) -> None:
    """ANCT ``pvd_carte-interactive_20200122.csv`` -> the same table without the
    personal-data columns (:data:`PVD_2021_PERSONAL`); R's ``NA`` becomes empty."""
    (path,) = _one(paths, "anct_pvd_2021_csv")
    header, rows = _read_delimited(path, ",;")
    _column_index(header, ["id_pvd", "insee_com", "lib_com"], path)
    keep = [i for i, h in enumerate(header) if _norm(h) not in PVD_2021_PERSONAL]
    _write_rows(
        [header[i] for i in keep],
        (["" if r[i] == "NA" else r[i] for i in keep] for r in rows),
        out,
    )


_ACV_COLUMNS = [
    "insee_com", "id_acv", "lib_com", "lib_com_carto", "iso_territoire_2", "pop",
    "insee_dep", "insee_reg", "siren_epci", "lib_reg",
]


def anct_acv_js(paths: Sequence[Path], out: Path) -> None:
    """ANCT ``coeurdeville.js`` (a GeoJSON assigned to a JavaScript variable) and the
    superposeur ``acv2_geom.geojson`` -> one row per ACV commune.

    Codes are zero-padded (``insee_com`` 5, ``insee_dep`` and ``insee_reg`` 2
    characters); ``lon``/``lat`` come from the point; ``in_acv2_superposeur_2023`` is
    True for every commune listed in an ACV 2 territory. (The mirror file flags only the
    last commune of its 5 two-commune ACV 2 territories; this converter flags both.)
    """
    js_path, acv2_path = _one(paths, "anct_acv_js", 2)
    text = _decode(js_path.read_bytes(), js_path).strip()
    m = re.match(r"^(?:(?:var|let|const)\s+\w+\s*=\s*)?(\{.*\})\s*;?\s*$", text, re.S)
    if not m:
        raise InputFileError(f"{js_path}: expected `var NAME = {{GeoJSON}};`")
    try:
        features = json.loads(m.group(1))["features"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputFileError(f"{js_path}: the assigned object is not GeoJSON ({exc})") from None
    acv2 = {
        code
        for f in _features(acv2_path, "ACV 2 territories")
        for _, code in _liste_geo((f.get("properties") or {}).get("liste_geo", ""))
    }
    rows = []
    for f in features:
        props = f.get("properties") or {}
        missing = [c for c in _ACV_COLUMNS if c not in props]
        if missing:
            raise MissingColumnsError(str(js_path), missing, list(props))
        cells = {c: _cell_text(props[c]) for c in _ACV_COLUMNS}
        cells["insee_com"] = _pad(cells["insee_com"], 5)
        cells["insee_dep"] = _pad(cells["insee_dep"], 2)
        cells["insee_reg"] = _pad(cells["insee_reg"], 2)
        lon, lat = _point(f.get("geometry"))
        rows.append({**cells, "lon": lon, "lat": lat,
                     "in_acv2_superposeur_2023": cells["insee_com"] in acv2})
    _write_csv(pd.DataFrame(rows), out)


# --- INSEE -----------------------------------------------------------------------------

_APPARTENANCE_COLUMNS = {  # column -> width of its zero-padded code (0: text)
    "CODGEO": 5, "LIBGEO": 0, "DEP": 2, "REG": 2, "ARR": 3, "CV": 4, "EPCI": 0,
    "NATURE_EPCI": 0, "ZE2020": 4, "UU2020": 5, "TUU2017": 0, "TDUU2017": 0,
    "AAV2020": 3, "TAAV2017": 0, "TDAAV2017": 0, "CATEAAV2020": 0, "BV2012": 5,
}


def insee_appartenance_zip(paths: Sequence[Path], out: Path) -> None:
    """INSEE ``table-appartenance-geo-communes-YY.zip`` (an .xlsx with a 5-row title
    block, sheet ``COM``) -> CSV.gz of the communes with the mirror's 17 columns.

    Codes are text, zero-padded as in the mirror (CODGEO 5, DEP/REG 2, ARR 3, CV 4,
    ZE2020 4, UU2020 5, AAV2020 3, BV2012 5). A CSV member (';' or ',') is read the same.
    """
    (path,) = _one(paths, "insee_appartenance_zip")
    member = _zip_member(path, (".xlsx", ".csv"), exclude=("doc", "metadonn"))
    with zipfile.ZipFile(path) as zf:
        data = zf.read(member)
    source = Path(f"{path}!{member}")
    if member.lower().endswith(".csv"):
        header, rows = _parse_delimited(_decode(data, source), source, ";,")
    else:
        sheets = _excel_sheets(io.BytesIO(data), source)
        sheet, i = _find_header(sheets, lambda cells: "codgeo" in cells, source,
                                "CODGEO", prefer=("COM",))
        header = [_cell_text(v) for v in sheet.iloc[i].tolist()]
        rows = [[_cell_text(v) for v in r] for r in sheet.iloc[i + 1:].itertuples(index=False)]
        rows = [r for r in rows if any(r)]
    idx = _column_index(header, list(_APPARTENANCE_COLUMNS), source)
    widths = list(_APPARTENANCE_COLUMNS.values())
    _write_rows(
        list(_APPARTENANCE_COLUMNS),
        ([_pad(r[j], w) if w else r[j] for j, w in zip(idx, widths, strict=True)]
         for r in rows),
        out,
    )


def insee_bpe_xy_zip(paths: Sequence[Path], out: Path) -> None:
    """INSEE ``BPEyy.zip`` -> its geolocated facility table (the largest CSV member,
    unchanged: ';'-separated, Lambert-93 ``LAMBERT_X``/``LAMBERT_Y``)."""
    (path,) = _one(paths, "insee_bpe_xy_zip")
    member = _zip_member(path, (".csv",), exclude=("varmod", "meta", "doc"))
    with zipfile.ZipFile(path) as zf, zf.open(member) as src:
        _write_bytes(src.read(), out)


_BPE_CODE = re.compile(r"^[A-G][0-9]{3}$")
_BPE_COMMUNE_KEYS = ("depcom", "codgeo", "inseecom", "com", "code_commune")


def _typequ_labels(year: int, nomenclature: Path | None) -> dict[str, str]:
    """TYPEQU code -> label of BPE ``year`` from the nomenclature file (the catalogued
    ``bpe_typequ``, passed in by :func:`geo.sources.fetch` as the converter's input)."""
    if nomenclature is None:
        raise InputFileError("the BPE table names its equipment types by label: the TYPEQU "
                             "nomenclature (dataset bpe_typequ) is needed to read them")
    table = pd.read_csv(nomenclature, dtype=str, keep_default_na=False)
    column = f"libelle_bpe{year}"
    columns = [column] if column in table else [c for c in table if c.startswith("libelle")]
    labels: dict[str, str] = {}
    for col in columns:
        for code, label in zip(table["typequ"], table[col], strict=True):
            if label:
                labels.setdefault(code, label)
    return labels


def _match_label(header: str, labels: dict[str, str]) -> str | None:
    """TYPEQU whose label is ``header``, or starts with it when Excel truncated it."""
    exact = [c for c, lab in labels.items() if lab == header]
    if len(exact) == 1:
        return exact[0]
    prefix = [c for c, lab in labels.items() if len(header) >= 20 and lab.startswith(header)]
    return prefix[0] if len(prefix) == 1 else None


def insee_bpe_counts_xlsx(paths: Sequence[Path], out: Path, *,
                          inputs: Mapping[str, Path] | None = None) -> None:
    """INSEE BPE commune x equipment-type table (.xlsx) -> long format
    ``annee, depcom, typequ, libelle, nb_equip`` (non-zero counts only).

    The header row holds the commune code (``DEPCOM``/``CODGEO``/``INSEECOM``) and one
    column per equipment type, named by its TYPEQU code (labels then come from the
    adjacent label row, else the nomenclature) or by its label (mapped to the code with
    the ``bpe_typequ`` nomenclature, ``inputs["bpe_typequ"]``; labels truncated by Excel
    are matched by prefix).
    Rows follow the columns' order, communes sorted. The year comes from the output name
    (``bpe2013_...``) or the sheet's title cells.
    """
    (path,) = _one(paths, "insee_bpe_counts_xlsx")
    nomenclature = (inputs or {}).get("bpe_typequ")
    sheets = _excel_sheets(path)
    sheet, h = _find_header(sheets, lambda cells: any(k in cells for k in _BPE_COMMUNE_KEYS),
                            path, "commune code (DEPCOM/CODGEO/INSEECOM)")
    header = [_cell_text(v) for v in sheet.iloc[h].tolist()]
    year = _bpe_year(out, sheet.iloc[:h], path)
    code_col = next(j for j, v in enumerate(header) if _norm(v) in _BPE_COMMUNE_KEYS)
    above = [_cell_text(v) for v in sheet.iloc[h - 1].tolist()] if h else [""] * len(header)
    body = sheet.iloc[h + 1:]
    labels: dict[str, str] | None = None
    types: list[tuple[int, str, str]] = []  # column, typequ, label
    unknown = []
    for j, name in enumerate(header):
        if j == code_col or not name:
            continue
        values = pd.to_numeric(body.iloc[:, j], errors="coerce")
        if values.notna().sum() == 0:
            continue  # a text column (LIBGEO, REG...)
        if _BPE_CODE.match(name):
            label = above[j] if above[j] and not _BPE_CODE.match(above[j]) else ""
            if not label:
                labels = labels if labels is not None else _typequ_labels(year, nomenclature)
                label = labels.get(name, "")
            types.append((j, name, label))
            continue
        if _norm(name) in {"reg", "dep", "arr", "an", "annee", "pop", "population"}:
            continue
        labels = labels if labels is not None else _typequ_labels(year, nomenclature)
        code = _match_label(name, labels)
        if code is None:
            unknown.append(name)
        else:
            types.append((j, code, name))
    if unknown:
        raise InputFileError(
            f"{path}: column(s) {', '.join(map(repr, unknown[:10]))} match no BPE {year} "
            f"equipment label of the TYPEQU nomenclature"
        )
    if not types:
        raise InputFileError(f"{path}: no equipment-type column found")
    depcom = body.iloc[:, code_col].map(_cell_text).map(lambda c: _pad(c, 5))
    order = depcom[depcom != ""].sort_values(kind="stable").index
    parts = []
    for j, code, label in types:
        counts = pd.to_numeric(body.iloc[:, j], errors="coerce").loc[order]
        counts = counts[counts > 0]
        parts.append(pd.DataFrame({
            "annee": year, "depcom": depcom.loc[counts.index], "typequ": code,
            "libelle": label, "nb_equip": counts.round().astype("int64"),
        }))
    _write_csv(pd.concat(parts, ignore_index=True), out)


def _bpe_year(out: Path, title: pd.DataFrame, path: Path) -> int:
    m = re.search(r"bpe_?((?:19|20)\d\d)", Path(out).name, re.I)
    if m:
        return int(m.group(1))
    for value in title.to_numpy().ravel():
        m = re.search(r"\b((?:19|20)\d\d)\b", _cell_text(value))
        if m:
            return int(m.group(1))
    raise InputFileError(f"{path}: cannot tell the BPE year (from the file or the title)")


# --- DREES APL -----------------------------------------------------------------------------


def drees_apl_xlsx(paths: Sequence[Path], out: Path) -> None:
    """DREES APL workbook (.xlsx) -> CSV.gz, one row per commune.

    The header row is found by its ``Code commune`` cell (title rows above it and notes
    below the table are skipped); the first two columns are written as ``Code commune``
    (5-character text) and ``Libellé de la commune``, every other column as a float.
    """
    (path,) = _one(paths, "drees_apl_xlsx")
    sheets = _excel_sheets(path)
    sheet, h = _find_header(
        sheets, lambda cells: any(c.startswith("code_commune") for c in cells), path,
        "'Code commune'")
    raw_header = [" ".join(_cell_text(v).split()) for v in sheet.iloc[h].tolist()]
    last = max(j for j, v in enumerate(raw_header) if v) + 1
    header = raw_header[:last]
    code_j = next(j for j, v in enumerate(header) if _norm(v).startswith("code_commune"))
    body = sheet.iloc[h + 1:, :last]
    codes = body.iloc[:, code_j].map(_cell_text)
    end = codes.eq("").to_numpy().nonzero()[0]  # the table ends at the first blank code
    body = body.iloc[: end[0]] if len(end) else body
    table = pd.DataFrame({"Code commune": body.iloc[:, code_j].map(_cell_text).map(
        lambda c: _pad(c, 5))})
    label_j = next((j for j, v in enumerate(header) if _norm(v).startswith("libelle")), None)
    if label_j is None:
        raise MissingColumnsError(str(path), ["Libellé de la commune"], header)
    table["Libellé de la commune"] = body.iloc[:, label_j].map(_cell_text)
    for j, name in enumerate(header):
        if j in (code_j, label_j):
            continue
        values = pd.to_numeric(body.iloc[:, j].map(
            lambda v: str(v).replace(",", ".").strip() if isinstance(v, str) else v),
            errors="coerce")
        table[name] = values.astype("float64")
    bad = table["Code commune"].str.fullmatch(r"[0-9][0-9AB][0-9]{3}").eq(False)
    if bad.any():
        raise InputFileError(
            f"{path}: {int(bad.sum())} row(s) have no 5-character commune code "
            f"(first: {table.loc[bad, 'Code commune'].iloc[0]!r})"
        )
    _write_csv(table, out)


# --- culture ---------------------------------------------------------------------------------

_MUSEOFILE_COLUMNS = [
    "Identifiant", "Nom_officiel", "Adresse", "Lieu", "Code_postal", "Ville", "Departement",
    "Region", "URL", "Categorie", "Domaine_thematique", "Protection_batiment",
    "Protection_espace", "Refmer", "Annee_creation", "Date_de_mise_a_jour",
]


def _lat_lon(text: str) -> tuple[str, str]:
    """``"45.790491, 4.797411"`` -> ("45.790491", "4.797411"); blanks stay blank."""
    parts = [p.strip() for p in (text or "").split(",")]
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else ("", "")


def culture_museofile_csv(paths: Sequence[Path], out: Path) -> None:
    """Muséofile export (';' or '|' separated, 24 columns) -> the mirror's 18 columns:
    16 descriptive ones (long free texts and the telephone dropped) and ``Coordonnees``
    split into ``lat``/``lon`` (WGS84)."""
    (path,) = _one(paths, "culture_museofile_csv")
    header, rows = _read_delimited(path, ";|")
    idx = _column_index(header, _MUSEOFILE_COLUMNS, path)
    (coord,) = _column_index(header, ["Coordonnees"], path)
    _write_rows(
        [*_MUSEOFILE_COLUMNS, "lat", "lon"],
        ([*(r[i] for i in idx), *_lat_lon(r[coord])] for r in rows),
        out,
    )


_FESTIVAL_COLUMNS = [
    "Nom du festival", "Envergure territoriale", "Région principale de déroulement",
    "Département principal de déroulement", "Commune principale de déroulement",
    "Code postal (de la commune principale de déroulement)", "Code Insee commune",
    "Code Insee EPCI", "Libellé EPCI", "Numéro de voie",
    "Type de voie (rue, Avenue, boulevard, etc.)", "Nom de la voie", "Adresse postale",
    "Complément d'adresse (facultatif)", "Site internet du festival",
    "Décennie de création du festival", "Année de création du festival",
    "Discipline dominante", "Sous-catégorie spectacle vivant", "Sous-catégorie musique",
    "Sous-catégorie Musique CNM", "Sous-catégorie cinéma et audiovisuel",
    "Sous-catégorie arts visuels et arts numériques", "Sous-catégorie livre et littérature",
    "Période principale de déroulement du festival", "Identifiant Agence A", "Identifiant",
    "identifiant CNM",
]


def culture_festivals_csv(paths: Sequence[Path], out: Path) -> None:
    """Ministère de la Culture festivals export (';') -> ','-separated CSV.gz.

    ``Adresse e-mail`` (personal data) is dropped, ``Géocodage xy`` split into
    ``lat``/``lon``, the postal and INSEE commune codes zero-padded to 5 characters.
    """
    (path,) = _one(paths, "culture_festivals_csv")
    header, rows = _read_delimited(path, ";")
    idx = _column_index(header, _FESTIVAL_COLUMNS, path)
    (xy,) = _column_index(header, ["Géocodage xy"], path)
    padded = {idx[_FESTIVAL_COLUMNS.index(c)] for c in (
        "Code postal (de la commune principale de déroulement)", "Code Insee commune")}
    _write_rows(
        [*_FESTIVAL_COLUMNS, "lat", "lon"],
        ([*(_pad(r[i], 5) if i in padded else r[i] for i in idx), *_lat_lon(r[xy])]
         for r in rows),
        out,
    )


# --- commune polygons ------------------------------------------------------------------------

#: INSEE codes of the municipal arrondissements of Paris, Lyon and Marseille.
_ARM = re.compile(r"^(751(0[1-9]|1[0-9]|20)|6938[1-9]|132(0[1-9]|1[0-6]))$")


def geoapi_communes_geojson(paths: Sequence[Path], out: Path) -> None:
    """geo.api.gouv.fr ``/communes?format=geojson&geometry=contour`` -> an xz-compressed
    GeoPackage, layer ``communes`` (EPSG:4326, MultiPolygon): ``insee``, ``type``
    (``COM`` or ``ARM``), ``nom``, sorted by code; features without geometry dropped."""
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, shape

    (path,) = _one(paths, "geoapi_communes_geojson")
    rows = []
    for f in _features(path, "communes"):
        props = f.get("properties") or {}
        if "code" not in props or "nom" not in props:
            raise MissingColumnsError(str(path), ["code", "nom"], list(props))
        if not f.get("geometry"):
            continue
        geom = shape(f["geometry"])
        if geom.geom_type == "Polygon":
            geom = MultiPolygon([geom])
        kind = str(props.get("type") or "")
        kind = {"commune-actuelle": "COM", "arrondissement-municipal": "ARM"}.get(kind, kind)
        if kind not in {"COM", "ARM"}:
            kind = "ARM" if _ARM.match(props["code"]) else "COM"
        rows.append({"insee": props["code"], "type": kind, "nom": props["nom"], "geometry": geom})
    if not rows:
        raise InputFileError(f"{path}: no commune with a geometry")
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    gdf = gdf.sort_values("insee", kind="stable").reset_index(drop=True)
    gpkg = Path(out).with_name(Path(out).name.removesuffix(".xz") + ".tmp.gpkg")
    try:
        gdf.to_file(gpkg, layer="communes", driver="GPKG", engine="pyogrio")
        _write_bytes(gpkg.read_bytes(), out)
    finally:
        gpkg.unlink(missing_ok=True)
