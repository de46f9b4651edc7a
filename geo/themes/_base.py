"""Shared machinery of the Data Territoria themes (:mod:`geo.themes`).

A theme (:class:`Theme`) reads the catalogue datasets of ``kind = "theme_<key>"`` (one
file holding several years, or one file per vintage with ``theme_year``), builds a
national table of *components* per current commune (counts, sums, populations; old
commune codes re-keyed to the current COG with :func:`geo.communes.aggregate_to_current`)
and declares its indicators (:class:`ThemeIndicator`) from those components:

- a ratio ``num / den x scale`` (``den`` absent: the sum of ``num``);
- an annual growth rate ``((num / den) ** (1 / years) - 1) x scale``;
- a change between two indicators of the theme: ``end - start`` (``op="diff"``) or
  ``(end / start - 1) x 100`` (``op="rel"``);
- a value the theme computes itself for a commune and for a group of communes
  (``pooled``: medians of the sales of the communes, :mod:`geo.themes.logement`).

One rule gives a commune's value and a group's value: a group's ratio is the sum of the
numerators over the sum of the denominators of its communes that have both (a change:
the two indicators over the communes that have both), so a typology table, a portrait
and the dashboard say the same thing. A component the source does not give for a
commune (outside the source's coverage, statistical secret, no sale) is missing, never
zero; a theme whose files are not downloaded raises :class:`MissingInputError` naming
the ``pvdgeo fetch`` command that downloads them.

Tables are cached in ``data/interim/theme_<key>_communes.parquet``, rebuilt when an
input (the files, the theme's code, the commune reference) is newer or the vintages
downloaded changed; their metadata (``pvdgeo`` key) hold the vintages, the years compared
and the theme's notes.
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import re
import sys
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from geo import communes, sources
from geo._convert import _norm
from geo._io import (
    DECOMPRESSION_ERRORS,
    SEPARATORS,
    is_stale,
    open_maybe_compressed,
    read_delimited,
    read_parquet_cached,
    read_parquet_metadata,
    to_number,
    write_parquet,
)
from geo.errors import DataSourceError, InputFileError, MissingColumnsError
from geo.settings import PROJECT_ROOT, Settings, get_settings

__all__ = [
    "MissingInputError",
    "Theme",
    "ThemeIndicator",
    "Vintage",
    "available_vintages",
    "catalogue_datasets",
    "commune_table",
    "commune_values",
    "compared_vintages",
    "evaluate_group",
    "fetch_command",
    "iter_published",
    "legal_population",
    "map_unique",
    "numbers",
    "pad_code",
    "period_pair",
    "read_mirror",
    "rekey_sum",
    "table_path",
    "with_start_columns",
    "year_columns",
    "zero_within",
]

log = logging.getLogger(__name__)


class MissingInputError(DataSourceError):
    """A theme whose source files are not downloaded (the message names the command)."""


@dataclass(frozen=True)
class ThemeIndicator:
    """One indicator of a theme: how it is computed and how it reads.

    Units are in the key's suffix (``_share`` 0..1, ``_pct`` per cent, ``_per_10k`` per
    10,000 inhabitants, ``_pts`` percentage points); ``when`` says which vintage it
    describes (``debut``, ``fin`` or the ``periode`` between them); ``count`` marks a sum
    (a number of jobs, of students: a group's value is their total).
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool | None = None
    num: str | None = None
    den: str | None = None
    scale: float = 1.0
    #: Column holding the number of years of an annual growth rate (constant).
    years: str | None = None
    #: Keys of the start and end indicators of a change.
    of: tuple[str, str] | None = None
    op: Literal["", "diff", "rel"] = ""
    #: The commune value is the column ``key``; a group's comes from ``Theme.pooled``.
    pooled: bool = False
    when: Literal["debut", "fin", "periode"] = "fin"
    count: bool = False
    digits: int = 1
    percent: bool = False
    signed: bool = False

    def __post_init__(self) -> None:
        kinds = [self.num is not None, self.of is not None, self.pooled]
        if sum(kinds) != 1:
            raise ValueError(f"indicator {self.key}: give exactly one of num, of, pooled")
        if self.of is not None and self.op not in ("diff", "rel"):
            raise ValueError(f"indicator {self.key}: a change needs op 'diff' or 'rel'")

    def format(self, value: object) -> str:
        """The value as the reports write it (French; the portrait's conventions)."""
        from geo.portrait import Indicator  # late: geo.portrait imports geo.themes

        return Indicator(self.key, self.label, self.unit, "", self.digits,
                         percent=self.percent, signed=self.signed).format(value)


@dataclass(frozen=True, slots=True)
class Vintage:
    """One downloaded file of a theme: its catalogue dataset, year (``theme_year``,
    None for a file holding several years) and the producer's vintage text."""

    dataset: str
    path: Path
    year: int | None
    label: str
    vintage: str = ""


Builder = Callable[[Sequence[Vintage], Settings], pd.DataFrame]
Pooled = Callable[["Theme", ThemeIndicator, pd.DataFrame, np.ndarray, Settings], float]


@dataclass(frozen=True)
class Theme:
    """A Data Territoria theme: its sources, indicators and table builder.

    ``build(vintages, settings)`` returns the components per current commune (index
    ``insee``, only the communes the source covers; the others become missing) with
    ``attrs["meta"]`` holding at least ``debut`` and ``fin`` (the vintages compared, as
    text) and ``notes`` (French, how the figures were made).
    """

    key: str
    title: str
    source: str
    dataset_ids: tuple[str, ...]
    indicators: tuple[ThemeIndicator, ...]
    build: Builder
    headline: str
    pooled: Pooled | None = None
    #: Files of ``data/interim`` the build writes besides the table (rebuilt with it).
    side_tables: tuple[str, ...] = ()
    #: Why a commune's value may be missing (French, shown when the town has none).
    missing_note: str = ("valeur non calculable pour la commune (donnée absente, couverte "
                         "par le secret statistique ou nulle à une des dates)")

    def indicator(self, key: str) -> ThemeIndicator:
        for ind in self.indicators:
            if ind.key == key:
                return ind
        raise KeyError(f"theme {self.key} has no indicator {key!r}")

    @property
    def module_file(self) -> Path:
        module = sys.modules[self.build.__module__]
        return Path(str(module.__file__))


# --- datasets and vintages ------------------------------------------------------------------


def catalogue_datasets(theme: Theme, settings: Settings | None = None) -> list[sources.Dataset]:
    """The catalogue datasets of the theme (``kind = "theme_<key>"``), in catalogue order."""
    s = settings or get_settings()
    return [d for d in sources.load_catalogue(s).values() if d.kind == f"theme_{theme.key}"]


def available_vintages(theme: Theme, settings: Settings | None = None) -> list[Vintage]:
    """The theme's files present in ``data/raw`` (production datasets are never fetched
    implicitly: ``pvdgeo fetch ID`` downloads them), by year."""
    s = settings or get_settings()
    found = []
    for ds in catalogue_datasets(theme, s):
        path = sources.dataset_path(ds.id, s) if ds.scope == "production" else \
            sources.ensure(ds.id, s)
        if not path.is_file():
            log.debug("%s: %s not downloaded", theme.key, ds.id)
            continue
        year = ds.extra.get("theme_year")
        found.append(Vintage(ds.id, path, None if year is None else int(year),
                             f"{ds.producer}, {ds.vintage}", ds.vintage))
    return sorted(found, key=lambda v: (v.year or 0, v.dataset))


def fetch_command(theme: Theme, settings: Settings | None = None,
                  *, missing_only: bool = True) -> str:
    """``pvdgeo fetch ...`` for the theme's datasets (those not downloaded yet)."""
    s = settings or get_settings()
    have = {v.dataset for v in available_vintages(theme, s)} if missing_only else set()
    ids = [d.id for d in catalogue_datasets(theme, s) if d.id not in have]
    return "pvdgeo fetch " + " ".join(ids) if ids else ""


def table_path(theme: Theme, settings: Settings | None = None) -> Path:
    """``data/interim/theme_<key>_communes.parquet``."""
    s = settings or get_settings()
    return s.interim_dir / f"theme_{theme.key}_communes.parquet"


# --- reading the published files ----------------------------------------------------------------

#: Zip members that document a table rather than hold it.
_DOC_MEMBERS = ("varmod", "meta", "doc", "dictionnaire", "readme", "notice")
_TABLE_SUFFIXES = (".csv", ".txt", ".parquet")


def _zip_table(zf: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    """The largest table member of an archive (documentation members left out)."""
    members = [i for i in zf.infolist()
               if i.filename.lower().endswith(_TABLE_SUFFIXES)
               and not any(d in Path(i.filename).name.lower() for d in _DOC_MEMBERS)]
    if not members:
        raise InputFileError(f"{path}: the archive holds no CSV or Parquet table "
                             f"(members: {', '.join(zf.namelist()[:10])})")
    return max(members, key=lambda i: i.file_size)


def _match(header: Sequence[str], columns: Mapping[str, Sequence[str]], *,
           required: bool, source: str) -> dict[str, str]:
    """Published header name -> canonical name, for the wanted ``columns``."""
    keys = {_norm(h): h for h in header}
    out: dict[str, str] = {}
    missing = []
    for canonical, aliases in columns.items():
        hit = next((keys[_norm(a)] for a in (canonical, *aliases) if _norm(a) in keys), None)
        if hit is None:
            missing.append(canonical)
        else:
            out[hit] = canonical
    if missing and required:
        raise MissingColumnsError(source, missing, list(header))
    return out


def iter_published(
    path: str | Path,
    *,
    label: str,
    columns: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]] | None = None,
    keep: Callable[[str], bool] | None = None,
    chunksize: int = 500_000,
) -> Iterator[pd.DataFrame]:
    """Chunks of a producer's table with canonical column names, read as published.

    Reads a delimited text file (separator: the most frequent of ``;``, ``,``, tab,
    ``|`` in the header; UTF-8 with or without BOM, else Windows-1252), plain or
    compressed (``.gz``, ``.xz``, ``.bz2``), a Parquet file, or the largest CSV or
    Parquet member of a zip archive. Header names are compared insensitive to case,
    accents and punctuation, so an Opendatasoft export's field names
    (``code_commune``) and labels (``Code commune``) both match. ``columns`` (canonical
    name -> other accepted names) are required, ``optional`` ones kept when present,
    and ``keep(normalised header)`` keeps further columns under their normalised name
    (year columns of a wide table). Text columns stay text (codes keep their zeros);
    use :func:`numbers` for values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{label}: file {path} does not exist")
    source = f"{label} ({path})"
    wanted = dict(columns)
    extra = dict(optional or {})
    kind = _sniff(path)
    try:
        if kind == ".zip":
            with zipfile.ZipFile(path) as zf:
                member = _zip_table(zf, path)
                inner = f"{source}!{member.filename}"
                if member.filename.lower().endswith(".parquet"):
                    import pyarrow as pa

                    data = pa.BufferReader(zf.read(member))
                    yield from _parquet_chunks(data, inner, wanted, extra, keep, chunksize)
                else:
                    with zf.open(member) as raw:
                        yield from _csv_chunks(raw, inner, wanted, extra, keep, chunksize)
        elif kind == ".parquet":
            yield from _parquet_chunks(path, source, wanted, extra, keep, chunksize)
        else:
            with open_maybe_compressed(path, "rb", suffix=kind or ".txt") as raw:
                yield from _csv_chunks(raw, source, wanted, extra, keep, chunksize)
    except (zipfile.BadZipFile, *DECOMPRESSION_ERRORS) as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(f"{source}: cannot read the file ({exc})") from None


#: Leading bytes of the containers a producer's file may come in.
_MAGIC = ((b"PK\x03\x04", ".zip"), (b"\x1f\x8b", ".gz"), (b"\xfd7zXZ\x00", ".xz"),
          (b"BZh", ".bz2"), (b"PAR1", ".parquet"))


def _sniff(path: Path) -> str:
    """The container of ``path`` from its first bytes (``.zip``, ``.gz``, ``.xz``,
    ``.bz2``, ``.parquet``; ``""`` for plain text): downloads are stored under the
    mirror file's name, whatever the producer's format."""
    with path.open("rb") as fh:
        head = fh.read(8)
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "")


def _selection(header: Sequence[str], wanted: Mapping[str, Sequence[str]],
               extra: Mapping[str, Sequence[str]], keep: Callable[[str], bool] | None,
               source: str) -> dict[str, str]:
    names = _match(header, wanted, required=True, source=source)
    names.update(_match(header, extra, required=False, source=source))
    if keep is not None:
        for h in header:
            if h not in names and keep(_norm(h)):
                names[h] = _norm(h)
    return names


def _csv_chunks(raw: IO[bytes], source: str, wanted: Mapping[str, Sequence[str]],
                extra: Mapping[str, Sequence[str]], keep: Callable[[str], bool] | None,
                chunksize: int) -> Iterator[pd.DataFrame]:
    first = raw.readline()
    if not first.strip():
        raise InputFileError(f"{source}: empty file (no header line)")
    try:
        text = first.decode("utf-8-sig")
        encoding = "utf-8"
    except UnicodeDecodeError:
        text, encoding = first.decode("cp1252"), "cp1252"
    sep = max(SEPARATORS, key=text.count)
    header = [h.strip().lstrip("\ufeff") for h in
              next(csv.reader([text.rstrip("\r\n")], delimiter=sep))]
    names = _selection(header, wanted, extra, keep, source)
    positions = {i: names[h] for i, h in enumerate(header) if h in names}
    try:
        reader = pd.read_csv(raw, sep=sep, header=None, usecols=list(positions),
                             dtype=str, encoding=encoding, keep_default_na=False,
                             na_values=[""], chunksize=chunksize, encoding_errors="replace")
        for chunk in reader:
            yield chunk.rename(columns=positions)
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputFileError(f"{source}: cannot parse the table as {sep!r}-separated text "
                             f"({' '.join(str(exc).split())[:200]})") from None


def _parquet_chunks(data: Any, source: str, wanted: Mapping[str, Sequence[str]],
                    extra: Mapping[str, Sequence[str]], keep: Callable[[str], bool] | None,
                    chunksize: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(data)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{source}: not a readable Parquet file ({exc})") from None
    names = _selection(pf.schema_arrow.names, wanted, extra, keep, source)
    for batch in pf.iter_batches(batch_size=chunksize, columns=list(names)):
        frame = batch.to_pandas()
        for col in frame.columns:  # dictionary-encoded text as plain text, as in a CSV
            if isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype(object)
        yield frame.rename(columns=names)


def numbers(values: pd.Series) -> pd.Series:
    """Float values of a published column (text with decimal commas or thousands
    separators, or numbers): plain numbers parsed at C speed, the others with
    :func:`geo._io.to_number`."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    try:  # plain numbers: Arrow's cast, ~20 times to_numeric's speed
        return values.astype("float64")
    except (ValueError, TypeError, ArithmeticError):
        pass
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    na = np.flatnonzero(out.isna().to_numpy())
    if na.size:
        text = values.iloc[na].astype("string").str.strip()
        odd = (text.notna() & (text != "")).to_numpy(dtype=bool)
        if odd.any():
            out.iloc[na[odd]] = to_number(text[odd]).to_numpy()
    return out


def map_unique(values: pd.Series, func: Callable[[str], Any]) -> pd.Series:
    """``func`` of each value, computed once per distinct value (codes and labels repeat
    over millions of rows); missing values stay missing."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([func(str(u)) for u in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index, dtype=object)


def _pad(code: str) -> str:
    text = code.strip().removesuffix(".0")
    return text.zfill(5) if text.isdigit() and len(text) < 5 else text


def pad_code(values: pd.Series) -> pd.Series:
    """5-character commune codes (``1001`` -> ``01001``; ``2A004`` unchanged)."""
    return map_unique(values, _pad)


def read_mirror(path: Path, *, label: str, required: Sequence[str]) -> pd.DataFrame:
    """A theme file in the mirror layout (what the converter wrote), all text."""
    try:
        return read_delimited(path, label=label, required=required, optional=None)
    except MissingColumnsError as exc:
        raise InputFileError(
            f"{exc}; expected the mirror layout written by `pvdgeo fetch` from the "
            f"producer's file (columns {', '.join(required)})") from None


# --- components per current commune ----------------------------------------------------------


def rekey_sum(df: pd.DataFrame, code_col: str, sum_cols: Sequence[str], *,
              by: Sequence[str] = (), settings: Settings | None = None) -> pd.DataFrame:
    """Sums of ``sum_cols`` per current commune (and ``by`` columns): former, delegated
    and associated codes and municipal arrondissements are added to their current
    commune (:func:`geo.communes.aggregate_to_current`); codes matching no current
    commune are dropped (logged). Returns ``insee``, ``by`` and the sums (missing where
    every summed value is)."""
    s = settings or get_settings()
    if not by:
        out = communes.aggregate_to_current(df, code_col, sum_cols=sum_cols, settings=s)
        return out.drop(columns="n_source_codes")
    parts = []
    for keys, part in df.groupby(list(by), sort=True, dropna=False):
        agg = communes.aggregate_to_current(part, code_col, sum_cols=sum_cols, settings=s)
        values = keys if isinstance(keys, tuple) else (keys,)
        for col, value in zip(by, values, strict=True):
            agg[col] = value
        parts.append(agg.drop(columns="n_source_codes"))
    if not parts:
        return pd.DataFrame(columns=["insee", *by, *sum_cols])
    return pd.concat(parts, ignore_index=True)[["insee", *by, *sum_cols]]


def legal_population(ref: pd.DataFrame, year: int) -> tuple[pd.Series, int]:
    """The legal population of the reference year nearest ``year`` (ties to the
    earlier), per ``insee``, and that year (the rule of :mod:`geo.facility_trends`)."""
    from geo.facility_trends import population_year_for

    used = population_year_for(year, communes.POPULATION_YEARS)
    pop = ref.set_index("insee")[f"pop_{used}"].astype("float64")
    return pop, used


def departement_coverage(codes: pd.Series) -> set[str]:
    """The départements of a set of current commune codes (``976``, ``2A``...)."""
    from geo._insee import departement_of

    return {departement_of(c) for c in codes.dropna().astype(str).unique()}


def zero_within(table: pd.DataFrame, columns: Sequence[str], covered: Collection[str],
                ref: pd.DataFrame) -> pd.DataFrame:
    """``table`` on every reference commune, ``columns`` set to 0 for the communes of
    the ``covered`` départements the source does not list (a register listing every
    employer, installation or enrolment: absence is a true zero) and left missing
    elsewhere."""
    from geo._insee import departement_of

    out = table.reindex(ref["insee"])
    deps = ref["insee"].map(departement_of)
    inside = deps.isin(set(covered)).to_numpy()
    for col in columns:
        values = out[col].to_numpy(dtype="float64", na_value=np.nan).copy()
        values[inside & np.isnan(values)] = 0.0
        out[col] = values
    return out


# --- indicators -------------------------------------------------------------------------------


def _ratio(ind: ThemeIndicator, table: pd.DataFrame, rows: np.ndarray | None) -> Any:
    """Commune values (``rows`` None) or the group value over ``rows`` of a ratio or
    growth indicator."""
    assert ind.num is not None
    num = table[ind.num].to_numpy(dtype="float64", na_value=np.nan)
    den = (table[ind.den].to_numpy(dtype="float64", na_value=np.nan) if ind.den
           else np.ones(len(table)))
    ok = ~np.isnan(num) & ~np.isnan(den) & (den > 0)
    if rows is not None:
        ok &= rows
        if not ok.any():
            return math.nan
        ratio: Any = num[ok].sum() / (den[ok].sum() if ind.den else 1.0)
    else:
        ratio = np.where(ok, num / np.where(ok, den, 1.0), np.nan)
    if ind.years is not None:
        years = table[ind.years].to_numpy(dtype="float64", na_value=np.nan)
        if rows is not None:
            n = float(np.nanmax(years[ok])) if ok.any() else math.nan
            return ((ratio ** (1.0 / n)) - 1.0) * ind.scale if ratio > 0 else math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ratio > 0, (np.power(ratio, 1.0 / years) - 1.0) * ind.scale,
                            np.nan)
    return ratio * ind.scale


def _change(op: str, start: Any, end: Any) -> Any:
    if op == "diff":
        return end - start
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.asarray(start) > 0, (np.asarray(end) / np.asarray(start) - 1.0)
                        * 100.0, np.nan)


def commune_values(theme: Theme, table: pd.DataFrame) -> pd.DataFrame:
    """Every indicator of ``theme`` per commune of ``table`` (its components)."""
    out = pd.DataFrame(index=table.index)
    for ind in theme.indicators:
        if ind.pooled:
            out[ind.key] = table[ind.key].astype("float64")
        elif ind.of is not None:
            a, b = (out[k].to_numpy(dtype="float64") for k in ind.of)
            out[ind.key] = _change(ind.op, a, b)
        else:
            out[ind.key] = _ratio(ind, table, None)
    return out


def evaluate_group(theme: Theme, ind: ThemeIndicator, table: pd.DataFrame,
                   rows: np.ndarray, settings: Settings | None = None) -> tuple[float, int]:
    """A group's value of ``ind`` over the communes ``rows`` of ``table`` (components
    and commune values) and the number of those communes with a commune value (a
    change: with both its start and end)."""
    s = settings or get_settings()
    rows = np.asarray(rows, dtype=bool)
    if ind.of is not None:
        a, b = (theme.indicator(k) for k in ind.of)
        both = rows & table[a.key].notna().to_numpy() & table[b.key].notna().to_numpy()
        va, _ = evaluate_group(theme, a, table, both, s)
        vb, _ = evaluate_group(theme, b, table, both, s)
        value = float(_change(ind.op, va, vb)) if both.any() else math.nan
        return value, int((both & table[ind.key].notna().to_numpy()).sum())
    n = int((rows & table[ind.key].notna().to_numpy()).sum())
    if ind.pooled:
        if theme.pooled is None:  # pragma: no cover - a declaration error
            raise ValueError(f"theme {theme.key}: {ind.key} is pooled but no pooled rule")
        return float(theme.pooled(theme, ind, table, rows, s)), n
    return float(_ratio(ind, table, rows)), n


# --- the cached national table -------------------------------------------------------------------


#: The entry modules of a theme table's build (make's ``CODE_themes``, :mod:`geo._make`).
CODE_MODULES = ("geo.themes", "geo.cli.themes")


def _inputs(theme: Theme, vintages: Sequence[Vintage], s: Settings) -> list[Path]:
    """What a theme table depends on: its files, the code it runs (every ``geo`` module
    the themes import, make's prerequisites ``CODE_themes``), the catalogue and the
    commune reference."""
    from geo._make import code_files

    code = [PROJECT_ROOT / f for f in code_files(CODE_MODULES)]
    return [*(v.path for v in vintages), theme.module_file, *code, Path(s.catalogue_file),
            s.interim_dir / "communes.parquet"]


def commune_table(theme: Theme, settings: Settings | None = None) -> pd.DataFrame:
    """The theme's national commune table (index ``insee``, every current commune:
    ``nom``, the components, the indicators), cached in ``data/interim``.

    Raises
    ------
    MissingInputError
        No file of the theme is downloaded (the message names the ``pvdgeo fetch``
        command).
    """
    s = settings or get_settings()
    vintages = available_vintages(theme, s)
    if not vintages:
        raise MissingInputError(
            f"theme {theme.key} ({theme.title}): no source file downloaded; run "
            f"`{fetch_command(theme, s)}` (needs internet; see data/sources.toml)")
    cache = table_path(theme, s)
    communes.load_reference(s)  # the reference parquet is an input
    stale = is_stale(cache, _inputs(theme, vintages, s)) or any(
        not (s.interim_dir / name).exists() for name in theme.side_tables)
    if not stale:
        built = [v["dataset"] for v in read_parquet_metadata(cache).get("vintages", [])]
        stale = built != [v.dataset for v in vintages]
    if stale:
        table, meta = build_table(theme, vintages, s)
        write_parquet(table.reset_index(), cache, metadata=meta)
        log.info("wrote %s (%d communes)", cache, len(table))
    table = read_parquet_cached(cache).set_index("insee")
    table.attrs["meta"] = read_parquet_metadata(cache)
    return table


def build_table(theme: Theme, vintages: Sequence[Vintage],
                s: Settings) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The components of ``theme.build`` on every reference commune with the indicator
    values, and the table's metadata."""
    ref = communes.load_reference(s)
    components = theme.build(vintages, s)
    meta_in = dict(components.attrs.get("meta", {}))
    components.attrs = {}
    extra = [c for c in components.columns if c in {i.key for i in theme.indicators}
             and not theme.indicator(c).pooled]
    if extra:  # pragma: no cover - a declaration error
        raise ValueError(f"theme {theme.key}: component columns shadow indicators {extra}")
    table = components.reindex(ref["insee"])
    table.index.name = "insee"
    values = commune_values(theme, table)
    table = pd.concat([ref.set_index("insee")[["nom"]], table.drop(
        columns=[c for c in values.columns if c in table.columns]), values], axis=1)
    meta = {
        "theme": theme.key,
        "title": theme.title,
        "cog_year": s.cog_year,
        "vintages": [{"dataset": v.dataset, "year": v.year, "label": v.label,
                      "vintage": v.vintage} for v in vintages],
        **meta_in,
    }
    return table, meta


@functools.lru_cache(maxsize=32)
def _year_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}_?((?:19|20)\d\d)$")


def year_columns(columns: Sequence[str], prefix: str) -> dict[int, str]:
    """``{year: column}`` of the columns ``<prefix>_<yyyy>`` (normalised names)."""
    pat = _year_pattern(prefix)
    out = {}
    for col in columns:
        m = pat.match(col)
        if m:
            out[int(m.group(1))] = col
    return dict(sorted(out.items()))


def compared_vintages(vintages: Sequence[Vintage], what: str) -> dict[str, Vintage]:
    """The vintages compared by a theme published one file per year: ``{"debut": first,
    "fin": last}`` (only ``fin`` when one file is downloaded: levels, no change)."""
    dated = sorted((v for v in vintages if v.year is not None), key=lambda v: v.year or 0)
    if not dated:
        raise ValueError(f"{what}: the catalogue gives no theme_year to the vintages")
    return {"debut": dated[0], "fin": dated[-1]} if len(dated) > 1 else {"fin": dated[0]}


def with_start_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with an empty ``<x>_debut`` for every ``<x>_fin`` it lacks (one vintage
    or period only: the start indicators and the changes are missing)."""
    for col in [c.removesuffix("_fin") + "_debut" for c in table.columns if c.endswith("_fin")]:
        if col not in table:
            table[col] = np.nan
    return table


def period_pair(years: Collection[int], span: int) -> tuple[int, int]:
    """The years compared: the last one and the one ``span`` years before it (the first
    year when the series is shorter)."""
    if not years:
        raise InputFileError("no year in the source file")
    last = max(years)
    start = last - span if last - span in years else min(years)
    return start, last
