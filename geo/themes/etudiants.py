"""Higher-education enrolments (ministère de l'Enseignement supérieur, atlas régional,
data.enseignementsup-recherche.gouv.fr).

Source
------
*Effectifs d'étudiants inscrits dans les établissements et les formations de
l'enseignement supérieur* (dataset ``fr-esr-atlas_regional-effectifs-d-etudiants-
inscrits``): one row per rentrée, geographic level (``niveau_geographique``: Pays,
Région, Académie, Département, Unité urbaine, Commune), unit (``geo_id``, the commune
code at the commune level), group of programmes or institutions (``regroupement``:
``TOTAL``, ``UNIV``, ``STS``, ``CPGE``...), sector and sex, with ``effectif`` (enrolled
students) and partial counts (``effectifhdccpge``, ``effectif_dut``...). The export is
``;``-separated UTF-8 (field names, or labels such as *Identifiant de l'unité
géographique* and *Nombre total d'étudiants inscrits*).

Mirror layout (``etudiants/atlas_effectifs_etudiants_communes.csv.gz``, written by
:func:`convert`): the commune rows summed over sector and sex: ``code_commune, rentree,
regroupement, effectif``.

Indicators
----------
The last rentrée published and :data:`SPAN` years before it: students enrolled in the
commune's institutions (all programmes, ``TOTAL``), per 10,000 inhabitants (nearest
legal population) and their change. A commune of a covered département that the atlas
does not list has no higher-education enrolment: 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from geo import communes
from geo._convert import _norm
from geo.settings import Settings
from geo.themes._base import (
    Theme,
    ThemeIndicator,
    Vintage,
    departement_coverage,
    iter_published,
    legal_population,
    map_unique,
    numbers,
    pad_code,
    period_pair,
    read_mirror,
    rekey_sum,
    zero_within,
)

__all__ = ["MIRROR_COLUMNS", "SPAN", "THEME", "convert", "read_published"]

log = logging.getLogger(__name__)

SPAN = 5
MIRROR_COLUMNS = ["code_commune", "rentree", "regroupement", "effectif"]
_COLUMNS = {
    "rentree": ["Rentrée universitaire", "Rentrée"],
    "niveau_geographique": ["niveau_geo", "Niveau géographique"],
    "geo_id": ["Identifiant de l'unité géographique", "Identifiant de l’unité géographique"],
    "regroupement": ["Regroupement"],
    "effectif": ["Nombre total d'étudiants inscrits", "Nombre total d’étudiants inscrits"],
}


def read_published(path: str | Path) -> pd.DataFrame:
    """The atlas export as published -> commune rows summed over sector and sex
    (columns :data:`MIRROR_COLUMNS`)."""
    parts = []
    for chunk in iter_published(path, label="MESR atlas régional des effectifs étudiants",
                                columns=_COLUMNS):
        level = map_unique(chunk["niveau_geographique"], _norm)
        part = chunk[level == "commune"]
        parts.append(pd.DataFrame({
            "code_commune": pad_code(part["geo_id"]),
            "rentree": part["rentree"].astype("string").str.strip().str[:4],
            "regroupement": part["regroupement"].astype("string").str.strip(),
            "effectif": numbers(part["effectif"]),
        }))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=MIRROR_COLUMNS)
    if df.empty:
        raise ValueError(f"{path}: no row at the commune level (niveau géographique "
                         "'Commune')")
    out = df.groupby(MIRROR_COLUMNS[:3], dropna=False)["effectif"].sum(min_count=1)
    return out.reset_index()[MIRROR_COLUMNS]


def convert(paths: Sequence[Path], out: Path) -> None:
    """Converter (:mod:`geo._convert`): the published export -> the mirror layout."""
    from geo._convert import _one, _write_csv

    (path,) = _one(paths, "esr_atlas_effectifs")
    _write_csv(read_published(path), out)


def _build(vintages: Sequence[Vintage], s: Settings) -> pd.DataFrame:
    (v,) = vintages
    df = read_mirror(v.path, label="MESR effectifs étudiants (mirror layout)",
                     required=MIRROR_COLUMNS)
    df = df[df["regroupement"].str.upper() == "TOTAL"].copy()
    df["rentree"] = df["rentree"].astype(int)
    df["effectif"] = numbers(df["effectif"])
    a, b = period_pair(set(df["rentree"]), SPAN)
    ref = communes.load_reference(s)
    parts = []
    for when, year in (("debut", a), ("fin", b)):
        agg = rekey_sum(df[df["rentree"] == year], "code_commune", ["effectif"],
                        settings=s).set_index("insee")
        agg = zero_within(agg, ["effectif"], departement_coverage(agg.index.to_series()),
                          ref)
        parts.append(agg.rename(columns={"effectif": f"inscrits_{when}"}))
    table = pd.concat(parts, axis=1)
    pop, pop_year = legal_population(ref, b)
    table["population_fin"] = pop.reindex(table.index)
    table.attrs["meta"] = {
        "debut": f"rentrée {a}", "fin": f"rentrée {b}", "population_year": pop_year,
        "notes": [
            "Étudiants inscrits dans les établissements et formations d'enseignement "
            "supérieur de la commune (toutes formations, secteurs public et privé).",
            "Une commune d'un département couvert absente de l'atlas n'a aucun étudiant "
            "inscrit (0).",
            f"Pour 10 000 habitants : population légale {pop_year}.",
        ],
    }
    return table


THEME = Theme(
    key="etudiants",
    title="Enseignement supérieur",
    source="Ministère de l'Enseignement supérieur et de la Recherche, atlas régional des "
           "effectifs d'étudiants (data.enseignementsup-recherche.gouv.fr)",
    dataset_ids=("esr_atlas_effectifs",),
    indicators=(
        ThemeIndicator("etudiants", "Étudiants inscrits dans la commune", "étudiants", True,
                       num="inscrits_fin", count=True, digits=0),
        ThemeIndicator("etudiants_per_10k", "Étudiants inscrits pour 10 000 habitants",
                       "pour 10 000 habitants", True, num="inscrits_fin",
                       den="population_fin", scale=10_000, digits=0),
        ThemeIndicator("etudiants_debut", "Étudiants inscrits (début de période)",
                       "étudiants", True, num="inscrits_debut", when="debut", count=True,
                       digits=0),
        ThemeIndicator("etudiants_evolution_pct", "Évolution du nombre d'étudiants", "%",
                       True, of=("etudiants_debut", "etudiants"), op="rel", when="periode",
                       signed=True),
    ),
    build=_build,
    headline="etudiants_per_10k",
    missing_note="aucun étudiant inscrit dans la commune à une des dates (évolution non "
                 "calculable), ou commune hors du champ de l'atlas",
)
