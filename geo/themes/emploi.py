"""Private-sector jobs and their change (Urssaf, open.urssaf.fr).

Source
------
*Nombre d'établissements employeurs et effectifs salariés du secteur privé, par commune x
APE* (dataset ``etablissements-et-effectifs-salaries-au-niveau-commune-x-ape-last``),
one row per commune and APE code, one column per year: ``nombre_d_etablissements_<yyyy>``
and ``effectifs_salaries_<yyyy>`` (2006 to the last year published), with
``code_commune``, ``grand_secteur_d_activite`` (``GS1 Industrie``...), the NA17/38/88
sectors and the APE code; the export is ``;``-separated UTF-8. Field: employers of the
private sector, régime général, outside agriculture, outside Mayotte; yearly average
headcounts of salaried employees.

Mirror layout (``emploi/urssaf_effectifs_salaries_communes.csv.gz``, written by
:func:`convert`): ``code_commune, grand_secteur, annee, etablissements,
effectifs_salaries``, one row per commune, sector and year (sums over the APE codes).

Indicators
----------
The last year published (``fin``) and :data:`SPAN` years before it (``debut``): salaried
jobs (level, per 10,000 inhabitants with the nearest legal population), establishments,
the change of jobs (per cent) and the share of industry (``GS1``) and its change in
points. Communes of a département the source covers that it does not list have no
private employer: 0 jobs. Mayotte is outside the source: missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from geo import communes
from geo.settings import Settings
from geo.themes._base import (
    Theme,
    ThemeIndicator,
    Vintage,
    departement_coverage,
    iter_published,
    legal_population,
    numbers,
    pad_code,
    period_pair,
    read_mirror,
    rekey_sum,
    year_columns,
    zero_within,
)

__all__ = ["MIRROR_COLUMNS", "SPAN", "THEME", "convert", "read_published"]

log = logging.getLogger(__name__)

#: Years between the two vintages compared.
SPAN = 10
MIRROR_COLUMNS = ["code_commune", "grand_secteur", "annee", "etablissements",
                  "effectifs_salaries"]
_ETAB, _EFF = "nombre_d_etablissements", "effectifs_salaries"


def read_published(path: str | Path) -> pd.DataFrame:
    """The Urssaf commune x APE file as published -> sums per commune, sector and year
    (columns :data:`MIRROR_COLUMNS`; empty cells are missing, not zero)."""
    parts = []
    for chunk in iter_published(
        path, label="Urssaf effectifs salariés par commune x APE",
        columns={"code_commune": ["Code commune"],
                 "grand_secteur": ["grand_secteur_d_activite", "Grand secteur d'activité"]},
        keep=lambda c: c.startswith((f"{_ETAB}_", f"{_EFF}_")),
    ):
        years = sorted(set(year_columns(chunk.columns, _ETAB)) |
                       set(year_columns(chunk.columns, _EFF)))
        if not years:
            raise ValueError(f"{path}: no '{_EFF}_<year>' column (expected the wide "
                             "Urssaf layout)")
        chunk["code_commune"] = pad_code(chunk["code_commune"])
        values = chunk[[c for c in chunk.columns if c.startswith((_ETAB, _EFF))]].apply(numbers)
        values[["code_commune", "grand_secteur"]] = chunk[["code_commune", "grand_secteur"]]
        parts.append(values.groupby(["code_commune", "grand_secteur"], dropna=False)
                     .sum(min_count=1))
    wide = pd.concat(parts).groupby(level=[0, 1], dropna=False).sum(min_count=1)
    rows = []
    etab, eff = year_columns(wide.columns, _ETAB), year_columns(wide.columns, _EFF)
    for year in sorted(set(etab) | set(eff)):
        frame = pd.DataFrame({
            "etablissements": wide[etab[year]] if year in etab else float("nan"),
            "effectifs_salaries": wide[eff[year]] if year in eff else float("nan"),
        })
        frame = frame.dropna(how="all").reset_index()
        frame.insert(2, "annee", year)
        rows.append(frame)
    out = pd.concat(rows, ignore_index=True)
    out = out[out["code_commune"].notna()]
    return out[MIRROR_COLUMNS].sort_values(["code_commune", "grand_secteur", "annee"],
                                           kind="stable", ignore_index=True)


def convert(paths: Sequence[Path], out: Path) -> None:
    """Converter (:mod:`geo._convert`): the published file -> the mirror layout."""
    from geo._convert import _one, _write_csv

    (path,) = _one(paths, "urssaf_effectifs_communes")
    _write_csv(read_published(path), out)


def _build(vintages: Sequence[Vintage], s: Settings) -> pd.DataFrame:
    (v,) = vintages
    df = read_mirror(v.path, label="Urssaf effectifs (mirror layout)",
                     required=MIRROR_COLUMNS)
    df["annee"] = df["annee"].astype(int)
    for col in ("etablissements", "effectifs_salaries"):
        df[col] = numbers(df[col])
    a, b = period_pair(set(df.loc[df["effectifs_salaries"].notna(), "annee"]), SPAN)
    df["industrie"] = df["grand_secteur"].fillna("").str.strip().str.upper().str.startswith(
        ("GS1", "INDUSTRIE"))
    ref = communes.load_reference(s)
    tables = {}
    for when, year in (("debut", a), ("fin", b)):
        part = df[df["annee"] == year].copy()
        part["effectifs_industrie"] = part["effectifs_salaries"].where(part["industrie"], 0.0)
        agg = rekey_sum(part, "code_commune",
                        ["etablissements", "effectifs_salaries", "effectifs_industrie"],
                        settings=s).set_index("insee")
        covered = departement_coverage(agg.index.to_series())
        agg = zero_within(agg, list(agg.columns), covered, ref)
        tables[when] = agg.add_suffix(f"_{when}")
    out = pd.concat(tables.values(), axis=1)
    pop, pop_year = legal_population(ref, b)
    out["population_fin"] = pop.reindex(out.index)
    out.attrs["meta"] = {
        "debut": str(a), "fin": str(b), "population_year": pop_year,
        "notes": [
            f"Effectifs salariés moyens annuels du secteur privé (régime général, hors "
            f"agriculture) {a} et {b} ; industrie : grand secteur GS1.",
            f"Pour 10 000 habitants : population légale {pop_year}.",
            "Une commune d'un département couvert sans établissement employeur compte 0 "
            "emploi ; Mayotte est hors du champ de l'Urssaf.",
        ],
    }
    return out


_EVOL = ("emplois_prives_debut", "emplois_prives")

THEME = Theme(
    key="emploi",
    title="Emploi salarié privé",
    source="Urssaf, établissements employeurs et effectifs salariés du secteur privé par "
           "commune (open.urssaf.fr)",
    dataset_ids=("urssaf_effectifs_communes",),
    indicators=(
        ThemeIndicator("emplois_prives", "Emplois salariés privés", "emplois", True,
                       num="effectifs_salaries_fin", count=True, digits=0),
        ThemeIndicator("emplois_prives_per_10k", "Emplois salariés privés pour 10 000 "
                       "habitants", "pour 10 000 habitants", True,
                       num="effectifs_salaries_fin", den="population_fin", scale=10_000,
                       digits=0),
        ThemeIndicator("emplois_prives_debut", "Emplois salariés privés (début de période)",
                       "emplois", True, num="effectifs_salaries_debut", when="debut",
                       count=True, digits=0),
        ThemeIndicator("emplois_prives_evolution_pct", "Évolution des emplois salariés "
                       "privés", "%", True, of=_EVOL, op="rel", when="periode",
                       signed=True),
        ThemeIndicator("etablissements_employeurs", "Établissements employeurs privés",
                       "établissements", True, num="etablissements_fin", count=True,
                       digits=0),
        ThemeIndicator("emplois_industrie_share", "Part de l'industrie dans l'emploi "
                       "salarié privé", "part", None, num="effectifs_industrie_fin",
                       den="effectifs_salaries_fin", percent=True),
        ThemeIndicator("emplois_industrie_share_debut", "Part de l'industrie (début de "
                       "période)", "part", None, num="effectifs_industrie_debut",
                       den="effectifs_salaries_debut", when="debut", percent=True),
        ThemeIndicator("emplois_industrie_share_evolution_pts", "Évolution de la part de "
                       "l'industrie", "points de %", None,
                       of=("emplois_industrie_share_debut", "emplois_industrie_share"),
                       op="diff", when="periode", percent=True, signed=True),
    ),
    build=_build,
    headline="emplois_prives_evolution_pct",
)
