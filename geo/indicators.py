"""Commune and cell indicators: APL (DREES) per current commune.

APL (accessibilité potentielle localisée, DREES, millésime 2021) measures access to
five health professions per commune. :func:`apl_by_commune` reads the five national files,
re-keys them to current communes (COG 2026) and returns one row per commune with the
ARCHITECTURE.md field names:

=====================  ============================================================
``apl_mg``             general practitioners aged 65 or less: consultations per
                       inhabitant per year (standardised by age)
``apl_dentistes``      dentists aged 65 or less: FTE per 100,000 inhabitants
``apl_infirmiers``     nurses aged 65 or less: FTE per 100,000 inhabitants
``apl_kine``           physiotherapists aged 65 or less: FTE per 100,000 inhabitants
``apl_sages_femmes``   midwives: FTE per 100,000 women
``apl_mg_sous_dote``   ``apl_mg < settings.apl_threshold`` (2.5, the under-served
                       threshold of the Data Territoria study); missing when
                       ``apl_mg`` is missing
``apl_population``     population the APL file gives for the commune (2019)
=====================  ============================================================

The GP indicator is the DREES headline one (practitioners aged 65 or less), the same age
bound as the other four professions. APL 2021 is on the 2021-2022 geography: codes of
communes merged since (and the municipal arrondissements of Paris, Lyon and Marseille)
are mapped with :func:`geo.communes.aggregate_to_current`, APL averaged **weighted by the
APL file's population column**. Communes the DREES left without a value keep a missing
value (never zero).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from geo import communes, sources
from geo._io import atomic_path
from geo.errors import InputFileError, MissingColumnsError
from geo.settings import Settings, get_settings

__all__ = ["APL_PROFESSIONS", "AplProfession", "apl_by_commune", "read_apl_file"]

log = logging.getLogger(__name__)

_CODE_COL = "Code commune"
_POP_COL = "Population totale"


@dataclass(frozen=True)
class AplProfession:
    """One APL indicator: output field, dataset id, French label and unit."""

    field: str
    dataset: str
    label: str
    unit: str
    #: Lower-cased fragments that identify the value column in the DREES file.
    column_has: tuple[str, ...]


APL_PROFESSIONS: tuple[AplProfession, ...] = (
    AplProfession("apl_mg", "apl_mg", "médecins généralistes",
                  "consultations par habitant et par an", ("médecins généralistes", "65 ans")),
    AplProfession("apl_dentistes", "apl_dentistes", "chirurgiens-dentistes",
                  "ETP pour 100 000 habitants", ("dentistes",)),
    AplProfession("apl_infirmiers", "apl_infirmiers", "infirmiers",
                  "ETP pour 100 000 habitants", ("infirmi",)),
    AplProfession("apl_kine", "apl_kine", "masseurs-kinésithérapeutes",
                  "ETP pour 100 000 habitants", ("kinésithérapeutes",)),
    AplProfession("apl_sages_femmes", "apl_sages_femmes", "sages-femmes",
                  "ETP pour 100 000 femmes", ("sages-femmes",)),
)


def read_apl_file(path: Path, profession: AplProfession) -> pd.DataFrame:
    """One DREES APL file as ``[code, <field>, apl_population]`` (codes as in the file).

    Raises :class:`InputFileError` for an unreadable file and
    :class:`MissingColumnsError` when the code, population or APL column is absent.
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["", "NA", "nan"])
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as exc:
        raise InputFileError(f"cannot read APL file {path}: {exc}") from None
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
    out = pd.DataFrame({
        "code": df[_CODE_COL].str.strip().str.zfill(5),
        profession.field: pd.to_numeric(df[candidates[0]], errors="coerce"),
        "apl_population": pd.to_numeric(df[_POP_COL], errors="coerce"),
    })
    bad = out[profession.field] < 0
    if bad.any():
        raise InputFileError(
            f"APL file {path}: {int(bad.sum())} negative value(s) in {candidates[0]!r} "
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
    if not cache.exists() or cache.stat().st_mtime < max(p.stat().st_mtime for p in inputs):
        table = _build(s)
        with atomic_path(cache) as tmp:
            table.to_parquet(tmp, index=False)
        log.info("wrote %s (%d communes)", cache, len(table))
    table = _read_cached(str(cache), cache.stat().st_mtime).copy()
    table["apl_mg_sous_dote"] = (table["apl_mg"] < s.apl_threshold).astype("boolean")
    table.loc[table["apl_mg"].isna(), "apl_mg_sous_dote"] = pd.NA
    return table


@lru_cache(maxsize=2)
def _read_cached(path: str, mtime: float) -> pd.DataFrame:
    return pd.read_parquet(path)
