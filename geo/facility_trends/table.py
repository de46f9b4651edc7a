"""The national commune table of facility trends (:func:`commune_trends`,
:func:`facility_trends_by_commune`, ``data/interim/facility_trends_communes.parquet``):
counts of every vintage on the types of each pair, their changes, the "last one lost"
flags and each key's status per pair (:func:`pair_status`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from geo import communes, sources
from geo._categories import Categories, load_categories
from geo._insee import departement_of
from geo._io import is_stale, read_parquet_cached, read_parquet_metadata, write_parquet
from geo.errors import DataSourceError
from geo.facility_trends.keys import trend_keys
from geo.facility_trends.passage import (
    HarmonisedType,
    Passage,
    bpe_code_subcategories,
    harmonise,
    load_passage,
)
from geo.facility_trends.vintages import (
    Vintage,
    available_vintages,
    population_year_for,
    read_vintage,
    trend_pairs,
)
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.facility_trends: log lines keep their logger name


#: File name of the national commune table in ``settings.interim_dir``.
TRENDS_FILE = "facility_trends_communes.parquet"

Status = Literal["comparable", "partiel", "non comparable"]
STATUS_LABELS = {"comparable": "comparable", "partiel": "partiel (champ commun)",
                 "non comparable": "un seul millésime"}


# --- the national commune table --------------------------------------------------------------


def commune_trends(*, settings: Settings | None = None) -> pd.DataFrame:
    """Facility counts of every BPE vintage and their changes, for every current commune.

    Returns
    -------
    DataFrame
        One row per commune of the reference: ``insee``, ``nom``; per vintage ``y``:
        ``population_bpe_<y>`` (legal population used, year in ``attrs["meta"]``),
        ``n_<key>_<y>`` (equipments of the vintage's own nomenclature) and
        ``n_<key>_per_10k_<y>``; per compared pair ``a, b`` (:func:`trend_pairs`):
        ``n_<key>_base_<a>_<b>`` (equipments in ``a`` of the types present in both),
        ``n_<key>_change_<a>_<b>`` (change on those types), ``n_<key>_per_10k_change_<a>_<b>``
        and ``<key>_lost_last_<a>_<b>`` (True: had one in ``a`` and none in ``b``; empty when
        it had none in ``a``). Empty where a vintage does not cover the département or the
        key has no type in both vintages. ``attrs["meta"]``: vintages, populations, types,
        statuses, undocumented changes, national totals per type.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    passage = load_passage(s, categories=cats)
    code_sub = bpe_code_subcategories(cats)
    ref = communes.load_reference(s).set_index("insee")
    vintages = available_vintages(s)
    if len(vintages) < 2:
        raise DataSourceError(
            f"facility trends need two BPE vintages; found {[v.year for v in vintages]} "
            "(catalogue datasets with bpe_year: bpe_2009_counts, bpe_2013_counts, bpe_xy...)")
    years = [v.year for v in vintages]
    by_code: dict[int, pd.DataFrame] = {}
    covered: dict[int, set[str]] = {}
    reading: dict[str, Any] = {}
    for v in vintages:
        table, info = _vintage_by_commune(v, code_sub, cats, s)
        by_code[v.year] = table.reindex(ref.index)
        covered[v.year] = {departement_of(c) for c in table.index}
        reading[str(v.year)] = info
        log.info("BPE %d (%s): %s equipments in the categories, %d communes", v.year,
                 v.dataset, f"{info['equipments_kept']:,}", len(table))
    observed = {y: [c for c in t.columns if t[c].sum() > 0] for y, t in by_code.items()}
    types, undocumented = harmonise(observed, passage, code_sub)
    for msg in undocumented:
        log.warning("facility trends: %s", msg)
    keys = trend_keys(cats)
    pop_years = {y: population_year_for(y, communes.POPULATION_YEARS) for y in years}
    deps = ref.index.map(departement_of)
    cover = {y: np.asarray(deps.isin(sorted(covered[y]))) for y in years}
    per_type = {y: _type_counts(by_code[y], types, y) for y in years}
    pairs = trend_pairs(years)

    cols: dict[str, Any] = {"insee": ref.index.to_numpy(), "nom": ref["nom"].to_numpy()}
    pop = {}
    for y in years:
        pop[y] = _num(ref[f"pop_{pop_years[y]}"])
        cols[f"population_bpe_{y}"] = _ints(pop[y])
    statuses: dict[str, dict[str, Any]] = {}
    n_rows = len(ref)
    for k in keys.values():
        ktypes = [t for t in types if t.subcategory in k.subcategories]
        for y in years:
            n = _sum_types(per_type[y], [t for t in ktypes if t.present(y)]).where(cover[y])
            cols[f"n_{k.key}_{y}"] = _ints(n)
            cols[f"n_{k.key}_per_10k_{y}"] = _per_10k(n, pop[y]).array
        for a, b in pairs:
            suffix = f"{a}_{b}"
            status, common = pair_status(ktypes, a, b)
            if status is not None:
                statuses.setdefault(suffix, {})[k.key] = status
            if status is None or status == "non comparable":
                cols[f"n_{k.key}_base_{suffix}"] = pd.array([pd.NA] * n_rows, dtype="Int64")
                cols[f"n_{k.key}_change_{suffix}"] = pd.array([pd.NA] * n_rows, dtype="Int64")
                cols[f"n_{k.key}_per_10k_change_{suffix}"] = pd.array([pd.NA] * n_rows,
                                                                      dtype="Float64")
                cols[f"{k.key}_lost_last_{suffix}"] = pd.array([pd.NA] * n_rows,
                                                               dtype="boolean")
                continue
            both = cover[a] & cover[b]
            base = _sum_types(per_type[a], common).where(both)
            end = _sum_types(per_type[b], common).where(both)
            cols[f"n_{k.key}_base_{suffix}"] = _ints(base)
            cols[f"n_{k.key}_change_{suffix}"] = _ints(end - base)
            cols[f"n_{k.key}_per_10k_change_{suffix}"] = (
                _per_10k(end, pop[b]) - _per_10k(base, pop[a])).round(3).array
            lost = pd.array((end == 0).to_numpy(), dtype="boolean")
            lost[~(base > 0).to_numpy()] = pd.NA
            cols[f"{k.key}_lost_last_{suffix}"] = lost
    out = pd.DataFrame(cols)
    national = {t.key: {str(y): int(per_type[y][t.key].sum()) for y in years if t.present(y)}
                for t in types}
    out.attrs["meta"] = {
        "what": "BPE facility counts per commune and vintage, changes on one nomenclature",
        "cog_year": s.cog_year,
        "vintages": [{"year": v.year, "dataset": v.dataset, "source": v.label,
                      "path": str(v.path)} for v in vintages],
        "population_years": {str(y): pop_years[y] for y in years},
        "population_rule": "legal population of the nearest year in the commune reference "
                           f"({', '.join(map(str, communes.POPULATION_YEARS))}); ties: "
                           "the earlier year",
        "pairs": [f"{a}_{b}" for a, b in pairs],
        "keys": {k.key: {"level": k.level, "label": k.label, "category": k.category,
                         "subcategories": list(k.subcategories)} for k in keys.values()},
        "statuses": statuses,
        "types": [t.as_dict() for t in types],
        "national_totals": national,
        "undocumented_changes": undocumented,
        "covered_departements": {str(y): sorted(covered[y]) for y in years},
        "reading": reading,
        "passage": {"path": str(passage.path), "version": passage.version,
                    "links": len(passage.links)},
        "categories_version": cats.version,
    }
    _check_links(passage, types, national, years)
    return out


def pair_status(types: Sequence[HarmonisedType], a: int, b: int
                ) -> tuple[Status | None, list[HarmonisedType]]:
    """Status of a key between vintages ``a < b`` and its types present in both
    (None when no type of the key exists in either vintage)."""
    seen = [t for t in types if t.present(a) or t.present(b)]
    common = [t for t in seen if t.present(a) and t.present(b)]
    if not seen:
        return None, []
    if not common:
        return "non comparable", []
    return ("comparable" if len(common) == len(seen) else "partiel"), common


def _vintage_by_commune(v: Vintage, code_sub: Mapping[str, str], cats: Categories,
                        s: Settings) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Equipments per current commune (index) and mapped TYPEQU code (columns)."""
    long = read_vintage(v.path, label=f"BPE {v.year} ({v.dataset})")
    known = long["typequ"].map(code_sub)
    outside = {c for c in long["typequ"].unique() if not code_sub.get(c)
               and any(cats.bpe_subcategory(c, nom) == "" for nom in ("2013", "2021"))}
    ignored = long["typequ"].isin(outside)
    unknown = known.isna() & ~ignored
    unknown_codes = {str(c): int(n) for c, n in
                     long[unknown].groupby("typequ")["n"].sum().items()}
    info: dict[str, Any] = {
        "equipments": int(long["n"].sum()),
        "equipments_kept": int(long.loc[known.notna(), "n"].sum()),
        "equipments_outside_categories": int(long.loc[ignored, "n"].sum()),
        "unknown_codes": unknown_codes}
    if unknown_codes:
        log.warning("BPE %d: %d TYPEQU code(s) neither mapped nor ignored by the categories "
                    "left out (%s)", v.year, len(unknown_codes),
                    ", ".join(list(unknown_codes)[:8]))
    wide = long[known.notna()].pivot_table(index="depcom", columns="typequ", values="n",
                                           aggfunc="sum", fill_value=0)
    wide.columns = [str(c) for c in wide.columns]
    agg = communes.aggregate_to_current(wide.reset_index(), "depcom", sum_cols=list(wide.columns),
                                        settings=s)
    table = agg.set_index("insee").drop(columns="n_source_codes").astype("float64")
    dropped = int(wide.sum().sum() - table.sum().sum())
    info["equipments_unknown_communes"] = dropped
    return table, info


def _type_counts(table: pd.DataFrame, types: Sequence[HarmonisedType], year: int
                 ) -> pd.DataFrame:
    """Equipments per commune and harmonised type in one vintage (NaN off coverage)."""
    cols = {}
    for t in types:
        codes = [c for c in t.codes.get(year, ()) if c in table.columns]
        cols[t.key] = table[codes].sum(axis=1, min_count=1).fillna(0.0) if codes else \
            pd.Series(0.0, index=table.index)
    return pd.DataFrame(cols, index=table.index)


def _sum_types(counts: pd.DataFrame, types: Sequence[HarmonisedType]) -> pd.Series:
    if not types:
        return pd.Series(0.0, index=counts.index)
    return counts[[t.key for t in types]].sum(axis=1)


def _per_10k(n: pd.Series, pop: pd.Series) -> pd.Series:
    """Per 10,000 inhabitants (Float64, 3 decimals; empty without a population)."""
    return (_num(n) / pop.where(pop > 0) * 10_000).astype("Float64").round(3)


def _num(values: pd.Series) -> pd.Series:
    """A numeric column as float64 (missing values as NaN)."""
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _ints(values: pd.Series) -> Any:
    """Counts as a nullable Int64 array (missing stays missing)."""
    return _num(values).round().astype("Int64").array


def _check_links(passage: Passage, types: Sequence[HarmonisedType],
                 national: Mapping[str, Mapping[str, int]], years: Sequence[int]) -> None:
    """Warn when a joined type's national total jumps across a change of codes (x2 or /2
    between consecutive vintages): the link may hide a change of scope."""
    for t in types:
        for a, b in itertools.pairwise(years):
            if not (t.present(a) and t.present(b)) or t.codes[a] == t.codes[b]:
                continue
            na, nb = national[t.key][str(a)], national[t.key][str(b)]
            if na and not 0.5 <= nb / na <= 2.0:
                log.warning("facility trends: type %s goes from %d (BPE %d) to %d (BPE %d) "
                            "nationally across a change of codes: check its link in %s",
                            t.key, na, a, nb, b, passage.path)


def write_commune_trends(table: pd.DataFrame, path: str | Path | None = None, *,
                         settings: Settings | None = None) -> Path:
    """Write :func:`commune_trends` to Parquet (default
    ``data/interim/facility_trends_communes.parquet``), atomically, with its metadata."""
    s = settings or get_settings()
    target = Path(path) if path is not None else s.interim_dir / TRENDS_FILE
    frame = table.copy()
    frame.attrs = {}
    write_parquet(frame, target, metadata=table.attrs.get("meta", {}))
    log.info("wrote facility trends of %d communes to %s", len(frame), target)
    return target


def _inputs(s: Settings) -> list[Path]:
    ids = [d.id for d in sources.load_catalogue(s).values() if "bpe_year" in d.extra]
    paths = [sources.dataset_path(i, s) for i in ids]
    return [*[p for p in paths if p.is_file()], Path(s.bpe_passage_file),
            Path(s.categories_file), Path(__file__), Path(communes.__file__),
            s.interim_dir / "communes.parquet"]


def facility_trends_by_commune(settings: Settings | None = None) -> pd.DataFrame:
    """:func:`commune_trends`, cached in ``data/interim/facility_trends_communes.parquet``.

    Rebuilt when the cache is missing, older than an input (BPE files, the table de
    passage, the categories file, this module, the commune reference) or built on other
    vintages than those now available (a geolocated vintage downloaded since).
    """
    s = settings or get_settings()
    cache = s.interim_dir / TRENDS_FILE
    communes.load_reference(s)  # builds data/interim/communes.parquet, an input
    years = [v.year for v in available_vintages(s)]
    stale = is_stale(cache, _inputs(s))
    if not stale:
        built = [v["year"] for v in read_parquet_metadata(cache).get("vintages", [])]
        stale = built != years
    if stale:
        write_commune_trends(commune_trends(settings=s), cache, settings=s)
    table = read_parquet_cached(cache)
    table.attrs["meta"] = read_parquet_metadata(cache)
    return table
