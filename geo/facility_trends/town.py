"""The town's section of its portrait: the town, its peers and France over the vintages
(:func:`town_trend`, :class:`TownTrend`), rendered as HTML with a chart
(:func:`render_portrait_section`) and written as CSV (:func:`write_town_trend`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo import _report as report
from geo import _svg as svg
from geo._insee import departement_of
from geo.errors import GeoError
from geo.facility_trends.keys import KEY_SUBCATEGORIES, PORTRAIT_CHART_KEYS
from geo.facility_trends.table import STATUS_LABELS, _num, _per_10k, facility_trends_by_commune
from geo.facility_trends.typology import SNAPSHOT_NOTE, _write_csv
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.facility_trends: log lines keep their logger name


# --- the town's section of its portrait ------------------------------------------------------


@dataclass
class TownTrend:
    """The change of a town's offer, with its peers and France."""

    insee: str
    nom: str
    years: list[int]
    #: one row per key and pair: cle, libelle, niveau, periode, statut, commune_debut,
    #: commune_fin (types present in both vintages), commune_hors_champ_debut,
    #: commune_hors_champ_fin (types of one vintage only), commune_evolution,
    #: commune_evolution_pour_10k, commune_perte_dernier, n_pairs,
    #: pairs_evolution_relative (total over the peers), pairs_mediane_evolution_pour_10k,
    #: pairs_avec, pairs_perte_dernier, france_evolution_relative, france_part_perte_dernier
    table: pd.DataFrame
    #: chart key -> {series name -> values per year} (per 10,000 inhabitants, chained)
    series: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def town_trend(insee: str, peers: Iterable[str], *, settings: Settings | None = None
               ) -> TownTrend | None:
    """The town's trend against its peers and France, from the national commune table;
    None (with a warning) when the trend cannot be built."""
    s = settings or get_settings()
    try:
        data = facility_trends_by_commune(s)
    except GeoError as exc:
        log.warning("facility trends unavailable for the portrait: %s", exc)
        return None
    meta = data.attrs["meta"]
    data.attrs = {}  # pandas deep-copies attrs on every operation: a large meta costs seconds
    table = data.set_index("insee")
    if insee not in table.index:
        return None
    peer_codes = [c for c in peers if c in table.index and c != insee]
    years = [int(v["year"]) for v in meta["vintages"]]
    keys = ["commerces", "commerces_alimentaire", *KEY_SUBCATEGORIES, "sante", "services",
            "education"]
    keys = [k for k in keys if k in meta["keys"]]
    rows = []
    for pair in meta["pairs"]:
        a, b = (int(x) for x in pair.split("_"))
        for key in keys:
            status = meta["statuses"][pair].get(key)
            if status is None:
                continue
            rows.append(_town_row(table, insee, peer_codes, key, meta["keys"][key], status,
                                  a, b))
    series = {k: _chained_series(table, insee, peer_codes, k, years)
              for k in PORTRAIT_CHART_KEYS if k in meta["keys"]}
    return TownTrend(insee=insee, nom=str(table.at[insee, "nom"]), years=years,
                     table=pd.DataFrame(rows), series=series, meta=meta)


def _town_row(table: pd.DataFrame, insee: str, peers: Sequence[str], key: str,
              info: Mapping[str, Any], status: str, a: int, b: int) -> dict[str, Any]:
    """The town's, its peers' and France's figures for one key and pair."""
    suffix = f"{a}_{b}"
    row: dict[str, Any] = {"cle": key, "libelle": info["label"], "niveau": info["level"],
                           "periode": f"{a}-{b}", "statut": STATUS_LABELS[status]}
    base = _num(table[f"n_{key}_base_{suffix}"])
    end = base + _num(table[f"n_{key}_change_{suffix}"])
    per10k = _num(table[f"n_{key}_per_10k_change_{suffix}"])
    b0, e0 = svg.to_float(base[insee]), svg.to_float(end[insee])
    full_a = svg.to_float(table.at[insee, f"n_{key}_{a}"])
    full_b = svg.to_float(table.at[insee, f"n_{key}_{b}"])
    row["commune_debut"], row["commune_fin"] = b0, e0
    row["commune_hors_champ_debut"] = None if full_a is None else full_a - (b0 or 0.0)
    row["commune_hors_champ_fin"] = None if full_b is None else full_b - (e0 or 0.0)
    row["commune_evolution"] = None if b0 is None or e0 is None else e0 - b0
    row["commune_evolution_pour_10k"] = svg.to_float(per10k[insee])
    row["commune_perte_dernier"] = None if b0 is None or b0 <= 0 else bool(e0 == 0)
    pb, pe = base.reindex(peers), end.reindex(peers)
    pp = per10k.reindex(peers).dropna()
    has = pb > 0
    row["n_pairs"] = int(pb.notna().sum())
    row["pairs_evolution_relative"] = (float(pe.sum()) / float(pb.sum()) - 1
                                       if pb.sum() > 0 else np.nan)
    row["pairs_mediane_evolution_pour_10k"] = float(pp.median()) if len(pp) else np.nan
    row["pairs_avec"] = int(has.sum())
    row["pairs_perte_dernier"] = int((has & (pe == 0)).sum())
    ok = base.notna()
    nb, ne = float(base[ok].sum()), float(end[ok].sum())
    row["france_evolution_relative"] = ne / nb - 1 if nb else np.nan
    fh = base[ok] > 0
    row["france_part_perte_dernier"] = (float((fh & (end[ok] == 0)).sum() / fh.sum())
                                        if fh.any() else np.nan)
    return row


def _chained_series(table: pd.DataFrame, insee: str, peers: Sequence[str], key: str,
                    years: Sequence[int]) -> dict[str, list[float | None]]:
    """Per 10,000 inhabitants over the vintages at constant scope, chained: the first
    value is the density of the first pair's common types, each next one adds the per-10k
    change of the consecutive pair (types present in both). Town, peers' median, France
    (totals over the communes each pair covers)."""
    consecutive = list(itertools.pairwise(years))
    a0, b0 = consecutive[0]
    rows = table.reindex([insee, *peers])
    level = _num(_per_10k(rows[f"n_{key}_base_{a0}_{b0}"], _num(rows[f"population_bpe_{a0}"])))
    per = {years[0]: level}
    nat_level: float | None = None
    nat = []
    for a, b in consecutive:
        per[b] = per[a] + _num(rows[f"n_{key}_per_10k_change_{a}_{b}"])
        base = _num(table[f"n_{key}_base_{a}_{b}"])
        end = base + _num(table[f"n_{key}_change_{a}_{b}"])
        pa, pb = _num(table[f"population_bpe_{a}"]), _num(table[f"population_bpe_{b}"])
        ok = base.notna() & (pa > 0) & (pb > 0)
        da = float(base[ok].sum() / pa[ok].sum() * 10_000) if ok.any() else np.nan
        db = float(end[ok].sum() / pb[ok].sum() * 10_000) if ok.any() else np.nan
        if nat_level is None:
            nat_level = da
            nat.append(da)
        nat_level = nat_level + (db - da)
        nat.append(nat_level)
    frame = pd.DataFrame(per)
    return {
        "commune": [svg.to_float(frame.at[insee, y]) for y in years],
        "pairs": [svg.to_float(frame.loc[list(peers), y].median()) if peers else None
                  for y in years],
        "france": [svg.to_float(v) for v in nat],
    }


def render_portrait_section(trend: TownTrend) -> str:
    """The portrait's French HTML section: chart over vintages, table, method notes."""
    meta = trend.meta
    first, last = trend.years[0], trend.years[-1]
    charts = []
    for key, series in trend.series.items():
        label = meta["keys"][key]["label"]
        charts.append(svg.line_chart(
            trend.years,
            {trend.nom: series["commune"], "Médiane des pairs": series["pairs"],
             "France": series["france"]},
            title=f"{label}, pour 10 000 habitants",
            fmt=lambda v: svg.format_fr(v, 1), width=460, height=260))
    pair = f"{first}-{last}"
    rows = []
    part = trend.table[trend.table["periode"] == pair]
    if part["commune_debut"].isna().all():
        dep = departement_of(trend.insee)
        missing = [str(v["year"]) for v in meta["vintages"]
                   if dep not in meta["covered_departements"][str(v["year"])]]
        return (f'<section id="evolution-equipements"><h2>Évolution de l\'offre '
                f"d'équipements {pair}</h2><p class=\"nd\">La BPE {', '.join(missing)} ne "
                f"couvre pas le département {escape(dep)} : pas d'évolution mesurable pour "
                f"cette commune.</p><p class=\"warn\">{escape(SNAPSHOT_NOTE)}</p></section>")
    for r in part.itertuples():
        lost = ("oui" if r.commune_perte_dernier else "non") \
            if r.commune_perte_dernier is not None else "–"
        peers = (f"{r.pairs_perte_dernier} sur {r.pairs_avec}" if r.pairs_avec else "–")
        label = escape(str(r.libelle))
        if r.niveau != "sous_categorie":
            label = f"<b>{label}</b>"
        status = escape(str(r.statut))
        outside = [f"{report.fmt_count(n)} en {y}" for n, y in
                   ((r.commune_hors_champ_debut, first), (r.commune_hors_champ_fin, last))
                   if not svg.is_missing(n) and n]
        if outside:
            status += f'<br><span class="note">hors champ : {", ".join(outside)}</span>'
        rows.append([
            label,
            f"{report.fmt_count(r.commune_debut)} → {report.fmt_count(r.commune_fin)}",
            svg.format_fr(r.commune_evolution, 0, signed=True),
            svg.format_fr(r.commune_evolution_pour_10k, 1, signed=True),
            lost,
            svg.format_fr(r.pairs_evolution_relative, 1, percent=True, signed=True),
            peers,
            svg.format_fr(r.france_evolution_relative, 1, percent=True, signed=True),
            svg.format_fr(r.france_part_perte_dernier, 1, percent=True),
            status,
        ])
    pops = ", ".join(f"{y} : population légale {p}" for y, p in meta["population_years"].items())
    vint = ", ".join(f"BPE {v['year']}" for v in meta["vintages"])
    figures = "".join(f"<figure>{c}</figure>" for c in charts)
    return (
        f'<section id="evolution-equipements"><h2>Évolution de l\'offre d\'équipements '
        f"{pair}</h2>"
        f"<p>Nombre d'équipements de la Base permanente des équipements (INSEE) : {vint}, "
        "comparés à nomenclature constante (mêmes types d'équipements aux deux dates) ; "
        "pairs : les communes comparables ci-dessus (évolution de leur total) ; France : "
        "toutes les communes couvertes par les deux millésimes.</p>"
        f'<div style="display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));'
        f'gap:.6rem">{figures}</div>'
        + report.table(
            ["Équipement", f"Commune {first} → {last}", "Évolution",
             "Évol. pour 10 000 hab.", "Plus aucun", "Pairs : évolution",
             "Pairs ayant perdu le dernier", "France : évolution",
             "France : communes ayant perdu le dernier", "Comparaison"],
            rows, num_cols=[1, 2, 3, 5, 7, 8])
        + "<p class=\"note\">Évolution calculée sur les types d'équipements présents dans "
        "les deux millésimes (table de passage data/bpe_passage.toml : codes renumérotés, "
        "scindés ou fusionnés réunis ; un type présent dans un seul millésime n'est compté "
        "ni comme ouverture ni comme fermeture, « partiel » le signale). « Plus aucun » : la "
        "commune avait au moins un équipement du type et n'en a plus aucun. Pour 10 000 "
        f"habitants : {escape(pops)} (population légale disponible la plus proche). Courbes : "
        "densité du premier millésime puis évolutions à champ constant ajoutées.</p>"
        f'<p class="warn">{escape(SNAPSHOT_NOTE)}</p></section>'
    )


def write_town_trend(trend: TownTrend, path: Path) -> Path:
    """The town's trend table as CSV (``portrait_evolution_equipements.csv``)."""
    table = trend.table.copy()
    table.insert(0, "insee", trend.insee)
    return _write_csv(table, path)
