"""The portrait of one town (:func:`build_portrait`, :class:`Portrait`): every indicator
with the town's value, the peers' median and the town's percentile among them, the France
value, the reasons of missing values, the sources cited, and what distinguishes the town
(:func:`distinguishing_indicators`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo import _report as report
from geo import _svg as svg
from geo import communes, facility_trends, sources, themes
from geo.errors import InputFileError, MissingColumnsError, UnknownDatasetError
from geo.portrait.peers import PeerRule, PeerSelection, _programme, find_peers
from geo.portrait.table import (
    _BY_KEY,
    INDICATORS,
    THEME_ACCESS,
    THEME_APL,
    THEME_CULTURE,
    THEME_FACILITIES,
    THEME_LANDCOVER,
    THEME_POPULATION,
    THEME_SOURCES,
    Indicator,
    indicator_table,
    percentile_rank,
)
from geo.settings import Settings, get_settings

# --- the portrait --------------------------------------------------------------------------


@dataclass
class Portrait:
    """A town's portrait: card, peers, indicator table and population history."""

    insee: str
    card: dict[str, Any]
    peers: PeerSelection
    #: One row per indicator: theme, indicateur, libelle, unite, valeur, mediane_pairs,
    #: n_pairs, percentile_pairs, mediane_france, n_france, note (why a value is
    #: missing), source.
    table: pd.DataFrame
    #: Peer values per indicator key (for the distribution charts).
    peer_values: dict[str, np.ndarray]
    #: annee, commune, pairs_mediane (index 2016 = 100), france (index), population.
    history: pd.DataFrame
    missing: list[str] = field(default_factory=list)
    built: str = ""
    vintages: dict[str, str] = field(default_factory=dict)
    #: The change of the town's offer between BPE vintages (None when unavailable).
    facility_trend: facility_trends.TownTrend | None = None
    #: One section per Data Territoria theme (jobs, housing...; missing ones say so).
    theme_sections: list[themes.ThemeSection] = field(default_factory=list)
    #: What distinguishes the town (:func:`distinguishing_indicators` of ``table``).
    distinctions: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: The sources, in French: donnees, producteur, millesime, licence, lien.
    sources: list[dict[str, str]] = field(default_factory=list)


def _missing_reasons(code: str, values: pd.Series, s: Settings,
                     facilities_error: str | None = None) -> dict[str, str]:
    """Why each missing indicator of the town is missing (French)."""
    kinds = {d.kind for d in sources.datasets_for_town(code, settings=s)}
    has_network = any(k.startswith(("osm", "roads")) for k in kinds)
    has_landcover = any(k.startswith("landcover") for k in kinds)
    town_dir = s.town_dir(code)
    run = (town_dir / "communes.parquet").exists()
    subcategories = functools.cache(functools.partial(_subcategories, town_dir))
    reasons = {}
    for ind in INDICATORS:
        if not svg.is_missing(values.get(ind.key)):
            continue
        if ind.theme == THEME_APL:
            why = "pas de valeur APL publiée par la DREES pour cette commune"
        elif ind.theme == THEME_POPULATION:
            why = "population légale absente pour une des années"
        elif ind.key == "commerces_chain_share":
            if not any(k.startswith("osm") for k in kinds):
                why = ("ni extrait OpenStreetMap de la commune ni BPE géolocalisée : part "
                       "des chaînes non mesurée")
            elif (town_dir / "facilities.parquet").exists():
                why = "aucun commerce nommé dans les équipements OpenStreetMap de la commune"
            else:
                why = f"équipements de la commune non construits (make town INSEE={code})"
        elif ind.theme in (THEME_FACILITIES, THEME_CULTURE):
            why = (f"comptages nationaux d'équipements indisponibles : {facilities_error}"
                   if facilities_error else
                   "pas de source nationale pour cette commune (ex. BPE hors de "
                   "France métropolitaine et DROM)")
        elif ind.theme == THEME_LANDCOVER:
            if "change" in ind.key:
                why = ("aucune occupation des sols disponible pour cette commune"
                       if not has_landcover else
                       "un seul millésime CORINE disponible pour cette commune (pas d'évolution)")
            else:
                why = ("aucune occupation des sols disponible pour cette commune"
                       if not has_landcover else
                       f"occupation des sols non calculée (make town INSEE={code})")
        elif ind.theme == THEME_ACCESS:
            mode = ind.key.split("_", 1)[0]
            if (town_dir / f"access_{mode}_nodes.parquet").exists() and not run:
                why = (f"temps calculés sur le réseau (access_{mode}_nodes.parquet) mais pas "
                       "encore agrégés par commune (communes.parquet absent)")
            elif not has_network:
                why = "aucun réseau de rues disponible pour cette commune"
            elif not run:
                why = f"temps d'accès non calculés (make town INSEE={code})"
            elif (ind.key.split("_", 1)[1].removesuffix("_minutes_median")
                  not in subcategories()):
                why = ("aucun équipement de ce type localisé dans la zone d'étude "
                       "(OpenStreetMap et registres nationaux)")
            else:
                why = "temps non calculé pour ce mode (voir logs/aggregate.log)"
        else:
            why = "donnée absente"
        reasons[ind.key] = why
    return reasons


def _subcategories(town_dir: Path) -> frozenset[str]:
    """Subcategory keys of the town run's facilities (empty without facilities.parquet)."""
    path = town_dir / "facilities.parquet"
    if not path.exists():
        return frozenset()
    try:
        fac = pd.read_parquet(path, columns=["subcategory"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"cannot read facilities {path}: {exc}") from None
    return frozenset(fac["subcategory"].dropna().astype(str))


def town_values(insee: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The town's reference row with its ``programme``: what the peer rule reads."""
    card = communes.get_commune(insee, settings).to_dict()
    card["programme"] = _programme(pd.DataFrame([card])).iloc[0]
    return card


def build_portrait(
    insee: str,
    *,
    rule: PeerRule | None = None,
    settings: Settings | None = None,
) -> Portrait:
    """The portrait of one town (code or name): peers, indicators and comparisons."""
    s = settings or get_settings()
    selection = find_peers(insee, rule, settings=s)
    code = selection.insee
    card = town_values(code, settings=s)
    table = indicator_table(s, strict=(code,))
    values = table.loc[code]
    peer_table = table.reindex(selection.peers["insee"])
    reasons = _missing_reasons(code, values, s, table.attrs.get("facilities_error"))
    ref = communes.load_reference(s).set_index("insee")
    france = table.loc[communes.typology_groups(ref.reset_index())["France"].to_numpy()]
    weights = ref["pop_2023"].astype(float).reindex(france.index)
    growth_france = communes.typology_stats(2023, settings=s).set_index("groupe").at[
        "France", "croissance_depuis_2016"] * 100
    rows, peer_values = [], {}
    for ind in INDICATORS:
        v = values[ind.key]
        pv = peer_table[ind.key].dropna().to_numpy()
        nat = france[ind.key].dropna()
        peer_values[ind.key] = pv
        enough = pv.size >= selection.min_count
        nat_value, nat_kind = _france_reference(ind, nat, weights, growth_france)
        note = reasons.get(ind.key, "")
        if not enough and pv.size and not svg.is_missing(v):
            note = (f"{pv.size} pair(s) seulement avec une valeur (minimum "
                    f"{selection.min_count}) : percentile non calculé")
        rows.append({
            "theme": ind.theme,
            "indicateur": ind.key,
            "libelle": ind.label,
            "unite": ind.unit,
            "sens": ind.sens,
            "valeur": v,
            "valeur_texte": ind.format(v),
            "mediane_pairs": float(np.median(pv)) if pv.size else np.nan,
            "mediane_pairs_texte": ind.format(float(np.median(pv))) if pv.size else "n.d.",
            "n_pairs": int(pv.size),
            "percentile_pairs": percentile_rank(v, pv) if enough else None,
            "part_pairs_inferieurs": float((pv < v).mean()) if pv.size and enough else np.nan,
            "part_pairs_superieurs": float((pv > v).mean()) if pv.size and enough else np.nan,
            "mediane_france": float(nat.median()) if len(nat) else np.nan,
            "valeur_france": nat_value,
            "reference_france": nat_kind,
            "n_france": len(nat),
            "note": note,
            "source": THEME_SOURCES[ind.theme],
        })
    out = pd.DataFrame(rows)
    out["percentile_pairs"] = out["percentile_pairs"].astype(float)

    years = list(communes.POPULATION_YEARS)
    pops = ref[[f"pop_{y}" for y in years]].astype(float)
    index = pops.div(pops["pop_2016"].where(pops["pop_2016"] > 0), axis=0) * 100
    peer_index = index.reindex(selection.peers["insee"])
    # France as in typology-stats: mainland + DROM, communes with both populations
    national = pd.concat([communes.typology_stats(y, settings=s) for y in years])
    national = national[national["groupe"] == "France"].set_index("annee")
    history = pd.DataFrame({
        "annee": years,
        "population": pops.loc[code].to_numpy(),
        "commune": index.loc[code].to_numpy(),
        "pairs_mediane": peer_index.median().to_numpy(),
        "france": ((1 + national["croissance_depuis_2016"].reindex(years)) * 100).to_numpy(),
    })
    missing = [f"{_BY_KEY[k].label} : {why}" for k, why in reasons.items()]
    theme_sections = themes.portrait_sections(code, selection.peers["insee"], settings=s)
    return Portrait(
        insee=code, card=card, peers=selection, table=out, peer_values=peer_values,
        history=history, missing=missing,
        built=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        vintages=_vintages(s),
        facility_trend=facility_trends.town_trend(code, selection.peers["insee"], settings=s),
        theme_sections=theme_sections,
        distinctions=distinguishing_indicators(out, min_peers=selection.min_count),
        sources=_sources_fr(s, themes.section_datasets(theme_sections)),
    )


def _france_reference(ind: Indicator, values: pd.Series, weights: pd.Series,
                      growth_pct: float) -> tuple[float, str]:
    """The France value of an indicator and what it is (French): the national ratio
    (population-weighted mean) for APL and per-10,000 counts, the overall growth for the
    population growth, else the median of the communes with a value."""
    if ind.key == "pop_croissance_2016_2023_pct":
        return float(growth_pct), "évolution d'ensemble"
    if ind.theme == THEME_APL or ind.key.endswith("_per_10k"):
        w = weights.reindex(values.index).fillna(0)
        if w.sum() > 0:
            return float(np.average(values, weights=w)), "moyenne pondérée par la population"
    return (float(values.median()) if len(values) else np.nan), "médiane des communes"


#: French wording of the catalogue's producer notes (the catalogue is in English).
_PRODUCER_FR = ((", packaged by ", ", mis en forme par "), (" packaged by ", " mis en forme par "),
                ("per-commune files by", "fichiers par commune :"),
                ("OpenStreetMap contributors", "contributeurs OpenStreetMap"),
                ("Geofabrik extract", "extrait Geofabrik"))


def _french(text: str) -> str:
    for en, fr in _PRODUCER_FR:
        text = text.replace(en, fr)
    return text


def _sources_fr(s: Settings, extra: Iterable[str] = ()) -> list[dict[str, str]]:
    """The national sources of the portrait, in French (data, producer, vintage,
    licence, link); ``extra``: more dataset ids (the themes' downloaded files)."""
    out = []
    for ds_id in ("communes_cog", "populations", "apl_mg", "pvd", "acv", "centralite",
                  "densite", "bpe_2013_counts", "museofile", "cinemas", "festivals",
                  "eoliennes", "landcover_communes", *extra):
        try:
            ds = sources.get_dataset(ds_id, s)
        except UnknownDatasetError:  # a trimmed catalogue: leave the line out
            continue
        out.append({"donnees": _french(ds.title), "producteur": _french(ds.producer),
                    "millesime": _french(ds.vintage), "licence": ds.licence,
                    "lien": ds.homepage or ""})
    return out


def _vintages(s: Settings) -> dict[str, str]:
    out = {}
    for ds_id, label in (("communes_cog", "Communes"), ("populations", "Populations légales"),
                         ("apl_mg", "APL"), ("pvd", "Petites villes de demain"),
                         ("acv", "Action Cœur de Ville"), ("centralite", "Centralités"),
                         ("densite", "Densité")):
        try:
            ds = sources.get_dataset(ds_id, s)
        except UnknownDatasetError:  # a trimmed catalogue: leave the line out
            continue
        out[label] = f"{ds.producer}, {ds.vintage}"
    return out


# --- what distinguishes the town ----------------------------------------------------------

#: Columns :func:`distinguishing_indicators` reads from a portrait-like table.
DISTINCTION_COLUMNS = ("indicateur", "libelle", "unite", "sens", "valeur", "mediane_pairs",
                       "n_pairs", "percentile_pairs", "part_pairs_inferieurs",
                       "part_pairs_superieurs")


def _text(value: object, unit: str) -> str:
    if svg.is_missing(value):
        return "n.d."
    v = float(value)  # type: ignore[arg-type]
    digits = 0 if abs(v) >= 100 or float(v).is_integer() else 1 if abs(v) >= 10 else 2
    text = svg.format_fr(v, digits)
    return f"{text}\u202f{unit}" if unit in {"min", "MW", "%"} else text


def distinguishing_indicators(table: pd.DataFrame, *, n: int = 3,
                              min_peers: int = 5) -> pd.DataFrame:
    """What distinguishes a town from its peers: its ``n`` strongest and ``n`` weakest
    indicators, ranked by the gap to the peers, with one plain-French sentence each.

    Parameters
    ----------
    table
        One row per indicator with :data:`DISTINCTION_COLUMNS` (the portrait's table):
        ``sens`` is ``plus`` when a higher value is better (APL, facilities), ``moins``
        when lower is better (access times), empty for indicators that are neither
        (population, land-cover shares: left out); ``percentile_pairs`` in 0..100;
        ``part_pairs_inferieurs`` / ``_superieurs`` the shares (0..1) of peers strictly
        below / above the town. Optional ``valeur_texte`` and ``mediane_pairs_texte``
        columns give the values as they should read.
    n
        Indicators per side.
    min_peers
        Only indicators compared with at least this many peers (fewer is not a
        distribution).

    Returns
    -------
    DataFrame
        ``cote`` (``fort`` / ``faible``), ``rang`` (1 = largest gap), ``indicateur``,
        ``libelle``, ``ecart`` (the percentile's distance from 50, positive when the town
        does better than its median peer), ``n_pairs``, ``phrase``; strengths first.
        Ties at the median are no gap (the percentile is 50).
    """
    missing = [c for c in DISTINCTION_COLUMNS if c not in table.columns]
    if missing:
        raise MissingColumnsError("portrait table", missing, list(table.columns))
    t = table[(table["n_pairs"] >= min_peers) & table["valeur"].notna()
              & table["percentile_pairs"].notna() & table["sens"].isin(["plus", "moins"])]
    t = t.assign(ecart=(t["percentile_pairs"].astype(float) - 50)
                 * np.where(t["sens"] == "plus", 1.0, -1.0))
    rel = ((t["valeur"].astype(float) - t["mediane_pairs"].astype(float)).abs()
           / t["mediane_pairs"].astype(float).abs().clip(lower=1e-9))
    t = t.assign(_rel=rel.fillna(0))
    rows = []
    for side, part in (("fort", t[t["ecart"] > 0].sort_values(["ecart", "_rel"],
                                                                ascending=False)),
                       ("faible", t[t["ecart"] < 0].sort_values(["ecart", "_rel"],
                                                                  ascending=[True, False]))):
        for rank, r in enumerate(part.head(n).to_dict("records"), start=1):
            rows.append({"cote": side, "rang": rank, "indicateur": r["indicateur"],
                         "libelle": r["libelle"], "ecart": float(r["ecart"]),
                         "n_pairs": int(r["n_pairs"]), "phrase": _sentence(r)})
    return pd.DataFrame(rows, columns=["cote", "rang", "indicateur", "libelle", "ecart",
                                       "n_pairs", "phrase"])


def _sentence(r: Mapping[str, Any]) -> str:
    """``Libellé : valeur, plus élevé que pour 82 % des 120 communes comparables
    (médiane : 2,4).``"""
    unit = str(r.get("unite") or "")
    value = r.get("valeur_texte") or _text(r["valeur"], unit)
    median = r.get("mediane_pairs_texte") or _text(r["mediane_pairs"], unit)
    higher = float(r["valeur"]) > float(r["mediane_pairs"])
    share = float(r["part_pairs_inferieurs"] if higher else r["part_pairs_superieurs"])
    if unit == "min":
        word = "plus long" if higher else "plus court"
    else:
        word = "plus élevé" if higher else "plus bas"
    label = str(r["libelle"])
    if unit and unit not in {"min", "%", "MW", "nombre", "part", "habitants"}:
        label += f" ({unit})"
    return (f"{label} : {value}, {word} que pour "
            f"{svg.format_fr(share * 100, 0)}\u202f% des {report.fmt_count(r['n_pairs'])} "
            f"communes comparables (médiane : {median}).")
