"""Commuting: modes and the share of residents working in their commune (INSEE,
recensement, *mobilités professionnelles*).

Source
------
The *fichier détail* of home-to-work commuting of a census vintage (MOBPRO): one row per
group of employed residents aged 15 or more, weighted by ``IPONDI``, with ``COMMUNE``
(commune of residence; Paris, Lyon and Marseille as whole communes, their arrondissement
in ``ARM``), ``DCLT`` (commune or arrondissement of work) and ``TRANS`` (main mode: 1 no
travel, 2 walking, 3 cycling, 4 powered two-wheeler, 5 car, van or truck, 6 public
transport). Published as a zip holding ``FD_MOBPRO_<yyyy>.csv`` (``;``-separated, with
its ``varmod`` dictionary) up to RP 2020, as Parquet (``RP<yyyy>_mobpro.parquet``) since.

Mirror layout (``mobilite/mobpro_<yyyy>_flux_communes.csv.gz``, written by
:func:`convert`): the weighted flows ``commune_residence, commune_travail, trans,
actifs`` (sum of ``IPONDI``, rounded to 1e-4).

Indicators
----------
Per vintage (the first and last downloaded: RP 2017 and 2022, five years apart, with no
survey year in common), over the employed residents of the commune: the share working in
their commune of residence (both codes on the current COG, so a resident of a commune
merged since into his commune of work counts as working there) and the share of each
main mode; changes in points. A group's share is its employed residents in the category
over all its employed residents.
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
    compared_vintages,
    iter_published,
    map_unique,
    numbers,
    pad_code,
    read_mirror,
    with_start_columns,
)

__all__ = ["MIRROR_COLUMNS", "MODES", "THEME", "convert", "read_published"]

log = logging.getLogger(__name__)

#: ``TRANS`` codes of the census (RP 2015 onwards) -> mode key.
MODES = {"1": "sans_transport", "2": "marche", "3": "velo", "4": "deux_roues_motorises",
         "5": "voiture", "6": "transports_commun"}
MIRROR_COLUMNS = ["commune_residence", "commune_travail", "trans", "actifs"]


def read_published(path: str | Path) -> pd.DataFrame:
    """A MOBPRO file as published (zip with the CSV, or Parquet) -> weighted flows
    (columns :data:`MIRROR_COLUMNS`)."""
    parts = []
    for chunk in iter_published(path, label="INSEE mobilités professionnelles (MOBPRO)",
                                columns={"COMMUNE": [], "DCLT": [], "TRANS": [],
                                         "IPONDI": []}, chunksize=1_000_000):
        frame = pd.DataFrame({
            "commune_residence": pad_code(chunk["COMMUNE"]).astype("category"),
            "commune_travail": pad_code(chunk["DCLT"]).astype("category"),
            "trans": map_unique(chunk["TRANS"], lambda v: v.strip().removesuffix(".0"))
                     .astype("category"),
            "actifs": numbers(chunk["IPONDI"]),
        })
        flows = frame.groupby(["commune_residence", "commune_travail", "trans"],
                              observed=True, dropna=False)["actifs"].sum()
        flows.index = flows.index.set_levels([lev.astype(object) for lev in flows.index.levels])
        parts.append(flows)
    if not parts:
        raise ValueError(f"{path}: no row")
    flows = pd.concat(parts).groupby(level=[0, 1, 2], dropna=False).sum().reset_index()
    flows["actifs"] = flows["actifs"].round(4)  # sums of weights: 1e-4 person is plenty
    unknown = sorted(set(flows["trans"].dropna()) - set(MODES))
    if unknown:
        log.warning("MOBPRO %s: TRANS values %s are no mode of the RP 2015+ nomenclature "
                    "(counted in the employed residents, in no mode)", path, unknown)
    return flows[MIRROR_COLUMNS].sort_values(MIRROR_COLUMNS[:3], kind="stable",
                                             ignore_index=True)


def convert(paths: Sequence[Path], out: Path) -> None:
    """Converter (:mod:`geo._convert`): a published vintage -> the mirror layout."""
    from geo._convert import _one, _write_csv

    (path,) = _one(paths, "insee_mobpro_flux")
    _write_csv(read_published(path), out)


def _vintage(v: Vintage, when: str, s: Settings) -> pd.DataFrame:
    df = read_mirror(v.path, label=f"MOBPRO {v.year} (mirror layout)",
                     required=MIRROR_COLUMNS)
    df["actifs"] = numbers(df["actifs"])
    mapping = communes.current_code_map(s)
    home = df["commune_residence"].str.strip().map(mapping)
    if home.isna().any():
        log.warning("MOBPRO %s: %.0f employed residents of communes matching no current "
                    "commune left out (e.g. %s)", v.year, df.loc[home.isna(), "actifs"].sum(),
                    ", ".join(df.loc[home.isna(), "commune_residence"].unique()[:5]))
    work = df["commune_travail"].str.strip().map(mapping)
    df = df.assign(insee=home, same=work.eq(home)).dropna(subset=["insee"])
    grouped = df.groupby("insee")
    out = pd.DataFrame({f"actifs_{when}": grouped["actifs"].sum(),
                        f"actifs_commune_{when}": df[df["same"]].groupby("insee")["actifs"]
                        .sum()})
    for code, mode in MODES.items():
        out[f"actifs_{mode}_{when}"] = df[df["trans"] == code].groupby("insee")["actifs"].sum()
    counted = [c for c in out.columns if c != f"actifs_{when}"]
    out[counted] = out[counted].fillna(0.0)  # residents listed, none in the category
    return out


def _build(vintages: Sequence[Vintage], s: Settings) -> pd.DataFrame:
    chosen = compared_vintages(vintages, "MOBPRO")
    table = with_start_columns(pd.concat([_vintage(v, when, s) for when, v in chosen.items()],
                                         axis=1))
    debut = chosen.get("debut")
    table.attrs["meta"] = {
        "debut": "" if debut is None else f"RP {debut.year}", "fin": f"RP {chosen['fin'].year}",
        "notes": [
            "Actifs occupés de 15 ans ou plus résidant dans la commune (pondérés, IPONDI), "
            "par mode de transport principal et lieu de travail.",
            "Lieu de travail et résidence au COG 2026 : travailler dans une commune "
            "fusionnée depuis avec celle de résidence compte comme travailler dans sa "
            "commune.",
            "Millésimes du recensement distants de cinq ans (aucune enquête annuelle en "
            "commun).",
        ],
    }
    return table


def _share(key: str, label: str, num: str, when: str, higher: bool | None) -> ThemeIndicator:
    suffix = "" if when == "fin" else "_debut"
    return ThemeIndicator(f"{key}{suffix}", label + ("" if when == "fin" else
                                                    " (début de période)"),
                          "part", higher, num=f"{num}_{when}", den=f"actifs_{when}",
                          when="fin" if when == "fin" else "debut", percent=True)


def _change(key: str, label: str, higher: bool | None) -> ThemeIndicator:
    return ThemeIndicator(f"{key}_evolution_pts", label, "points de %", higher,
                          of=(f"{key}_debut", key), op="diff", when="periode", percent=True,
                          signed=True)


_COMMUNE = "actifs_travaillant_commune_share"
_CAR = "navetteurs_voiture_share"

THEME = Theme(
    key="mobilite",
    title="Déplacements domicile-travail",
    source="INSEE, recensement de la population, mobilités professionnelles (fichier "
           "détail)",
    dataset_ids=("insee_mobpro_2017", "insee_mobpro_2022"),
    indicators=(
        _share(_COMMUNE, "Part des actifs travaillant dans leur commune", "actifs_commune",
               "fin", None),
        _share(_COMMUNE, "Part des actifs travaillant dans leur commune", "actifs_commune",
               "debut", None),
        _change(_COMMUNE, "Évolution de la part des actifs travaillant dans leur commune",
                None),
        _share(_CAR, "Part des actifs allant travailler en voiture", "actifs_voiture", "fin",
               False),
        _share(_CAR, "Part des actifs allant travailler en voiture", "actifs_voiture",
               "debut", False),
        _change(_CAR, "Évolution de la part des actifs allant travailler en voiture", False),
        _share("navetteurs_transports_commun_share", "Part des actifs allant travailler en "
               "transports en commun", "actifs_transports_commun", "fin", True),
        _share("navetteurs_velo_share", "Part des actifs allant travailler à vélo",
               "actifs_velo", "fin", True),
        _share("navetteurs_marche_share", "Part des actifs allant travailler à pied",
               "actifs_marche", "fin", True),
    ),
    build=_build,
    headline=_COMMUNE,
)
