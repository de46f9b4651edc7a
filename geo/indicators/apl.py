"""APL (accessibilité potentielle localisée, DREES) of the five health professions: the
national files read and re-keyed to current communes (:func:`apl_by_commune`), and the APL
of a cell as the area-weighted mean of the communes it straddles (:func:`area_weighted`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from geo import communes, sources
from geo._io import is_stale, read_delimited, read_parquet_cached, to_number, write_parquet
from geo.errors import InputFileError, MissingColumnsError
from geo.settings import Settings, get_settings
from geo.vocab import APL_PROFESSIONS, AplProfession

log = logging.getLogger(__package__)  # geo.indicators: log lines keep their logger name


_CODE_COL = "Code commune"
_POP_COL = "Population totale"


def read_apl_file(path: Path, profession: AplProfession) -> pd.DataFrame:
    """One DREES APL file as ``[code, <field>, apl_population]`` (codes as in the file).

    Any separator, encoding and decimal mark are read (``3,5`` as 3.5). Raises
    :class:`InputFileError` for an unreadable or empty file, a file without data rows or
    without one numeric APL value, and :class:`MissingColumnsError` when the code,
    population or APL column is absent; values that are not numbers are counted in a
    warning and left missing.
    """
    df = read_delimited(path, label=f"APL file ({profession.label})")
    candidates = [
        c for c in df.columns
        if c.lower().startswith("apl") and all(f in c.lower() for f in profession.column_has)
    ]
    missing = [c for c in (_CODE_COL, _POP_COL) if c not in df.columns]
    if not candidates:
        missing.append(f"APL column for {profession.label} "
                       f"(containing {', '.join(profession.column_has)})")
    if missing:
        raise MissingColumnsError(f"APL file {path}", missing, list(df.columns))
    if df.empty:
        raise InputFileError(f"APL file {path} has a header but no data rows: no commune "
                             f"has an APL for {profession.label}")
    column = candidates[0]
    out = pd.DataFrame({
        "code": df[_CODE_COL].str.strip().str.zfill(5),
        profession.field: to_number(df[column]).to_numpy(),
        "apl_population": to_number(df[_POP_COL]).to_numpy(),
    })
    text = df[column].fillna("").str.strip()
    unreadable = (out[profession.field].isna().to_numpy()
                  & ~text.isin(["", "NA", "nan"]).to_numpy())
    if out[profession.field].notna().sum() == 0:
        example = f" (e.g. {text[unreadable].iloc[0]!r})" if unreadable.any() else ""
        raise InputFileError(f"APL file {path}: no numeric value in column {column!r}"
                             f"{example}; expected numbers such as 3.5 or 3,5")
    if unreadable.any():
        log.warning("APL file %s: %d value(s) of %r are not numbers (e.g. %r), left missing",
                    path, int(unreadable.sum()), column, text[unreadable].iloc[0])
    bad = out[profession.field] < 0
    if bad.any():
        raise InputFileError(
            f"APL file {path}: {int(bad.sum())} negative value(s) in {column!r} "
            f"(e.g. commune {out.loc[bad, 'code'].iloc[0]}); APL is >= 0"
        )
    return out


def _build(settings: Settings) -> pd.DataFrame:
    frames = []
    for prof in APL_PROFESSIONS:
        raw = read_apl_file(sources.ensure(prof.dataset, settings), prof)
        agg = communes.aggregate_to_current(
            raw, "code", sum_cols=["apl_population"],
            weighted_cols={prof.field: "apl_population"}, settings=settings,
        )
        log.info("APL %s: %d communes with a value, %d current communes from several codes",
                 prof.label, int(agg[prof.field].notna().sum()),
                 int((agg["n_source_codes"] > 1).sum()))
        frames.append(agg.set_index("insee")[[prof.field, "apl_population"]])
    # the population column is the same in the five files: keep the first one's
    table = frames[0].join([f.drop(columns="apl_population") for f in frames[1:]], how="outer")
    return table[[p.field for p in APL_PROFESSIONS] + ["apl_population"]].sort_index() \
        .reset_index()


def apl_by_commune(settings: Settings | None = None) -> pd.DataFrame:
    """APL of the five professions per current commune (see module doc for fields, units).

    Built from the DREES files and cached in ``data/interim/apl_communes.parquet`` (rebuilt
    when older than its inputs or this module). Communes absent from the DREES files are
    absent here; ``apl_mg_sous_dote`` uses ``settings.apl_threshold``.
    """
    s = settings or get_settings()
    cache = s.interim_dir / "apl_communes.parquet"
    inputs = [sources.ensure(p.dataset, s) for p in APL_PROFESSIONS]
    inputs += [Path(__file__), Path(communes.__file__)]
    if is_stale(cache, inputs):
        table = _build(s)
        write_parquet(table, cache, metadata={
            "what": "APL per current commune", "cog_year": s.cog_year,
            "vintages": {p.field: sources.get_dataset(p.dataset, s).vintage
                         for p in APL_PROFESSIONS},
        })
        log.info("wrote %s (%d communes)", cache, len(table))
    table = read_parquet_cached(cache)
    table["apl_mg_sous_dote"] = (table["apl_mg"] < s.apl_threshold).astype("boolean")
    table.loc[table["apl_mg"].isna(), "apl_mg_sous_dote"] = pd.NA
    return table


# --- APL per cell ---------------------------------------------------------------------------


def _below(values: pd.Series, threshold: float) -> pd.Series:
    flag = pd.array(values < threshold, dtype="boolean")
    flag[values.isna().to_numpy()] = pd.NA
    return pd.Series(flag, index=values.index)


def area_weighted(
    pieces: pd.DataFrame, values: pd.DataFrame, columns: Sequence[str], *,
    key: str = "h3", weight: str = "cell_share",
) -> pd.DataFrame:
    """Mean of commune values per cell, weighted by the area share of each commune.

    Parameters
    ----------
    pieces
        Cell x commune table (:func:`geo.h3grid.cell_commune_pieces`) with ``key``,
        ``insee`` and ``weight``.
    values
        Per-commune values with an ``insee`` column.
    columns
        Value columns to average; for each, communes with a missing value are left out
        of that column's weights.

    Returns
    -------
    DataFrame indexed by ``key`` with one column per value column.
    """
    joined = pieces[[key, "insee", weight]].merge(values[["insee", *columns]], on="insee",
                                                  how="left")
    out = pd.DataFrame(index=pd.Index(pieces[key].unique(), name=key))
    for col in columns:
        v = pd.to_numeric(joined[col], errors="coerce")
        w = joined[weight].where(v.notna())
        num = (v * w).groupby(joined[key]).sum(min_count=1)
        den = w.groupby(joined[key]).sum(min_count=1)
        out[col] = (num / den.where(den > 0)).reindex(out.index)
    return out
