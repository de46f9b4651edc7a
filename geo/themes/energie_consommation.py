"""Electricity and gas consumption per commune (Agence ORE, opendata.agenceore.fr).

Source
------
*Consommation annuelle d'électricité et gaz par commune* (dataset
``consommation-annuelle-d-electricite-et-gaz-par-commune``, data-fair): one row per
operator, year, energy (``filiere``: *Electricité*, *Gaz*), consumer category, sector
(``code_grand_secteur``: ``RESIDENTIEL``, ``TERTIAIRE``, ``INDUSTRIE``,
``AGRICULTURE``, ``INCONNU``) and NAF sector, with ``conso_totale_mwh`` (MWh delivered)
and ``nb_sites``; 2011 to the last year (Paris, Lyon and Marseille by arrondissement
before 2018). Older exports name the columns ``conso`` and ``pdl``; exports with labels
*Conso totale (MWh)*, *Nb sites*, *Code Commune*, *CODE GRAND SECTEUR*. Small cells are
withheld (informations commercialement sensibles): the row exists, its consumption is
empty or zero.

Mirror layout (``energie/ore_consommation_communes.csv.gz``, written by
:func:`convert`): ``code_commune, annee, filiere, secteur, conso_mwh, sites, lignes,
lignes_sans_conso`` (sums per commune, year, energy and sector).

Indicators
----------
The last year and :data:`SPAN` years before: electricity consumption per inhabitant (all
sectors, residential) and its change, network gas per inhabitant. A commune whose
consumption of an energy is entirely withheld (every row empty or zero) is missing, never
zero; a commune without gas rows has no network gas delivered or published: missing.
Delivered energy only: self-consumed solar electricity, heating oil and wood are not in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from geo import communes
from geo._convert import _norm
from geo.settings import Settings
from geo.themes._base import (
    Theme,
    ThemeIndicator,
    Vintage,
    iter_published,
    legal_population,
    map_unique,
    numbers,
    pad_code,
    period_pair,
    read_mirror,
    rekey_sum,
)

__all__ = ["MIRROR_COLUMNS", "SPAN", "THEME", "convert", "read_published"]

log = logging.getLogger(__name__)

SPAN = 5
MIRROR_COLUMNS = ["code_commune", "annee", "filiere", "secteur", "conso_mwh", "sites",
                  "lignes", "lignes_sans_conso"]


def read_published(path: str | Path) -> pd.DataFrame:
    """The Agence ORE commune file as published -> sums per commune, year, energy and
    sector (columns :data:`MIRROR_COLUMNS`)."""
    parts = []
    for chunk in iter_published(
        path, label="Agence ORE consommation d'électricité et de gaz par commune",
        columns={"annee": ["Année"], "filiere": ["Filière"], "code_commune": ["Code Commune"],
                 "conso_totale_mwh": ["conso", "Conso totale (MWh)", "Consommation (MWh)"]},
        optional={"code_grand_secteur": ["CODE GRAND SECTEUR", "Code grand secteur"],
                  "nb_sites": ["pdl", "Nb sites", "Nombre de points de livraison"]},
    ):
        conso = numbers(chunk["conso_totale_mwh"])
        frame = pd.DataFrame({
            "code_commune": pad_code(chunk["code_commune"]),
            "annee": chunk["annee"].astype("string").str.strip().str[:4],
            "filiere": map_unique(chunk["filiere"], _norm),
            "secteur": (map_unique(chunk["code_grand_secteur"], _norm)
                        if "code_grand_secteur" in chunk else "inconnu"),
            "conso_mwh": conso,
            "sites": numbers(chunk["nb_sites"]) if "nb_sites" in chunk else np.nan,
            "lignes": 1,
            "lignes_sans_conso": (conso.isna() | (conso <= 0)).astype(int),
        })
        frame["secteur"] = frame["secteur"].fillna("inconnu")
        parts.append(frame.dropna(subset=["code_commune", "annee", "filiere"])
                     .groupby(MIRROR_COLUMNS[:4]).sum(min_count=1))
    if not parts:
        raise ValueError(f"{path}: no row")
    out = pd.concat(parts).groupby(level=[0, 1, 2, 3]).sum(min_count=1).reset_index()
    return out[MIRROR_COLUMNS]


def convert(paths: Sequence[Path], out: Path) -> None:
    """Converter (:mod:`geo._convert`): the published file -> the mirror layout."""
    from geo._convert import _one, _write_csv

    (path,) = _one(paths, "ore_consommation_communes")
    _write_csv(read_published(path), out)


_SUMS = ["conso_mwh", "lignes", "lignes_sans_conso"]


def _consumption(df: pd.DataFrame, s: Settings) -> pd.Series:
    """Consumption per current commune; missing where every row is withheld."""
    if df.empty:
        return pd.Series(dtype="float64")
    agg = rekey_sum(df, "code_commune", _SUMS, settings=s).set_index("insee")
    withheld = agg["lignes_sans_conso"] >= agg["lignes"]
    return agg["conso_mwh"].where(~withheld & (agg["conso_mwh"] > 0))


def _build(vintages: Sequence[Vintage], s: Settings) -> pd.DataFrame:
    (v,) = vintages
    df = read_mirror(v.path, label="Agence ORE consommation (mirror layout)",
                     required=MIRROR_COLUMNS)
    for col in _SUMS:
        df[col] = numbers(df[col])
    df["annee"] = df["annee"].astype(int)
    elec = df[df["filiere"] == "electricite"]
    a, b = period_pair(set(elec["annee"]), SPAN)
    ref = communes.load_reference(s)
    parts = {}
    for when, year in (("debut", a), ("fin", b)):
        e = elec[elec["annee"] == year]
        gas = df[(df["filiere"] == "gaz") & (df["annee"] == year)]
        parts[f"conso_elec_mwh_{when}"] = _consumption(e, s)
        parts[f"conso_elec_res_mwh_{when}"] = _consumption(e[e["secteur"] == "residentiel"], s)
        parts[f"conso_gaz_mwh_{when}"] = _consumption(gas, s)
        pop, _ = legal_population(ref, year)
        parts[f"population_{when}"] = pop
    table = pd.DataFrame(parts).reindex(ref["insee"])
    _, pop_a = legal_population(ref, a)
    _, pop_b = legal_population(ref, b)
    table.attrs["meta"] = {
        "debut": str(a), "fin": str(b), "population_years": [pop_a, pop_b],
        "notes": [
            "Énergie livrée par les réseaux publics de distribution (tous opérateurs, "
            "catégories et secteurs), en MWh ; l'autoconsommation, le fioul et le bois n'y "
            "sont pas.",
            "Consommation entièrement couverte par le secret (informations commercialement "
            "sensibles) : valeur absente, jamais zéro ; commune sans ligne gaz : pas de gaz "
            "de réseau publié.",
            f"Par habitant : populations légales {pop_a} et {pop_b}.",
        ],
    }
    return table


THEME = Theme(
    key="energie_consommation",
    title="Consommation d'électricité et de gaz",
    source="Agence ORE (gestionnaires des réseaux de distribution), consommation annuelle "
           "d'électricité et de gaz par commune",
    dataset_ids=("ore_consommation_communes",),
    indicators=(
        ThemeIndicator("conso_electricite_mwh_par_habitant", "Électricité consommée par "
                       "habitant", "MWh par habitant", False, num="conso_elec_mwh_fin",
                       den="population_fin", digits=2),
        ThemeIndicator("conso_electricite_mwh_par_habitant_debut", "Électricité consommée "
                       "par habitant (début de période)", "MWh par habitant", False,
                       num="conso_elec_mwh_debut", den="population_debut", when="debut",
                       digits=2),
        ThemeIndicator("conso_electricite_evolution_pct", "Évolution de l'électricité "
                       "consommée par habitant", "%", False,
                       of=("conso_electricite_mwh_par_habitant_debut",
                           "conso_electricite_mwh_par_habitant"),
                       op="rel", when="periode", signed=True),
        ThemeIndicator("conso_electricite_residentiel_mwh_par_habitant", "Électricité "
                       "consommée par les logements, par habitant", "MWh par habitant",
                       False, num="conso_elec_res_mwh_fin", den="population_fin", digits=2),
        ThemeIndicator("conso_gaz_mwh_par_habitant", "Gaz de réseau consommé par habitant "
                       "(communes desservies)", "MWh par habitant", False,
                       num="conso_gaz_mwh_fin", den="population_fin", digits=2),
    ),
    build=_build,
    headline="conso_electricite_mwh_par_habitant",
    missing_note="consommation couverte par le secret statistique, ou commune sans gaz de "
                 "réseau (pour le gaz)",
)
