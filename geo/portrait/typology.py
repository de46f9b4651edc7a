"""National statistics by typology (the Data Territoria tables): the tables by group
(:func:`typology_tables`), their charts, the HTML page (:func:`render_typology_html`) and
the files of ``data/national/typologie/`` (:func:`write_typology_stats`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyproj

from geo import (
    __version__,
    communes,
    facility_trends,
    indicators,
    themes,
    vocab,
)
from geo import _report as report
from geo import _svg as svg
from geo._io import write_text_atomic
from geo.portrait.render import _write_csv
from geo.portrait.table import (
    _CLC_LEVEL1,
    _FACILITY_CATEGORIES,
    _FACILITY_COUNTS,
    _national_facilities,
    _read_table,
)
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.portrait: log lines keep their logger name


# --- national statistics by typology ----------------------------------------------------------

#: Periods of the population growth table (first and last legal population year).
PERIODS: tuple[tuple[int, int], ...] = ((2016, 2019), (2019, 2020), (2020, 2022),
                                        (2022, 2023), (2016, 2023))


def typology_tables(settings: Settings | None = None) -> dict[str, pd.DataFrame]:
    """The national statistics by typology (Data Territoria tables).

    Groups: petite ville, ville moyenne, grande ville, PVD and ACV towns, France
    (:func:`geo.communes.typology_groups`: current communes, mainland France and DROM).
    The choices, each labelled in the outputs:

    - a year's figures classify communes by **that year's** legal population
      (``typologie_annee``); the same figures on today's typology (2023) are given
      beside them (``*_typologie_2023``);
    - growth over a period is given two ways: on today's typology (``croissance``, the
      same communes at both ends) and for the **start-year cohort** (communes classified
      by their population at the start of the period, ``croissance_cohorte``);
    - APL of general practitioners: both DREES columns, practitioners aged 65 or less
      (``apl_mg``, the headline one) and without age bound (``apl_mg_tous_ages``).

    Tables:

    ``population``   per group and year: communes, population, share of the national
                     population (0..1) and growth since 2016, on the year's typology,
                     and the communes, population and share on the 2023 typology;
    ``croissance``   per group and period: populations at both ends (communes with both),
                     growth and average annual growth (0.01 = +1 %/year) on the 2023
                     typology, then the same for the start-year cohort;
    ``apl``          per group and profession: communes with a value, median over
                     communes, mean weighted by the 2023 population and, for general
                     practitioners, the shares of communes and of population (2023) with
                     ``apl_mg < settings.apl_threshold``;
    ``equipements``  per group and facility category, when the national counts exist:
                     facilities, population, facilities per 10,000 inhabitants (total /
                     population) and the median over communes;
    ``occupation_sols`` per group, where the national land-cover table exists
                     (``data/interim/landcover_communes.parquet``): communes covered and
                     their area, and the share of each CORINE level-1 class of the
                     covered area (area-weighted);
    ``synthese``     one row per group with the headline figures.
    """
    s = settings or get_settings()
    ref = communes.load_reference(s).set_index("insee")
    groups = {k: v.to_numpy() for k, v in communes.typology_groups(ref.reset_index()).items()}
    cols = ["groupe", "annee", "typologie_annee", "communes", "population",
            "part_population_nationale", "croissance_depuis_2016"]
    per_year = pd.concat([communes.typology_stats(y, settings=s)
                          for y in communes.POPULATION_YEARS], ignore_index=True)[cols]
    fixed = pd.concat([communes.typology_stats(y, settings=s, typology_year=2023)
                       for y in communes.POPULATION_YEARS], ignore_index=True)
    fixed = fixed[["groupe", "annee", "communes", "population", "part_population_nationale"]]
    population = per_year.merge(fixed.rename(columns={
        "communes": "communes_typologie_2023", "population": "population_typologie_2023",
        "part_population_nationale": "part_population_nationale_typologie_2023"}),
        on=["groupe", "annee"], how="left")

    def growth(part: pd.DataFrame, a: int, b: int) -> tuple[int, float, float]:
        both = part[f"pop_{a}"].notna() & part[f"pop_{b}"].notna()
        return (int(both.sum()), float(part.loc[both, f"pop_{a}"].sum()),
                float(part.loc[both, f"pop_{b}"].sum()))

    cohorts = {a: communes.typology_groups(ref.reset_index(), year=a) for a, _ in PERIODS}
    rows = []
    for name, mask in groups.items():
        for a, b in PERIODS:
            n, pa, pb = growth(ref[mask], a, b)
            g = pb / pa - 1 if pa else np.nan
            nc, ca, cb = growth(ref[cohorts[a][name].to_numpy()], a, b)
            gc = cb / ca - 1 if ca else np.nan
            rows.append({"groupe": name, "periode": f"{a}-{b}", "debut": a, "fin": b,
                         "communes": n, "population_debut": int(pa),
                         "population_fin": int(pb), "croissance": g,
                         "croissance_annuelle": (1 + g) ** (1 / (b - a)) - 1,
                         "communes_cohorte": nc, "population_debut_cohorte": int(ca),
                         "population_fin_cohorte": int(cb), "croissance_cohorte": gc,
                         "croissance_annuelle_cohorte": (1 + gc) ** (1 / (b - a)) - 1})
    croissance = pd.DataFrame(rows)

    apl = indicators.apl_by_commune(s).set_index("insee").reindex(ref.index)
    pop23 = ref["pop_2023"].astype(float)
    rows = []
    for name, mask in groups.items():
        for prof in vocab.APL_PROFESSIONS:
            vals = apl.loc[mask, prof.field]
            ok = vals.notna()
            w = pop23[mask][ok]
            row = {"groupe": name, "indicateur": prof.field, "profession": prof.label,
                   "unite": prof.unit, "communes": int(mask.sum()),
                   "communes_avec_apl": int(ok.sum()),
                   "mediane": float(vals[ok].median()) if ok.any() else np.nan,
                   "moyenne_ponderee_population": float(np.average(vals[ok], weights=w))
                   if ok.any() and w.sum() > 0 else np.nan,
                   "seuil": np.nan, "part_communes_sous_seuil": np.nan,
                   "part_population_sous_seuil": np.nan}
            if prof.field == "apl_mg":
                below = vals[ok] < s.apl_threshold
                row["seuil"] = s.apl_threshold
                row["part_communes_sous_seuil"] = float(below.mean()) if ok.any() else np.nan
                row["part_population_sous_seuil"] = (float(w[below].sum() / w.sum())
                                                     if w.sum() > 0 else np.nan)
            rows.append(row)
    apl_table = pd.DataFrame(rows)

    tables = {"population": population, "croissance": croissance, "apl": apl_table}
    fac, fac_error = _national_facilities(s)
    if fac is not None:
        fac = fac.reindex(ref.index)
        rows = []
        for name, mask in groups.items():
            for cat, label in _FACILITY_COUNTS.items():
                col = f"n_{cat}"
                if col not in fac.columns:
                    continue
                n = pd.to_numeric(fac.loc[mask, col], errors="coerce").astype(float)
                pop = pop23[mask]
                ok = n.notna() & pop.notna() & (pop > 0)
                per10k = n[ok] / pop[ok] * 10_000
                rows.append({"groupe": name, "categorie": cat, "libelle": label,
                             "communes": int(ok.sum()),
                             "equipements": float(n[ok].sum()),
                             "population": float(pop[ok].sum()),
                             "pour_10k": float(n[ok].sum() / pop[ok].sum() * 10_000)
                             if ok.any() else np.nan,
                             "mediane_communes_pour_10k": float(per10k.median())
                             if ok.any() else np.nan})
        tables["equipements"] = pd.DataFrame(rows)
    else:
        log.warning("no facility statistics by typology: %s", fac_error)
    landcover_table = _landcover_by_group(ref, groups, s)
    if landcover_table is not None:
        tables["occupation_sols"] = landcover_table

    synth = population[population["annee"] == 2023].set_index("groupe")[
        ["communes", "population", "part_population_nationale"]].copy()
    g = croissance[croissance["periode"] == "2016-2023"].set_index("groupe")
    synth["croissance_2016_2023"] = g["croissance"]
    synth["croissance_cohorte_2016_2023"] = g["croissance_cohorte"]
    synth["croissance_annuelle_2016_2023"] = g["croissance_annuelle"]
    mg = apl_table[apl_table["indicateur"] == "apl_mg"].set_index("groupe")
    synth["apl_mg_mediane"] = mg["mediane"]
    synth["apl_mg_tous_ages_mediane"] = apl_table[
        apl_table["indicateur"] == "apl_mg_tous_ages"].set_index("groupe")["mediane"]
    synth["apl_mg_part_communes_sous_seuil"] = mg["part_communes_sous_seuil"]
    synth["apl_mg_part_population_sous_seuil"] = mg["part_population_sous_seuil"]
    if "equipements" in tables:
        wide = tables["equipements"].pivot(index="groupe", columns="categorie",
                                           values="pour_10k")
        for cat in _FACILITY_COUNTS:
            if cat in wide.columns:
                synth[f"n_{cat}_per_10k"] = wide[cat]
    tables["synthese"] = synth.reset_index()
    return tables


def _landcover_by_group(ref: pd.DataFrame, groups: Mapping[str, np.ndarray],
                        s: Settings) -> pd.DataFrame | None:
    """Area-weighted CORINE level-1 shares per group over the communes the national
    land-cover table covers (None without the table)."""
    path = s.interim_dir / "landcover_communes.parquet"
    if not path.exists():
        log.info("no land cover by typology: %s absent (make landcover-communes)", path)
        return None
    lc = _read_table(path, "national land-cover table").set_index("insee")
    lc = lc[lc.index.isin(ref.index)]
    if lc.empty:
        return None
    polys = communes.commune_polygons(list(lc.index), crs="EPSG:4326", settings=s)
    geod = pyproj.Geod(ellps="WGS84")
    area = pd.Series([abs(geod.geometry_area_perimeter(g)[0]) for g in polys.geometry],
                     index=polys["insee"].astype(str)).reindex(lc.index)
    covered = area * (1 - lc["clc_nodata_share"].fillna(0).clip(0, 1))
    rows = []
    for name, mask in groups.items():
        codes = ref.index[mask]
        part = lc.index.isin(codes) & covered.notna().to_numpy()
        w = covered[part]
        row: dict[str, Any] = {"groupe": name, "communes": int(mask.sum()),
                               "communes_couvertes": int(part.sum()),
                               "surface_couverte_km2": float(w.sum() / 1e6)}
        for key in _CLC_LEVEL1:
            col = f"clc_{key}_share"
            row[col] = (float((lc.loc[part, col].fillna(0) * area[part]).sum() / w.sum())
                        if w.sum() > 0 else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


_TABLE_FILES = {
    "synthese": "typologie_synthese.csv",
    "population": "typologie_population.csv",
    "croissance": "typologie_croissance.csv",
    "apl": "typologie_apl.csv",
    "equipements": "typologie_equipements.csv",
    "occupation_sols": "typologie_occupation_sols.csv",
}


def _typology_charts(tables: Mapping[str, pd.DataFrame], threshold: float) -> dict[str, str]:
    pct = lambda v: svg.format_fr(v, 0 if abs(v) >= 10 else 1, percent=True)  # noqa: E731
    charts = {}
    pop = tables["population"]
    groups = [g for g in pop["groupe"].unique() if g != "France"]
    charts["part_population"] = svg.grouped_bar_chart(
        groups,
        {str(y): [float(pop[(pop.groupe == g) & (pop.annee == y)]
                        ["part_population_nationale"].iloc[0]) for g in groups]
         for y in communes.POPULATION_YEARS},
        title="Part de la population nationale par groupe et par année", fmt=pct,
    )
    cr = tables["croissance"]
    all_groups = list(cr["groupe"].unique())
    charts["croissance"] = svg.grouped_bar_chart(
        all_groups,
        {f"{a}-{b}": [float(cr[(cr.groupe == g) & (cr.periode == f"{a}-{b}")]
                            ["croissance_annuelle"].iloc[0]) for g in all_groups]
         for a, b in PERIODS},
        title="Croissance annuelle moyenne de la population par période",
        fmt=lambda v: svg.format_fr(v, 2, percent=True),
    )
    mg = tables["apl"][tables["apl"]["indicateur"] == "apl_mg"]
    charts["apl_mg_mediane"] = svg.bar_chart(
        list(mg["groupe"]), list(mg["mediane"]),
        title="APL aux médecins généralistes : médiane des communes (consultations/hab./an)",
        fmt=lambda v: svg.format_fr(v, 2), reference=threshold,
        reference_label=f"seuil {svg.format_fr(threshold, 1)}",
        highlight=[bool(v < threshold) for v in mg["mediane"]],
    )
    charts["apl_mg_sous_seuil"] = svg.grouped_bar_chart(
        list(mg["groupe"]),
        {"communes": list(mg["part_communes_sous_seuil"]),
         "population": list(mg["part_population_sous_seuil"])},
        title=f"Part des communes et de la population avec une APL généralistes "
              f"< {svg.format_fr(threshold, 1)}", fmt=pct,
    )
    if "equipements" in tables:
        eq = tables["equipements"]
        for name, keys, title, digits in (
            ("equipements", _FACILITY_CATEGORIES, "Équipements pour 10 000 habitants par "
             "catégorie", 0),
            ("culture_energie", ("cinema", "musee", "festival", "eolienne"),
             "Cinémas, musées, festivals et éoliennes pour 10 000 habitants", 2),
        ):
            part = eq[eq["categorie"].isin(list(keys))]
            if part.empty:
                continue
            cats = list(dict.fromkeys(part["libelle"]))
            charts[name] = svg.grouped_bar_chart(
                cats,
                {g: [float(part[(part.groupe == g) & (part.libelle == c)]["pour_10k"].iloc[0])
                     for c in cats] for g in part["groupe"].unique()},
                title=title, fmt=functools.partial(svg.format_fr, digits=digits),
            )
    return charts


_COLUMN_LABELS = {
    "groupe": "Groupe", "annee": "Année", "communes": "Communes", "population": "Population",
    "part_population_nationale": "Part de la population nationale",
    "croissance_depuis_2016": "Évolution depuis 2016", "periode": "Période",
    "population_debut": "Population début", "population_fin": "Population fin",
    "croissance": "Évolution", "croissance_annuelle": "Évolution annuelle moyenne",
    "profession": "Profession", "unite": "Unité", "communes_avec_apl": "Communes avec APL",
    "mediane": "Médiane", "moyenne_ponderee_population": "Moyenne pondérée (population)",
    "part_communes_sous_seuil": "Part des communes sous le seuil",
    "part_population_sous_seuil": "Part de la population sous le seuil",
    "libelle": "Catégorie", "equipements": "Équipements", "pour_10k": "Pour 10 000 hab.",
    "mediane_communes_pour_10k": "Médiane des communes pour 10 000 hab.",
    "croissance_2016_2023": "Évolution 2016-2023 (typologie 2023)",
    "croissance_cohorte_2016_2023": "Évolution 2016-2023 (cohorte, typologie 2016)",
    "croissance_annuelle_2016_2023": "Évolution annuelle 2016-2023 (typologie 2023)",
    "apl_mg_mediane": "APL généralistes de 65 ans et moins, médiane",
    "apl_mg_tous_ages_mediane": "APL généralistes tous âges, médiane",
    "communes_couvertes": "Communes couvertes", "surface_couverte_km2": "Surface couverte (km²)",
    "apl_mg_part_communes_sous_seuil": "APL généralistes < seuil, part des communes",
    "apl_mg_part_population_sous_seuil": "APL généralistes < seuil, part de la population",
}
_SHARE_COLUMNS = {"part_population_nationale", "croissance_depuis_2016", "croissance",
                  "croissance_cohorte_2016_2023", *(f"clc_{k}_share" for k in _CLC_LEVEL1),
                  "croissance_annuelle", "part_communes_sous_seuil",
                  "part_population_sous_seuil", "croissance_2016_2023",
                  "croissance_annuelle_2016_2023", "apl_mg_part_communes_sous_seuil",
                  "apl_mg_part_population_sous_seuil"}
_HIDDEN_COLUMNS = {"debut", "fin", "indicateur", "categorie", "seuil"}


def _df_html(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if c not in _HIDDEN_COLUMNS]
    header = [_COLUMN_LABELS.get(c, c.replace("_", " ")) for c in cols]
    rows, nums = [], set()
    for r in df[cols].itertuples(index=False):
        cells = []
        for i, (col, v) in enumerate(zip(cols, r, strict=True)):
            if isinstance(v, str):
                cells.append(escape(v))
                continue
            nums.add(i)
            if col in _SHARE_COLUMNS:
                cells.append(svg.format_fr(v, 2 if "annuelle" in col else 1, percent=True))
            elif col in {"communes", "population", "population_debut", "population_fin",
                         "communes_avec_apl", "equipements", "annee"}:
                cells.append(str(int(v)) if col == "annee" else report.fmt_count(v))
            else:
                cells.append(svg.format_fr(v, 2))
        rows.append(cells)
    return report.table(header, rows, num_cols=sorted(nums))


def render_typology_html(tables: Mapping[str, pd.DataFrame], *, threshold: float,
                         cog_year: int, charts: Mapping[str, str] | None = None,
                         extra_sections: Iterable[str] = ()) -> str:
    """The national statistics as one self-contained French HTML page (the CSV files hold
    the same figures in long format). ``charts``: the SVG charts when already drawn;
    ``extra_sections``: HTML sections appended before the footer (facility trends)."""
    charts = _typology_charts(tables, threshold) if charts is None else charts
    pct1 = lambda v: svg.format_fr(v, 1, percent=True)  # noqa: E731
    pct2 = lambda v: svg.format_fr(v, 2, percent=True)  # noqa: E731
    apl = tables["apl"].assign(
        colonne=lambda d: d["profession"] + " (" + d["unite"] + ")")
    mg = apl[apl["indicateur"] == "apl_mg"]
    mg_rows = [[escape(r.groupe), svg.format_fr(r.mediane, 2),
                pct1(r.part_communes_sous_seuil), pct1(r.part_population_sous_seuil),
                report.fmt_count(r.communes_avec_apl)] for r in mg.itertuples()]
    parts = [
        "<header><h1>Statistiques nationales par typologie</h1>"
        f"<p class=\"sub\">Petites villes (&lt; 10 000 hab.), villes moyennes (10 000 à "
        f"100 000), grandes villes (&gt; 100 000), communes Petites villes de demain et "
        f"Action Cœur de Ville. Communes COG {cog_year} de France (métropole et DROM, comme "
        f"les portraits des villes).</p>"
        "<p class=\"note\"><b>Choix de calcul.</b> Pour une année donnée, les communes sont "
        "classées selon leur population légale <i>de cette année</i> (typologie de l'année) ; "
        "la même année sur la typologie 2023 est donnée à côté. L'évolution sur une période "
        "est calculée de deux façons : sur la typologie 2023 (mêmes communes aux deux dates) "
        "et pour la <i>cohorte</i> de l'année de début (communes classées selon leur "
        "population en début de période). PVD, ACV et France ne dépendent pas de la "
        "population : les deux calculs y coïncident.</p></header>",
        "<h2>Synthèse</h2>", _df_html(tables["synthese"]),
        "<h2>Population</h2>", f"<figure>{charts['part_population']}</figure>",
        "<h3>Population légale</h3>",
        report.pivot(tables["population"], "annee", "population", report.fmt_count),
        "<h3>Part de la population nationale (typologie de l'année)</h3>",
        report.pivot(tables["population"], "annee", "part_population_nationale", pct1),
        "<h3>Part de la population nationale (typologie 2023 pour toutes les années)</h3>",
        report.pivot(tables["population"], "annee", "part_population_nationale_typologie_2023",
                     pct1),
        "<h2>Évolution de la population par période</h2>",
        f"<figure>{charts['croissance']}</figure>",
        "<h3>Évolution annuelle moyenne</h3>",
        report.pivot(tables["croissance"], "periode", "croissance_annuelle", pct2),
        "<h3>Évolution sur la période (typologie 2023)</h3>",
        report.pivot(tables["croissance"], "periode", "croissance", pct1),
        "<h3>Évolution sur la période (cohorte : typologie de l'année de début)</h3>",
        report.pivot(tables["croissance"], "periode", "croissance_cohorte", pct1),
        "<h2>Accès aux soins (APL, DREES 2021)</h2>",
        f"<figure>{charts['apl_mg_mediane']}</figure>",
        f"<figure>{charts['apl_mg_sous_seuil']}</figure>",
        "<h3>Médecins généralistes de 65 ans et moins</h3>",
        report.table(["Groupe", "APL médiane", f"Communes sous {svg.format_fr(threshold, 1)}",
                     f"Population sous {svg.format_fr(threshold, 1)}", "Communes avec APL"],
                    mg_rows, num_cols=[1, 2, 3, 4]),
        "<h3>APL médiane des communes, par profession (les deux colonnes DREES des "
        "généralistes)</h3>",
        report.pivot(apl, "colonne", "mediane", lambda v: svg.format_fr(v, 2)),
        f"<p class=\"note\">Seuil de sous-dotation en médecins généralistes : "
        f"{svg.format_fr(threshold, 1)} consultations par habitant et par an (généralistes de "
        f"65 ans et moins). Part de la population : population légale 2023 des communes sous "
        f"le seuil, rapportée à celle des communes du groupe ayant une APL.</p>",
    ]
    if "equipements" in tables:
        parts += ["<h2>Équipements pour 10 000 habitants</h2>",
                  *(f"<figure>{charts[k]}</figure>" for k in ("equipements", "culture_energie")
                    if k in charts),
                  report.pivot(tables["equipements"], "libelle", "pour_10k",
                               lambda v: svg.format_fr(v, 1)),
                  "<p class=\"note\">Total des équipements du groupe rapporté à sa "
                  "population légale 2023, sur les communes couvertes par les sources "
                  "nationales (BPE par commune, Muséofile, CNC, festivals, Géorisques : voir "
                  "data/interim/facilities_communes.parquet).</p>"]
    else:
        parts.append("<h2>Équipements</h2><p class=\"warn\">Comptages nationaux d'équipements "
                     "indisponibles (voir le journal).</p>")
    if "occupation_sols" in tables:
        lc = tables["occupation_sols"]
        lc_rows = [[escape(r["groupe"]), report.fmt_count(r["communes_couvertes"]),
                    report.fmt_count(r["communes"]),
                    *(pct1(r[f"clc_{k}_share"]) for k in _CLC_LEVEL1)]
                   for r in lc.to_dict("records")]
        parts += ["<h2>Occupation des sols (CORINE Land Cover)</h2>",
                  report.table(["Groupe", "Communes couvertes", "Communes du groupe",
                                *(f"Part des {label}" for label in _CLC_LEVEL1.values())],
                               lc_rows, num_cols=range(1, 3 + len(_CLC_LEVEL1))),
                  "<p class=\"note\">Seulement là où la table nationale d'occupation des sols "
                  "existe (data/interim/landcover_communes.parquet : les communes couvertes par "
                  "un jeu CORINE catalogué, pas toute la France) ; parts de la surface couverte, "
                  "pondérées par la surface des communes.</p>"]
    parts.extend(extra_sections)
    parts.append(f"<footer>Généré par pvdgeo {escape(__version__)} le "
                 f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</footer>")
    return report.page("Statistiques nationales par typologie", "\n".join(parts))


def write_typology_stats(
    out_dir: Path,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    settings: Settings | None = None,
) -> list[Path]:
    """Write the national statistics by typology into ``out_dir``: one CSV per table
    (``typologie_<table>.csv``), SVG charts (``typologie_<chart>.svg``) and ``index.html``,
    with the facility trends over BPE vintages (:mod:`geo.facility_trends`) and the Data
    Territoria themes (:func:`geo.themes.write_typology_themes`: one table per theme, or
    the theme reported as missing input).

    ``tables`` defaults to :func:`typology_tables`. Returns the paths written.
    """
    s = settings or get_settings()
    out = Path(out_dir)
    tables = typology_tables(s) if tables is None else tables
    paths = [_write_csv(df, out / _TABLE_FILES[name]) for name, df in tables.items()]
    charts = _typology_charts(tables, s.apl_threshold)
    for name, chart in charts.items():
        path = out / f"typologie_{name}.svg"
        write_text_atomic(path, '<?xml version="1.0" encoding="utf-8"?>\n' + chart + "\n")
        paths.append(path)
    trend_paths, trend_html = facility_trends.write_typology_trends(out, settings=s)  # issue 16
    theme_paths, theme_html = themes.write_typology_themes(out, settings=s)  # issue 15
    paths += trend_paths + theme_paths
    index = out / "index.html"
    write_text_atomic(index, render_typology_html(
        tables, threshold=s.apl_threshold, cog_year=s.cog_year, charts=charts,
        extra_sections=[*([trend_html] if trend_html else []), *theme_html]))
    paths.append(index)
    log.info("wrote %d files to %s", len(paths), out)
    return paths
