"""Facility counts of every commune of France from the national sources: the national point
sources (:func:`national_facilities`), counts per category and subcategory and per 10,000
inhabitants (:func:`commune_counts`) and their cached table
(:func:`facilities_by_commune`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import geopandas as gpd
import pandas as pd

from geo import communes, sources
from geo._categories import CATEGORY_KEYS, load_categories
from geo._io import is_stale, read_parquet_cached, write_parquet
from geo.facilities.chains import chain_share
from geo.facilities.locate import check_communes, locate_communes
from geo.facilities.registers import (
    read_bpe_counts,
    read_bpe_xy,
    read_cinemas,
    read_festivals,
    read_france_services,
    read_museofile,
    read_wind_turbines,
)
from geo.facilities.schema import COUNTS_FILE, SourceReport, _report
from geo.facilities.town import _vintages
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.facilities: log lines keep their logger name


# --- the national point sources ------------------------------------------------------------


def national_facilities(
    *,
    settings: Settings | None = None,
    crs: str | None = None,
    polygons: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Museums, cinemas, festivals and commissioned wind turbines of all France, with their
    current INSEE code (Muséofile: located by point in polygon).

    ``attrs["reports"]`` holds the :class:`SourceReport` of each source and
    ``attrs["checks"]`` the :class:`CommuneCheck` of declared codes against the polygons.
    """
    s = settings or get_settings()
    code_map = communes.current_code_map(s)
    out_crs = crs or s.publish_crs
    parts = [
        read_museofile(settings=s, crs=out_crs),
        read_cinemas(settings=s, crs=out_crs, code_map=code_map),
        read_festivals(settings=s, crs=out_crs, code_map=code_map),
        read_wind_turbines(settings=s, crs=out_crs, code_map=code_map),
        read_france_services(settings=s, crs=out_crs, code_map=code_map),
    ]
    reports = {p["source"].iloc[0] if len(p) else _report(p).source: _report(p) for p in parts}
    if polygons is None:
        polygons = communes.commune_polygons(crs="EPSG:4326", settings=s)
    checks = {}
    for p in parts[1:]:
        if len(p):
            check = check_communes(p.to_crs("EPSG:4326"), polygons)
            checks[check.source] = check
            log.info("%s", check.summary())
    # Muséofile has no INSEE code; other rows may lack one ("00000"): point in polygon.
    for p in parts:
        todo = p["insee"].isna() & ~(p.geometry.isna() | p.geometry.is_empty)
        if todo.any():
            p.loc[todo, "insee"] = locate_communes(p[todo].to_crs("EPSG:4326"), polygons,
                                                   max_distance_m=1000.0)
            rep = _report(p)
            n_out = int(p.loc[todo, "insee"].isna().sum())
            rep.notes.append(f"{int(todo.sum()) - n_out} row(s) without an INSEE code located "
                             f"in their commune polygon; {n_out} outside every polygon")
    gdf = pd.concat(parts, ignore_index=True)
    gdf = gpd.GeoDataFrame(gdf, geometry="geometry", crs=out_crs)
    gdf.attrs["reports"] = reports
    gdf.attrs["checks"] = checks
    return gdf


# --- national commune counts ------------------------------------------------------------------


def commune_counts(
    *,
    settings: Settings | None = None,
    bpe: Literal["auto", "xy", "2013", "2009"] = "auto",
) -> pd.DataFrame:
    """Facility counts for every current commune of France from the national sources.

    Sources: the BPE (the geolocated file when downloaded, else the 2013 per-commune
    counts; ``bpe`` forces one), Muséofile (``musee``), CNC (``cinema``), festivals
    (``festival``) and Géorisques (``eolienne`` and ``eolienne_power_mw``). A subcategory
    that has its own national register is counted from it only. Old commune codes are
    mapped to the current COG. Subcategories no national source measures (cafés, heritage,
    town halls in the BPE 2013...) are empty, not zero, and left out of category totals
    (``attrs["meta"]["sources_by_subcategory"]`` says where each count comes from).

    Returns
    -------
    DataFrame
        One row per commune of the reference: ``insee``, ``nom``, ``population``,
        ``n_<category>``, ``n_<category>_per_10k``, ``n_<subcategory>``,
        ``n_<subcategory>_per_10k``, ``eolienne_power_mw`` and ``commerces_chain_share``
        (share of named shops and restaurants that are chains; only from the geolocated
        BPE, else empty). BPE-based columns are empty for départements the BPE vintage
        does not cover. ``attrs["meta"]`` records sources, vintages and reports.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    ref = communes.load_reference(settings=s)
    code_map = communes.current_code_map(s)
    reports: dict[str, SourceReport] = {}

    xy_path = sources.dataset_path("bpe_xy", s)
    use_xy = bpe == "xy" or (bpe == "auto" and xy_path.is_file())
    chain_shares = None
    if use_xy:
        pts = read_bpe_xy(xy_path, settings=s, code_map=code_map)
        reports["bpe"] = _report(pts)
        bpe_long = (pts.groupby(["insee", "subcategory"], as_index=False).size()
                    .rename(columns={"size": "n"}))
        chain_shares = chain_share(pts)
        bpe_id = "bpe_xy"
    else:
        bpe_id = "bpe_2009_counts" if bpe == "2009" else "bpe_2013_counts"
        bpe_long = read_bpe_counts(sources.ensure(bpe_id, s), settings=s, code_map=code_map)
        reports["bpe"] = _report(bpe_long)

    national = national_facilities(settings=s)
    reports.update(national.attrs["reports"])
    dedicated = set(cats.source_subcategory.values())
    bpe_long = bpe_long[~bpe_long["subcategory"].isin(dedicated)]
    nat_long = (national[national["insee"].notna()]
                .groupby(["insee", "subcategory"], as_index=False).size()
                .rename(columns={"size": "n"}))
    long = pd.concat([bpe_long[["insee", "subcategory", "n"]], nat_long], ignore_index=True)

    known = set(ref["insee"])
    unmatched = long[~long["insee"].isin(known)]
    if len(unmatched):
        log.warning("commune counts: %d facilities with %d commune code(s) unknown to the COG "
                    "%d reference left out (e.g. %s)", int(unmatched["n"].sum()),
                    unmatched["insee"].nunique(), s.cog_year,
                    ", ".join(sorted(unmatched["insee"].unique())[:8]))
    wide = long[long["insee"].isin(known)].pivot_table(
        index="insee", columns="subcategory", values="n", aggfunc="sum", fill_value=0)
    subs = cats.subcategory_keys()
    wide = wide.reindex(columns=subs, fill_value=0).reindex(ref["insee"], fill_value=0)
    wide.columns = [f"n_{c}" for c in wide.columns]

    # Subcategories measured nationally: from their own register, or from the BPE vintage's
    # nomenclature. The others (cafés, heritage, town halls before BPE 2021...) stay empty.
    bpe_subs = {k for k, v in cats.subcategories.items()
                if (v.bpe_2021 if use_xy else v.bpe_2013) and k not in dedicated}
    measured = [k for k in subs if k in dedicated or k in bpe_subs]
    out = ref[["insee", "nom", "population"]].set_index("insee")
    out = out.join(wide.astype("Int64"))
    for k in subs:
        if k not in measured:
            out[f"n_{k}"] = pd.array([pd.NA] * len(out), dtype="Int64")
    for cat in CATEGORY_KEYS:
        cols = [f"n_{k}" for k in cats.subcategory_keys(cat) if k in measured]
        out[f"n_{cat}"] = out[cols].sum(axis=1).astype("Int64")
    mw = national[(national["subcategory"] == "eolienne") & national["insee"].notna()]
    out["eolienne_power_mw"] = (mw.groupby("insee")["power_mw"].sum().reindex(out.index)
                                .fillna(0.0).round(3))

    # BPE-based columns are unknown (not zero) where the BPE vintage has no commune.
    covered_deps = {communes.departement_of(c) for c in bpe_long["insee"].unique()}
    uncovered = ~out.index.map(communes.departement_of).isin(covered_deps)
    if uncovered.any():
        deps = sorted({communes.departement_of(c) for c in out.index[uncovered]})
        log.info("BPE has no commune in département(s) %s: their BPE-based counts are empty",
                 ", ".join(deps))
        out.loc[uncovered, [f"n_{k}" for k in bpe_subs]] = pd.NA
        for cat in CATEGORY_KEYS:
            if any(cats.category_of(k) == cat for k in bpe_subs):
                out.loc[uncovered, f"n_{cat}"] = pd.NA

    pop = pd.to_numeric(out["population"], errors="coerce").astype("float64")
    per_10k = 10_000 / pop.where(pop > 0)
    for key in (*CATEGORY_KEYS, *subs):
        out[f"n_{key}_per_10k"] = (out[f"n_{key}"].astype("Float64") * per_10k).round(3)
    out["commerces_chain_share"] = (chain_shares.reindex(out.index).astype("Float64")
                                    if chain_shares is not None
                                    else pd.array([pd.NA] * len(out), dtype="Float64"))
    cat_cols = [c for k in CATEGORY_KEYS for c in (f"n_{k}", f"n_{k}_per_10k")]
    sub_cols = [c for k in subs for c in (f"n_{k}", f"n_{k}_per_10k")]
    out = out.reset_index()[["insee", "nom", "population", *cat_cols, *sub_cols,
                             "eolienne_power_mw", "commerces_chain_share"]]
    used = {"bpe": str(xy_path if use_xy else sources.dataset_path(bpe_id, s))}
    used.update({k: r.path for k, r in national.attrs["reports"].items()})
    out.attrs["meta"] = {
        "what": "facility counts per commune from national sources",
        "cog_year": s.cog_year, "population_year": s.population_year,
        "bpe": bpe_id, "inputs": used, "vintages": _vintages(used, s),
        "sources_by_subcategory": {
            k: next((src for src, sub in cats.source_subcategory.items() if sub == k), bpe_id)
            for k in measured
        },
        "not_measured": [k for k in subs if k not in measured],
        "reports": {k: r.as_dict() for k, r in reports.items()},
        "checks": {k: {"n_checked": c.n_checked, "n_mismatch": c.n_mismatch,
                       "mismatch_rate": round(c.mismatch_rate, 4), "n_unlocated": c.n_unlocated}
                   for k, c in national.attrs["checks"].items()},
        "categories_version": cats.version,
    }
    return out


def write_commune_counts(
    counts: pd.DataFrame, path: str | Path | None = None, *, settings: Settings | None = None
) -> Path:
    """Write :func:`commune_counts` to Parquet (default
    ``data/interim/facilities_communes.parquet``), atomically, with its metadata."""
    s = settings or get_settings()
    target = Path(path) if path is not None else s.interim_dir / COUNTS_FILE
    meta = dict(counts.attrs.get("meta", {}))
    frame = counts.copy()
    frame.attrs = {}
    write_parquet(frame, target, metadata=meta)
    log.info("wrote facility counts of %d communes to %s", len(frame), target)
    return target


def facilities_by_commune(settings: Settings | None = None) -> pd.DataFrame:
    """:func:`commune_counts`, cached in ``data/interim/facilities_communes.parquet``.

    Rebuilt when the cache is missing or older than its inputs (raw files, the categories
    file, this module, the commune reference code) or when the geolocated BPE has been
    downloaded since.
    """
    s = settings or get_settings()
    cache = s.interim_dir / COUNTS_FILE
    ids = ["museofile", "cinemas", "festivals", "eoliennes", "france_services",
           "communes_polygons",
           "communes_cog"]
    xy = sources.dataset_path("bpe_xy", s)
    inputs = [sources.ensure(i, s) for i in ids]
    inputs += [xy] if xy.is_file() else [sources.ensure("bpe_2013_counts", s)]
    inputs += [Path(__file__), Path(load_categories.__code__.co_filename),
               Path(s.categories_file), Path(communes.__file__)]
    if is_stale(cache, inputs):
        write_commune_counts(commune_counts(settings=s), cache, settings=s)
    return read_parquet_cached(cache)
