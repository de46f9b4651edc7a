"""Readers of the national registers and the BPE: Muséofile, cinemas, festivals, wind
turbines, France services, and the BPE in its geolocated (:func:`read_bpe_xy`) and
counts (:func:`read_bpe_counts`) layouts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
import pyogrio

from geo._categories import Categories, load_categories, normalize_text
from geo._io import head_text
from geo._io import read_delimited as _read_csv
from geo.errors import InputFileError, MissingColumnsError
from geo.facilities.chains import _chain_flags
from geo.facilities.schema import (
    SourceReport,
    _col,
    _current_codes,
    _dataset_file,
    _finish,
    _frame,
    _points_from_xy,
)
from geo.settings import Settings, get_settings

# --- culture ---------------------------------------------------------------------------------


def read_museofile(
    path: str | Path | None = None, *, crs: str | None = None, settings: Settings | None = None
) -> gpd.GeoDataFrame:
    """Musées de France (Muséofile): one ``musee`` per museum, from lat/lon.

    The file has no INSEE code (postcode and town name only): ``insee`` is empty; assign it
    with :func:`locate_communes` (done by :func:`national_facilities`).
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "museofile", s)
    df = _read_csv(path, label="Muséofile", required=["Identifiant", "Nom_officiel", "lat", "lon"],
                   optional=["Ville", "Code_postal"])
    return _single_kind_frame(
        df, cats, source="museofile", path=path, id_col="Identifiant", name_col="Nom_officiel",
        code_col=None, x_col="lon", y_col="lat", src_crs="EPSG:4326",
        crs=crs or s.publish_crs, code_map=None,
    )


def read_cinemas(
    path: str | Path | None = None,
    *,
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Active cinemas (CNC): one ``cinema`` per establishment, INSEE code from the file
    (municipal arrondissements mapped to their commune; old codes through ``code_map``)."""
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "cinemas", s)
    df = _read_csv(path, label="CNC cinemas",
                   required=["N° auto", "nom", "code INSEE", "latitude", "longitude"])
    return _single_kind_frame(
        df, cats, source="cinemas", path=path, id_col="N° auto", name_col="nom",
        code_col="code INSEE", x_col="longitude", y_col="latitude", src_crs="EPSG:4326",
        crs=crs or s.publish_crs, code_map=code_map,
    )


def read_festivals(
    path: str | Path | None = None,
    *,
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Festivals (Ministère de la Culture): one ``festival`` per festival, at its main
    venue's commune (INSEE code from the file) and coordinates."""
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "festivals", s)
    df = _read_csv(path, label="festivals",
                   required=["Identifiant", "Nom du festival", "Code Insee commune", "lat", "lon"])
    return _single_kind_frame(
        df, cats, source="festivals", path=path, id_col="Identifiant", name_col="Nom du festival",
        code_col="Code Insee commune", x_col="lon", y_col="lat", src_crs="EPSG:4326",
        crs=crs or s.publish_crs, code_map=code_map,
    )


def _single_kind_frame(
    df: pd.DataFrame, cats: Categories, *, source: str, path: Path, id_col: str, name_col: str,
    code_col: str | None, x_col: str, y_col: str, src_crs: str | pd.Series, crs: str,
    code_map: Mapping[str, str] | None, power: pd.Series | None = None,
    report: SourceReport | None = None,
) -> gpd.GeoDataFrame:
    """A national register of one kind of facility (``cats.source_subcategory[source]``)
    in the facility schema; ``code_col`` None: the file has no INSEE code."""
    report = report or SourceReport(source, str(path), rows_read=len(df))
    sub = cats.source_subcategory[source]
    geom = _points_from_xy(df[x_col], df[y_col], src_crs=src_crs, crs=crs)
    missing = int(geom.isna().sum())
    if missing:
        report.notes.append(f"{missing} row(s) without coordinates: kept for commune counts, "
                            "no point")
    columns: dict[str, Sequence[Any]] = {
        "source": [source] * len(df), "source_id": df[id_col].astype("str"),
        "category": [cats.category_of(sub)] * len(df), "subcategory": [sub] * len(df),
        "name": df[name_col], "geometry": geom,
    }
    if code_col is not None:
        insee = _current_codes(df[code_col], code_map)
        columns["insee"] = insee
        no_code = int(insee.isna().sum())
        if no_code:
            report.notes.append(f"{no_code} row(s) without an INSEE code (empty or 00000)")
    if power is not None:
        columns["power_mw"] = power
    gdf = _frame(columns, crs=crs)
    return _finish(gdf, report)


# --- energy ------------------------------------------------------------------------------------


def read_wind_turbines(
    path: str | Path | None = None,
    *,
    as_of: date | str | None = None,
    undated: Literal["keep", "drop"] = "keep",
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Onshore wind turbines (Géorisques ICPE register): one ``eolienne`` per turbine with
    its power (MW), from Lambert-93 (or the ``epsg`` column's) x/y.

    Turbines whose commissioning date (``date_mise_en_service``) is after the reference
    date are not commissioned yet: they are left out and reported. The reference date is
    ``as_of`` if given, else the record's update date (``date_maj``), else today.
    Turbines without a commissioning date are kept by default (``undated="keep"``) and
    counted in the report: the register is of authorised installations, and undated
    records are mostly turbines in service whose date was not filled in (in the 2022
    register their power brings the total to the national installed capacity).
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "eoliennes", s)
    df = _read_csv(
        path, label="Géorisques wind turbines",
        required=["id_aerogenerateur", "code_insee", "puissance", "x_aerogenerateur",
                  "y_aerogenerateur", "date_mise_en_service"],
        optional=["epsg", "date_maj", "nom_eolienne", "id_parc", "nom_commune"],
    )
    report = SourceReport("eoliennes", str(path), rows_read=len(df))
    power = pd.to_numeric(df["puissance"].str.replace(",", ".", regex=False), errors="coerce")
    commissioned = pd.to_datetime(df["date_mise_en_service"], errors="coerce", format="mixed")
    bad_dates = int((commissioned.isna() & df["date_mise_en_service"].notna()).sum())
    if bad_dates:
        report.notes.append(f"{bad_dates} unreadable commissioning date(s), treated as undated")
    if as_of is not None:
        ref = pd.Series(pd.Timestamp(as_of), index=df.index)
    else:
        ref = pd.to_datetime(_col(df, "date_maj"), errors="coerce", format="mixed")
        ref = ref.fillna(pd.Timestamp(date.today()))
    future = commissioned.notna() & (commissioned > ref)
    undated_mask = commissioned.isna()
    if future.any():
        report.excluded["not yet commissioned"] += int(future.sum())
        report.notes.append(
            f"left out {int(future.sum())} turbine(s) ({power[future].sum():.1f} MW) "
            f"not yet commissioned (date after the register's update): "
            + ", ".join(sorted(df.loc[future, "id_aerogenerateur"].astype(str))[:10])
        )
    if undated_mask.any():
        what = "kept" if undated == "keep" else "left out"
        report.notes.append(
            f"{what} {int(undated_mask.sum())} turbine(s) ({power[undated_mask].sum():.1f} MW) "
            "without a commissioning date"
        )
        if undated == "drop":
            report.excluded["no commissioning date"] += int(undated_mask.sum())
    keep = ~future & (~undated_mask if undated == "drop" else True)
    df, power = df[keep].reset_index(drop=True), power[keep].reset_index(drop=True)
    if "epsg" in df.columns:
        src = ("EPSG:" + df["epsg"].fillna("2154").str.strip().str.replace(
            r"\.0$", "", regex=True)).astype(object)
    else:
        src = "EPSG:2154"
    df["_name"] = _col(df, "nom_eolienne")
    return _single_kind_frame(
        df, cats, source="eoliennes", path=path, id_col="id_aerogenerateur", name_col="_name",
        code_col="code_insee", x_col="x_aerogenerateur", y_col="y_aerogenerateur",
        src_crs=src, crs=crs or s.publish_crs, code_map=code_map, power=power, report=report,
    )


# --- public services ----------------------------------------------------------------------------

#: France services categories (``categorie``) that are mobile units: their point is a base,
#: not a counter open at that place, so they are left out (reported).
FRANCE_SERVICES_MOBILE = ("fs itinerante", "antenne itinerante")


def read_france_services(
    path: str | Path | None = None,
    *,
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """France services (ANCT): one ``france_services`` per labelled counter, at its point.

    Reads the ANCT GeoJSON as published (``MATRICULE``, ``lib_france_services``,
    ``insee_com``, ``LATITUDE``/``LONGITUDE`` in WGS84, ``categorie``). Mobile units
    (:data:`FRANCE_SERVICES_MOBILE`, a bus touring several communes from a base) are left
    out and reported; commune codes of the list's COG are mapped to the current one
    through ``code_map``.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "france_services", s)
    if not path.is_file():
        raise InputFileError(f"France services file {path} does not exist "
                             "(`pvdgeo fetch france_services`)")
    try:
        df = pyogrio.read_dataframe(path, read_geometry=False)
    except Exception as exc:  # pyogrio raises several error types for corrupt files
        raise InputFileError(f"cannot read France services {path}: {exc}") from None
    required = ["MATRICULE", "lib_france_services", "insee_com", "LATITUDE", "LONGITUDE"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MissingColumnsError(str(path), missing, list(df.columns))
    report = SourceReport("france_services", str(path), rows_read=len(df))
    kind = _col(df, "categorie").astype("string").str.strip().map(
        lambda v: normalize_text(v) if isinstance(v, str) else v)
    mobile = kind.isin(FRANCE_SERVICES_MOBILE).fillna(False).to_numpy(bool)
    if mobile.any():
        report.excluded["mobile unit (no fixed counter)"] += int(mobile.sum())
    df = df[~mobile].reset_index(drop=True)
    return _single_kind_frame(
        df, cats, source="france_services", path=path, id_col="MATRICULE",
        name_col="lib_france_services", code_col="insee_com", x_col="LONGITUDE",
        y_col="LATITUDE", src_crs="EPSG:4326", crs=crs or s.publish_crs, code_map=code_map,
        report=report,
    )


# --- BPE ------------------------------------------------------------------------------------


def _bpe_map(
    codes: pd.Series, cats: Categories, nomenclature: Literal["2013", "2021"],
    report: SourceReport, weights: pd.Series | None = None,
) -> pd.Series:
    """Subcategory per TYPEQU code ("" ignored, NA unknown), counting unknown and ignored."""
    lookup = {c: cats.bpe_subcategory(c, nomenclature) for c in codes.dropna().unique()}
    sub = codes.map(lookup)
    w = weights if weights is not None else pd.Series(1, index=codes.index)
    unknown = sub.isna()
    if unknown.any():
        for code, n in w[unknown].groupby(codes[unknown].fillna("(empty)")).sum().items():
            report.unknown[f"TYPEQU={code}"] += int(n)
    ignored = sub == ""
    if ignored.any():
        report.excluded["TYPEQU outside the categories"] += int(w[ignored].sum())
    return sub.where(~unknown & ~ignored)


def read_bpe_xy(
    path: str | Path | None = None,
    *,
    communes: Iterable[str] | None = None,
    nomenclature: Literal["2013", "2021"] | None = None,
    crs: str | None = None,
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """The geolocated BPE (INSEE ``BPE23.csv``, ``bpeNN_ensemble_xy.csv``) in its production
    layout: ``;``-separated, ``TYPEQU``, ``DEPCOM`` (or ``DCIRIS``), ``LAMBERT_X``/``LAMBERT_Y``
    in Lambert-93 (UTM overseas; the ``EPSG`` column when present), optional ``NOMRS`` /
    ``CNOMRS`` names and ``AN`` year. A ``.zip`` holding the CSV is read directly.

    Parameters
    ----------
    communes
        Keep only equipments of these (current) INSEE codes.
    nomenclature
        ``"2021"`` (revised codes, D265 médecin généraliste...) or ``"2013"``; default from
        the ``AN`` column (2021 and later: ``"2021"``), else ``"2021"``.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "bpe_xy", s)
    head = head_text(Path(path)).splitlines()[0].upper() if Path(path).is_file() else ""
    code_col = "DEPCOM" if "DEPCOM" in head or "DCIRIS" not in head else "DCIRIS"
    df = _read_csv(
        path, label="BPE (geolocated)", upper=True,
        required=["TYPEQU", code_col, "LAMBERT_X", "LAMBERT_Y"],
        optional=["NOMRS", "CNOMRS", "EPSG", "AN", "DEP", "QUALITE_XY", "SIRET"],
    )
    report = SourceReport("bpe", str(path), rows_read=len(df))
    df["_line"] = pd.RangeIndex(2, len(df) + 2).astype(str)
    df["insee"] = _current_codes(df[code_col].str[:5], code_map)
    if communes is not None:
        keep = set(communes)
        df = df[df["insee"].isin(keep)].reset_index(drop=True)
        report.notes.append(f"{len(df):,} equipment(s) in the {len(keep)} requested commune(s)")
    if nomenclature is None:
        years = pd.to_numeric(_col(df, "AN"), errors="coerce")
        nomenclature = "2013" if years.notna().any() and years.max() < 2021 else "2021"
    sub = _bpe_map(df["TYPEQU"].str.strip(), cats, nomenclature, report)
    df, sub = df[sub.notna()].reset_index(drop=True), sub[sub.notna()].reset_index(drop=True)
    if "EPSG" in df.columns:
        src = ("EPSG:" + df["EPSG"].str.strip().str.replace(r"\.0$", "", regex=True))
        src = src.where(df["EPSG"].notna(), None)
    else:
        src = pd.Series(None, index=df.index, dtype=object)
    deps = df["insee"].str[:3].where(df["insee"].str.startswith("97"), df["insee"].str[:2])
    fallback = deps.map(lambda d: s.crs_for_department(d) if isinstance(d, str) else s.work_crs)
    src = src.fillna(fallback).astype(object)
    geom = _points_from_xy(df["LAMBERT_X"], df["LAMBERT_Y"], src_crs=src, crs=crs or s.publish_crs)
    no_xy = int(geom.isna().sum())
    if no_xy:
        report.notes.append(f"{no_xy:,} equipment(s) without coordinates: kept for counts, "
                            "no point")
    category = sub.map(cats.category_of)
    name = _col(df, "NOMRS")
    chain, brand = _chain_flags(cats, category, name, _col(df, "CNOMRS"))
    gdf = _frame({
        "source": ["bpe"] * len(df), "source_id": "L" + df["_line"],
        "category": category, "subcategory": sub, "name": name, "brand": brand,
        "chain": chain, "insee": df["insee"], "geometry": geom,
    }, crs=crs or s.publish_crs)
    report.notes.append(f"nomenclature {nomenclature}")
    return _finish(gdf, report)


def read_bpe_counts(
    path: str | Path | None = None,
    *,
    nomenclature: Literal["2013", "2021"] = "2013",
    settings: Settings | None = None,
    code_map: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """BPE equipment counts per commune and TYPEQU (long layout: ``depcom``, ``typequ``,
    ``nb_equip``; mirror files of the 2009 and 2013 vintages) mapped to subcategories.

    Returns a DataFrame ``insee, category, subcategory, n`` (old commune codes mapped to
    the current ones and summed); ``attrs["report"]`` counts unknown codes in equipments.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    path = _dataset_file(path, "bpe_2013_counts", s)
    df = _read_csv(path, label="BPE counts", upper=True,
                   required=["DEPCOM", "TYPEQU", "NB_EQUIP"], optional=["ANNEE"])
    report = SourceReport("bpe", str(path), unit="equipments")
    n = pd.to_numeric(df["NB_EQUIP"].str.replace(",", ".", regex=False), errors="coerce")
    bad = int(n.isna().sum())
    if bad:
        report.excluded["unreadable nb_equip"] += bad
    n = n.fillna(0).astype("int64")
    report.rows_read = int(n.sum())
    sub = _bpe_map(df["TYPEQU"].str.strip(), cats, nomenclature, report, weights=n)
    out = pd.DataFrame({
        "insee": _current_codes(df["DEPCOM"].str.strip(), code_map), "subcategory": sub, "n": n,
    })[sub.notna()]
    out = out.groupby(["insee", "subcategory"], as_index=False)["n"].sum()
    out.insert(1, "category", out["subcategory"].map(cats.category_of))
    report.kept = int(out["n"].sum())
    report.notes.append(f"{int(n.sum()):,} equipments in {df['DEPCOM'].nunique():,} commune "
                        f"codes; {report.kept:,} in the categories (nomenclature {nomenclature})")
    out.attrs["report"] = report
    report.log()
    return out
