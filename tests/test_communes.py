"""Commune reference, lookups, old-code mapping and typology statistics on real data."""

from __future__ import annotations

import gzip
import json

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo import communes
from geo.cli import main
from geo.errors import InputFileError, MissingColumnsError, UnknownCommuneError


@pytest.fixture(scope="module")
def ref(mirror_settings):
    return communes.load_reference(mirror_settings)


def _raw_csv(shared_data, rel):
    return pd.read_csv(shared_data / rel, dtype=str, keep_default_na=False, na_values=[""])


def test_reference_covers_every_current_commune(ref, shared_data):
    cog = _raw_csv(shared_data, "admin/communes_cog2026_decoupage_administratif.csv.gz")
    current = cog[cog["type"] == "commune-actuelle"]
    assert len(ref) == len(current) == ref["insee"].nunique()
    assert set(ref["insee"]) == set(current["code"])
    assert ref["insee"].str.fullmatch(r"\d{5}|2[AB]\d{3}").all()
    assert {"2A004", "2B033"} <= set(ref["insee"])  # Ajaccio, Bastia


def test_programme_membership(ref, shared_data):
    pvd = _raw_csv(shared_data, "programmes/pvd_communes_anct_superposeur_2024-09.csv")
    acv = _raw_csv(shared_data, "programmes/acv_communes_anct_2025-04.csv")
    assert int(ref["pvd"].sum()) == 1645 == pvd["insee_com"].nunique()
    assert set(ref.loc[ref["pvd"], "insee"]) == set(pvd["insee_com"])
    assert set(ref.loc[ref["acv"], "insee"]) == set(acv["insee_com"])


def test_demo_towns(ref):
    row = ref.set_index("insee")
    assert row.at["01306", "nom"] == "Pont-de-Veyle"
    assert row.at["01306", "pvd"] and not row.at["01306", "acv"]
    assert row.at["01306", "typologie"] == "petite ville"
    assert row.at["46042", "nom"] == "Cahors"
    assert row.at["46042", "acv"] and row.at["46042", "typologie"] == "ville moyenne"
    assert row.at["46042", "epci_nom"] == "CA du Grand Cahors"
    assert row.at["46042", "departement_nom"] == "Lot"


def test_typology_thresholds():
    assert communes.population_typology(9_999) == "petite ville"
    assert communes.population_typology(10_000) == "ville moyenne"
    assert communes.population_typology(100_000) == "ville moyenne"
    assert communes.population_typology(100_001) == "grande ville"
    assert communes.population_typology(None) is None


def test_typologies_of_a_column_are_the_typology_of_each_value(ref):
    """The vectorised form gives, value by value, the class of the scalar rule: at the
    bounds, for a missing population and on every legal population of the reference."""
    edges = pd.Series([0, 9_999, 10_000, 10_000.5, 100_000, 100_001, None], dtype="Float64")
    assert communes.population_typologies(edges).tolist() == [
        "petite ville", "petite ville", "ville moyenne", "ville moyenne", "ville moyenne",
        "grande ville", None]
    for year in (2016, 2023):
        values = ref[f"pop_{year}"]
        expected = [None if pd.isna(v) else communes.population_typology(float(v))
                    for v in values]
        assert communes.population_typologies(values).tolist() == expected


def test_population_history_sums_merged_communes(ref, shared_data):
    """pop_2016 of a commune nouvelle is the sum of its former communes in 2016."""
    cog = _raw_csv(shared_data, "admin/communes_cog2026_decoupage_administratif.csv.gz")
    pop = _raw_csv(shared_data,
                   "population/populations_communes_2016_2023_decoupage_administratif.csv.gz")
    p16 = pop[pop["pop_millesime"] == "2016"].set_index("code")["population"].astype(float).dropna()
    merged = cog[(cog["type"] == "commune-actuelle") & cog["anciensCodes"].notna()]
    checked = 0
    for code, olds in zip(merged["code"], merged["anciensCodes"], strict=True):
        members = [c for c in {code, *olds.split(";")} if c in p16.index]
        if len(members) < 2:
            continue
        expected = int(p16[members].sum())
        assert ref.set_index("insee").at[code, "pop_2016"] == expected, code
        checked += 1
        if checked >= 50:
            break
    assert checked >= 20


def test_current_code_map(mirror_settings, shared_data):
    mapping = communes.current_code_map(mirror_settings)
    # former communes merged into Arboys en Bugey (01015) and Bâgé-Dommartin (01025)
    assert mapping["01340"] == "01015"
    assert mapping["01144"] == "01025"
    assert mapping["01306"] == "01306"
    assert mapping["75101"] == "75056"  # Paris 1er arrondissement -> Paris
    # every code of the APL 2021 table maps to a current commune
    apl = _raw_csv(shared_data, "apl/apl_medecins_generalistes_2021_drees.csv.gz")
    codes = set(apl["Code commune"])
    unmapped = {c for c in codes if c not in mapping}
    assert not unmapped, sorted(unmapped)[:10]
    assert sum(mapping[c] != c for c in codes) > 50  # APL predates many mergers


def test_aggregate_to_current_rules(mirror_settings):
    # 01340 and 01015 -> 01015 (merged); 01306 stays.
    df = pd.DataFrame({
        "code": ["01340", "01015", "01306", "99999"],
        "pop": [100, 300, 1000, 5],
        "apl": [2.0, 4.0, 3.0, 1.0],
        "label": ["small", "big", "x", "y"],
    })
    out = communes.aggregate_to_current(
        df, "code", sum_cols=["pop"], weighted_cols={"apl": "pop"}, first_cols=["label"],
        settings=mirror_settings,
    ).set_index("insee")
    assert list(out.index) == ["01015", "01306"]  # 99999 dropped with a warning
    assert out.at["01015", "pop"] == 400
    assert out.at["01015", "apl"] == pytest.approx((2.0 * 100 + 4.0 * 300) / 400)
    assert out.at["01015", "label"] == "big"  # the most populous former commune
    assert out.at["01015", "n_source_codes"] == 2
    with pytest.raises(MissingColumnsError, match="'nope'"):
        communes.aggregate_to_current(df, "code", sum_cols=["nope"], settings=mirror_settings)


@pytest.mark.parametrize(
    ("query", "expected"),
    [("01306", "01306"), ("pont de veyle", "01306"), ("PONT-DE-VEYLE", "01306"),
     ("Pont de Véyle", "01306"), ("cahors", "46042"), ("st germain en laye", "78551"),
     ("Saint-Martin 978", "97801"), ("2a004", "2A004"), ("01340", "01015")],
)
def test_resolve_insee(mirror_settings, query, expected):
    assert communes.resolve_insee(query, mirror_settings) == expected


@pytest.mark.parametrize(
    ("query", "pattern"),
    [("1306", r"malformed INSEE code '1306'.*01306"),
     ("ABCDE1", "no commune named"),
     ("01X06", "malformed INSEE code"),
     ("99999", "unknown INSEE code '99999'"),
     ("pont de vayle", r"no commune named 'pont de vayle'; close matches: 01306 Pont-de-Veyle"),
     ("saint martin", r"communes are named 'saint martin'.*97801 Saint-Martin"),
     ("", "empty commune query")],
)
def test_resolve_insee_errors(mirror_settings, query, pattern):
    with pytest.raises(UnknownCommuneError, match=pattern):
        communes.resolve_insee(query, mirror_settings)


def test_close_matches_are_limited_to_five(mirror_settings):
    with pytest.raises(UnknownCommuneError) as err:
        communes.resolve_insee("saint", mirror_settings)
    assert str(err.value).count(" hab.)") <= 5


def test_polygons_and_catchment(mirror_settings):
    polys = communes.commune_polygons(["01306", "46042"], settings=mirror_settings)
    assert polys.crs.to_epsg() == 2154
    assert polys.geometry.is_valid.all()
    area = polys.set_index("insee").geometry.area
    # Pont-de-Veyle is about 2.4 km², Cahors about 65 km² (simplified polygons)
    assert 1.5e6 < area["01306"] < 3.5e6
    assert 55e6 < area["46042"] < 75e6
    c = communes.catchment("01306", settings=mirror_settings)
    assert c.crs == "EPSG:2154" and c.buffer_m == 5000
    assert c.communes["is_town"].sum() == 1 and c.insee_codes[0] == "01306"
    assert "71270" in c.insee_codes  # Mâcon, across the Saône in another département
    assert c.area.contains(c.town) and shapely.is_valid(c.area)
    assert all(g.intersects(c.area) for g in c.communes.geometry)
    overseas = communes.commune_polygons(["97411"], settings=mirror_settings)  # Saint-Denis
    assert overseas.crs.to_epsg() == 2975
    with pytest.raises(InputFileError, match="several metric CRS"):
        communes.commune_polygons(["01306", "97411"], settings=mirror_settings)
    with pytest.raises(InputFileError, match=r"no polygon for commune\(s\) 97501 "
                       r"\(Miquelon-Langlade\): the national commune layers do not cover"):
        communes.commune_polygons(["97501"], settings=mirror_settings)


def test_typology_stats_against_raw_tables(mirror_settings, shared_data):
    """Independent computation from the raw COG, population and programme tables."""
    stats = communes.typology_stats(2023, settings=mirror_settings).set_index("groupe")
    cog = _raw_csv(shared_data, "admin/communes_cog2026_decoupage_administratif.csv.gz")
    cur = cog[cog["type"] == "commune-actuelle"].copy()
    cur = cur[cur["zone"].isin(["metro", "drom"])]  # France = mainland + DROM
    pop = _raw_csv(shared_data,
                   "population/populations_communes_2016_2023_decoupage_administratif.csv.gz")
    p23 = pop[pop["pop_millesime"] == "2023"].set_index("code")["population"].astype(float)
    cur["p23"] = cur["code"].map(p23)
    # 2016 populations on 2026 communes: each 2016 code to its current commune
    old_to_new = {}
    for code, olds in zip(cur["code"], cur["anciensCodes"], strict=True):
        old_to_new[code] = code
        for old in (olds.split(";") if isinstance(olds, str) else []):
            old_to_new.setdefault(old, code)
    deleg = cog[cog["type"].isin(["commune-deleguee", "commune-associee"])]
    for code, chef in zip(deleg["code"], deleg["chefLieu"], strict=True):
        old_to_new.setdefault(code, chef)
    p16 = pop[pop["pop_millesime"] == "2016"].copy()
    p16["new"] = p16["code"].map(old_to_new)
    p16_new = p16.groupby("new")["population"].apply(
        lambda x: x.astype(float).sum(min_count=1))
    cur["p16"] = cur["code"].map(p16_new)
    total = cur["p23"].sum()
    pvd = set(_raw_csv(shared_data, "programmes/pvd_communes_anct_superposeur_2024-09.csv")
              ["insee_com"])
    acv = set(_raw_csv(shared_data, "programmes/acv_communes_anct_2025-04.csv")["insee_com"])
    cur_pop = cur["population"].astype(float)
    groups = {
        "petite ville": cur_pop < 10_000,
        "ville moyenne": (cur_pop >= 10_000) & (cur_pop <= 100_000),
        "grande ville": cur_pop > 100_000,
        "PVD": cur["code"].isin(pvd),
        "ACV": cur["code"].isin(acv),
    }
    for name, mask in groups.items():
        part = cur[mask]
        assert stats.at[name, "communes"] == len(part), name
        assert stats.at[name, "population"] == int(part["p23"].sum()), name
        assert stats.at[name, "part_population_nationale"] == pytest.approx(
            part["p23"].sum() / total), name
        both = part["p23"].notna() & part["p16"].notna()  # Mayotte, COM: no 2016 figure
        growth = part.loc[both, "p23"].sum() / part.loc[both, "p16"].sum() - 1
        assert stats.at[name, "croissance_depuis_2016"] == pytest.approx(growth), name
    assert stats.at["PVD", "communes"] == 1645
    with pytest.raises(InputFileError, match="no legal population for year 2017"):
        communes.typology_stats(2017, settings=mirror_settings)


def test_cli_commune_card(use_settings, capsys, tmp_path):
    out = tmp_path / "town.json"
    assert main(["commune", "pont de veyle", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Pont-de-Veyle (01306)" in text and "PVD" in text and "petite ville" in text
    card = json.loads(out.read_text())
    assert card["insee"] == "01306" and card["metric_crs"] == "EPSG:2154"
    assert card["catchment"]["communes"][0]["insee"] == "01306"
    assert "osm_pont_de_veyle" in card["local_datasets"]
    assert main(["commune", "46042"]) == 0
    text = capsys.readouterr().out
    assert "Cahors (46042)" in text and "ACV" in text and "ville moyenne" in text


def test_cli_errors_have_no_traceback(use_settings, capsys):
    assert main(["commune", "pont de vayle"]) == 2
    err = capsys.readouterr().err
    assert "error: no commune named 'pont de vayle'" in err and "Traceback" not in err
    assert "01306 Pont-de-Veyle" in err


def test_cli_typology_stats(use_settings, capsys):
    assert main(["typology-stats", "--year", "2023"]) == 0
    text = capsys.readouterr().out
    assert "PVD" in text and "1,645" in text and "ville moyenne" in text


def test_corrupt_reference_input(mirror_settings, tmp_path):
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as fh:
        fh.write("code,nom\n01001,X\n")
    with pytest.raises(MissingColumnsError, match="'type'"):
        communes._read_csv(bad, ["code", "nom", "type"])


# --- odd communes (issue 13) ---------------------------------------------------------------


def test_commune_missing_from_the_layer_gets_the_gap_its_neighbours_leave(mirror_settings,
                                                                          shared_data):
    """Conques-en-Rouergue (12218) is absent from the simplified national layer: its
    polygon is the hole its neighbours leave, which holds the Abbatiale Sainte-Foy of
    Conques (the festival register's coordinates), touches the other communes of its
    EPCI and overlaps none."""
    s = mirror_settings
    town = communes.commune_polygons(["12218"], settings=s).geometry.iloc[0]
    assert 95e6 < town.area < 120e6  # Conques-en-Rouergue: about 106 km²
    festivals = _raw_csv(shared_data, "culture/festivals_culture_gouv.csv.gz")
    conques = festivals[festivals["Nom du festival"] == "Rencontres musicales de Conques"]
    abbey = gpd.GeoSeries.from_xy(conques["lon"].astype(float),
                                  conques["lat"].astype(float), crs="EPSG:4326")
    assert town.contains(abbey.to_crs("EPSG:2154").iloc[0])
    ref = communes.load_reference(s)
    epci = ref.loc[ref["epci_siren"] == "241200641", "insee"].tolist()
    neighbours = communes.commune_polygons([c for c in epci if c != "12218"], settings=s)
    assert (neighbours.distance(town) < 1.0).sum() >= 2  # m: it borders its EPCI
    assert neighbours.intersection(town).area.sum() < 1e3  # m²: shared edges only
    card = communes.town_card("12218", settings=s)
    assert card["polygon_source"] == "gap left by the neighbouring communes in communes_polygons"
    assert card["catchment"] is not None and len(card["catchment"]["communes"]) > 10


def test_saint_barthelemy_polygon_from_its_osm_boundary(mirror_settings, shared_data):
    """Saint-Barthélemy (97701) has no polygon in the national layer; the OSM extract's
    administrative boundary (maritime) clipped to its coastline gives the islands, with
    Gustavia (the extract's place=town node) inside; its town run can start."""
    import osmium

    s = mirror_settings
    island = communes.commune_polygons(["97701"], settings=s)
    assert island.crs.to_epsg() == 5490
    assert 18e6 < island.area.iloc[0] < 26e6  # about 21 km² of land
    osm = shared_data / "osm/saint-barthelemy/saint_barthelemy.osm.pbf"
    towns = [(n.location.lon, n.location.lat) for n in osmium.FileProcessor(str(osm))
             .with_filter(osmium.filter.TagFilter(("place", "town"))) if n.is_node()]
    gustavia = gpd.GeoSeries.from_xy(*zip(*towns, strict=True), crs="EPSG:4326").to_crs(5490)
    assert island.geometry.iloc[0].contains(gustavia.iloc[0])
    card = communes.town_card("97701", settings=s)
    assert card["polygon_source"].startswith("OSM boundary relation 537967 (admin_level 3) "
                                             "clipped to the coastline of osm_saint_barthelemy")
    assert card["catchment"]["communes"][0]["insee"] == "97701"
    from geo import facilities

    found = facilities.town_facilities("97701", settings=s)  # used to fail: no polygon
    assert (found["source"] == "osm").sum() >= 1 and found.crs.to_epsg() == 5490


def test_communes_still_without_polygon_say_why(mirror_settings):
    with pytest.raises(InputFileError, match=r"no polygon for commune\(s\) 15031 \(Celles\): "
                       r"the commune layer \(communes_polygons, .*\) has no polygon for it"):
        communes.commune_polygons(["15031"], settings=mirror_settings)


def test_arrondissement_resolves_to_its_commune_once(mirror_settings, caplog, tmp_path):
    """75101 is Paris' 1st arrondissement: the town is Paris (75056), and `make town
    INSEE=75101` builds data/out/75056 (not a second copy of Paris under 75101)."""
    import os
    import subprocess

    from geo.settings import PROJECT_ROOT

    with caplog.at_level("WARNING", logger="geo.communes"):
        assert communes.resolve_insee("75101", mirror_settings) == "75056"
    assert "75101 is a municipal arrondissement of Paris; the town is 75056 (Paris)" \
        in caplog.text
    data = tmp_path / "data"
    data.mkdir()
    for tracked in (PROJECT_ROOT / "data").iterdir():  # the catalogues (tracked files)
        if tracked.is_file():
            (data / tracked.name).write_bytes(tracked.read_bytes())
    env = {**os.environ, "GEO_DATA_DIR": str(mirror_settings.data_dir),
           "GEO_MIRROR": str(mirror_settings.mirror)}
    # NEEDS_DATA= : the generated rule fragments are not needed to see the folders
    proc = subprocess.run(["make", "-n", "--no-print-directory", f"DATA={data}",
                           "NEEDS_DATA=", "town", "INSEE=75101"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"card 75056 --out {data}/out/75056" in proc.stdout
    assert "out/75101" not in proc.stdout
    assert "75101 is a municipal arrondissement of Paris" in proc.stderr
