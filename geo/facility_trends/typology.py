"""Facility trends by typology (petites / moyennes / grandes villes, PVD, ACV, France):
the table (:func:`typology_trends`), the harmonised types table, the charts and the
section of the typology page (:func:`render_typology_section`,
:func:`write_typology_trends`).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo import _report as report
from geo import _svg as svg
from geo import communes
from geo._io import atomic_path, write_text_atomic
from geo.errors import GeoError
from geo.facility_trends.keys import KEY_SUBCATEGORIES
from geo.facility_trends.table import STATUS_LABELS, _num, facility_trends_by_commune
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.facility_trends: log lines keep their logger name


#: What users are told about the chain / independent split (French, shown in the portrait
#: and the typology page).
SNAPSHOT_NOTE = (
    "La part des commerces appartenant à une chaîne reste une photographie : elle vient des "
    "noms et enseignes d'OpenStreetMap (ou de la BPE géolocalisée la plus récente), dont "
    "l'historique n'est pas exploité ici. Suivre son évolution demanderait les "
    "établissements du répertoire SIRENE (INSEE) avec leurs dates de création et de "
    "fermeture et leur enseigne, ou l'historique complet d'OpenStreetMap."
)


# --- statistics by typology ------------------------------------------------------------------


def typology_trends(settings: Settings | None = None, *,
                    table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The change of every key by group and compared pair of vintages.

    Groups are :func:`geo.communes.typology_groups` (petite ville, ville moyenne, grande
    ville, PVD, ACV, France: current communes, population 2023), over the communes both
    vintages cover. Columns: ``groupe, periode, debut, fin, niveau, cle, libelle, statut,
    communes, equipements_debut, equipements_fin`` (types present in both vintages),
    ``evolution``, ``evolution_relative`` (0.05 = +5 %), ``population_debut``,
    ``population_fin`` (legal populations used), ``pour_10k_debut``, ``pour_10k_fin``,
    ``evolution_pour_10k``, ``communes_avec`` (at least one in ``debut``),
    ``communes_en_baisse`` and ``part_communes_en_baisse`` (fewer in ``fin``, among
    them), ``communes_perte_dernier`` and ``part_communes_perte_dernier`` (none left),
    ``communes_gain_premier`` (none in ``debut``, some in ``fin``), ``hors_champ_debut``
    and ``hors_champ_fin`` (equipments of types present in one vintage only).
    """
    s = settings or get_settings()
    data = facility_trends_by_commune(s) if table is None else table
    meta = data.attrs.get("meta", {})
    ref = communes.load_reference(s)
    masks = {k: v.to_numpy() for k, v in communes.typology_groups(ref).items()}
    data = data.set_index("insee").reindex(ref["insee"])
    rows = []
    for pair in meta["pairs"]:
        a, b = (int(x) for x in pair.split("_"))
        pops = (data[f"population_bpe_{a}"], data[f"population_bpe_{b}"])
        for key, info in meta["keys"].items():
            status = meta["statuses"][pair].get(key)
            if status is None:
                continue
            cols = _KeyColumns.of(data, key, a, b, pops)
            for name, mask in masks.items():
                row = {"groupe": name, "periode": f"{a}-{b}", "debut": a, "fin": b,
                       "niveau": info["level"], "cle": key, "libelle": info["label"],
                       "statut": STATUS_LABELS[status]}
                row.update(cols.group(mask, comparable=status != "non comparable"))
                rows.append(row)
    return pd.DataFrame(rows, columns=TYPOLOGY_COLUMNS)


#: Columns of :func:`typology_trends`, in order.
TYPOLOGY_COLUMNS = [
    "groupe", "periode", "debut", "fin", "niveau", "cle", "libelle", "statut", "communes",
    "equipements_debut", "equipements_fin", "evolution", "evolution_relative",
    "population_debut", "population_fin", "pour_10k_debut", "pour_10k_fin",
    "evolution_pour_10k", "communes_avec", "communes_en_baisse", "part_communes_en_baisse",
    "communes_perte_dernier", "part_communes_perte_dernier", "communes_gain_premier",
    "hors_champ_debut", "hors_champ_fin",
]


@dataclass(frozen=True)
class _KeyColumns:
    """One key's columns for one pair, as float arrays over the reference communes."""

    full_a: np.ndarray
    full_b: np.ndarray
    base: np.ndarray
    end: np.ndarray
    pop_a: np.ndarray
    pop_b: np.ndarray

    @classmethod
    def of(cls, data: pd.DataFrame, key: str, a: int, b: int,
           pops: tuple[pd.Series, pd.Series]) -> _KeyColumns:
        base = _num(data[f"n_{key}_base_{a}_{b}"]).to_numpy()
        return cls(full_a=_num(data[f"n_{key}_{a}"]).to_numpy(),
                   full_b=_num(data[f"n_{key}_{b}"]).to_numpy(), base=base,
                   end=base + _num(data[f"n_{key}_change_{a}_{b}"]).to_numpy(),
                   pop_a=_num(pops[0]).to_numpy(), pop_b=_num(pops[1]).to_numpy())

    def group(self, mask: np.ndarray, *, comparable: bool) -> dict[str, Any]:
        """The figures of :func:`typology_trends` over the communes of ``mask`` that both
        vintages cover (per 10,000 inhabitants: those with both populations)."""
        sel = mask & ~np.isnan(self.full_a) & ~np.isnan(self.full_b)
        with_pop = sel & (self.pop_a > 0) & (self.pop_b > 0)
        nan = float("nan")
        pa, pb = float(self.pop_a[with_pop].sum()), float(self.pop_b[with_pop].sum())
        out: dict[str, Any] = {"communes": int(sel.sum()), "population_debut": pa,
                               "population_fin": pb}
        full_a, full_b = float(self.full_a[sel].sum()), float(self.full_b[sel].sum())
        if not comparable:
            out.update(dict.fromkeys(TYPOLOGY_COLUMNS[9:], nan))
            out.update(communes=int(sel.sum()), population_debut=pa, population_fin=pb,
                       hors_champ_debut=full_a, hors_champ_fin=full_b)
            return out
        base, end = self.base[sel], self.end[sel]
        n_a, n_b = float(base.sum()), float(end.sum())
        has = base > 0
        n_has = int(has.sum())
        lost, down = int((has & (end == 0)).sum()), int((has & (end < base)).sum())
        d_a = float(self.base[with_pop].sum()) / pa * 10_000 if pa else nan
        d_b = float(self.end[with_pop].sum()) / pb * 10_000 if pb else nan
        out.update({
            "equipements_debut": n_a, "equipements_fin": n_b, "evolution": n_b - n_a,
            "evolution_relative": n_b / n_a - 1 if n_a else nan,
            "pour_10k_debut": d_a, "pour_10k_fin": d_b, "evolution_pour_10k": d_b - d_a,
            "communes_avec": n_has, "communes_en_baisse": down,
            "part_communes_en_baisse": down / n_has if n_has else nan,
            "communes_perte_dernier": lost,
            "part_communes_perte_dernier": lost / n_has if n_has else nan,
            "communes_gain_premier": int(((base == 0) & (end > 0)).sum()),
            "hors_champ_debut": full_a - n_a, "hors_champ_fin": full_b - n_b,
        })
        return out


_TREND_TABLE = "typologie_evolution_equipements.csv"
_TYPES_TABLE = "typologie_evolution_equipements_types.csv"


def _headline(trends: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The pair of the charts (first -> last vintage) and its rows."""
    first, last = int(trends["debut"].min()), int(trends["fin"].max())
    pair = f"{first}-{last}"
    return pair, trends[trends["periode"] == pair]


def typology_charts(trends: pd.DataFrame) -> dict[str, str]:
    """SVG charts of the trend by group for the first -> last pair: relative change of
    the key subcategories, share of communes that lost their last one."""
    pair, rows = _headline(trends)
    keys = [k for k in KEY_SUBCATEGORIES
            if k in set(rows["cle"]) and (rows.loc[rows["cle"] == k, "statut"]
                                          != STATUS_LABELS["non comparable"]).all()]
    labels = [str(rows.loc[rows["cle"] == k, "libelle"].iloc[0]) for k in keys]
    groups = list(dict.fromkeys(rows["groupe"]))

    def series(col: str) -> dict[str, list[float | None]]:
        out = {}
        for g in groups:
            part = rows[rows["groupe"] == g].set_index("cle")
            out[g] = [svg.to_float(part.at[k, col]) for k in keys]
        return out

    short = [lab.split(",")[0] for lab in labels]

    def pct(v: float) -> str:
        return svg.format_fr(round(v, 9) + 0.0, 1, percent=True)  # no "-0,0 %" tick
    return {
        "evolution_equipements": svg.grouped_bar_chart(
            short, series("evolution_relative"), fmt=pct, width=900,
            title=f"Évolution du nombre d'équipements {pair} (à nomenclature constante)"),
        "perte_dernier_equipement": svg.grouped_bar_chart(
            short, series("part_communes_perte_dernier"), fmt=pct, width=900,
            title=f"Part des communes qui avaient l'équipement et n'en ont plus aucun, {pair}"),
    }


def types_table(meta: Mapping[str, Any]) -> pd.DataFrame:
    """The harmonised types as applied: codes per vintage, national totals, why a type
    starts or ends (the documented mapping, one row per type)."""
    years = [int(v["year"]) for v in meta["vintages"]]
    rows = []
    for t in meta["types"]:
        row = {"type": t["type"], "sous_categorie": t["subcategory"],
               "premier_millesime": t["first"], "dernier_millesime": t["last"],
               "debut": t["starts"], "fin": t["ends"]}
        for y in years:
            row[f"codes_{y}"] = "+".join(t["codes"].get(str(y), []))
            row[f"equipements_{y}"] = meta["national_totals"][t["type"]].get(str(y))
        rows.append(row)
    return pd.DataFrame(rows)


def render_typology_section(trends: pd.DataFrame, meta: Mapping[str, Any],
                            charts: Mapping[str, str]) -> str:
    """The French HTML section of the typology page: charts, tables, method, notes."""
    pair, rows = _headline(trends)
    shown = ["commerces_alimentaire", *KEY_SUBCATEGORIES]
    part = rows[rows["cle"].isin(shown)].copy()
    order = {k: i for i, k in enumerate(shown)}
    part = part.sort_values(by="cle", key=lambda c: c.map(order), kind="stable")
    part["colonne"] = part["libelle"].str.split(",").str[0]
    pct = lambda v: svg.format_fr(v, 1, percent=True, signed=True)  # noqa: E731
    share = lambda v: svg.format_fr(v, 1, percent=True)  # noqa: E731
    vint = ", ".join(f"BPE {v['year']} ({escape(v['source'])})" for v in meta["vintages"])
    pops = ", ".join(f"BPE {y} : population légale {p}"
                     for y, p in meta["population_years"].items())
    years = [int(v["year"]) for v in meta["vintages"]]
    types = types_table(meta)
    one = types[(types["premier_millesime"] != min(years))
                | (types["dernier_millesime"] != max(years))]
    one_rows = []
    for _, r in one.iterrows():
        counts = " ; ".join(f"{report.fmt_count(r[f'equipements_{y}'])} ({y})" for y in years
                            if not svg.is_missing(r[f"equipements_{y}"]))
        why = " ; ".join(x for x in (
            f"début : {r['debut']}" if r["debut"] else "",
            f"fin : {r['fin']}" if r["fin"] else "") if x)
        sub = meta["keys"].get(r["sous_categorie"], {}).get("label", r["sous_categorie"])
        one_rows.append([escape(str(r["type"])), escape(str(sub)),
                         f"{r['premier_millesime']}–{r['dernier_millesime']}", escape(why),
                         counts])
    parts = [
        f'<section id="evolution-equipements"><h2>Évolution des équipements {pair} '
        "(BPE)</h2>",
        f"<figure>{charts['evolution_equipements']}</figure>",
        f"<figure>{charts['perte_dernier_equipement']}</figure>",
        "<h3>Évolution du nombre d'équipements (à nomenclature constante)</h3>",
        report.pivot(part, "colonne", "evolution_relative", pct),
        "<h3>Part des communes qui avaient l'équipement et n'en ont plus aucun "
        "(« dernier commerce »)</h3>",
        report.pivot(part, "colonne", "part_communes_perte_dernier", share),
        "<h3>Part des communes équipées dont le nombre a baissé</h3>",
        report.pivot(part, "colonne", "part_communes_en_baisse", share),
        "<h3>Équipements pour 10 000 habitants, évolution</h3>",
        report.pivot(part, "colonne", "evolution_pour_10k",
                     lambda v: svg.format_fr(v, 2, signed=True)),
        f"<p class=\"note\">Millésimes : {vint}. Nomenclatures rapprochées par la table de "
        "passage data/bpe_passage.toml (codes renumérotés, scindés ou fusionnés réunis en un "
        "même type) ; un type d'équipement présent dans un seul millésime (créé, supprimé ou "
        "redéfini) est décompté à part et jamais compté comme une ouverture ou une "
        "fermeture. Communes au COG 2026 (communes fusionnées additionnées). Pour 10 000 "
        f"habitants : {escape(pops)} (population légale la plus proche disponible ; aucune "
        "population légale antérieure à 2016 dans les données). « Dernier commerce » : "
        "communes qui avaient au moins un équipement du type au premier millésime et "
        "aucun au second, rapportées aux communes qui en avaient. Toutes les catégories, "
        "groupes et sous-catégories : typologie_evolution_equipements.csv ; types et codes "
        "par millésime : typologie_evolution_equipements_types.csv.</p>",
        "<h3>Types présents dans un seul millésime (non comptés comme évolution)</h3>",
        report.table(["Type (codes TYPEQU)", "Sous-catégorie", "Millésimes", "Motif",
                      "Équipements"], one_rows, num_cols=[4]),
        f'<p class="warn">{escape(SNAPSHOT_NOTE)}</p>',
        "</section>",
    ]
    return "\n".join(parts)


def write_typology_trends(out_dir: Path, *, settings: Settings | None = None
                          ) -> tuple[list[Path], str | None]:
    """Write the trend tables (``typologie_evolution_equipements.csv``, the types table)
    and charts (``typologie_<chart>.svg``) into ``out_dir``; returns the paths and the HTML
    section for the typology page (None, and nothing written, when the trend cannot be
    built: the reason is logged)."""
    s = settings or get_settings()
    try:
        data = facility_trends_by_commune(s)
        trends = typology_trends(s, table=data)
    except GeoError as exc:
        log.warning("no facility trends by typology: %s", exc)
        return [], None
    meta = data.attrs["meta"]
    out = Path(out_dir)
    paths = [_write_csv(trends, out / _TREND_TABLE),
             _write_csv(types_table(meta), out / _TYPES_TABLE)]
    charts = typology_charts(trends)
    for name, chart in charts.items():
        path = out / f"typologie_{name}.svg"
        write_text_atomic(path, '<?xml version="1.0" encoding="utf-8"?>\n' + chart + "\n")
        paths.append(path)
    return paths, render_typology_section(trends, meta, charts)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL, float_format="%.6g")
    return path
