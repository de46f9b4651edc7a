"""Housing prices per m² and their change (DVF, geo-dvf on data.gouv.fr).

Source
------
*Demandes de valeurs foncières géolocalisées* (DGFiP, reworked by Etalab): one file per
year of mutations, ``full.csv.gz``, ``,``-separated UTF-8, one row per mutation x
disposition x parcel x local: ``id_mutation, date_mutation, numero_disposition,
nature_mutation, valeur_fonciere, ..., code_commune, ..., id_parcelle, ...,
code_type_local, type_local, surface_reelle_bati, ...`` (40 columns); communes in the
COG of the publication. Bas-Rhin, Haut-Rhin, Moselle (livre foncier) and Mayotte are not
in DVF.

Sales kept (Etalab's rule for its *Statistiques DVF*, ``datagouv/
datagouvfr_data_pipelines``, ``data_processing/dvf``): exact duplicate rows dropped;
natures *Vente*, *Vente en l'état futur d'achèvement*, *Adjudication*; locals of type 1
(maison), 2 (appartement) or 4 (local industriel, commercial ou assimilé); mutations with
exactly one such local (land and dependencies do not make a mutation multi-good); price
per m² = ``valeur_fonciere / surface_reelle_bati``, kept when finite and below 100,000
€/m².

Mirror layout (``logement/dvf_ventes_<year>.csv.gz``, written by :func:`convert`): one
row per sale kept: ``date_mutation, code_commune, code_type_local, valeur_fonciere,
surface_reelle_bati``.

Indicators
----------
Per vintage (the first and last downloaded years): the median price per m² of houses
and of apartments of the commune, when it has at least :data:`MIN_SALES` sales of the
type (else missing), and their change; sales of dwellings per 10,000 inhabitants. A
group's median is the median over every sale of its communes (pooled), not a median of
medians. Communes of the départements DVF does not cover are missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from geo import communes
from geo._io import read_parquet_cached, write_parquet
from geo.settings import Settings
from geo.themes._base import (
    Theme,
    ThemeIndicator,
    Vintage,
    compared_vintages,
    departement_coverage,
    iter_published,
    legal_population,
    numbers,
    pad_code,
    read_mirror,
    zero_within,
)

__all__ = ["MIN_SALES", "MIRROR_COLUMNS", "NATURES", "SALES_FILE", "THEME", "convert",
           "read_published"]

log = logging.getLogger(__name__)

#: Natures of mutation counted as sales (Etalab's Statistiques DVF).
NATURES = ("Vente", "Vente en l'état futur d'achèvement", "Adjudication")
#: Types of local counted as goods: maison, appartement, local d'activité.
GOOD_TYPES = (1, 2, 4)
#: Dwelling types of the indicators.
TYPES = {1: "maison", 2: "appartement"}
#: Fewest sales of a type for a commune's median.
MIN_SALES = 5
#: Prices per m² at or above this are left out (Etalab's guard against errors), €/m².
MAX_PRICE_M2 = 100_000.0
MIRROR_COLUMNS = ["date_mutation", "code_commune", "code_type_local", "valeur_fonciere",
                  "surface_reelle_bati"]
#: The sales behind the pooled medians (insee, periode, type, prix_m2), in data/interim.
SALES_FILE = "theme_logement_ventes.parquet"
_KEYS = ["id_mutation", "date_mutation", "nature_mutation", "valeur_fonciere",
         "code_commune", "id_parcelle", "code_type_local", "surface_reelle_bati"]


def read_published(path: str | Path) -> pd.DataFrame:
    """A geo-dvf ``full.csv.gz`` as published -> the single-good sales (columns
    :data:`MIRROR_COLUMNS`, one row per sale kept, see the module doc)."""
    parts = []
    for chunk in iter_published(path, label="DVF géolocalisées",
                                columns={k: [] for k in _KEYS}):
        types = numbers(chunk["code_type_local"])
        keep = chunk["nature_mutation"].isin(NATURES) & types.isin(GOOD_TYPES)
        part = chunk[keep].copy()
        part["code_type_local"] = types[keep].astype(int)
        parts.append(part)
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_KEYS)
    df = df.drop_duplicates(subset=_KEYS)
    goods = df["id_mutation"].value_counts()
    df = df[df["id_mutation"].map(goods) == 1].copy()
    df["valeur_fonciere"] = numbers(df["valeur_fonciere"])
    df["surface_reelle_bati"] = numbers(df["surface_reelle_bati"])
    with np.errstate(divide="ignore", invalid="ignore"):
        price = df["valeur_fonciere"] / df["surface_reelle_bati"]
    df = df[np.isfinite(price) & (price > 0) & (price < MAX_PRICE_M2)]
    df["code_commune"] = pad_code(df["code_commune"])
    return df[MIRROR_COLUMNS].sort_values(["code_commune", "date_mutation"], kind="stable",
                                          ignore_index=True)


def convert(paths: Sequence[Path], out: Path) -> None:
    """Converter (:mod:`geo._convert`): a published year -> the mirror layout."""
    from geo._convert import _one, _write_csv

    (path,) = _one(paths, "geo_dvf_ventes")
    _write_csv(read_published(path), out)


def _sales(v: Vintage, s: Settings) -> pd.DataFrame:
    df = read_mirror(v.path, label=f"DVF {v.year} (mirror layout)", required=MIRROR_COLUMNS)
    df["code_type_local"] = numbers(df["code_type_local"])
    df = df[df["code_type_local"].isin(list(TYPES))]
    prices = numbers(df["valeur_fonciere"]) / numbers(df["surface_reelle_bati"])
    mapping = communes.current_code_map(s)
    insee = df["code_commune"].str.strip().map(mapping)
    if insee.isna().any():
        log.warning("DVF %s: %d sale(s) in communes matching no current commune left out "
                    "(e.g. %s)", v.year, int(insee.isna().sum()),
                    ", ".join(df.loc[insee.isna(), "code_commune"].unique()[:5]))
    out = pd.DataFrame({"insee": insee, "type": df["code_type_local"].astype("int8"),
                        "prix_m2": prices.astype("float64")}).dropna(subset=["insee"])
    return out.reset_index(drop=True)


def _build(vintages: Sequence[Vintage], s: Settings) -> pd.DataFrame:
    chosen = {w: v.year or 0 for w, v in compared_vintages(vintages, "DVF").items()}
    by_year = {v.year: v for v in vintages}
    ref = communes.load_reference(s)
    columns = {}
    sales_parts = []
    for when, year in chosen.items():
        sales = _sales(by_year[year], s)
        covered = departement_coverage(sales["insee"])
        sales_parts.append(sales.assign(periode=when))
        suffix = "" if when == "fin" else "_debut"
        counts = sales.groupby(["insee", "type"]).size().unstack("type")
        medians = sales.groupby(["insee", "type"])["prix_m2"].median().unstack("type")
        part = pd.DataFrame(index=counts.index)
        for code, name in TYPES.items():
            n = counts[code] if code in counts else pd.Series(0.0, index=counts.index)
            part[f"ventes_{name}s_{when}"] = n
            med = medians[code] if code in medians else pd.Series(np.nan, index=counts.index)
            part[f"prix_m2_{name}_median{suffix}"] = med.where(n.fillna(0) >= MIN_SALES)
        part[f"ventes_logements_{when}"] = part[[f"ventes_{t}s_{when}" for t in
                                                 TYPES.values()]].sum(axis=1)
        counted = [f"ventes_{t}s_{when}" for t in TYPES.values()] + [f"ventes_logements_{when}"]
        part = zero_within(part, counted, covered, ref)
        columns[when] = part
    table = pd.concat(columns.values(), axis=1)
    for when in ("debut", "fin"):  # a single vintage: no change, the columns exist empty
        for name in TYPES.values():
            col = f"prix_m2_{name}_median{'' if when == 'fin' else '_debut'}"
            if col not in table:
                table[col] = np.nan
    pop, pop_year = legal_population(ref, chosen["fin"])
    table["population_fin"] = pop.reindex(table.index)
    sales = pd.concat(sales_parts, ignore_index=True)
    write_parquet(sales, s.interim_dir / SALES_FILE,
                  metadata={"years": chosen, "rule": "single-good sales, Etalab"})
    debut = chosen.get("debut")
    table.attrs["meta"] = {
        "debut": "" if debut is None else str(debut), "fin": str(chosen["fin"]),
        "population_year": pop_year, "min_sales": MIN_SALES,
        "notes": [
            "Ventes d'un seul bien (maison, appartement ou local ; terrains et "
            "dépendances n'en font pas une vente multiple), natures vente, VEFA et "
            "adjudication, prix au m² = valeur foncière / surface réelle bâtie (règle des "
            "Statistiques DVF d'Etalab).",
            f"Prix médian d'une commune publié à partir de {MIN_SALES} ventes du type ; "
            "médiane d'un groupe : sur l'ensemble des ventes de ses communes.",
            "Bas-Rhin, Haut-Rhin, Moselle et Mayotte ne sont pas couverts par DVF.",
            f"Ventes pour 10 000 habitants : population légale {pop_year}.",
        ],
    }
    return table


_SALES_CACHE: dict[tuple[str, int, int, int], tuple[np.ndarray, ...]] = {}


def _sales_arrays(path: Path, index: pd.Index) -> tuple[np.ndarray, ...]:
    """The sales as arrays: period, type, price and the position of their commune in
    ``index`` (-1 when absent), read once per file version and commune index (a
    typology table asks for some fifty group medians)."""
    st = path.stat()
    codes = np.asarray(index, dtype="U5")
    key = (str(path), st.st_mtime_ns, st.st_size, hash(codes.tobytes()))
    if key not in _SALES_CACHE:
        sales = read_parquet_cached(path)
        positions = pd.Index(codes).get_indexer(np.asarray(sales["insee"], dtype="U5"))
        _SALES_CACHE.clear()
        _SALES_CACHE[key] = (sales["periode"].astype(str).to_numpy(),
                             sales["type"].to_numpy(),
                             sales["prix_m2"].to_numpy(dtype="float64"), positions)
    return _SALES_CACHE[key]


def _pooled(theme: Theme, ind: ThemeIndicator, table: pd.DataFrame, rows: np.ndarray,
            s: Settings) -> float:
    """The median price per m² over every sale of the communes ``rows``."""
    when = "debut" if ind.key.endswith("_debut") else "fin"
    code = next(c for c, name in TYPES.items() if f"_{name}_" in ind.key)
    periode, types, prices, pos = _sales_arrays(s.interim_dir / SALES_FILE, table.index)
    rows = np.asarray(rows, dtype=bool)
    sel = (periode == when) & (types == code) & (pos >= 0)
    sel[sel] = rows[pos[sel]]
    return float(np.median(prices[sel])) if sel.any() else float("nan")


def _median(name: str, label: str, when: str) -> ThemeIndicator:
    key = f"prix_m2_{name}_median" + ("_debut" if when == "debut" else "")
    return ThemeIndicator(key, label, "€/m²", None, pooled=True,
                          when="debut" if when == "debut" else "fin", digits=0)


THEME = Theme(
    key="logement",
    title="Prix des logements",
    source="DGFiP, demandes de valeurs foncières géolocalisées (Etalab, data.gouv.fr)",
    dataset_ids=("dvf_2021", "dvf_2025"),
    indicators=(
        _median("maison", "Prix médian au m² des maisons", "fin"),
        _median("maison", "Prix médian au m² des maisons (début de période)", "debut"),
        ThemeIndicator("prix_m2_maison_evolution_pct", "Évolution du prix médian au m² des "
                       "maisons", "%", None,
                       of=("prix_m2_maison_median_debut", "prix_m2_maison_median"),
                       op="rel", when="periode", signed=True),
        _median("appartement", "Prix médian au m² des appartements", "fin"),
        _median("appartement", "Prix médian au m² des appartements (début de période)",
                "debut"),
        ThemeIndicator("prix_m2_appartement_evolution_pct", "Évolution du prix médian au m² "
                       "des appartements", "%", None,
                       of=("prix_m2_appartement_median_debut", "prix_m2_appartement_median"),
                       op="rel", when="periode", signed=True),
        ThemeIndicator("ventes_logements_per_10k", "Ventes de maisons et d'appartements pour "
                       "10 000 habitants", "pour 10 000 habitants", None,
                       num="ventes_logements_fin", den="population_fin", scale=10_000,
                       digits=0),
    ),
    build=_build,
    headline="prix_m2_maison_median",
    pooled=_pooled,
    side_tables=(SALES_FILE,),
    missing_note="moins de 5 ventes de ce type de bien dans l'année, ou commune hors du "
                 "champ de DVF (Alsace-Moselle, Mayotte)",
)
