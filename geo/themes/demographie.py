"""Natural and migratory balance between censuses (INSEE, *séries historiques du
recensement*, base communale).

Source
------
``base-cc-serie-historique-<yyyy>``: a zip holding the ``;``-separated table (with its
``meta_`` dictionary), one row per commune (``CODGEO``, COG of the vintage + 3 years):
populations at each census (``P<yy>_POP`` for the recent ones, ``D<yy>_POP`` for 1999 and
before), births ``NAIS<aa><bb>`` and deaths ``DECE<aa><bb>`` between the censuses of
years ``aa`` and ``bb`` (``NAIS1420``: 2014 to 2020), housing columns.

Mirror layout (``demographie/serie_historique_<yyyy>_communes.csv.gz``, written by
:func:`convert`): one row per commune and intercensal period: ``code_commune, debut, fin,
population_debut, population_fin, naissances, deces``.

Indicators
----------
For the last two periods of the file (``debut``: e.g. 2009-2014, ``fin``: 2014-2020),
INSEE's decomposition of the population change: the average annual rate of change
(``(P_fin / P_debut) ** (1 / years) - 1``), the part due to the natural balance (births
minus deaths per year over the mean population of the period, ``(P_debut + P_fin) /
2``), the part due to the apparent migratory balance (the difference), birth and death
rates (per thousand inhabitants per year) and the change of each part between the two
periods, in points. Communes merged since are added up; a group's rates come from the
sums over its communes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from geo.settings import Settings
from geo.themes._base import (
    Theme,
    ThemeIndicator,
    Vintage,
    iter_published,
    numbers,
    pad_code,
    read_mirror,
    rekey_sum,
    with_start_columns,
)

__all__ = ["MIRROR_COLUMNS", "THEME", "convert", "read_published"]

log = logging.getLogger(__name__)

MIRROR_COLUMNS = ["code_commune", "debut", "fin", "population_debut", "population_fin",
                  "naissances", "deces"]
_POP = re.compile(r"^[pd](\d\d)_pop$")
_FLOW = re.compile(r"^(nais|dece)(\d\d)(\d\d)$")


def _year(yy: str) -> int:
    """Two-digit census year -> year (``68`` -> 1968, ``20`` -> 2020)."""
    n = int(yy)
    return 1900 + n if n >= 50 else 2000 + n


def read_published(path: str | Path) -> pd.DataFrame:
    """The séries historiques table as published -> one row per commune and period
    (columns :data:`MIRROR_COLUMNS`)."""
    parts = []
    for chunk in iter_published(path, label="INSEE séries historiques du recensement",
                                columns={"CODGEO": ["codgeo"]},
                                keep=lambda c: bool(_POP.match(c) or _FLOW.match(c))):
        pops = {_year(m.group(1)): c for c in chunk.columns if (m := _POP.match(c))}
        periods = sorted({(_year(m.group(2)), _year(m.group(3)))
                          for c in chunk.columns if (m := _FLOW.match(c))})
        if not periods:
            raise ValueError(f"{path}: no NAIS<aa><bb> / DECE<aa><bb> column")
        code = pad_code(chunk["CODGEO"])
        for a, b in periods:
            key = f"{a % 100:02d}{b % 100:02d}"
            if a not in pops or b not in pops:
                raise ValueError(f"{path}: period {a}-{b} has births and deaths but no "
                                 f"population of {a if a not in pops else b}")
            parts.append(pd.DataFrame({
                "code_commune": code, "debut": a, "fin": b,
                "population_debut": numbers(chunk[pops[a]]),
                "population_fin": numbers(chunk[pops[b]]),
                "naissances": numbers(chunk[f"nais{key}"]),
                "deces": numbers(chunk[f"dece{key}"]),
            }))
    out = pd.concat(parts, ignore_index=True)
    return out[MIRROR_COLUMNS].sort_values(["code_commune", "debut"], kind="stable",
                                           ignore_index=True)


def convert(paths: Sequence[Path], out: Path) -> None:
    """Converter (:mod:`geo._convert`): the published zip -> the mirror layout."""
    from geo._convert import _one, _write_csv

    (path,) = _one(paths, "insee_serie_historique")
    _write_csv(read_published(path), out)


_SUMS = ["population_debut", "population_fin", "naissances", "deces"]


def _build(vintages: Sequence[Vintage], s: Settings) -> pd.DataFrame:
    v = vintages[-1]  # the latest vintage holds every period
    df = read_mirror(v.path, label="INSEE séries historiques (mirror layout)",
                     required=MIRROR_COLUMNS)
    for col in _SUMS:
        df[col] = numbers(df[col])
    df["debut"], df["fin"] = df["debut"].astype(int), df["fin"].astype(int)
    periods = sorted({(a, b) for a, b in zip(df["debut"], df["fin"], strict=True)},
                     key=lambda p: p[1])
    chosen = dict(zip(("debut", "fin"), periods[-2:], strict=False)) if len(periods) > 1 \
        else {"fin": periods[-1]}
    parts = []
    for when, (a, b) in chosen.items():
        part = df[(df["debut"] == a) & (df["fin"] == b)]
        agg = rekey_sum(part, "code_commune", _SUMS, settings=s).set_index("insee")
        years = b - a
        frame = pd.DataFrame({
            f"pop_debut_{when}": agg["population_debut"],
            f"pop_fin_{when}": agg["population_fin"],
            f"naissances_{when}": agg["naissances"],
            f"deces_{when}": agg["deces"],
            f"solde_naturel_{when}": agg["naissances"] - agg["deces"],
            # mean population x years: the denominator of the annual rates
            f"pop_annees_{when}": (agg["population_debut"] + agg["population_fin"]) / 2
                                  * years,
            f"annees_{when}": float(years),
        })
        parts.append(frame)
    table = with_start_columns(pd.concat(parts, axis=1))
    label = {w: f"{a}-{b}" for w, (a, b) in chosen.items()}
    table.attrs["meta"] = {
        "debut": label.get("debut", ""), "fin": label["fin"],
        "notes": [
            "Taux de variation annuel moyen de la population décomposé (INSEE) : dû au "
            "solde naturel (naissances moins décès par an, rapportés à la population "
            "moyenne de la période) et au solde apparent des entrées et sorties (la "
            "différence).",
            "Communes fusionnées depuis additionnées ; taux d'un groupe calculés sur les "
            "sommes de ses communes.",
        ],
    }
    return table


def _rates(when: str) -> tuple[ThemeIndicator, ...]:
    sfx = "" if when == "fin" else "_debut"
    tag = "" if when == "fin" else " (période précédente)"
    w: Literal["debut", "fin"] = "fin" if when == "fin" else "debut"
    return (
        ThemeIndicator(f"variation_population_taux_annuel_pct{sfx}", "Variation annuelle "
                       f"moyenne de la population{tag}", "% par an", True,
                       num=f"pop_fin_{when}", den=f"pop_debut_{when}",
                       years=f"annees_{when}", scale=100, when=w, digits=2, signed=True),
        ThemeIndicator(f"solde_naturel_taux_annuel_pct{sfx}", "Variation annuelle due au "
                       f"solde naturel{tag}", "% par an", True, num=f"solde_naturel_{when}",
                       den=f"pop_annees_{when}", scale=100, when=w, digits=2, signed=True),
        ThemeIndicator(f"solde_migratoire_taux_annuel_pct{sfx}", "Variation annuelle due au "
                       f"solde migratoire apparent{tag}", "% par an", True,
                       of=(f"solde_naturel_taux_annuel_pct{sfx}",
                           f"variation_population_taux_annuel_pct{sfx}"),
                       op="diff", when=w, digits=2, signed=True),
    )


THEME = Theme(
    key="demographie",
    title="Soldes naturel et migratoire",
    source="INSEE, séries historiques du recensement de la population (naissances et "
           "décès entre deux recensements)",
    dataset_ids=("insee_serie_historique_2020",),
    indicators=(
        *_rates("fin"),
        ThemeIndicator("natalite_pour_mille", "Taux de natalité", "‰ par an", None,
                       num="naissances_fin", den="pop_annees_fin", scale=1000),
        ThemeIndicator("mortalite_pour_mille", "Taux de mortalité", "‰ par an", None,
                       num="deces_fin", den="pop_annees_fin", scale=1000),
        *_rates("debut"),
        ThemeIndicator("solde_naturel_evolution_pts", "Évolution de la variation due au "
                       "solde naturel", "points", True,
                       of=("solde_naturel_taux_annuel_pct_debut",
                           "solde_naturel_taux_annuel_pct"),
                       op="diff", when="periode", digits=2, signed=True),
        ThemeIndicator("solde_migratoire_evolution_pts", "Évolution de la variation due au "
                       "solde migratoire apparent", "points", True,
                       of=("solde_migratoire_taux_annuel_pct_debut",
                           "solde_migratoire_taux_annuel_pct"),
                       op="diff", when="periode", digits=2, signed=True),
    ),
    build=_build,
    headline="solde_migratoire_taux_annuel_pct",
)
