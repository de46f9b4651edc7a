"""Facility trends between BPE vintages (geo.facility_trends): real BPE 2009 and 2013
counts against independent computations from the raw files, and synthetic edge cases."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pandas as pd
import pytest
from test_portrait import _current_map, _raw_csv

from geo import communes, facility_trends, portrait
from geo._categories import load_categories
from geo.cli import main
from geo.errors import InputFileError

BPE09 = "bpe/bpe2009_nb_equip_commune_typequ_long.csv.gz"
BPE13 = "bpe/bpe2013_nb_equip_commune_typequ_long.csv.gz"
COG = "admin/communes_cog2026_decoupage_administratif.csv.gz"


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trends(mirror_settings):
    return facility_trends.facility_trends_by_commune(mirror_settings)


@pytest.fixture(scope="module")
def typology(mirror_settings, trends):
    return facility_trends.typology_trends(mirror_settings, table=trends)


@pytest.fixture(scope="module")
def raw(shared_data):
    """The raw BPE files with each code's current commune (the test's own mapping)."""
    mapping = _current_map(_raw_csv(shared_data, COG))
    out = {}
    for year, rel in ((2009, BPE09), (2013, BPE13)):
        df = pd.read_csv(shared_data / rel, dtype={"depcom": str})
        df["cur"] = df["depcom"].map(mapping)
        out[year] = df
    return out


@pytest.fixture(scope="module")
def pvd_towns(shared_data):
    mapping = _current_map(_raw_csv(shared_data, COG))
    return set(_raw_csv(shared_data, "programmes/pvd_communes_anct_superposeur_2024-09.csv")
               ["insee_com"].map(mapping).dropna())


def _by_commune(df, codes):
    return df[df["typequ"].isin(codes)].groupby("cur")["nb_equip"].sum()


# --- real data: the tests -------------------------------------------------------------


def test_boulangeries_2009_2013_in_pvd_towns_and_france(typology, trends, raw, pvd_towns):
    """Change of boulangeries (B203 in both vintages) against the raw files: PVD towns
    (their codes and those of the communes they absorbed) and France (every commune both
    vintages cover: Mayotte is in BPE 2013 only)."""
    b09, b13 = _by_commune(raw[2009], ["B203"]), _by_commune(raw[2013], ["B203"])
    row = typology.set_index(["groupe", "cle"])
    pvd = row.loc[("PVD", "boulangerie")]
    deps = [{c[:3] if c.startswith("97") else c[:2] for c in raw[y]["depcom"]}
            for y in (2009, 2013)]
    towns = sorted(c for c in pvd_towns
                   if (c[:3] if c.startswith("97") else c[:2]) in deps[0] & deps[1])
    assert 0 < len(pvd_towns) - len(towns) < 10  # Mayotte's PVD towns: not in BPE 2009
    exp09, exp13 = b09.reindex(towns).fillna(0), b13.reindex(towns).fillna(0)
    assert pvd["statut"] == "comparable"
    assert (pvd["equipements_debut"], pvd["equipements_fin"]) == (exp09.sum(), exp13.sum())
    assert pvd["evolution"] == exp13.sum() - exp09.sum() < 0
    had = exp09 > 0
    assert pvd["communes_avec"] == had.sum()
    assert pvd["communes_en_baisse"] == (had & (exp13 < exp09)).sum()
    assert pvd["communes_perte_dernier"] == (had & (exp13 == 0)).sum()
    assert pvd["part_communes_perte_dernier"] == pytest.approx(
        (had & (exp13 == 0)).sum() / had.sum())
    france = row.loc[("France", "boulangerie")]
    r09 = raw[2009][raw[2009]["typequ"] == "B203"]
    r13 = raw[2013][raw[2013]["typequ"] == "B203"]
    assert france["equipements_debut"] == r09["nb_equip"].sum()
    assert france["equipements_fin"] == r13.loc[~r13["depcom"].str.startswith("976"),
                                                "nb_equip"].sum()
    assert france["evolution_relative"] == pytest.approx(
        france["equipements_fin"] / r09["nb_equip"].sum() - 1)
    # the commune table says the same, town by town
    t = trends.set_index("insee")
    assert t.loc[towns, "n_boulangerie_base_2009_2013"].sum() == exp09.sum()
    lost = t.loc[towns, "boulangerie_lost_last_2009_2013"]
    assert lost.sum() == (had & (exp13 == 0)).sum()
    assert lost.isna().sum() == (~had).sum()  # no boulangerie in 2009: nothing to lose


def test_type_of_one_vintage_is_not_a_change(typology, trends, raw, mirror_settings):
    """Maisons de santé (D113) and stations-service (B314) exist in BPE 2013 only: no
    change, no "last one lost", reported out of scope; the santé total changes by its
    types present in both vintages only."""
    t = trends.set_index("insee")
    meta = trends.attrs["meta"]
    for key, code in (("maison_de_sante", "D113"), ("station_service", "B314")):
        assert meta["statuses"]["2009_2013"][key] == "non comparable"
        assert t[f"n_{key}_change_2009_2013"].isna().all()
        assert t[f"{key}_lost_last_2009_2013"].isna().all()
        n13 = raw[2013].loc[(raw[2013]["typequ"] == code)
                            & ~raw[2013]["depcom"].str.startswith("976"), "nb_equip"].sum()
        france = typology.set_index(["groupe", "cle"]).loc[("France", key)]
        assert np.isnan(france["evolution"]) and france["hors_champ_fin"] == n13 > 0
        assert t[f"n_{key}_2013"].sum() == n13 + raw[2013].loc[
            (raw[2013]["typequ"] == code) & raw[2013]["depcom"].str.startswith("976"),
            "nb_equip"].sum()  # the 2013 snapshot keeps them
    cats = load_categories(mirror_settings)
    sante = {c for k in cats.subcategory_keys("sante")
             for c in cats.subcategories[k].bpe_2013}
    r09 = raw[2009][raw[2009]["typequ"].isin(sante)]
    r13 = raw[2013][raw[2013]["typequ"].isin(sante - {"D113"})
                    & ~raw[2013]["depcom"].str.startswith("976")]
    france = typology.set_index(["groupe", "cle"]).loc[("France", "sante")]
    assert france["statut"].startswith("partiel")
    assert france["evolution"] == r13["nb_equip"].sum() - r09["nb_equip"].sum()
    # opticians changed domain and scope (D234 -> B313, x2.2): redefined, not comparable
    types = {ty["type"]: ty for ty in meta["types"]}
    assert types["D234"]["ends"] == "redéfini" and types["B313"]["starts"] == "redéfini"
    # the post office was renumbered (A201 -> A206): one type, compared
    assert types["A201>A206"]["codes"] == {"2009": ["A201"], "2013": ["A206"]}
    assert meta["statuses"]["2009_2013"]["bureau_poste"] == "comparable"


def test_merged_commune_counts_add_up(trends, raw, shared_data):
    """A commune nouvelle (merged after BPE 2013) has the sum of its former communes."""
    cog = _raw_csv(shared_data, COG)
    cur = cog[(cog["type"] == "commune-actuelle") & cog["anciensCodes"].notna()]
    in13 = set(raw[2013]["depcom"])
    best = max(cur.itertuples(), key=lambda r: len(set(r.anciensCodes.split(";")) & in13))
    olds = set(best.anciensCodes.split(";")) | {best.code}
    assert len(olds & in13) >= 3  # several former communes with their own BPE rows
    t = trends.set_index("insee")
    for year in (2009, 2013):
        df = raw[year]
        rows = df[df["depcom"].isin(olds)]
        for key, codes in (("boulangerie", ["B203"]), ("banque", ["A203"])):
            assert t.at[best.code, f"n_{key}_{year}"] == rows.loc[
                rows["typequ"].isin(codes), "nb_equip"].sum(), (best.code, key, year)


def test_passage_documents_every_change_2009_2013(trends, shared_data):
    """Every mapped code that appears or disappears between 2009 and 2013 has its link,
    and the codes observed in each vintage are those of its INSEE nomenclature."""
    meta = trends.attrs["meta"]
    assert meta["undocumented_changes"] == []
    nom = _raw_csv(shared_data, "bpe/typequ_nomenclature_insee_2009_2013_2020.csv")
    for year in ("2009", "2013"):
        known = set(nom.loc[nom[f"libelle_bpe{year}"].notna(), "typequ"])
        observed = {c for ty in meta["types"] for c in ty["codes"].get(year, [])}
        assert observed <= known, sorted(observed - known)
    assert meta["reading"]["2009"]["unknown_codes"] == {}
    assert meta["reading"]["2013"]["equipments_unknown_communes"] == 0


def test_populations_and_field_names(trends, mirror_settings):
    ref = communes.load_reference(mirror_settings).set_index("insee")
    t = trends.set_index("insee")
    meta = trends.attrs["meta"]
    assert meta["population_years"] == {"2009": 2016, "2013": 2016}
    assert (t["population_bpe_2009"].dropna() == ref["pop_2016"].dropna()).all()
    code = "46127"
    n09, n13 = t.at[code, "n_boulangerie_2009"], t.at[code, "n_boulangerie_2013"]
    assert t.at[code, "n_boulangerie_per_10k_change_2009_2013"] == pytest.approx(
        (n13 - n09) / ref.at[code, "pop_2016"] * 10_000, abs=1e-3)
    allowed = re.compile(r"^(insee|nom|population_bpe_\d{4}|n_[a-z0-9_]+_\d{4}"
                         r"|n_[a-z0-9_]+_(base|change|per_10k_change)_\d{4}_\d{4}"
                         r"|[a-z0-9_]+_lost_last_\d{4}_\d{4})$")
    assert [c for c in trends.columns if not allowed.match(c)] == []
    assert str(t["n_sante_2013"].dtype) == "Int64"
    assert str(t["boulangerie_lost_last_2009_2013"].dtype) == "boolean"
    # Mayotte (976) is not in BPE 2009: empty there, never zero
    assert pd.isna(t.at["97611", "n_boulangerie_2009"])
    assert not pd.isna(t.at["97611", "n_boulangerie_2013"])
    assert pd.isna(t.at["97611", "n_boulangerie_change_2009_2013"])


def test_population_year_rule():
    years = communes.POPULATION_YEARS
    assert [facility_trends.population_year_for(y, years)
            for y in (2009, 2013, 2018, 2021, 2023, 2030)] == [2016, 2016, 2019, 2020, 2023,
                                                                2023]
    assert facility_trends.trend_pairs([2013, 2009]) == [(2009, 2013)]
    assert facility_trends.trend_pairs([2009, 2013, 2021]) == [(2009, 2013), (2013, 2021),
                                                                (2009, 2021)]


# --- synthetic: the table de passage and harmonised types -----------------------------------


def _passage(tmp_path, body, mirror_settings):
    path = tmp_path / "passage.toml"
    path.write_text("version = 1\n" + body, encoding="utf-8")
    return facility_trends.load_passage(mirror_settings, path=path)


def test_harmonise_joins_renumbered_codes_and_flags_the_rest(tmp_path, mirror_settings):
    passage = _passage(tmp_path, """
[[link]]
kind = "renumbered"
old = ["B203"]
new = ["B207"]
source = "test"
[[link]]
kind = "created"
old = []
new = ["B314"]
source = "test"
[[link]]
kind = "renumbered"
old = ["B314"]
new = ["B316"]
source = "test"
""", mirror_settings)
    code_sub = facility_trends.bpe_code_subcategories(load_categories(mirror_settings))
    observed = {2009: ["B203", "D201", "ZZZZ"], 2013: ["B203", "B314", "D201"],
                2021: ["B207", "B316"]}
    types, undocumented = facility_trends.harmonise(observed, passage, code_sub)
    by_key = {t.key: t for t in types}
    assert set(by_key) == {"B203>B207", "B314>B316", "D201"}  # ZZZZ: not in the categories
    assert by_key["B203>B207"].codes == {2009: ("B203",), 2013: ("B203",), 2021: ("B207",)}
    assert (by_key["B314>B316"].first, by_key["B314>B316"].starts) == (2013, "créé")
    # D201 vanishes in 2021 with no D201 -> D265 link here: undocumented, a type that ends
    assert by_key["D201"].last == 2013 and by_key["D201"].ends == "non documenté"
    assert len(undocumented) == 1 and "D201 disappears after BPE 2013" in undocumented[0]
    keys = [by_key["B203>B207"], by_key["B314>B316"]]
    assert facility_trends.pair_status(keys, 2009, 2013)[0] == "partiel"
    status, common = facility_trends.pair_status(keys, 2013, 2021)
    assert status == "comparable" and len(common) == 2
    assert facility_trends.pair_status([by_key["B314>B316"]], 2009, 2013)[0] == \
        "non comparable"
    assert facility_trends.pair_status([by_key["D201"]], 2021, 2021) == (None, [])


@pytest.mark.parametrize(("body", "message"), [
    ('kind = "moved"\nold = ["B203"]\nnew = ["B207"]\nsource = "x"', "kind 'moved'"),
    ('kind = "renumbered"\nold = ["B203"]\nnew = ["B207", "B208"]\nsource = "x"',
     "cannot have 1 old and 2 new"),
    ('kind = "renumbered"\nold = ["B203"]\nnew = ["D265"]\nsource = "x"',
     "joins codes of several subcategories"),
    ('kind = "created"\nold = []\nnew = ["X999"]\nsource = "x"', "X999 map to no subcategory"),
    ('kind = "created"\nold = []\nnew = ["B208"]', "source is required"),
])
def test_bad_passage_is_one_clear_error(tmp_path, mirror_settings, body, message):
    with pytest.raises(InputFileError, match=re.escape(message)):
        _passage(tmp_path, "[[link]]\n" + body + "\n", mirror_settings)


def test_read_vintage_layouts(tmp_path):
    geo = tmp_path / "bpe21_ensemble_xy.csv"
    geo.write_text("DCIRIS;TYPEQU;LAMBERT_X;LAMBERT_Y\n013060000;B203;1;2\n013060000;B203;1;2\n"
                   "463060101;D201;;\n", encoding="utf-8")
    zipped = tmp_path / "bpe21_ensemble_xy_csv.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(geo, geo.name)
    for path in (geo, zipped):
        got = facility_trends.read_vintage(path)
        assert got.to_dict("records") == [
            {"depcom": "01306", "typequ": "B203", "n": 2},
            {"depcom": "46306", "typequ": "D201", "n": 1}]
    counts = tmp_path / "counts.csv"
    counts.write_text("annee,depcom,typequ,nb_equip\n2013,1306,B203,3\n2013,01306,B203,x\n",
                      encoding="utf-8")
    with pytest.raises(InputFileError, match="unreadable nb_equip"):
        facility_trends.read_vintage(counts)
    counts.write_text("annee,depcom,typequ,nb_equip\n2013,1306,B203,3\n", encoding="utf-8")
    assert facility_trends.read_vintage(counts)["depcom"].tolist() == ["01306"]


def test_cli_bad_passage_exits_2(shared_data, mirror_settings, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[[link]]\nkind = 'x'\n", encoding="utf-8")
    code = main(["--mirror", str(shared_data), "--set", f"data_dir={mirror_settings.data_dir}",
                 "--set", f"bpe_passage_file={bad}", "facility-trends",
                 "--out", str(tmp_path / "t.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and "kind 'x' is not one of" in err and "Traceback" not in err
    assert not (tmp_path / "t.parquet").exists()


# --- outputs: typology page and portrait -------------------------------------------------------


def test_typology_outputs(typology, mirror_settings, tmp_path):
    paths, html = facility_trends.write_typology_trends(tmp_path, settings=mirror_settings)
    names = {p.name for p in paths}
    assert names == {"typologie_evolution_equipements.csv",
                     "typologie_evolution_equipements_types.csv",
                     "typologie_evolution_equipements.svg",
                     "typologie_perte_dernier_equipement.svg"}
    for p in paths:
        if p.suffix == ".svg":
            assert ET.parse(p).getroot().tag.endswith("svg")
    back = pd.read_csv(tmp_path / "typologie_evolution_equipements.csv")
    assert list(back.columns) == facility_trends.TYPOLOGY_COLUMNS
    assert set(back["groupe"]) == {"petite ville", "ville moyenne", "grande ville", "PVD",
                                   "ACV", "France"}
    assert html is not None and "« dernier commerce »" in html and "SIRENE" in html
    assert "D113" in html  # types of one vintage listed, with their reason
    types = pd.read_csv(tmp_path / "typologie_evolution_equipements_types.csv")
    assert types.set_index("type").at["A201>A206", "codes_2009"] == "A201"


def test_portrait_shows_the_offer_over_time(mirror_settings, raw, tmp_path):
    for code in ("01306", "46127"):
        p = portrait.build_portrait(code, settings=mirror_settings)
        trend = p.facility_trend
        assert trend is not None and trend.years == [2009, 2013]
        row = trend.table.set_index("cle").loc["boulangerie"]
        exp = [raw[y].loc[(raw[y]["cur"] == code) & (raw[y]["typequ"] == "B203"),
                          "nb_equip"].sum() for y in (2009, 2013)]
        assert (row["commune_debut"], row["commune_fin"]) == tuple(exp)
        assert row["n_pairs"] == len(p.peers.peers)
        assert len(trend.series["commerces_alimentaire"]["commune"]) == 2
        html = portrait.render_portrait_html(p)
        assert 'id="evolution-equipements"' in html and "SIRENE" in html
        paths = portrait.write_portrait(p, tmp_path / code, settings=mirror_settings)
        trend_csv = tmp_path / code / "portrait_evolution_equipements.csv"
        assert trend_csv in paths
        back = pd.read_csv(trend_csv, dtype={"insee": str})
        assert (back["insee"] == code).all() and "pairs_perte_dernier" in back.columns


def test_town_outside_a_vintage_says_so(trends, mirror_settings):
    trend = facility_trends.town_trend("97611", ["97602"], settings=mirror_settings)
    html = facility_trends.render_portrait_section(trend)
    assert "La BPE 2009 ne couvre pas le département 976" in html and "<table" not in html


def test_geolocated_vintage_after_the_renumbering(mirror_settings, trends, raw, tmp_path):
    """A production geolocated file (BPE 2021 layout, revised codes D265, B207) joins the
    mirror's vintages: renumbered codes are compared, codes it does not have are types that
    end in 2013 (not closures), départements it does not cover stay empty."""
    data, src = tmp_path / "data", mirror_settings.raw_dir
    (data / "raw" / "bpe").mkdir(parents=True)
    (data / "interim").mkdir()
    for item in src.iterdir():
        if item.name == "sources.lock.json":
            shutil.copy(item, data / "raw" / item.name)
        elif item.name != "bpe":
            (data / "raw" / item.name).symlink_to(item, target_is_directory=item.is_dir())
    for f in (src / "bpe").iterdir():
        (data / "raw" / "bpe" / f.name).symlink_to(f)
    (data / "interim" / "communes.parquet").symlink_to(
        mirror_settings.interim_dir / "communes.parquet")
    lines = ["AN;DEPCOM;DCIRIS;TYPEQU;LAMBERT_X;LAMBERT_Y"]
    lines += ["2021;01306;0130600000;D265;848000;6576000"] * 5
    lines += ["2021;01306;0130600000;B207;848000;6576000"] * 2
    lines += ["2021;01093;0109300000;D265;;"]
    (data / "raw" / "bpe" / "bpe21_ensemble_xy.csv").write_text("\n".join(lines) + "\n",
                                                               encoding="utf-8")
    s = mirror_settings.replace(data_dir=data)
    assert [v.year for v in facility_trends.available_vintages(s)] == [2009, 2013, 2021]
    table = facility_trends.commune_trends(settings=s)
    meta = table.attrs["meta"]
    assert meta["pairs"] == ["2009_2013", "2013_2021", "2009_2021"]
    assert meta["population_years"]["2021"] == 2020
    t = table.set_index("insee")
    gp13 = raw[2013].loc[(raw[2013]["cur"] == "01306") & (raw[2013]["typequ"] == "D201"),
                         "nb_equip"].sum()
    assert t.at["01306", "n_medecin_generaliste_2021"] == 5
    assert t.at["01306", "n_medecin_generaliste_change_2013_2021"] == 5 - gp13
    assert meta["statuses"]["2013_2021"]["medecin_generaliste"] == "comparable"
    assert t.at["01306", "n_boulangerie_change_2009_2021"] == 2 - raw[2009].loc[
        (raw[2009]["cur"] == "01306") & (raw[2009]["typequ"] == "B203"), "nb_equip"].sum()
    # Bourg-en-Bresse has boulangeries in 2013 and none in this file: its last one is lost
    assert bool(t.at["01053", "boulangerie_lost_last_2013_2021"]) is True
    # no pharmacy code in this file: the D301 type ends in 2013, no closure is counted
    assert meta["statuses"]["2013_2021"]["pharmacie"] == "non comparable"
    assert t["n_pharmacie_change_2013_2021"].isna().all()
    types = {ty["type"]: ty for ty in meta["types"]}
    assert types["D201>D265"]["last"] == 2021
    assert types["D301"]["ends"] == "nomenclature modifiée (codes non observés)"
    assert not any(m.startswith(("D201", "D301")) for m in meta["undocumented_changes"])
    # the file covers the Ain only: elsewhere 2021 is empty, never zero
    assert pd.isna(t.at["46127", "n_boulangerie_2021"])
    assert pd.isna(t.at["46127", "n_boulangerie_change_2013_2021"])
    assert t.at["46127", "n_boulangerie_change_2009_2013"] is not pd.NA
    facility_trends.write_commune_trends(table, settings=s)
    trend = facility_trends.town_trend("01306", ["01093", "01053"], settings=s)
    assert trend.years == [2009, 2013, 2021]
    assert all(len(v) == 3 for v in trend.series["sante_premier_recours"].values())
    assert "2009-2021" in facility_trends.render_portrait_section(trend)
