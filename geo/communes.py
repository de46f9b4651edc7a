"""Commune reference: every current commune (COG 2026) with its attributes and polygon.

The reference table (:func:`load_reference`) has one row per current commune, keyed by the
5-character ``insee`` code, with name, département, région, EPCI, legal population 2023 and
its history 2016-2023, the Data Territoria population typology, PVD and ACV membership,
ANCT/INSEE typologies (centralité, densité, ruralité, montagne) and the AAV category. It is
built from the raw national tables and cached in ``data/interim/communes.parquet``.

Merged communes
---------------
Tables on older geographies (populations 2016-2022, APL 2021, BPE 2009/2013, typologies on
COG 2025) carry codes of communes that have since merged. :func:`current_code_map` maps
every former code to the current commune that absorbed it, from the COG ``anciensCodes``
field and the ``chefLieu`` of communes déléguées/associées; municipal arrondissements of
Paris, Lyon and Marseille map to their commune. :func:`aggregate_to_current` applies the
documented rule: counts and populations are **summed** over the former communes; rates
and indices (APL, shares) are **averaged weighted by a population column**; categorical
attributes take the value of the **most populous** former commune.
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry.base import BaseGeometry

from geo import _boundaries, sources
from geo._insee import departement_of, validate_insee
from geo._io import is_stale, read_delimited, read_parquet_cached, write_parquet
from geo.errors import DataSourceError, InputFileError, MissingColumnsError, UnknownCommuneError
from geo.settings import PROJECT_ROOT, Settings, get_settings

__all__ = [
    "CATCHMENT_FILE",
    "POPULATION_YEARS",
    "REFERENCE_DATASETS",
    "TYPOLOGIES",
    "Catchment",
    "aggregate_to_current",
    "build_reference",
    "catchment",
    "commune_polygons",
    "current_code_map",
    "departement_of",
    "get_commune",
    "load_reference",
    "metric_crs",
    "normalize_name",
    "population_typologies",
    "population_typology",
    "read_catchment",
    "resolve_insee",
    "search_communes",
    "town_card",
    "typology_groups",
    "typology_stats",
    "validate_insee",
    "write_catchment",
]

log = logging.getLogger(__name__)

#: Raw datasets the reference table is built from (ids in data/sources.toml).
REFERENCE_DATASETS = (
    "communes_cog", "epci_membres", "appartenance_geo", "populations",
    "pvd", "acv", "centralite", "densite", "ruralite", "montagne",
)
POPULATION_YEARS = (2016, 2019, 2020, 2022, 2023)

#: Data Territoria (Villes de France) population classes, by legal population.
TYPOLOGIES = ("petite ville", "ville moyenne", "grande ville")
_TYPOLOGY_BOUNDS = (10_000, 100_000)

AAV_CATEGORIES = {
    "11": "Commune-centre",
    "12": "Autre commune du pôle principal",
    "13": "Commune d'un pôle secondaire",
    "20": "Commune de la couronne",
    "30": "Commune hors attraction des villes",
}

#: ``zone`` values of the national statistics scope (mainland France and DROM).
NATIONAL_ZONES = ("metro", "drom")

_DEPARTEMENTS_FILE = PROJECT_ROOT / "data" / "departements.csv"


# --- codes and names -------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a commune name.

    ``"Saint-Germain-en-Laye"``, ``"st germain en laye"`` and ``"SAINT GERMAIN EN LAYE"``
    give the same key.
    """
    text = unicodedata.normalize("NFKD", str(name))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = text.replace("œ", "oe").replace("æ", "ae")
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    text = re.sub(r"\bste\b", "sainte", text)
    text = re.sub(r"\bst\b", "saint", text)
    return text


def population_typology(population: float | None) -> str | None:
    """Data Territoria class of a legal population (None when unknown).

    ``petite ville`` below 10,000 inhabitants, ``ville moyenne`` from 10,000 to 100,000,
    ``grande ville`` above 100,000.
    """
    if population is None or pd.isna(population):
        return None
    if population < _TYPOLOGY_BOUNDS[0]:
        return TYPOLOGIES[0]
    if population <= _TYPOLOGY_BOUNDS[1]:
        return TYPOLOGIES[1]
    return TYPOLOGIES[2]


def population_typologies(populations: pd.Series) -> pd.Series:
    """:func:`population_typology` of every value of ``populations`` (object Series of
    class names, None where the population is unknown), vectorised."""
    pop = pd.to_numeric(populations, errors="coerce").astype("float64").to_numpy()
    low, high = _TYPOLOGY_BOUNDS
    out = np.full(len(pop), None, dtype=object)  # None where unknown (NaN)
    out[pop < low] = TYPOLOGIES[0]
    out[(pop >= low) & (pop <= high)] = TYPOLOGIES[1]
    out[pop > high] = TYPOLOGIES[2]
    return pd.Series(out, index=populations.index, dtype=object)


# --- raw readers -------------------------------------------------------------------------


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    return read_delimited(path, label=Path(path).name, required=required)


def _raw(dataset_id: str, settings: Settings) -> Path:
    return sources.ensure(dataset_id, settings)


def current_code_map(settings: Settings | None = None) -> Mapping[str, str]:
    """Every former, delegated, associated or arrondissement code -> current commune code
    (a read-only mapping, built once per process and COG file version).

    Current codes map to themselves, so ``df[code].map(current_code_map())`` turns any
    table on an older geography into current codes (unknown codes give NaN).
    """
    s = settings or get_settings()
    path = _raw("communes_cog", s)
    st = path.stat()
    return _code_map_cached(str(path), st.st_mtime_ns, st.st_size)


class _CodeMap(dict[str, str]):
    """A dict that refuses changes (pandas maps with it as with any dict)."""

    def _readonly(self, *args: object, **kwargs: object) -> None:
        raise TypeError("the current code map is read-only; copy it with dict(...)")

    __setitem__ = __delitem__ = _readonly
    update = pop = popitem = clear = setdefault = _readonly  # type: ignore[assignment]


@lru_cache(maxsize=4)
def _code_map_cached(cog_path: str, mtime_ns: int, size: int) -> _CodeMap:
    cog = _read_csv(Path(cog_path), ["code", "type", "chefLieu", "commune", "anciensCodes"])
    current = cog[cog["type"] == "commune-actuelle"]
    mapping: dict[str, str] = {}
    # anciensCodes first: a code merged away maps to its absorbing commune.
    for code, olds in zip(current["code"], current["anciensCodes"], strict=True):
        if isinstance(olds, str):
            for old in olds.split(";"):
                if old.strip():
                    mapping[old.strip()] = code
    others = cog[cog["type"] != "commune-actuelle"]
    for code, typ, chef, parent in zip(
        others["code"], others["type"], others["chefLieu"], others["commune"], strict=True
    ):
        target = parent if typ == "arrondissement-municipal" else chef
        if isinstance(target, str):
            mapping.setdefault(code, target)
    for code in current["code"]:
        mapping[code] = code  # a current code always maps to itself
    return _CodeMap(sorted(mapping.items()))


@lru_cache(maxsize=4)
def _arrondissement_codes(cog_path: str) -> frozenset[str]:
    """Codes of the municipal arrondissements (Paris, Lyon, Marseille) in the COG."""
    cog = _read_csv(Path(cog_path), ["code", "type"])
    return frozenset(cog.loc[cog["type"] == "arrondissement-municipal", "code"])


def aggregate_to_current(
    df: pd.DataFrame,
    code_col: str,
    *,
    sum_cols: Iterable[str] = (),
    weighted_cols: Mapping[str, str] | None = None,
    first_cols: Iterable[str] = (),
    rank_col: str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Re-key a table on an older geography to current communes.

    Parameters
    ----------
    df
        Table with one row per (possibly former) commune code in ``code_col``.
    sum_cols
        Counts and populations, summed over the former communes.
    weighted_cols
        ``{column: weight column}``: rates averaged weighted by the weight (e.g. APL by
        the population it was computed on). Rows with a missing value or weight are left
        out of the mean; the weight column itself should also be listed in ``sum_cols``
        if it is wanted in the output.
    first_cols
        Categorical attributes: the value of the row with the largest ``rank_col``
        (default: the first weight column, else the first sum column).

    Returns
    -------
    DataFrame keyed by ``insee`` (current code) plus ``n_source_codes``; codes that map to
    no current commune are dropped with a warning naming how many.
    """
    weighted = dict(weighted_cols or {})
    sum_cols, first_cols = list(sum_cols), list(first_cols)
    needed = [code_col, *sum_cols, *weighted, *weighted.values(), *first_cols]
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        raise MissingColumnsError("table to re-key on current communes", missing, list(df))
    mapping = current_code_map(settings)
    work = df.copy()
    work["insee"] = work[code_col].astype(str).str.strip().map(mapping)
    unknown = work["insee"].isna()
    if unknown.any():
        log.warning(
            "%d row(s) with codes matching no current commune dropped (e.g. %s)",
            int(unknown.sum()), ", ".join(work.loc[unknown, code_col].astype(str).head(5)),
        )
        work = work[~unknown]
    grouped = work.groupby("insee", sort=True)
    out = pd.DataFrame(index=pd.Index(sorted(work["insee"].unique()), name="insee"))
    out["n_source_codes"] = grouped.size()
    for col in sum_cols:
        out[col] = pd.to_numeric(work[col]).groupby(work["insee"]).sum(min_count=1)
    for col, wcol in weighted.items():
        val = pd.to_numeric(work[col], errors="coerce")
        wgt = pd.to_numeric(work[wcol], errors="coerce")
        ok = val.notna() & wgt.notna() & (wgt > 0)
        num = (val * wgt).where(ok).groupby(work["insee"]).sum(min_count=1)
        den = wgt.where(ok).groupby(work["insee"]).sum(min_count=1)
        out[col] = num / den
        # a commune whose only rows have no weight keeps its plain mean
        plain = val.groupby(work["insee"]).mean()
        out[col] = out[col].fillna(plain)
    if first_cols:
        rank = (rank_col or next(iter(weighted.values()), None)
                or (sum_cols[0] if sum_cols else None))
        ordered = work
        if rank is not None:
            ordered = work.assign(_rank=pd.to_numeric(work[rank], errors="coerce"))
            ordered = ordered.sort_values("_rank", ascending=False, na_position="last")
        firsts = ordered.groupby("insee", sort=True)[first_cols].first()
        out = out.join(firsts)
    return out.reset_index()


# --- the reference table -----------------------------------------------------------------

REFERENCE_COLUMNS = [
    "insee", "nom", "departement", "departement_nom", "region", "region_nom", "zone",
    "epci_siren", "epci_nom", "epci_type", "population",
    *[f"pop_{y}" for y in POPULATION_YEARS],
    "typologie", "pvd", "pvd_id", "pvd_date_signature", "acv", "acv_id",
    "centralite", "densite", "ruralite", "montagne",
    "aav_code", "aav_categorie", "aav_categorie_libelle", "unite_urbaine", "zone_emploi",
    "bassin_vie", "anciens_codes", "cog_year",
]


def build_reference(settings: Settings | None = None) -> pd.DataFrame:
    """Build the commune reference table from the raw national tables (see module doc)."""
    s = settings or get_settings()
    cog = _read_csv(
        _raw("communes_cog", s),
        ["code", "nom", "type", "zone", "departement", "region", "population",
         "anciensCodes", "siren_epci"],
    )
    ref = cog[cog["type"] == "commune-actuelle"].rename(
        columns={"code": "insee", "siren_epci": "epci_siren", "anciensCodes": "anciens_codes"}
    )
    ref = ref[["insee", "nom", "departement", "region", "zone", "epci_siren", "population",
               "anciens_codes"]].copy()
    ref["population"] = pd.to_numeric(ref["population"]).round().astype("Int64")
    deps = pd.read_csv(_DEPARTEMENTS_FILE, dtype=str)
    ref = ref.merge(deps[["departement", "departement_nom", "region_nom"]],
                    on="departement", how="left")

    epci = _read_csv(_raw("epci_membres", s), ["siren_epci", "nom_epci", "type_epci"])
    epci = epci.drop_duplicates("siren_epci").rename(
        columns={"siren_epci": "epci_siren", "nom_epci": "epci_nom", "type_epci": "epci_type"}
    )
    ref = ref.merge(epci[["epci_siren", "epci_nom", "epci_type"]], on="epci_siren", how="left")

    # Population history, re-keyed to current communes (sums over merged communes).
    pop = _read_csv(_raw("populations", s), ["pop_millesime", "code", "population"])
    for year in POPULATION_YEARS:
        part = pop[pop["pop_millesime"] == str(year)]
        if part.empty:
            raise InputFileError(f"populations table has no millésime {year}")
        agg = aggregate_to_current(part, "code", sum_cols=["population"], settings=s)
        ref = ref.merge(
            agg[["insee", "population"]].rename(columns={"population": f"pop_{year}"}),
            on="insee", how="left",
        )
        ref[f"pop_{year}"] = ref[f"pop_{year}"].round().astype("Int64")

    ref["typologie"] = population_typologies(ref["population"])

    # Programmes.
    pvd = _read_csv(_raw("pvd", s), ["insee_com", "id_pvd", "date_signature"])
    pvd["insee"] = pvd["insee_com"].map(current_code_map(s))
    pvd = pvd.dropna(subset=["insee"]).drop_duplicates("insee")
    ref = ref.merge(
        pvd[["insee", "id_pvd", "date_signature"]].rename(
            columns={"id_pvd": "pvd_id", "date_signature": "pvd_date_signature"}
        ),
        on="insee", how="left",
    )
    ref["pvd"] = ref["pvd_id"].notna()
    acv = _read_csv(_raw("acv", s), ["insee_com", "id_acv"])
    acv["insee"] = acv["insee_com"].map(current_code_map(s))
    acv = acv.dropna(subset=["insee"]).drop_duplicates("insee")
    ref = ref.merge(acv[["insee", "id_acv"]].rename(columns={"id_acv": "acv_id"}),
                    on="insee", how="left")
    ref["acv"] = ref["acv_id"].notna()

    # Typologies (COG 2025): the most populous former commune's level for 2026 mergers.
    pop_2023 = pop[pop["pop_millesime"] == "2023"][["code", "population"]]
    for ds_id, column in (("centralite", "niveau_centralite"), ("densite", "niveau_densite"),
                          ("ruralite", "niveau_ruralite"), ("montagne", "niveau_montagne")):
        table = _read_csv(_raw(ds_id, s), ["insee_com", column])
        table[column] = table[column].str.strip()
        table.loc[table[column].isin(["- undefined", "undefined", ""]), column] = pd.NA
        table = table.merge(pop_2023, left_on="insee_com", right_on="code", how="left")
        table["population"] = table["population"].fillna("0")
        agg = aggregate_to_current(table, "insee_com", first_cols=[column],
                                   rank_col="population", settings=s)
        ref = ref.merge(agg[["insee", column]].rename(columns={column: ds_id}),
                        on="insee", how="left")

    app = _read_csv(_raw("appartenance_geo", s),
                    ["CODGEO", "AAV2020", "CATEAAV2020", "UU2020", "ZE2020", "BV2012"])
    app = app.merge(pop_2023, left_on="CODGEO", right_on="code", how="left")
    app["population"] = app["population"].fillna("0")
    agg = aggregate_to_current(
        app, "CODGEO", first_cols=["AAV2020", "CATEAAV2020", "UU2020", "ZE2020", "BV2012"],
        rank_col="population", settings=s,
    ).rename(columns={"AAV2020": "aav_code", "CATEAAV2020": "aav_categorie",
                      "UU2020": "unite_urbaine", "ZE2020": "zone_emploi", "BV2012": "bassin_vie"})
    ref = ref.merge(agg.drop(columns="n_source_codes"), on="insee", how="left")
    ref["aav_categorie_libelle"] = ref["aav_categorie"].map(AAV_CATEGORIES)
    ref["cog_year"] = s.cog_year

    ref = ref[REFERENCE_COLUMNS].sort_values("insee").reset_index(drop=True)
    for col in REFERENCE_COLUMNS:
        if ref[col].dtype == object:
            ref[col] = ref[col].astype("string")
    return ref


def load_reference(settings: Settings | None = None, *, rebuild: bool = False
                   ) -> pd.DataFrame:
    """The commune reference table (cached in ``data/interim/communes.parquet``).

    Rebuilt when the cache is missing or older than its raw inputs or this module, or
    when ``rebuild`` (make, whose prerequisites say it is stale).
    """
    s = settings or get_settings()
    cache = s.interim_dir / "communes.parquet"
    inputs = [_raw(d, s) for d in REFERENCE_DATASETS] + [Path(__file__), _DEPARTEMENTS_FILE]
    if rebuild or is_stale(cache, inputs):
        log.info("building the commune reference table from %d national datasets",
                 len(REFERENCE_DATASETS))
        ref = build_reference(s)
        write_parquet(ref, cache, metadata=_vintages(REFERENCE_DATASETS, s))
        log.info("wrote %s (%d communes)", cache, len(ref))
    return read_parquet_cached(cache)


def _reference_codes(s: Settings) -> frozenset[str]:
    """The INSEE codes of the reference (built once per reference file version)."""
    cache = s.interim_dir / "communes.parquet"
    if not cache.exists():
        load_reference(s)
    st = cache.stat()
    return _codes_of(str(cache), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=2)
def _codes_of(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    return frozenset(pd.read_parquet(path, columns=["insee"])["insee"].astype(str))


def _vintages(dataset_ids: Iterable[str], s: Settings) -> dict[str, Any]:
    """Provenance metadata of a national table: COG year and each input's vintage."""
    catalogue = sources.load_catalogue(s)
    return {"cog_year": s.cog_year,
            "sources": {d: catalogue[d].vintage for d in dataset_ids}}


# --- lookups ------------------------------------------------------------------------------


def _name_keys(ref: pd.DataFrame) -> pd.Series:
    """:func:`normalize_name` of every reference name (computed once per name list)."""
    names = tuple(ref["nom"])
    return pd.Series(_normalized(names), index=ref.index)


@lru_cache(maxsize=2)
def _normalized(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(normalize_name(n) for n in names)


def search_communes(
    query: str, *, limit: int = 5, settings: Settings | None = None
) -> pd.DataFrame:
    """Up to ``limit`` communes whose code or name is closest to ``query``."""
    ref = load_reference(settings)
    text = str(query).strip()
    if re.fullmatch(r"[0-9AaBb]{1,5}", text):
        codes = difflib.get_close_matches(text.upper(), ref["insee"].tolist(), n=limit,
                                          cutoff=0.6)
        return ref.set_index("insee").loc[codes].reset_index()
    key = normalize_name(text)
    keys = _name_keys(ref)
    starts = ref[keys.str.startswith(key)] if key else ref.iloc[:0]
    close = difflib.get_close_matches(key, keys.unique().tolist(), n=limit, cutoff=0.6)
    near = ref[keys.isin(close)].assign(_order=keys[keys.isin(close)].map(close.index))
    out = pd.concat([near.sort_values("_order").drop(columns="_order"), starts])
    out = out.drop_duplicates("insee")
    return out.sort_values("population", ascending=False, kind="stable").head(limit) \
        if len(out) > limit else out


def _describe(rows: pd.DataFrame) -> str:
    return "; ".join(
        f"{r.insee} {r.nom} ({r.departement}, "
        f"{r.population if pd.notna(r.population) else '?'} hab.)"
        for r in rows.itertuples()
    )


def resolve_insee(query: str, settings: Settings | None = None) -> str:
    """Current INSEE code of a commune given by code (current or former) or by name.

    Names are matched case-, accent- and punctuation-insensitively; an ambiguous name
    (e.g. "Saint-Martin") lists the candidates; a name may be qualified by its
    département: ``"Vernon 27"``. Unknown or malformed input raises
    :class:`UnknownCommuneError` listing up to 5 close matches.
    """
    s = settings or get_settings()
    text = str(query).strip()
    if not text:
        raise UnknownCommuneError("empty commune query: give an INSEE code or a name")
    looks_like_code = bool(re.fullmatch(r"[0-9A-Za-z]{2,7}", text)) and (
        sum(ch.isdigit() for ch in text) >= 2
    )
    if looks_like_code:
        code = validate_insee(text)
        if code in _reference_codes(s):
            return code
        current = current_code_map(s).get(code)
        if current is not None:
            ref = load_reference(s)
            name = ref.loc[ref["insee"] == current, "nom"].iloc[0]
            if code in _arrondissement_codes(str(_raw("communes_cog", s))):
                log.warning("%s is a municipal arrondissement of %s; the town is %s (%s)",
                            code, name, current, name)
            else:
                log.warning("%s is a former commune code; it is now part of %s (%s)", code,
                            current, name)
            return current
        close = search_communes(code, settings=s)
        hint = f"; close codes: {_describe(close)}" if len(close) else ""
        raise UnknownCommuneError(
            f"unknown INSEE code {code!r}: no current commune (COG {s.cog_year}) has it{hint}"
        )
    ref = load_reference(s)
    dep = None
    m = re.fullmatch(r"(.*?)[\s,(]+(\d{2,3}|2[AB])\)?", text)
    if m:
        text, dep = m.group(1), m.group(2)
    key = normalize_name(text)
    keys = _name_keys(ref)
    hits = ref[keys == key]
    if dep is not None:
        hits = hits[hits["departement"] == dep]
    if len(hits) == 1:
        return str(hits["insee"].iloc[0])
    if len(hits) > 1:
        hits = hits.sort_values("population", ascending=False)
        raise UnknownCommuneError(
            f"{len(hits)} communes are named {query!r}: {_describe(hits.head(5))}"
            + (" …" if len(hits) > 5 else "")
            + "; give the INSEE code or add the département (e.g. 'Vernon 27')"
        )
    close = search_communes(text, settings=s)
    hint = f"; close matches: {_describe(close)}" if len(close) else ""
    raise UnknownCommuneError(f"no commune named {query!r}{hint}")


def get_commune(query: str, settings: Settings | None = None) -> pd.Series:
    """Reference row of one commune, given by INSEE code or name (see resolve_insee)."""
    ref = load_reference(settings)
    code = resolve_insee(query, settings)
    return ref.loc[ref["insee"] == code].iloc[0]


def metric_crs(insee: str, settings: Settings | None = None) -> str:
    """Metric CRS to compute in for a commune (Lambert-93, or a UTM-based CRS overseas)."""
    s = settings or get_settings()
    return s.crs_for_department(departement_of(validate_insee(insee)))


# --- polygons -----------------------------------------------------------------------------


def _polygons_wgs84(settings: Settings) -> gpd.GeoDataFrame:
    """National commune polygons (EPSG:4326), current communes; cached as GeoParquet.

    Communes created by 2026 mergers get the union of their former communes' polygons;
    communes the layer lacks get one from another boundary source where one is
    unambiguous (:mod:`geo._boundaries`: the gap their neighbours leave, the OSM
    boundary of a catalogued extract). ``polygon_source`` says where each comes from.
    """
    raw = _raw("communes_polygons", settings)
    cache = settings.interim_dir / "communes_polygons_wgs84.parquet"
    cog = _raw("communes_cog", settings)
    code = [Path(__file__), Path(_boundaries.__file__), settings.catalogue_file]
    if not is_stale(cache, [raw, cog, *code]):
        return read_parquet_cached(cache)
    try:
        gdf = pyogrio.read_dataframe(raw, layer="communes")
    except Exception as exc:  # pyogrio raises several error types for corrupt files
        raise InputFileError(f"cannot read commune polygons {raw}: {exc}") from None
    missing = [c for c in ("insee", "nom", "type") if c not in gdf.columns]
    if missing:
        raise MissingColumnsError(str(raw), missing, list(gdf.columns))
    if gdf.crs is None:
        raise InputFileError(f"commune polygons {raw} have no CRS")
    gdf = gdf.to_crs("EPSG:4326")
    gdf["geometry"] = shapely.make_valid(gdf.geometry.values)
    mapping = current_code_map(settings)
    gdf["insee_current"] = gdf["insee"].map(mapping)
    is_arm = gdf["type"] == "ARM"
    communes = gdf[~is_arm & gdf["insee_current"].notna()]
    multi = communes["insee_current"].duplicated(keep=False)
    unions = communes[multi].dissolve(by="insee_current", as_index=False, aggfunc="first")
    merged = pd.concat([communes[~multi], unions.drop(columns=["insee"], errors="ignore")])
    merged = merged.drop(columns=["insee"]).rename(columns={"insee_current": "insee"})
    if multi.any():
        log.info("%d polygons of former communes merged into %d current communes",
                 int(multi.sum()), unions.shape[0])
    arm = gdf[is_arm].drop(columns=["insee_current"])
    out = pd.concat([merged[["insee", "nom", "type", "geometry"]],
                     arm[["insee", "nom", "type", "geometry"]]], ignore_index=True)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:4326")
    out["polygon_source"] = "communes_polygons"
    ref = load_reference(settings)
    names = ref.set_index("insee")["nom"]
    out.loc[out["type"] != "ARM", "nom"] = out["insee"].map(names).fillna(out["nom"])
    lacking = sorted(set(ref["insee"]) - set(out["insee"]))
    extra = _missing_polygons(lacking, out, ref, settings)
    if len(extra):
        out = gpd.GeoDataFrame(pd.concat([out, extra], ignore_index=True), crs="EPSG:4326")
        log.info("%d commune polygon(s) taken from other boundary sources: %s", len(extra),
                 "; ".join(f"{r.insee} ({r.polygon_source})" for r in extra.itertuples()))
    still = [c for c in lacking if c not in set(extra["insee"])]
    if still:
        log.info("%d current communes have no polygon in %s nor in another boundary source "
                 "(%d overseas collectivités): %s", len(still), raw.name,
                 sum(departement_of(c) in _COLLECTIVITES for c in still), ", ".join(still[:12]))
    write_parquet(out, cache, metadata=_vintages(("communes_polygons", "communes_cog"), settings))
    return read_parquet_cached(cache)


#: Collectivités d'outre-mer and other territories the national commune layers do not
#: cover (INSEE "département" codes).
_COLLECTIVITES = ("975", "977", "978", "984", "986", "987", "988", "989")


def _missing_polygons(
    codes: Sequence[str], layer: gpd.GeoDataFrame, ref: pd.DataFrame, s: Settings
) -> gpd.GeoDataFrame:
    """Polygons (EPSG:4326) of current communes ``layer`` lacks, from the boundary
    sources of :mod:`geo._boundaries`: the OSM boundary in a catalogued extract of the
    commune, else (mainland) the gap its neighbours leave."""
    ref = ref.set_index("insee")
    rows: list[dict[str, Any]] = []
    for code in codes:
        extracts = [d for d in sources.datasets_for_town(code, settings=s)
                    if d.kind.startswith("osm") and code in d.insee]
        for ds in sorted(extracts, key=lambda d: not d.format.endswith("pbf")):
            try:
                found = _boundaries.osm_boundary(sources.ensure(ds.id, s), code,
                                                 str(ref.at[code, "nom"]))
            except (DataSourceError, InputFileError, RuntimeError) as exc:
                log.warning("%s: OSM extract %s unreadable for its boundary: %s", code,
                            ds.id, exc)
                continue
            if found is not None:
                rows.append({"insee": code, "geometry": found[0],
                             "polygon_source": f"{found[1]} of {ds.id} ({ds.vintage})"})
                break
    done = {r["insee"] for r in rows}
    mainland = [c for c in codes if c not in done and len(departement_of(c)) == 2]
    epci = ref["epci_siren"].where(ref["epci_siren"].notna(), None).to_dict()
    gaps = _boundaries.gap_polygons(mainland, layer[layer["type"] != "ARM"], epci)
    rows += [{"insee": c, "geometry": g,
              "polygon_source": "gap left by the neighbouring communes in communes_polygons"}
             for c, g in gaps.items()]
    if not rows:
        return gpd.GeoDataFrame({"insee": [], "nom": [], "type": [], "polygon_source": []},
                                geometry=[], crs="EPSG:4326")
    extra = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    extra["nom"] = extra["insee"].map(ref["nom"])
    extra["type"] = "COM"
    return extra[["insee", "nom", "type", "geometry", "polygon_source"]]


_FULLRES_CODE_COLUMNS = ("insee", "INSEE_COM", "insee_com", "code", "CODE_INSEE")


def _fullres_polygons(dataset_id: str, settings: Settings) -> gpd.GeoDataFrame:
    """Full-resolution polygons ``[insee, geometry]`` of one ``communes_fullres`` dataset,
    re-keyed to current communes (former communes' polygons unioned)."""
    path = _raw(dataset_id, settings)
    return _read_fullres_cached(str(path), path.stat().st_mtime,
                                str(_raw("communes_cog", settings)))


@lru_cache(maxsize=4)
def _read_fullres_cached(path: str, mtime: float, cog_path: str) -> gpd.GeoDataFrame:
    try:
        gdf = pyogrio.read_dataframe(path)
    except Exception as exc:  # pyogrio raises several error types for corrupt files
        raise InputFileError(f"cannot read commune polygons {path}: {exc}") from None
    col = next((c for c in _FULLRES_CODE_COLUMNS if c in gdf.columns), None)
    if col is None:
        raise MissingColumnsError(path, ["INSEE_COM (or insee, code)"], list(gdf.columns))
    if gdf.crs is None:
        raise InputFileError(f"commune polygons {path} have no CRS")
    cog = Path(cog_path).stat()
    code_map = _code_map_cached(cog_path, cog.st_mtime_ns, cog.st_size)
    gdf["insee"] = gdf[col].astype(str).str.strip().map(code_map)
    gdf = gdf.dropna(subset=["insee"])
    gdf["geometry"] = shapely.make_valid(gdf.geometry.values)
    return gdf[["insee", "geometry"]].dissolve(by="insee", as_index=False)


def commune_polygons(
    insee: Iterable[str] | None = None,
    *,
    crs: str | None = None,
    include_arrondissements: bool = False,
    full_resolution: bool = False,
    settings: Settings | None = None,
) -> gpd.GeoDataFrame:
    """Commune polygons ``[insee, nom, geometry]``.

    Parameters
    ----------
    insee
        Codes to return (current codes); all communes when None.
    crs
        Output CRS. Default: the metric CRS of the requested communes (EPSG:2154 in
        mainland France); a request spanning several CRS (mainland and overseas) must
        give ``crs`` explicitly.
    include_arrondissements
        With ``insee=None``, also return the municipal arrondissements of Paris, Lyon
        and Marseille (which overlap their commune).
    full_resolution
        Replace the simplified national polygons by full-resolution ones (catalogue
        datasets of kind ``communes_fullres``, e.g. BD CARTO for the Lot) wherever such
        a dataset covers the commune's département. Use it for area measures against
        fine data (land-cover shares on 100 m pixels, cell x commune area weights); the
        simplified layer (median 27 vertices per commune) is meant for display and
        selection. Neighbours from the two layers may overlap or leave slivers along
        the edge of the covered département.
    """
    s = settings or get_settings()
    polys = _polygons_wgs84(s)
    if insee is not None:
        insee = [validate_insee(c) for c in insee]
    if full_resolution:
        wanted = None if insee is None else {departement_of(c) for c in insee}
        polys = _with_full_resolution(polys, s, wanted)
    if insee is None:
        out = polys if include_arrondissements else polys[polys["type"] != "ARM"]
    else:
        codes = insee  # validated above
        out = polys[polys["insee"].isin(codes)]
        missing = sorted(set(codes) - set(out["insee"]))
        if missing:
            ref_codes = set(load_reference(s)["insee"])
            unknown = [c for c in missing if c not in ref_codes]
            if unknown:
                raise UnknownCommuneError(
                    f"unknown INSEE code(s) {', '.join(unknown[:10])}: not current communes "
                    f"(COG {s.cog_year})"
                )
            raise InputFileError(_no_polygon_message(missing, s))
    if crs is None:
        crss = {s.crs_for_department(departement_of(c)) for c in out["insee"]}
        if len(crss) > 1:
            raise InputFileError(
                f"the requested communes span several metric CRS ({', '.join(sorted(crss))}); "
                f"pass crs= explicitly (e.g. crs='EPSG:4326')"
            )
        crs = crss.pop() if crss else s.work_crs
    return out[["insee", "nom", "geometry"]].to_crs(crs).reset_index(drop=True)


def _no_polygon_message(codes: Sequence[str], s: Settings) -> str:
    """Why communes ``codes`` have no polygon, and what would give them one."""
    names = load_reference(s).set_index("insee")["nom"]
    listed = ", ".join(f"{c} ({names.get(c, '?')})" for c in codes[:10])
    vintage = sources.get_dataset("communes_polygons", s).vintage
    if all(departement_of(c) in _COLLECTIVITES for c in codes):
        why = ("the national commune layers do not cover the collectivités d'outre-mer, "
               "and no catalogued OSM extract of it holds its administrative boundary")
    else:
        why = (f"the commune layer (communes_polygons, {vintage}) has no polygon for it "
               "(created or restored after that vintage?) and its neighbours leave no gap "
               "that is unambiguously it")
    return (f"no polygon for commune(s) {listed}: {why}; catalogue a boundary source "
            "covering it (an OSM extract with its boundary, or full-resolution commune "
            "polygons) in data/sources.toml")


def _with_full_resolution(
    polys: gpd.GeoDataFrame, s: Settings, departements: set[str] | None = None
) -> gpd.GeoDataFrame:
    """``polys`` (EPSG:4326) with full-resolution geometries where a dataset has them
    (only datasets covering one of ``departements`` when given)."""
    fullres = [d for d in sources.load_catalogue(s).values() if d.kind == "communes_fullres"
               and (departements is None or not d.departements
                    or set(d.departements) & departements)]
    if not fullres:
        return polys
    polys = polys.copy()
    for ds in fullres:
        deps = set(ds.departements)
        try:
            fine = _fullres_polygons(ds.id, s).to_crs(polys.crs)
        except (DataSourceError, InputFileError) as exc:
            log.warning("full-resolution communes %s unavailable, using the simplified "
                        "layer: %s", ds.id, exc)
            continue
        if deps:
            fine = fine[fine["insee"].map(departement_of).isin(deps)]
        geoms = fine.set_index("insee").geometry
        hit = polys["insee"].isin(geoms.index) & (polys["type"] != "ARM")
        polys.loc[hit, "geometry"] = geoms.reindex(polys.loc[hit, "insee"]).to_numpy()
        log.debug("%s: %d communes at full resolution", ds.id, int(hit.sum()))
    return polys


@dataclass(frozen=True)
class Catchment:
    """A town and the area around it that its residents reach.

    Geometries are in ``crs`` (metric). ``area`` is the town polygon buffered by
    ``buffer_m``; ``communes`` are all communes intersecting ``area`` (full polygons),
    with ``is_town`` marking the town itself.
    """

    insee: str
    crs: str
    buffer_m: float
    town: BaseGeometry
    area: BaseGeometry
    communes: gpd.GeoDataFrame

    @property
    def insee_codes(self) -> list[str]:
        """INSEE codes of the town and its catchment communes."""
        return self.communes["insee"].tolist()


def catchment(
    insee: str, *, buffer_m: float | None = None, settings: Settings | None = None
) -> Catchment:
    """The town polygon, its buffered catchment area and the communes it touches.

    ``buffer_m`` defaults to ``settings.catchment_m`` (what the fastest mode covers in the
    largest time threshold: 15 km/h x 20 min = 5,000 m).
    """
    s = settings or get_settings()
    code = resolve_insee(insee, s)
    crs = metric_crs(code, s)
    buffer = s.catchment_m if buffer_m is None else float(buffer_m)
    if buffer < 0 or not np.isfinite(buffer):
        raise InputFileError(
            f"catchment buffer must be a distance >= 0 in metres, got {buffer_m!r}"
        )
    town = commune_polygons([code], crs=crs, settings=s).geometry.iloc[0]
    area = town.buffer(buffer) if buffer > 0 else town
    polys = _polygons_wgs84(s)
    polys = polys[polys["type"] != "ARM"]
    area_wgs84 = gpd.GeoSeries([area], crs=crs).to_crs("EPSG:4326").iloc[0]
    hits = polys.iloc[polys.sindex.query(area_wgs84, predicate="intersects")]
    communes = hits[["insee", "nom", "geometry"]].to_crs(crs)
    communes = communes[communes.intersects(area)].copy()
    communes["is_town"] = communes["insee"] == code
    communes = communes.sort_values(["is_town", "insee"], ascending=[False, True])
    return Catchment(insee=code, crs=crs, buffer_m=buffer, town=town, area=area,
                     communes=communes.reset_index(drop=True))


#: File of a town folder holding its catchment (written by the card stage, read by the
#: later stages so that none recomputes it from the national polygons).
CATCHMENT_FILE = "catchment.parquet"


def write_catchment(c: Catchment, path: str | Path) -> Path:
    """Write a catchment as GeoParquet (its communes, in its metric CRS), atomically.

    The town polygon is the ``is_town`` row; the buffer distance, CRS and town code are in
    the file's ``pvdgeo`` metadata, so :func:`read_catchment` rebuilds the same
    :class:`Catchment`. The file is left untouched when it already holds the same
    catchment (downstream stages and make see no change)."""
    path = Path(path)
    meta = {"insee": c.insee, "crs": c.crs, "buffer_m": c.buffer_m}
    frame = c.communes[["insee", "nom", "is_town", "geometry"]].reset_index(drop=True)
    if path.is_file():
        try:
            old = read_catchment(path)
        except InputFileError:
            old = None
        if (old is not None and old.insee == c.insee and old.crs == c.crs
                and old.buffer_m == c.buffer_m
                and old.communes["insee"].tolist() == frame["insee"].tolist()
                and bool(old.communes.geometry.geom_equals_exact(
                    frame.geometry, tolerance=0.0).all())):
            return path
    return write_parquet(frame, path, metadata=meta)


def read_catchment(path: str | Path) -> Catchment:
    """The :class:`Catchment` written by :func:`write_catchment` (area = town polygon
    buffered by ``buffer_m``, as :func:`catchment` builds it)."""
    from geo._io import read_parquet_metadata

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"catchment file {path} does not exist (built by the card "
                             "stage: `pvdgeo commune INSEE --json DIR/town.json`)")
    try:
        frame = gpd.read_parquet(path)
        meta = read_parquet_metadata(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read catchment {path}: {exc}") from None
    missing = [k for k in ("insee", "crs", "buffer_m") if k not in meta]
    if missing or "is_town" not in frame.columns:
        raise InputFileError(f"catchment {path} lacks {', '.join(missing) or 'is_town'}: "
                             "not written by pvdgeo; rebuild it with the card stage")
    town_rows = frame[frame["is_town"].astype(bool)]
    if len(town_rows) != 1:
        raise InputFileError(f"catchment {path} has {len(town_rows)} town rows, expected 1")
    town = town_rows.geometry.iloc[0]
    buffer = float(meta["buffer_m"])
    return Catchment(insee=str(meta["insee"]), crs=str(meta["crs"]), buffer_m=buffer,
                     town=town, area=town.buffer(buffer) if buffer > 0 else town,
                     communes=frame.set_crs(meta["crs"], allow_override=True))


# --- town card and national statistics ---------------------------------------------------


def town_card(insee: str, *, town_catchment: Catchment | None = None,
              settings: Settings | None = None) -> dict[str, Any]:
    """Everything the pipeline needs to know about a town, as a JSON-ready dict
    (``town_catchment``: its catchment when already computed)."""
    s = settings or get_settings()
    row = get_commune(insee, s)
    card: dict[str, Any] = {}
    for key, value in row.items():
        if pd.isna(value):
            card[key] = None
        elif isinstance(value, np.generic):
            card[key] = value.item()
        else:
            card[key] = value
    card["metric_crs"] = metric_crs(card["insee"], s)
    polys = _polygons_wgs84(s)
    source = polys.loc[polys["insee"] == card["insee"], "polygon_source"]
    card["polygon_source"] = str(source.iloc[0]) if len(source) else None
    if card["polygon_source"] not in (None, "communes_polygons"):
        log.info("%s: polygon from %s", card["insee"], card["polygon_source"])
    try:
        c = town_catchment if town_catchment is not None else catchment(card["insee"],
                                                                         settings=s)
    except InputFileError as exc:
        log.warning("no catchment for %s: %s", card["insee"], exc)
        card["catchment"] = None
    else:
        ref = load_reference(s).set_index("insee")
        card["catchment"] = {
            "buffer_m": c.buffer_m,
            "area_km2": round(c.area.area / 1e6, 3),
            "town_area_km2": round(c.town.area / 1e6, 3),
            "bounds": [round(v, 1) for v in c.area.bounds],
            "communes": [
                {"insee": code, "nom": nom,
                 "population": None if pd.isna(ref.at[code, "population"])
                 else int(ref.at[code, "population"])}
                for code, nom in zip(c.communes["insee"], c.communes["nom"], strict=True)
            ],
        }
    card["local_datasets"] = {
        d.id: d.kind for d in sources.datasets_for_town(card["insee"], settings=s)
    }
    return card


def typology_groups(ref: pd.DataFrame, *, year: int | None = None) -> dict[str, pd.Series]:
    """Boolean masks over ``ref`` of the national statistics groups, in report order.

    ``petite ville``, ``ville moyenne``, ``grande ville`` (typology of the legal
    population of ``year``; default the current typology, legal population 2023),
    ``PVD``, ``ACV`` (current programme membership) and ``France``.
    The national scope is INSEE's usual "France": mainland France and the overseas
    départements (``zone`` metro and drom); the collectivités d'outre-mer (Polynésie,
    Nouvelle-Calédonie, Saint-Barthélemy...) are outside every group.
    """
    scope = ref["zone"].isin(NATIONAL_ZONES).fillna(False).astype(bool)
    typology = (ref["typologie"] if year is None
                else population_typologies(ref[f"pop_{year}"]))
    groups = {t: (typology == t).fillna(False).astype(bool) & scope for t in TYPOLOGIES}
    groups["PVD"] = ref["pvd"].astype(bool) & scope
    groups["ACV"] = ref["acv"].astype(bool) & scope
    groups["France"] = scope
    return groups


def typology_stats(
    year: int = 2023, *, settings: Settings | None = None,
    typology_year: int | None = None,
) -> pd.DataFrame:
    """Communes and population per Data Territoria typology and for PVD and ACV towns.

    Groups are current communes (merged communes re-keyed) classified by the legal
    population of ``typology_year`` (default: ``year`` itself, the typology of that
    year; pass 2023 for today's typology over every year). Columns: ``groupe``,
    ``annee``, ``typologie_annee``, ``communes``, ``population``,
    ``part_population_nationale`` (share of the national population, 0..1),
    ``population_2016`` and ``croissance_depuis_2016`` (relative growth, 0.05 = +5 %),
    both over the communes that have a population in 2016 and in ``year``.
    """
    if year not in POPULATION_YEARS:
        raise InputFileError(
            f"no legal population for year {year}; available: "
            + ", ".join(map(str, POPULATION_YEARS))
        )
    s = settings or get_settings()
    load_reference(s)  # built or rebuilt when stale
    cache = s.interim_dir / "communes.parquet"
    st = cache.stat()
    # every portrait asks for the same national figures: once per reference version
    return _typology_stats(str(cache.resolve()), st.st_mtime_ns, st.st_size, year,
                           typology_year).copy()


@lru_cache(maxsize=64)
def _typology_stats(path: str, mtime_ns: int, size: int, year: int,
                    typology_year: int | None) -> pd.DataFrame:
    ref = read_parquet_cached(path)
    col = f"pop_{year}"
    groups = typology_groups(ref, year=year if typology_year is None else typology_year)
    total = ref.loc[groups["France"], col].sum()
    rows = []
    for name, mask in groups.items():
        part = ref[mask]
        pop = part[col].sum()
        # growth on the communes with both populations (no 2016 figure for Mayotte and
        # most collectivités d'outre-mer: counting them in one year only inflates growth)
        both = part[col].notna() & part["pop_2016"].notna()
        pop16 = part.loc[both, "pop_2016"].sum()
        rows.append({
            "groupe": name,
            "annee": year,
            "typologie_annee": year if typology_year is None else typology_year,
            "communes": int(mask.sum()),
            "population": int(pop),
            "part_population_nationale": float(pop / total),
            "population_2016": int(pop16),
            "croissance_depuis_2016": float(part.loc[both, col].sum() / pop16 - 1)
            if pop16 else np.nan,
        })
    return pd.DataFrame(rows)
