"""The Data Territoria themes (geo.themes): readers of the producers' files as published
(synthetic fixtures in the exact layouts, tests/themes_fixtures.py), converters into the
mirror layout through ``pvdgeo fetch``, national commune tables on the real COG 2026
reference (merged communes, arrondissements), typology statistics, portrait sections and
the dashboard list; and every theme reported as missing input, never zero, without its
files. Expected values are recomputed here from the fixtures' specifications."""

from __future__ import annotations

import gzip
import hashlib
import math
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import themes_fixtures as fx
from conftest import private_data
from test_hardening import _fresh_cli_state  # noqa: F401 (autouse: the CLI's state)

from geo import _convert, communes, portrait, sources, themes
from geo.cli import main
from geo.errors import InputFileError, MissingColumnsError
from geo.themes import (
    demographie,
    emploi,
    energie_consommation,
    energie_production,
    etudiants,
    logement,
    mobilite,
)
from geo.themes._base import ThemeIndicator, evaluate_group, iter_published

THEME_IDS = list(fx.WRITERS)
OFFICIAL_HOSTS = ("https://open.urssaf.fr/", "https://files.data.gouv.fr/geo-dvf/",
                  "https://www.insee.fr/fr/statistiques/fichier/",
                  "https://data.enseignementsup-recherche.gouv.fr/",
                  "https://odre.opendatasoft.com/", "https://opendata.agenceore.fr/")


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    """Every theme dataset's file as its producer publishes it (fixtures)."""
    folder = tmp_path_factory.mktemp("published")
    return {i: Path(w(folder / f"{i}.published")) for i, w in fx.WRITERS.items()}


@pytest.fixture(scope="module")
def themed(mirror_settings, published, tmp_path_factory):
    """Settings whose data folder holds every theme file, downloaded by `pvdgeo fetch`
    (each official URL answered with its fixture) and converted to the mirror layout."""
    communes.load_reference(mirror_settings)
    s = private_data(mirror_settings, tmp_path_factory.mktemp("themes") / "data")
    by_url = {sources.get_dataset(i, s).urls[0]: published[i] for i in THEME_IDS}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sources, "_http_download",
                   lambda url, dest, settings, *, label: shutil.copyfile(by_url[url], dest))
        paths = sources.fetch(THEME_IDS, settings=s.replace(mirror=None))
    assert all(p.is_file() for p in paths)
    return s


@pytest.fixture(scope="module")
def ref(mirror_settings):
    return communes.load_reference(mirror_settings).set_index("insee")


def _pop(ref, code, year):
    return float(ref.at[code, f"pop_{year}"])


# --- the catalogue ----------------------------------------------------------------------------


def test_catalogue_entries_name_the_producers_files():
    """Each theme dataset: production only (not in the mirror), an official download URL
    of its producer, licence and vintage, a converter, the theme's kind; one vintage per
    file where the theme publishes one file per year."""
    s = sources.load_catalogue()
    seen = set()
    for theme in themes.THEMES:
        datasets = [d for d in s.values() if d.kind == f"theme_{theme.key}"]
        assert [d.id for d in datasets] == list(theme.dataset_ids), theme.key
        for ds in datasets:
            seen.add(ds.id)
            assert ds.scope == "production" and not ds.sha256, ds.id
            assert ds.licence == "Licence Ouverte 2.0" and ds.vintage and ds.homepage
            assert len(ds.urls) == 1 and ds.urls[0].startswith(OFFICIAL_HOSTS), ds.urls
            assert ds.convert in _convert.__all__
            assert ("theme_year" in ds.extra) == (len(datasets) > 1), ds.id
    assert seen == set(THEME_IDS)


def test_fetch_converts_and_records_every_theme_file(themed):
    """The lock file records each download with its official URL; files are in the
    mirror layout (a converted zip, Parquet or plain CSV stored under a .csv.gz name)."""
    lock = sources.provenance(themed)
    for ds_id in THEME_IDS:
        ds = sources.get_dataset(ds_id, themed)
        assert lock[ds_id]["source"] == ds.urls[0]
        with gzip.open(sources.dataset_path(ds_id, themed), "rt") as fh:
            assert fh.readline().strip()


def test_conversion_is_deterministic(published, tmp_path):
    """Converting the same download twice gives the same bytes (gzip without time)."""
    for ds_id in ("urssaf_effectifs_communes", "insee_mobpro_2017", "odre_registre_2020"):
        conv = getattr(_convert, sources.get_dataset(ds_id).convert)
        digests = []
        for i in range(2):
            out = tmp_path / f"{ds_id}_{i}.csv.gz"
            conv([published[ds_id]], out)
            digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        assert digests[0] == digests[1], ds_id


# --- readers of the published layouts -----------------------------------------------------------


def test_urssaf_reader_sums_ape_rows_and_reads_labels(published, tmp_path):
    df = emploi.read_published(published["urssaf_effectifs_communes"])
    assert list(df.columns) == emploi.MIRROR_COLUMNS
    assert set(df["annee"]) == set(fx.URSSAF_YEARS)
    pdv = df[(df["code_commune"] == "01306") & (df["annee"] == 2024)].set_index("grand_secteur")
    assert pdv.at["GS3 Commerce", "effectifs_salaries"] == 50 + 0
    assert pdv.at["GS3 Commerce", "etablissements"] == 5 + 1
    assert pdv.at["GS1 Industrie", "effectifs_salaries"] == 30
    # an export with labels (use_labels=true) reads the same
    raw = pd.read_csv(published["urssaf_effectifs_communes"], sep=";", dtype=str)
    labels = raw.rename(columns={"code_commune": "Code commune",
                                 "grand_secteur_d_activite": "Grand secteur d'activité",
                                 **{f"effectifs_salaries_{y}": f"Effectifs salariés {y}"
                                    for y in fx.URSSAF_YEARS},
                                 **{f"nombre_d_etablissements_{y}":
                                    f"Nombre d'établissements {y}" for y in fx.URSSAF_YEARS}})
    labelled = tmp_path / "labels.csv"
    labels.to_csv(labelled, sep=";", index=False, encoding="utf-8-sig")
    pd.testing.assert_frame_equal(emploi.read_published(labelled), df)
    raw.drop(columns="code_commune").to_csv(tmp_path / "bad.csv", sep=";", index=False)
    with pytest.raises(MissingColumnsError, match="code_commune"):
        emploi.read_published(tmp_path / "bad.csv")


def test_dvf_reader_keeps_single_good_sales(published):
    """Etalab's rule: sales, VEFA, adjudications of one house, apartment or business
    premises (land and dependencies do not count); duplicates dropped; 2 houses, an
    exchange are out."""
    df = logement.read_published(published["dvf_2021"])
    assert list(df.columns) == logement.MIRROR_COLUMNS
    houses = df[(df["code_commune"] == "01306") & (df["code_type_local"] == 1)]
    prices = sorted((houses["valeur_fonciere"] / houses["surface_reelle_bati"]).round(6))
    assert prices == sorted(round(p, 6) for p in fx.dvf_expected_house_prices(2021))
    assert len(df[(df["code_commune"] == "01306") & (df["code_type_local"] == 2)]) == 3
    assert len(df[df["code_commune"] == "01340"]) == 5
    assert df["date_mutation"].str.startswith("2021").all()


def test_mobpro_reader_zip_csv_and_parquet(published, tmp_path):
    """The zip's FD_MOBPRO member is read (not its larger varmod dictionary); the Parquet
    layout of later vintages gives the same flows for the same rows."""
    csv_flows = mobilite.read_published(published["insee_mobpro_2017"])
    assert list(csv_flows.columns) == mobilite.MIRROR_COLUMNS
    pdv = csv_flows[csv_flows["commune_residence"] == "01306"]
    assert pdv["actifs"].sum() == pytest.approx(100)
    assert pdv.loc[pdv["commune_travail"] == "01306", "actifs"].sum() == pytest.approx(40)
    pq_path = fx.write_mobpro_parquet(tmp_path / "RP2017_mobpro.parquet", 2017)
    pd.testing.assert_frame_equal(mobilite.read_published(pq_path), csv_flows)


def test_esr_reader_keeps_commune_rows(published):
    df = etudiants.read_published(published["esr_atlas_effectifs"])
    total = df[(df["regroupement"] == "TOTAL") & (df["rentree"] == "2023")]
    assert total.set_index("code_commune")["effectif"].to_dict() == pytest.approx(
        {"01306": 60, "01033": 180, "75101": 1200, "75102": 600})
    assert "D001" not in set(df["code_commune"])  # the département row is left out


def test_serie_historique_reader_finds_every_period(published):
    df = demographie.read_published(published["insee_serie_historique_2020"])
    periods = sorted({(a, b) for a, b in zip(df["debut"], df["fin"], strict=True)})
    assert periods == [(1968, 1975), (1975, 1982), (1982, 1990), (1990, 1999),
                       (1999, 2009), (2009, 2014), (2014, 2020)]
    row = df[(df["code_commune"] == "01306") & (df["debut"] == 2014)].iloc[0]
    assert (row["population_debut"], row["population_fin"], row["naissances"],
            row["deces"]) == (1550, 1600, 120, 90)


def test_odre_reader_both_header_styles(published):
    """Camel-case headers with decimal commas (older exports) and the lower-case field
    names read alike; out-of-service installations and rows without a commune code are
    left out; sectors keyed, non-renewable ones 'autre'."""
    old = energie_production.read_published(published["odre_registre_2020"]).set_index(
        ["code_commune", "filiere"])
    new = energie_production.read_published(published["odre_registre_2025"]).set_index(
        ["code_commune", "filiere"])
    assert old.at[("01306", "solaire"), "puissance_kw"] == 150  # not the 800 kW stopped
    assert old.at[("01306", "solaire"), "installations"] == 11
    assert new.at[("01306", "solaire"), "puissance_kw"] == 200
    assert new.at[("01306", "eolien"), "puissance_kw"] == 12_000
    assert new.at[("01306", "autre"), "puissance_kw"] == 5000
    assert new.at[("01340", "hydraulique"), "energie_produite_kwh"] == 1_200_000
    assert energie_production.filiere_key("Bioénergies") == "bioenergies"
    assert energie_production.filiere_key(None, "EOLIE") == "eolien"


def test_ore_reader_counts_withheld_rows(published):
    df = energie_consommation.read_published(published["ore_consommation_communes"])
    ambe = df[(df["code_commune"] == "01004") & (df["annee"] == "2024")].iloc[0]
    assert (ambe["conso_mwh"], ambe["lignes"], ambe["lignes_sans_conso"]) == (0, 1, 1)
    assert set(df["filiere"]) == {"electricite", "gaz"}


def test_reader_errors_name_the_file(tmp_path):
    bad_zip = tmp_path / "x.csv.gz"
    with zipfile.ZipFile(bad_zip, "w") as zf:
        zf.writestr("varmod_MOBPRO_2017.csv", "COD_VAR;LIB_VAR\n")
    with pytest.raises(InputFileError, match="no CSV or Parquet table"):
        mobilite.read_published(bad_zip)
    with pytest.raises(InputFileError, match="does not exist"):
        list(iter_published(tmp_path / "none.csv", label="x", columns={"a": []}))


# --- the national commune tables -------------------------------------------------------------


def test_emploi_table(themed, ref):
    t = themes.commune_table(emploi.THEME, themed)
    assert t.attrs["meta"]["debut"] == "2014" and t.attrs["meta"]["fin"] == "2024"
    assert t.at["01306", "emplois_prives"] == 30 + 50 + 0
    assert t.at["01306", "emplois_prives_evolution_pct"] == pytest.approx((80 / 70 - 1) * 100)
    assert t.at["01306", "emplois_industrie_share"] == pytest.approx(30 / 80)
    assert t.at["01306", "emplois_industrie_share_evolution_pts"] == pytest.approx(
        30 / 80 - 20 / 70)
    assert t.at["01306", "emplois_prives_per_10k"] == pytest.approx(
        80 / _pop(ref, "01306", 2023) * 10_000)
    # Saint-Bois (01340) merged into 01015; Paris arrondissements into 75056
    assert (t.at["01015", "emplois_prives"], t.at["01015", "emplois_prives_debut"]) == (16, 20)
    assert t.at["75056", "emplois_prives"] == 1900
    assert "75101" not in t.index and "01340" not in t.index
    # a covered département's commune without employer: 0; an uncovered one: missing
    assert t.at["01004", "emplois_prives"] == 0
    assert np.isnan(t.at["01004", "emplois_prives_evolution_pct"])
    assert np.isnan(t.at["46042", "emplois_prives"])
    assert len(t) == len(ref)


def test_logement_table_and_pooled_medians(themed):
    t = themes.commune_table(logement.THEME, themed)
    h21, h25 = (np.median(fx.dvf_expected_house_prices(y)) for y in (2021, 2025))
    assert t.at["01306", "prix_m2_maison_median_debut"] == pytest.approx(h21)
    assert t.at["01306", "prix_m2_maison_median"] == pytest.approx(h25)
    assert t.at["01306", "prix_m2_maison_evolution_pct"] == pytest.approx(10)
    assert np.isnan(t.at["01306", "prix_m2_appartement_median"])  # 3 sales < 5
    assert t.at["01015", "prix_m2_maison_median"] == pytest.approx(1200 * 1.1)  # 01340
    assert np.isnan(t.at["57463", "ventes_logements_per_10k"])  # Moselle: not in DVF
    assert t.at["01004", "ventes_logements_per_10k"] == 0  # covered, no sale
    # a group's median is over all its sales, not a median of the communes' medians
    ind = logement.THEME.indicator("prix_m2_maison_median")
    rows = t.index.isin(["01306", "01015"])
    value, n = evaluate_group(logement.THEME, ind, t, rows, themed)
    pooled = np.median(fx.dvf_expected_house_prices(2025) + [p * 1.1 for p in
                                                              (1000, 1100, 1200, 1300, 1400)])
    assert (value, n) == (pytest.approx(pooled), 2)
    assert value != pytest.approx(np.median([h25, 1200 * 1.1]))


def test_mobilite_table(themed):
    t = themes.commune_table(mobilite.THEME, themed)
    assert t.at["01306", "actifs_travaillant_commune_share"] == pytest.approx(0.35)
    assert t.at["01306", "actifs_travaillant_commune_share_debut"] == pytest.approx(0.40)
    assert t.at["01306", "navetteurs_voiture_share_evolution_pts"] == pytest.approx(0.65 - 0.80)
    assert t.at["01306", "navetteurs_velo_share"] == pytest.approx(0.05)
    # a resident of 01340 working in 01015 works in his current commune
    assert t.at["01015", "actifs_travaillant_commune_share_debut"] == pytest.approx(8 / 20)
    # Paris: arrondissement of work -> the commune
    assert t.at["75056", "actifs_travaillant_commune_share"] == pytest.approx(0.95)
    assert np.isnan(t.at["46042", "navetteurs_voiture_share"])


def test_etudiants_table(themed, ref):
    t = themes.commune_table(etudiants.THEME, themed)
    assert t.at["01306", "etudiants"] == 60 and t.at["01306", "etudiants_debut"] == 40
    assert t.at["01306", "etudiants_evolution_pct"] == pytest.approx(50)
    assert t.at["75056", "etudiants"] == pytest.approx(1800)
    assert t.at["01004", "etudiants"] == 0 and np.isnan(t.at["01004", "etudiants_evolution_pct"])
    assert np.isnan(t.at["46042", "etudiants"])
    assert t.at["01033", "etudiants_per_10k"] == pytest.approx(
        180 / _pop(ref, "01033", 2023) * 10_000)


def test_demographie_table(themed):
    t = themes.commune_table(demographie.THEME, themed)
    assert t.attrs["meta"]["fin"] == "2014-2020" and t.attrs["meta"]["debut"] == "2009-2014"
    tcam = ((1600 / 1550) ** (1 / 6) - 1) * 100
    sn = (120 - 90) / ((1550 + 1600) / 2 * 6) * 100
    assert t.at["01306", "variation_population_taux_annuel_pct"] == pytest.approx(tcam)
    assert t.at["01306", "solde_naturel_taux_annuel_pct"] == pytest.approx(sn)
    assert t.at["01306", "solde_migratoire_taux_annuel_pct"] == pytest.approx(tcam - sn)
    assert t.at["01306", "natalite_pour_mille"] == pytest.approx(120 / (1575 * 6) * 1000)
    sn0 = (110 - 100) / ((1500 + 1550) / 2 * 5) * 100
    assert t.at["01306", "solde_naturel_evolution_pts"] == pytest.approx(sn - sn0)
    assert np.isnan(t.at["46042", "solde_naturel_taux_annuel_pct"])


def test_energie_tables(themed, ref):
    p = themes.commune_table(energie_production.THEME, themed)
    assert p.at["01306", "puissance_enr_mw"] == pytest.approx(12.2)
    assert p.at["01306", "puissance_enr_mw_debut"] == pytest.approx(0.15)
    assert p.at["01306", "puissance_eolien_share"] == pytest.approx(12_000 / 12_200)
    assert p.at["01015", "puissance_enr_evolution_pct"] == pytest.approx(0)  # 01340's hydro
    assert p.at["01004", "puissance_enr_mw"] == 0
    assert p.at["01306", "production_enr_mwh_par_habitant"] == pytest.approx(
        26_220_000 / 1000 / _pop(ref, "01306", 2023))
    c = themes.commune_table(energie_consommation.THEME, themed)
    assert c.at["01306", "conso_electricite_mwh_par_habitant"] == pytest.approx(
        3800 / _pop(ref, "01306", 2023))
    assert c.at["01306", "conso_electricite_mwh_par_habitant_debut"] == pytest.approx(
        4000 / _pop(ref, "01306", 2019))
    assert c.at["01015", "conso_electricite_mwh_par_habitant_debut"] == pytest.approx(
        1400 / _pop(ref, "01015", 2019))  # with Saint-Bois
    assert np.isnan(c.at["01004", "conso_electricite_mwh_par_habitant"])  # withheld: not 0
    assert np.isnan(c.at["01015", "conso_gaz_mwh_par_habitant"])  # no network gas row


def test_implausible_production_unit_is_left_out(themed, published, tmp_path):
    """Production in MWh where kWh is expected gives 2 h at full power a year: the
    production is left out (missing, with a note), the power kept."""
    s = private_data(themed, tmp_path / "data")
    df = pd.read_csv(published["odre_registre_2025"], sep=";", dtype=str)
    df["energieannuelleglissanteproduite"] = (df["energieannuelleglissanteproduite"]
                                              .astype(float) / 1000).astype(str)
    src = tmp_path / "mwh.csv"
    df.to_csv(src, sep=";", index=False)
    dest = sources.dataset_path("odre_registre_2025", s)
    dest.unlink()  # a hard link to the module's file: replace it, never write through it
    _convert.odre_registre_installations([src], dest)
    t = themes.commune_table(energie_production.THEME, s)
    assert np.isnan(t.at["01306", "production_enr_mwh_par_habitant"])
    assert t.at["01306", "puissance_enr_mw"] == pytest.approx(12.2)
    assert any("non retenue" in n for n in t.attrs["meta"]["notes"])


def test_table_cache_follows_the_downloads(themed, tmp_path):
    """A theme table is rebuilt when a vintage is removed (the change becomes missing)."""
    s = private_data(themed, tmp_path / "data")
    sources.dataset_path("dvf_2021", s).unlink()
    status = themes.status(s).set_index("theme")
    assert status.at["logement", "statut"] == "partiel"
    assert status.at["logement", "commande"] == "pvdgeo fetch dvf_2021"
    t = themes.commune_table(logement.THEME, s)
    assert [v["dataset"] for v in t.attrs["meta"]["vintages"]] == ["dvf_2025"]
    assert t["prix_m2_maison_evolution_pct"].isna().all()
    assert t.at["01306", "prix_m2_maison_median"] == pytest.approx(
        np.median(fx.dvf_expected_house_prices(2025)))


# --- group values, typology statistics --------------------------------------------------------


def test_group_rule_ratio_of_sums_and_changes():
    """A group's ratio is the sum of numerators over the sum of denominators of its
    communes that have both; a change uses the communes having both ends."""
    theme = emploi.THEME
    table = pd.DataFrame({
        "effectifs_salaries_fin": [10.0, 30.0, np.nan], "population_fin": [100.0, 100.0, 50.0],
        "effectifs_salaries_debut": [5.0, np.nan, 8.0], "etablissements_fin": [1.0, 1.0, 1.0],
        "effectifs_industrie_fin": [1.0, 1.0, 1.0], "effectifs_industrie_debut": [1.0, 1.0, 1.0],
    }, index=["a", "b", "c"])
    values = themes._base.commune_values(theme, table)
    full = pd.concat([table, values], axis=1)
    rows = np.array([True, True, True])
    per10k = theme.indicator("emplois_prives_per_10k")
    assert evaluate_group(theme, per10k, full, rows)[0] == pytest.approx(40 / 200 * 10_000)
    evol = theme.indicator("emplois_prives_evolution_pct")
    value, n = evaluate_group(theme, evol, full, rows)
    assert (value, n) == (pytest.approx((10 / 5 - 1) * 100), 1)  # only 'a' has both
    growth = ThemeIndicator("g", "g", "%", num="f", den="d", years="y", scale=100)
    t2 = pd.DataFrame({"f": [121.0, 44.0], "d": [100.0, 40.0], "y": [2.0, 2.0], "g": 0.0})
    assert evaluate_group(emploi.THEME, growth, t2, np.array([True, True]))[0] == \
        pytest.approx(((165 / 140) ** 0.5 - 1) * 100)


def test_typology_tables_and_page(themed, tmp_path):
    """One table per theme by group, values recomputed from the fixtures for France and
    PVD; the HTML has one section per theme; the status table says all are there."""
    paths, html = themes.write_typology_themes(tmp_path, settings=themed)
    names = {p.name for p in paths}
    assert {f"typologie_{t.key}.csv" for t in themes.THEMES} <= names
    assert {f"typologie_{t.key}.svg" for t in themes.THEMES} <= names
    assert len(html) == len(themes.THEMES)
    assert all(f'id="theme-{t.key}"' in h for t, h in zip(themes.THEMES, html, strict=True))
    status = pd.read_csv(tmp_path / "typologie_themes.csv")
    assert set(status["statut"]) == {"disponible"}
    emp = pd.read_csv(tmp_path / "typologie_emploi.csv").set_index(["groupe", "indicateur"])
    assert list(dict.fromkeys(emp.index.get_level_values(0))) == [
        "petite ville", "ville moyenne", "grande ville", "PVD", "ACV", "France"]
    assert emp.at[("France", "emplois_prives"), "valeur"] == 80 + 16 + 440 + 1900
    assert emp.at[("France", "emplois_prives_evolution_pct"), "valeur"] == pytest.approx(
        ((80 + 16 + 440 + 1900) / (70 + 20 + 400 + 1500) - 1) * 100, rel=1e-5)
    jobs = {"01306": 80, "01015": 16, "01033": 440, "75056": 1900}
    pvd = communes.load_reference(themed).set_index("insee")["pvd"]
    assert emp.at[("PVD", "emplois_prives"), "valeur"] == sum(
        v for c, v in jobs.items() if pvd[c])
    assert emp.at[("France", "emplois_industrie_share"), "calcul"] == "rapport des sommes"
    log_ = pd.read_csv(tmp_path / "typologie_logement.csv").set_index(["groupe", "indicateur"])
    assert log_.at[("France", "prix_m2_maison_median"), "calcul"] == \
        "médiane de toutes les ventes"


def test_typology_stats_command_has_one_table_per_theme(themed, shared_data, tmp_path,
                                                         capsys):
    """Done when: `pvdgeo typology-stats --out DIR` with the theme files has one table
    per theme (and the page a section per theme)."""
    base = ["--mirror", str(shared_data), "--set", f"data_dir={themed.data_dir}"]
    assert main([*base, "typology-stats", "--out", str(tmp_path / "t")]) == 0
    out = tmp_path / "t"
    for theme in themes.THEMES:
        assert (out / f"typologie_{theme.key}.csv").is_file()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count('<section id="theme-') == len(themes.THEMES)
    assert "Donnée manquante" not in page


# --- the portrait ------------------------------------------------------------------------------


def test_portrait_has_one_section_per_theme(themed, tmp_path):
    """The town, its peers (median, percentile, their sums) and France for every theme;
    portrait_themes.csv holds the same rows."""
    p = portrait.build_portrait("01306", settings=themed)
    assert [sec.theme.key for sec in p.theme_sections] == [t.key for t in themes.THEMES]
    emp = next(sec for sec in p.theme_sections if sec.theme.key == "emploi")
    row = emp.table.set_index("indicateur").loc["emplois_prives_per_10k"]
    t = themes.commune_table(emploi.THEME, themed)
    peers = [c for c in p.peers.peers["insee"] if c != "01306"]
    pv = t.loc[peers, "emplois_prives_per_10k"].dropna()
    assert row["valeur"] == pytest.approx(t.at["01306", "emplois_prives_per_10k"])
    assert row["mediane_pairs"] == pytest.approx(pv.median())
    assert row["n_pairs"] == len(pv)
    assert row["valeur_pairs"] == pytest.approx(
        t.loc[peers, "effectifs_salaries_fin"].sum()
        / t.loc[peers, "population_fin"][t.loc[peers, "effectifs_salaries_fin"].notna()].sum()
        * 10_000)
    # every downloaded theme file is cited with its licence in the sources table
    cited = {r["donnees"]: r for r in p.sources}
    for i in THEME_IDS:
        ds = sources.get_dataset(i, themed)
        assert cited[ds.title]["licence"] == ds.licence and cited[ds.title]["lien"]
    html = portrait.render_portrait_html(p)
    assert html.count('<section id="theme-') == len(themes.THEMES)
    assert "Donnée manquante" not in html
    written = portrait.write_portrait(p, tmp_path, settings=themed)
    csv_path = tmp_path / "portrait_themes.csv"
    assert csv_path in written
    back = pd.read_csv(csv_path, dtype={"insee": str})
    assert set(back["theme"]) == {t.key for t in themes.THEMES}
    assert set(back["statut"]) == {"disponible"} and set(back["insee"]) == {"01306"}
    appart = back.set_index("indicateur").loc["prix_m2_appartement_median"]
    assert math.isnan(appart["valeur"]) and "moins de 5 ventes" in appart["note"]


# --- missing input: reported, never zero -------------------------------------------------------


def test_without_files_every_theme_is_missing_input(mirror_settings, tmp_path, capsys):
    s = mirror_settings
    status = themes.status(s)
    assert set(status["statut"]) == {"manquant"}
    assert status.set_index("theme").at["logement", "commande"] == \
        "pvdgeo fetch dvf_2021 dvf_2025"
    with pytest.raises(themes.MissingInputError, match="pvdgeo fetch urssaf_effectifs"):
        themes.commune_table(emploi.THEME, s)
    assert themes.build_available(s) == []
    table = themes.indicator_table(s)
    assert table.isna().all().all()  # missing, not zero
    assert len(table.columns) == len(themes.DASHBOARD_INDICATORS)
    paths, html = themes.write_typology_themes(tmp_path, settings=s)
    assert [p.name for p in paths] == ["typologie_themes.csv"]
    assert all("Donnée manquante" in h and "pvdgeo fetch" in h for h in html)
    sections = themes.portrait_sections("01306", ["01004"], settings=s)
    assert {sec.state for sec in sections} == {"manquant"}
    path = themes.write_portrait_sections(sections, tmp_path / "portrait_themes.csv", "01306")
    back = pd.read_csv(path)
    assert set(back["statut"]) == {"manquant"} and back["valeur"].isna().all()
    assert back["commande"].str.startswith("pvdgeo fetch").all()


def test_cli_themes(mirror_settings, themed, shared_data, tmp_path, capsys):
    missing = ["--mirror", str(shared_data), "--set", f"data_dir={mirror_settings.data_dir}"]
    assert main([*missing, "themes"]) == 0
    out = capsys.readouterr().out
    assert "manquant" in out and "pvdgeo fetch urssaf_effectifs_communes" in out
    assert main([*missing, "themes", "--build", "emploi"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pvdgeo fetch urssaf_effectifs_communes" in err
    assert main([*missing, "themes", "--build", "emplois"]) == 2
    assert "did you mean emploi?" in capsys.readouterr().err
    here = ["--mirror", str(shared_data), "--set", f"data_dir={themed.data_dir}"]
    table = tmp_path / "themes.parquet"
    assert main([*here, "themes", "--build", "--table", str(table)]) == 0
    out = capsys.readouterr().out
    assert "disponible" in out and "manquant" not in out
    df = pd.read_parquet(table).set_index("insee")
    assert df.at["01306", "emplois_prives"] == 80
    assert main([*here, "themes", "--table", str(tmp_path / "x.csv")]) == 2


def test_dashboard_indicators():
    keys = [k for k, *_ in themes.DASHBOARD_INDICATORS]
    assert len(keys) == len(set(keys)) == sum(len(t.indicators) for t in themes.THEMES)
    catalogue = sources.load_catalogue()
    for key, label, unit, group, dataset, better in themes.DASHBOARD_INDICATORS:
        assert label and unit and " › " in group, key
        assert dataset in catalogue, key
        assert better in (True, False, None)
    assert ("emplois_prives_evolution_pct", "Évolution des emplois salariés privés", "%",
            "Emploi › Emploi salarié privé", "urssaf_effectifs_communes", True) in \
        themes.DASHBOARD_INDICATORS
    specs = {d["key"]: d for d in themes.dashboard_specs()}
    assert set(specs) == set(keys)
    assert {d["theme"] for d in specs.values()} == {k for k, *_ in themes.DASHBOARD_THEMES}
    assert specs["navetteurs_voiture_share"]["sens"] == "moins"
    assert specs["navetteurs_voiture_share"]["percent"] is True
    assert specs["prix_m2_maison_median"]["sens"] == ""
    assert specs["emplois_prives"]["tables"] == ("theme_emploi",)


def test_dashboard_source(themed, mirror_settings):
    frame, datasets, notes = themes.dashboard_source("emploi", themed)
    assert frame.at["01306", "emplois_prives"] == 80
    assert list(frame.columns) == [i.key for i in emploi.THEME.indicators]
    assert datasets == ("urssaf_effectifs_communes",)
    assert notes["emplois_prives_evolution_pct"] == "2014 → 2024"
    assert notes["emplois_prives_debut"] == "2014"
    with pytest.raises(themes.MissingInputError):
        themes.dashboard_source("emploi", mirror_settings)


def test_the_dashboard_offers_the_theme_indicators(themed, mirror_settings):
    """Every theme indicator is in the dashboard's tree, under its theme, read from its
    theme's table; without the files its table is reported missing and its values stay
    missing (never 0)."""
    from geo import dashboard

    specs = themes.dashboard_specs()
    offered = {i.key: i for i in dashboard.INDICATORS}
    assert {d["key"] for d in specs} <= set(offered)
    assert {k for k, *_ in themes.DASHBOARD_THEMES} <= {t.key for t in dashboard.THEMES}
    ref = communes.load_reference(mirror_settings)
    emploi_keys = [i.key for i in emploi.THEME.indicators]
    chosen = [offered[k] for k in emploi_keys]
    tables, missing = dashboard.read_source_tables(themed, names=["theme_emploi"])
    assert not missing
    board = dashboard.dashboard_table(ref, tables, indicators=chosen)
    row = board.table.set_index("insee").loc["01306"]
    assert row["emplois_prives"] == 80
    assert board.notes["emplois_prives_evolution_pct"] == "2014 → 2024"
    assert board.sources["emplois_prives"] == ("urssaf_effectifs_communes",)
    tables, missing = dashboard.read_source_tables(mirror_settings, names=["theme_emploi"])
    assert set(missing) == {"theme_emploi"} and "pvdgeo fetch" in missing["theme_emploi"]
    board = dashboard.dashboard_table(ref, tables, indicators=chosen, missing=missing)
    assert board.table[emploi_keys].isna().all().all()
