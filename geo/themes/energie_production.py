"""Renewable electricity production (ODRÉ, *registre national des installations de
production et de stockage d'électricité*, odre.opendatasoft.com).

Source
------
The register aggregated at 31 December of a year (dataset ``registre-national-
installation-production-stockage-electricite-agrege-3112<yy>``): one row per
installation of 36 kW or more, and per commune one row aggregating the smaller ones
(*Agrégation des installations de moins de 36KW*, with ``nbinstallations``). Fields used:
``codeinseecommune``, ``filiere`` (``Solaire``, ``Eolien``, ``Hydraulique``,
``Bioénergies``, ``Energies Marines``, ``Géothermie``, ``Thermique non renouvelable``,
``Nucléaire``, ``Stockage non hydraulique``, ``Autre``) or ``codefiliere``,
``puismaxinstallee`` (kW), ``nbinstallations``, ``energieannuelleglissanteproduite``
(kWh over the last twelve months) and ``regime``. The Opendatasoft export is
``;``-separated UTF-8 with the field names (older snapshots: camel case,
``puisMaxInstallee``, matched the same).

Mirror layout (``energie/registre_installations_<yyyy>_communes.csv.gz``, written by
:func:`convert`): ``code_commune, filiere, installations, puissance_kw,
energie_produite_kwh`` per commune and sector (:data:`FILIERES` keys, ``autre`` for the
non-renewable ones and storage).

Indicators
----------
For the first and last snapshots downloaded: installed renewable power (MW, per 10,000
inhabitants), its change, installations per 10,000 inhabitants, the solar and wind
shares of the power and the renewable production of the last twelve months per
inhabitant (MWh). Communes of a covered département absent from the register have no
installation (0). Production is kept only when the national ratio of production to
power (hours at full power) is plausible (:data:`PLAUSIBLE_HOURS`): it tells a kWh
column from a MWh one.
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
    compared_vintages,
    departement_coverage,
    iter_published,
    legal_population,
    map_unique,
    numbers,
    pad_code,
    read_mirror,
    rekey_sum,
    with_start_columns,
    zero_within,
)

__all__ = ["FILIERES", "MIRROR_COLUMNS", "PLAUSIBLE_HOURS", "THEME", "convert",
           "filiere_key", "read_published"]

log = logging.getLogger(__name__)

#: Renewable sectors: key -> (normalised label prefix, register code).
FILIERES = {
    "solaire": ("solaire", "SOLAI"),
    "eolien": ("eolien", "EOLIE"),
    "hydraulique": ("hydraulique", "HYDLQ"),
    "bioenergies": ("bioenergie", "BIOEN"),
    "energies_marines": ("energies_marines", "MARIN"),
    "geothermie": ("geothermie", "GEOTH"),
}
#: Hours at full power a year of renewable production can plausibly amount to nationally.
PLAUSIBLE_HOURS = (200.0, 8760.0)
MIRROR_COLUMNS = ["code_commune", "filiere", "installations", "puissance_kw",
                  "energie_produite_kwh"]


def filiere_key(label: object, code: object = None) -> str:
    """The sector key of a register row (``autre`` when not renewable)."""
    text = _norm(label) if isinstance(label, str) else ""
    code_text = str(code).strip().upper() if isinstance(code, str) else ""
    for key, (prefix, reg_code) in FILIERES.items():
        if text.startswith(prefix) or code_text == reg_code:
            return key
    return "autre"


def _keys(labels: pd.Series, codes: pd.Series) -> pd.Series:
    """:func:`filiere_key` of every row, from its label, else its code."""
    by_label = map_unique(labels, filiere_key)
    by_code = map_unique(codes, lambda c: filiere_key(None, c))
    return by_label.where(by_label.notna() & (by_label != "autre"), by_code).fillna("autre")


def read_published(path: str | Path) -> pd.DataFrame:
    """A register snapshot as published -> sums per commune and sector (columns
    :data:`MIRROR_COLUMNS`). Rows without a commune code are left out (logged), and so
    are those whose ``regime`` is not *En service* when the column says so."""
    parts = []
    dropped = {"sans code commune": 0, "hors service": 0}
    for chunk in iter_published(
        path, label="ODRÉ registre national des installations",
        columns={"codeinseecommune": ["code_insee_commune", "Code INSEE commune"],
                 "puismaxinstallee": ["Puissance maximale installée"]},
        optional={"filiere": ["Filière"], "codefiliere": ["Code filière"],
                  "nbinstallations": ["Nombre d'installations"],
                  "energieannuelleglissanteproduite": [], "regime": ["Régime"]},
    ):
        if "filiere" not in chunk and "codefiliere" not in chunk:
            raise ValueError(f"{path}: neither 'filiere' nor 'codefiliere' column")
        if "regime" in chunk:
            state = map_unique(chunk["regime"], _norm)
            off = state.notna() & (state != "en_service")
            dropped["hors service"] += int(off.sum())
            chunk = chunk[~off]
        code = pad_code(chunk["codeinseecommune"])
        dropped["sans code commune"] += int(code.isna().sum())
        labels = chunk.get("filiere", pd.Series(None, index=chunk.index))
        codes = chunk.get("codefiliere", pd.Series(None, index=chunk.index))
        n = numbers(chunk["nbinstallations"]) if "nbinstallations" in chunk else \
            pd.Series(1.0, index=chunk.index)
        energy = numbers(chunk["energieannuelleglissanteproduite"]) \
            if "energieannuelleglissanteproduite" in chunk else pd.Series(np.nan,
                                                                           index=chunk.index)
        frame = pd.DataFrame({
            "code_commune": code,
            "filiere": _keys(labels, codes),
            "installations": n.fillna(1.0),  # a row is at least one installation
            "puissance_kw": numbers(chunk["puismaxinstallee"]),
            "energie_produite_kwh": energy,
        }).dropna(subset=["code_commune"])
        parts.append(frame.groupby(["code_commune", "filiere"]).sum(min_count=1))
    for why, count in dropped.items():
        if count:
            log.warning("ODRÉ register %s: %d row(s) left out (%s)", path, count, why)
    out = pd.concat(parts).groupby(level=[0, 1]).sum(min_count=1).reset_index()
    return out[MIRROR_COLUMNS]


def convert(paths: Sequence[Path], out: Path) -> None:
    """Converter (:mod:`geo._convert`): a published snapshot -> the mirror layout."""
    from geo._convert import _one, _write_csv

    (path,) = _one(paths, "odre_registre_installations")
    _write_csv(read_published(path), out)


_SUMS = ["installations", "puissance_kw", "energie_produite_kwh"]


def _snapshot(v: Vintage, when: str, ref: pd.DataFrame, s: Settings,
              notes: list[str]) -> pd.DataFrame:
    df = read_mirror(v.path, label=f"ODRÉ registre {v.year} (mirror layout)",
                     required=MIRROR_COLUMNS)
    for col in _SUMS:
        df[col] = numbers(df[col])
    enr = df[df["filiere"].isin(list(FILIERES))]
    agg = rekey_sum(enr, "code_commune", _SUMS, by=["filiere"], settings=s)
    total = agg.groupby("insee")[_SUMS].sum(min_count=1)
    out = pd.DataFrame({
        f"installations_enr_{when}": total["installations"],
        f"puissance_enr_kw_{when}": total["puissance_kw"],
        f"energie_enr_kwh_{when}": total["energie_produite_kwh"],
    })
    for key in ("solaire", "eolien"):
        part = agg[agg["filiere"] == key].set_index("insee")["puissance_kw"]
        out[f"puissance_{key}_kw_{when}"] = part.reindex(out.index)
    power, energy = total["puissance_kw"].sum(), total["energie_produite_kwh"].sum()
    hours = energy / power if power > 0 else float("nan")
    counted = list(out.columns)
    if not PLAUSIBLE_HOURS[0] <= hours <= PLAUSIBLE_HOURS[1]:
        log.warning("ODRÉ register %s: %.0f kWh of renewable production per kW installed "
                    "nationally is implausible (expected %g-%g h): production left out",
                    v.year, hours, *PLAUSIBLE_HOURS)
        notes.append(f"Production {v.year} non retenue : {hours:.0f} heures à pleine "
                     "puissance au niveau national, hors des valeurs plausibles (unité ?).")
        out[f"energie_enr_kwh_{when}"] = np.nan
        counted.remove(f"energie_enr_kwh_{when}")
    covered = departement_coverage(df["code_commune"].map(communes.current_code_map(s)))
    out = zero_within(out, counted, covered, ref)
    pop, pop_year = legal_population(ref, int(v.year or 0))
    out[f"population_{when}"] = pop.reindex(out.index)
    notes.append(f"Registre au 31/12/{v.year} ; population légale {pop_year}.")
    return out


def _build(vintages: Sequence[Vintage], s: Settings) -> pd.DataFrame:
    chosen = compared_vintages(vintages, "ODRÉ register")
    ref = communes.load_reference(s)
    notes = ["Filières renouvelables : solaire, éolien, hydraulique (y compris stations de "
             "pompage), bioénergies, énergies marines, géothermie ; installations en "
             "service ; les installations de moins de 36 kW sont agrégées par commune dans "
             "le registre."]
    table = with_start_columns(pd.concat(
        [_snapshot(v, w, ref, s, notes) for w, v in chosen.items()], axis=1))
    debut = chosen.get("debut")
    table.attrs["meta"] = {"debut": "" if debut is None else f"31/12/{debut.year}",
                           "fin": f"31/12/{chosen['fin'].year}", "notes": notes}
    return table


THEME = Theme(
    key="energie_production",
    title="Production d'électricité renouvelable",
    source="ODRÉ (RTE, Enedis, EDF SEI, entreprises locales de distribution), registre "
           "national des installations de production et de stockage d'électricité",
    dataset_ids=("odre_registre_2020", "odre_registre_2025"),
    indicators=(
        ThemeIndicator("puissance_enr_mw", "Puissance renouvelable installée", "MW", True,
                       num="puissance_enr_kw_fin", scale=0.001, count=True),
        ThemeIndicator("puissance_enr_mw_per_10k", "Puissance renouvelable installée pour "
                       "10 000 habitants", "MW pour 10 000 habitants", True,
                       num="puissance_enr_kw_fin", den="population_fin", scale=10.0,
                       digits=2),
        ThemeIndicator("puissance_enr_mw_debut", "Puissance renouvelable installée (début "
                       "de période)", "MW", True, num="puissance_enr_kw_debut",
                       scale=0.001, when="debut", count=True),
        ThemeIndicator("puissance_enr_evolution_pct", "Évolution de la puissance "
                       "renouvelable installée", "%", True,
                       of=("puissance_enr_mw_debut", "puissance_enr_mw"), op="rel",
                       when="periode", signed=True, digits=0),
        ThemeIndicator("installations_enr_per_10k", "Installations renouvelables pour "
                       "10 000 habitants", "pour 10 000 habitants", True,
                       num="installations_enr_fin", den="population_fin", scale=10_000,
                       digits=0),
        ThemeIndicator("puissance_solaire_share", "Part du solaire dans la puissance "
                       "renouvelable", "part", None, num="puissance_solaire_kw_fin",
                       den="puissance_enr_kw_fin", percent=True, digits=0),
        ThemeIndicator("puissance_eolien_share", "Part de l'éolien dans la puissance "
                       "renouvelable", "part", None, num="puissance_eolien_kw_fin",
                       den="puissance_enr_kw_fin", percent=True, digits=0),
        ThemeIndicator("production_enr_mwh_par_habitant", "Production renouvelable des "
                       "douze derniers mois par habitant", "MWh par habitant", True,
                       num="energie_enr_kwh_fin", den="population_fin", scale=0.001,
                       digits=2),
    ),
    build=_build,
    headline="puissance_enr_mw_per_10k",
    missing_note="aucune installation renouvelable dans la commune à une des dates "
                 "(évolution ou parts non calculables), ou production non publiée",
)
