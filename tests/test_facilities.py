"""Facilities: categories file, readers on real data, chains, communes, dedup, counts, CLI."""

from __future__ import annotations

import gzip
import json
import lzma
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

from geo import communes, facilities
from geo._categories import load_categories, normalize_text
from geo._io import read_parquet_metadata
from geo.cli import main
from geo.errors import GeoError, InputFileError, MissingColumnsError, MissingCrsError

PDV_OSM = "osm/ain-pont-de-veyle/pont-de-veyle_01306_overpass2022.osm.gz"
REDON_RAW = "osm/bretagne-redon/redon_35236_centre_overpass2019.osm.xz"
REDON_COMPLETE = "osm/bretagne-redon/redon_35236_centre_overpass2019_complete-ways_derived.osm.xz"


def _osm_elements(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(type letter + id, tags) of every tagged element, parsed with the standard library."""
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(path.suffix, open)
    with opener(path, "rb") as fh:
        root = ET.fromstring(fh.read().lstrip(b"\xef\xbb\xbf"))
    out = []
    for el in root:
        if el.tag in {"node", "way", "relation"}:
            tags = {t.get("k"): t.get("v") for t in el.findall("tag")}
            if tags:
                out.append((el.tag[0] + el.get("id"), tags))
    return out


@pytest.fixture(scope="module")
def cats(mirror_settings):
    return load_categories(mirror_settings)


@pytest.fixture(scope="module")
def pdv_pois(mirror_settings, shared_data):
    return facilities.read_osm_pois(shared_data / PDV_OSM, settings=mirror_settings)


@pytest.fixture(scope="module")
def redon_raw(mirror_settings, shared_data):
    return facilities.read_osm_pois(shared_data / REDON_RAW, settings=mirror_settings)


@pytest.fixture(scope="module")
def redon_complete(mirror_settings, shared_data):
    return facilities.read_osm_pois(shared_data / REDON_COMPLETE, settings=mirror_settings)


@pytest.fixture(scope="module")
def polygons_wgs84(mirror_settings):
    return communes.commune_polygons(crs="EPSG:4326", settings=mirror_settings)


@pytest.fixture(scope="module")
def national(mirror_settings, polygons_wgs84):
    return facilities.national_facilities(settings=mirror_settings, polygons=polygons_wgs84)


@pytest.fixture(scope="module")
def counts(mirror_settings):
    return facilities.commune_counts(settings=mirror_settings)


# --- the categories file ------------------------------------------------------------------


def test_categories_file_is_consistent(cats):
    assert set(cats.category_labels) == set(facilities.CATEGORY_KEYS)
    for key, sub in cats.subcategories.items():
        assert key == normalize_text(key).replace(" ", "_")
        assert sub.group in cats.groups[sub.category]
        assert sub.label
    assert cats.groups["commerces"].keys() >= {"alimentaire", "non_alimentaire", "restauration"}
    assert cats.groups["culture"].keys() >= {"vivant", "patrimoine"}
    required = {
        "sante": {"medecin_generaliste", "pharmacie", "dentiste", "masseur_kinesitherapeute",
                  "infirmier", "sage_femme", "hopital_clinique", "maison_de_sante"},
        "commerces": {"boulangerie", "boucherie", "epicerie", "supermarche", "hypermarche",
                      "marche", "restaurant", "cafe_bar"},
        "culture": {"cinema", "theatre", "salle_spectacle", "bibliotheque", "musee", "festival",
                    "monument_historique", "eglise_chapelle_classee", "chateau",
                    "site_archeologique"},
        "education": {"ecole", "college", "lycee", "enseignement_superieur"},
        "services": {"mairie", "bureau_poste", "france_services", "gendarmerie_police",
                     "banque"},
        "energie": {"eolienne", "centrale_solaire", "hydroelectricite"},
    }
    for cat, keys in required.items():
        assert keys <= set(cats.subcategory_keys(cat)), cat


def test_both_bpe_nomenclatures_are_mapped(cats, shared_data):
    # Every TYPEQU of the 2009/2013 nomenclature is mapped or deliberately ignored...
    nomenclature = pd.read_csv(shared_data / "bpe/typequ_nomenclature_insee_2009_2013_2020.csv",
                               dtype=str)
    old = nomenclature[nomenclature["libelle_bpe2009"].notna()
                       | nomenclature["libelle_bpe2013"].notna()]
    assert [c for c in old["typequ"] if cats.bpe_subcategory(c, "2013") is None] == []
    # ...and the health codes were renumbered: same subcategory under both nomenclatures.
    for old_code, new_code, sub in [("D201", "D265", "medecin_generaliste"),
                                    ("D301", "D307", "pharmacie"), ("D221", "D277", "dentiste"),
                                    ("D232", "D281", "infirmier"), ("D231", "D278", "sage_femme"),
                                    ("D233", "D279", "masseur_kinesitherapeute"),
                                    ("B203", "B207", "boulangerie"), ("C101", "C107", "ecole"),
                                    ("F301", "F303", "cinema")]:
        assert cats.bpe_subcategory(old_code, "2013") == sub
        assert cats.bpe_subcategory(new_code, "2021") == sub
    assert cats.bpe_subcategory("D265", "2013") is None  # no such code before the revision
    assert cats.bpe_subcategory("F101", "2021") == ""  # sports: ignored on purpose


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('bpe_2013 = ["D301"]', 'bpe_2013 = ["D201"]'),
         "D201 already mapped"),
        (lambda t: t.replace('category = "sante"\ngroup = "premier_recours"\nlabel = "Pharmacie"',
                             'category = "sport"\ngroup = "premier_recours"\nlabel = "Pharmacie"'),
         "unknown category 'sport'"),
        (lambda t: t.replace('osm = ["amenity=pharmacy", "healthcare=pharmacy"]',
                             'osm = ["name~pharmacie"]'),
         "must start with a key=value"),
        (lambda t: t.replace('"A205", "A3*"', '"A203", "A3*"', 1), "both mapped (banque)"),
    ],
)
def test_bad_categories_file_is_reported(tmp_path, edit, message):
    text = (Path(facilities.__file__).parents[2] / "data" / "categories.toml").read_text("utf-8")
    changed = edit(text)
    assert changed != text
    bad = tmp_path / "categories.toml"
    bad.write_text(changed, encoding="utf-8")
    with pytest.raises(InputFileError, match=re.escape(message)) as err:
        load_categories(path=bad)
    assert str(bad) in str(err.value)


def test_chain_banners_match_accent_and_case_insensitively(cats):
    assert cats.match_banner("CARREFOUR MARKET") == "Carrefour Market"
    assert cats.match_banner("Intermarche super") == "Intermarche Super"
    assert cats.match_banner("intermarché contact") == "Intermarché Contact"
    assert cats.match_banner("Super U") == "Super U"
    assert cats.match_banner("E.Leclerc Drive") == "E.Leclerc"
    assert cats.match_banner("Mc Donald's") is None
    assert cats.match_banner("McDonalds") == "McDonald's"
    # Banners in `exact` match the whole value only.
    assert cats.match_banner("Jules") == "Jules"
    assert cats.match_banner("Jules et Julie") is None
    assert cats.match_banner("Librairie du Centre", "Le Fournil du Port") is None


# --- OSM -------------------------------------------------------------------------------------


def test_pont_de_veyle_health_and_services(pdv_pois, shared_data):
    elements = _osm_elements(shared_data / PDV_OSM)
    expected = {
        "pharmacie": {i for i, t in elements if t.get("amenity") == "pharmacy"
                      or t.get("healthcare") == "pharmacy"},
        "dentiste": {i for i, t in elements if t.get("amenity") == "dentist"},
        "medecin_generaliste": {i for i, t in elements if t.get("amenity") == "doctors"},
        "hopital_clinique": {i for i, t in elements if t.get("amenity") == "hospital"},
        "mairie": {i for i, t in elements if t.get("amenity") == "townhall"},
        "bureau_poste": {i for i, t in elements if t.get("amenity") == "post_office"},
        "banque": {i for i, t in elements if t.get("amenity") == "bank"},
    }
    got = pdv_pois.groupby("subcategory")["source_id"].apply(set)
    for sub, ids in expected.items():
        assert ids, sub
        assert got.get(sub, set()) == ids, sub
    sante = pdv_pois[pdv_pois["category"] == "sante"]
    assert "Centre hospitalier Ain Val de Saône" in set(sante["name"])
    assert set(pdv_pois.loc[pdv_pois["subcategory"] == "banque", "brand"]) == {
        "Crédit Agricole", "Caisse d'Épargne"}
    # Ways (the hospital, the dentist) became points inside the Pont-de-Veyle area.
    assert (pdv_pois.geometry.geom_type == "Point").all()
    assert pdv_pois.geometry.y.between(46.0, 46.31).all()
    assert pdv_pois.loc[pdv_pois["category"] != "commerces", "chain"].isna().all()
    named_shops = (pdv_pois["category"] == "commerces") & pdv_pois["name"].notna()
    assert pdv_pois.loc[named_shops, "chain"].notna().all()
    assert pdv_pois["power_mw"].isna().all()
    assert set(pdv_pois.columns) == set(facilities.FACILITY_COLUMNS)


def test_redon_shops_split_into_chains_and_independents(redon_raw):
    shops = redon_raw[redon_raw["category"] == "commerces"].set_index("name")
    for name in ["Carrefour City", "U Express", "Yves Rocher", "Alain Afflelou", "Krys",
                 "Subway", "Caroll", "Audika", "Bouygues Télécom"]:
        assert shops.at[name, "chain"] == True, name  # noqa: E712
    for name in ["Le Fournil du Port", "Libellune", "Jaffray", "Jules et Julie", "Perrichet",
                 "Crêperie Saint-Nicolas", "Les Pensées vertes"]:
        assert (shops.loc[[name], "chain"] == False).all(), name  # noqa: E712
    assert shops.at["Carrefour City", "subcategory"] == "supermarche"
    assert shops.at["Carrefour City", "brand"] == "Carrefour City"  # from the banner list
    assert shops.at["U Express", "brand"] == "U Express"  # OSM brand tag
    unnamed = redon_raw[(redon_raw["category"] == "commerces") & redon_raw["name"].isna()
                        & redon_raw["brand"].isna()]
    assert len(unnamed) and unnamed["chain"].isna().all()
    # Banks carry a brand but are services: no chain flag.
    banks = redon_raw[redon_raw["subcategory"] == "banque"]
    assert banks["brand"].notna().sum() >= 5 and banks["chain"].isna().all()


def test_redon_every_shop_is_read_from_raw_and_complete_files(redon_raw, redon_complete,
                                                                shared_data):
    for data, rel in ((redon_raw, REDON_RAW), (redon_complete, REDON_COMPLETE)):
        elements = _osm_elements(shared_data / rel)
        shop_ids = {i for i, t in elements if "shop" in t and t["shop"] != "vacant"}
        got = set(data.loc[data["category"] == "commerces", "source_id"])
        assert shop_ids <= got
        assert len(shop_ids) == 96  # the 97 shops of the extract minus one vacant
        assert data.attrs["report"].excluded["closed or vacant"] == 1
    # The raw file has ways cut by the clip (nodes missing from the file): their POIs are
    # still read, placed from the nodes present; the derived file dropped those ways.
    with lzma.open(shared_data / REDON_RAW) as fh:
        root = ET.fromstring(fh.read().lstrip(b"\xef\xbb\xbf"))
    nodes = {n.get("id") for n in root.iter("node")}
    cut = {"w" + w.get("id") for w in root.iter("way")
           if any(nd.get("ref") not in nodes for nd in w.iter("nd"))}
    only_raw = set(redon_raw["source_id"]) - set(redon_complete["source_id"])
    assert only_raw and only_raw <= cut
    assert {"w263513205", "w263513206"} <= only_raw  # two schools, ways cut by the clip
    assert any("missing from the extract" in n for n in redon_raw.attrs["report"].notes)
    # The Abbaye Saint-Sauveur relation (heritage=2) is a monument historique in both.
    for data in (redon_raw, redon_complete):
        assert data.set_index("source_id").at["r8035241", "subcategory"] == \
            "monument_historique"
    common = redon_raw.merge(redon_complete, on=["source_id", "subcategory"])
    assert len(common) == len(redon_complete)


def test_osm_reader_on_a_constructed_extract(tmp_path, mirror_settings):
    osm = tmp_path / "tiny.osm"
    osm.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6"><meta osm_base="2024-01-02T03:04:05Z"/>
<node id="1" lat="45.0" lon="5.0"><tag k="amenity" v="pharmacy"/>
 <tag k="name" v="Pharmacie"/></node>
<node id="2" lat="45.001" lon="5.0"><tag k="amenity" v="teleporter"/></node>
<node id="3" lat="45.002" lon="5.0"><tag k="shop" v="vacant"/></node>
<node id="4" lat="45.0" lon="5.001"/><node id="5" lat="45.001" lon="5.001"/>
<node id="6" lat="45.0" lon="5.01"/><node id="7" lat="45.0" lon="5.011"/>
<node id="8" lat="45.001" lon="5.011"/><node id="9" lat="45.001" lon="5.01"/>
<node id="10" lat="45.0" lon="5.02"><tag k="power" v="generator"/>
 <tag k="generator:source" v="wind"/><tag k="generator:output:electricity" v="2.3 MW"/></node>
<way id="20"><nd ref="4"/><nd ref="5"/><nd ref="999"/>
 <tag k="shop" v="bakery"/><tag k="name" v="Boulangerie Paul"/></way>
<way id="21"><nd ref="998"/><nd ref="997"/><tag k="shop" v="butcher"/></way>
<way id="22"><nd ref="6"/><nd ref="7"/><nd ref="8"/></way>
<way id="23"><nd ref="8"/><nd ref="9"/><nd ref="6"/></way>
<relation id="30"><member type="way" ref="22" role="outer"/>
 <member type="way" ref="23" role="outer"/><member type="way" ref="996" role="outer"/>
 <tag k="type" v="multipolygon"/><tag k="historic" v="castle"/><tag k="name" v="Château"/>
</relation>
</osm>
""", encoding="utf-8")
    got = facilities.read_osm_pois(osm, settings=mirror_settings).set_index("source_id")
    report = got.attrs["report"]
    assert report.unknown == {"amenity=teleporter": 1}
    assert report.excluded["closed or vacant"] == 1
    assert report.excluded["no located node in the extract"] == 1  # way 21
    assert "OSM data as of 2024-01-02T03:04:05Z" in report.notes
    assert got.at["n1", "subcategory"] == "pharmacie"
    assert got.at["w20", "subcategory"] == "boulangerie"
    assert got.at["w20", "chain"] == False  # noqa: E712 - "Paul" is an exact-only banner
    assert got.at["w20", "geometry"].equals_exact(shapely.Point(5.001, 45.0005), 1e-9)
    castle = got.at["r30", "geometry"]
    assert got.at["r30", "subcategory"] == "chateau"
    assert shapely.box(5.01, 45.0, 5.011, 45.001).contains(castle)
    assert got.at["n10", "power_mw"] == pytest.approx(2.3)
    assert got.at["n10", "category"] == "energie"


def test_osm_reader_skips_changesets(tmp_path, mirror_settings):
    """An OSM XML file may hold changesets besides the map data: they are not facilities
    (the reader once failed on them with an AttributeError from deep in its loop)."""
    osm = tmp_path / "with_changeset.osm"
    osm.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6">
<changeset id="7" created_at="2024-01-01T00:00:00Z" closed_at="2024-01-01T00:01:00Z"
 open="false" user="u" uid="1" min_lat="45" min_lon="5" max_lat="45.1" max_lon="5.1"
 num_changes="1" comments_count="0"><tag k="comment" v="add a pharmacy"/></changeset>
<node id="1" lat="45.0" lon="5.0"><tag k="amenity" v="pharmacy"/></node>
</osm>
""", encoding="utf-8")
    got = facilities.read_osm_pois(osm, settings=mirror_settings)
    assert got["source_id"].tolist() == ["n1"]
    assert got["subcategory"].tolist() == ["pharmacie"]


def test_osm_bad_files(tmp_path, mirror_settings):
    with pytest.raises(InputFileError, match="does not exist"):
        facilities.read_osm_pois(tmp_path / "missing.osm", settings=mirror_settings)
    bad = tmp_path / "bad.osm"
    bad.write_text("<osm><node id='1' lat='x'", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"bad\.osm"):
        facilities.read_osm_pois(bad, settings=mirror_settings)


# --- national registers and communes ------------------------------------------------------


def test_registers_land_in_their_communes(national, polygons_wgs84):
    checks = national.attrs["checks"]
    for source in ("cinemas", "eoliennes", "festivals"):
        check = checks[source]
        print(check.summary())
        assert check.n_checked > 1000
        # Commune polygons are COG 2025 and simplified: a small mismatch rate is expected.
        assert check.mismatch_rate < 0.03, check.mismatches.head(20)
    # A cinema of Paris (arrondissement code 75108 in the CNC file) is in Paris.
    cinemas = national[national["source"] == "cinemas"].set_index("source_id")
    assert cinemas.at["31", "insee"] == "75056"


def test_museofile_lands_in_the_commune_it_names(national, polygons_wgs84, shared_data):
    raw = pd.read_csv(shared_data / "culture/museofile_musees_de_france_2025-10.csv", dtype=str)
    museums = national[national["source"] == "museofile"].set_index("source_id")
    located = museums.loc[raw["Identifiant"], "insee"]
    assert located.notna().mean() > 0.995
    # Names a commune is known by: its own and those of its communes déléguées.
    cog = pd.read_csv(shared_data / "admin/communes_cog2026_decoupage_administratif.csv.gz",
                      dtype=str)
    owner = cog["code"].where(cog["type"] == "commune-actuelle", cog["chefLieu"])
    known = pd.DataFrame({"code": owner, "nom": cog["nom"].map(communes.normalize_name)})
    names = known.dropna().groupby("code")["nom"].agg(set).to_dict()
    ville = raw["Ville"].map(communes.normalize_name).to_numpy()
    ok = [isinstance(code, str) and any(v.startswith(n) or n.startswith(v)
                                        for n in names.get(code, ()))
          for code, v in zip(located, ville, strict=True)]
    rate = 1 - np.mean(ok)
    print(f"museofile: {rate:.1%} of museums located in a commune not named like their Ville")
    assert rate < 0.04
    assert museums.at["M1128", "insee"] == "69123"  # musée des sapeurs-pompiers de Lyon


def test_wind_turbines_not_commissioned_are_left_out(national, shared_data, mirror_settings):
    raw = pd.read_csv(shared_data / "energie/eoliennes_terrestres_georisques_2022.csv.gz",
                      dtype=str)
    future = pd.to_datetime(raw["date_mise_en_service"]) > pd.to_datetime(raw["date_maj"])
    turbines = national[national["source"] == "eoliennes"]
    assert len(turbines) == len(raw) - int(future.sum())
    assert not set(raw.loc[future, "id_aerogenerateur"]) & set(turbines["source_id"])
    report = national.attrs["reports"]["eoliennes"]
    assert report.excluded["not yet commissioned"] == int(future.sum()) > 0
    assert any("without a commissioning date" in n for n in report.notes)
    power = pd.to_numeric(raw["puissance"])
    assert turbines["power_mw"].sum() == pytest.approx(power[~future].sum())
    assert (turbines["category"] == "energie").all()
    # As of 2015, every turbine commissioned later is left out too; undated ones can go.
    early = facilities.read_wind_turbines(as_of="2015-01-01", undated="drop",
                                          settings=mirror_settings)
    dated = pd.to_datetime(raw["date_mise_en_service"])
    assert len(early) == int((dated <= pd.Timestamp("2015-01-01")).sum())


# --- BPE ----------------------------------------------------------------------------------------

_BPE_XY_HEADER = (
    "AN;NOMRS;CNOMRS;NUMVOIE;TYPVOIE;LIBVOIE;CODPOS;DEPCOM;DEP;REG;LIBCOM;DOM;SDOM;TYPEQU;"
    "SIRET;LAMBERT_X;LAMBERT_Y;LONGITUDE;LATITUDE;QUALITE_XY;EPSG;DCIRIS;EPCI;UU2020"
)


def _bpe_row(nom, depcom, typequ, x, y, epsg="2154"):
    dep = depcom[:3] if depcom.startswith("97") else depcom[:2]
    return (f"2023;{nom};;12;RUE;DE LA GARE;01290;{depcom};{dep};84;X;{typequ[0]};{typequ[:2]};"
            f"{typequ};;{x};{y};;;Bonne;{epsg};{depcom}0000;200069193;01000")


def test_bpe_xy_production_layout(tmp_path, mirror_settings):
    rows = [
        _bpe_row("PHARMACIE VOISIN", "01306", "D307", "845000.5", "6575000.25"),
        _bpe_row("DR MARTIN", "01306", "D265", "845100", "6575100"),
        _bpe_row("CARREFOUR MARKET", "01306", "B105", "845200", "6575200"),
        _bpe_row("BOULANGERIE DU PONT", "01306", "B207", "845300", "6575300"),
        _bpe_row("BOULANGERIE SANS XY", "01306", "B207", "", ""),
        _bpe_row("TERRAIN DE FOOT", "01306", "F113", "845400", "6575400"),
        _bpe_row("MYSTÈRE", "01306", "Z999", "845500", "6575500"),
        _bpe_row("ÉCOLE", "97411", "C108", "340000", "7690000", epsg="2975"),
        _bpe_row("HORS ZONE", "35236", "D307", "300000", "6740000"),
    ]
    path = tmp_path / "BPE23.csv"
    # INSEE files are plain ';'-separated text; this one in Windows-1252 (accents).
    path.write_bytes(("\n".join([_BPE_XY_HEADER, *rows]) + "\n").encode("cp1252"))
    got = facilities.read_bpe_xy(path, communes=["01306", "97411"], crs="EPSG:2154",
                                 settings=mirror_settings)
    report = got.attrs["report"]
    assert report.unknown == {"TYPEQU=Z999": 1}
    assert report.excluded["TYPEQU outside the categories"] == 1
    assert "nomenclature 2021" in report.notes
    g = got.set_index("name")
    assert g.at["PHARMACIE VOISIN", "subcategory"] == "pharmacie"
    assert g.at["DR MARTIN", "subcategory"] == "medecin_generaliste"
    assert g.at["CARREFOUR MARKET", "chain"] == True  # noqa: E712
    assert g.at["CARREFOUR MARKET", "brand"] == "Carrefour Market"
    assert g.at["BOULANGERIE DU PONT", "chain"] == False  # noqa: E712
    assert pd.isna(g.at["PHARMACIE VOISIN", "chain"])
    assert g.at["PHARMACIE VOISIN", "geometry"].equals_exact(
        shapely.Point(845000.5, 6575000.25), 1e-6)
    assert g.at["BOULANGERIE SANS XY", "geometry"] is None  # kept for counts, no point
    x, y = pyproj.Transformer.from_crs("EPSG:2975", "EPSG:2154", always_xy=True).transform(
        340000, 7690000)
    assert g.at["ÉCOLE", "geometry"].equals_exact(shapely.Point(x, y), 1e-3)
    assert g.at["ÉCOLE", "insee"] == "97411"
    assert "HORS ZONE" not in g.index
    assert got["facility_id"].is_unique and got["source"].eq("bpe").all()

    # The same file zipped, as INSEE distributes it.
    zipped = tmp_path / "BPE23.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(path, "BPE23.csv")
    again = facilities.read_bpe_xy(zipped, communes=["01306", "97411"], crs="EPSG:2154",
                                   settings=mirror_settings)
    assert list(again["name"]) == list(got["name"])


def test_bpe_xy_missing_columns(tmp_path, mirror_settings):
    path = tmp_path / "bpe.csv"
    path.write_text("AN;DEPCOM;TYPEQU;X;Y\n2023;01306;D307;1;2\n", encoding="utf-8")
    with pytest.raises(MissingColumnsError, match="'LAMBERT_X', 'LAMBERT_Y'") as err:
        facilities.read_bpe_xy(path, settings=mirror_settings)
    assert "bpe.csv" in str(err.value)


def test_bpe_counts_reader(tmp_path, mirror_settings):
    path = tmp_path / "counts.csv"
    path.write_text("annee,depcom,typequ,libelle,nb_equip\n2013,01306,D201,Médecin,3\n"
                    "2013,01306,D301,Pharmacie,1\n2013,01306,F101,Bassin,2\n"
                    "2013,01306,Q999,Inconnu,4\n2013,01010,D201,Médecin,2\n", encoding="utf-8")
    got = facilities.read_bpe_counts(path, settings=mirror_settings,
                                     code_map=communes.current_code_map(mirror_settings))
    report = got.attrs["report"]
    assert report.unknown == {"TYPEQU=Q999": 4}  # counted in equipments
    assert report.excluded["TYPEQU outside the categories"] == 2
    table = got.set_index(["insee", "subcategory"])["n"]
    assert table[("01306", "medecin_generaliste")] == 3
    assert table[("01306", "pharmacie")] == 1


@pytest.mark.parametrize("encoding", ["utf-8-sig", "latin-1", "utf-8"])
def test_encodings(tmp_path, mirror_settings, encoding):
    path = tmp_path / f"museofile_{encoding}.csv"
    text = ("Identifiant,Nom_officiel,Ville,lat,lon\n"
            "M0001,musée de la Folie Marco,Barr,48.410166,7.451102\n"
            "M0002,Musée d'Art et d'Histoire,Saint-Étienne,45.44,4.39\n")
    path.write_bytes(text.encode(encoding))
    got = facilities.read_museofile(path, settings=mirror_settings)
    assert list(got["name"]) == ["musée de la Folie Marco", "Musée d'Art et d'Histoire"]
    assert list(got["source_id"]) == ["M0001", "M0002"]


def test_missing_columns_named(tmp_path, mirror_settings):
    path = tmp_path / "eoliennes.csv"
    path.write_text("id_aerogenerateur;code_insee;puissance\nE1;01306;2.0\n", encoding="utf-8")
    with pytest.raises(MissingColumnsError) as err:
        facilities.read_wind_turbines(path, settings=mirror_settings)
    for col in ("x_aerogenerateur", "y_aerogenerateur", "date_mise_en_service"):
        assert col in str(err.value)
    assert "eoliennes.csv" in str(err.value)
    with pytest.raises(InputFileError, match="does not exist"):
        facilities.read_cinemas(tmp_path / "nope.csv", settings=mirror_settings)


# --- deduplication --------------------------------------------------------------------------


def _rows(*rows):
    cols = {k: [] for k in facilities.FACILITY_COLUMNS}
    for r in rows:
        for k in facilities.FACILITY_COLUMNS:
            cols[k].append(r.get(k))
    gdf = facilities.empty_facilities("EPSG:2154")
    return gpd.GeoDataFrame(
        {k: pd.array(v, dtype=gdf[k].dtype) for k, v in cols.items() if k != "geometry"},
        geometry=cols["geometry"], crs="EPSG:2154")


def _fac(source, sid, cat, sub, name, x, y=6_575_000.0, **kw):
    return {"facility_id": f"{source}:{sid}", "source": source, "source_id": sid,
            "category": cat, "subcategory": sub, "name": name, "insee": "01306",
            "geometry": shapely.Point(x, y), **kw}


def test_deduplicate_constructed_near_duplicates(mirror_settings):
    table = _rows(
        _fac("osm", "n1", "sante", "pharmacie", "Pharmacie du Port", 845_000),
        _fac("bpe", "L2", "sante", "pharmacie", "PHARMACIE DU PORT", 845_020),  # same, 20 m
        _fac("bpe", "L3", "sante", "pharmacie", "PHARMACIE CENTRALE", 845_030),  # other name
        _fac("osm", "n4", "culture", "salle_spectacle", "Le Manoir", 846_000),
        _fac("cinemas", "77", "culture", "cinema", "CINEMA LE MANOIR", 846_040),  # same, 40 m
        _fac("osm", "n5", "culture", "musee", "Musée du Pont", 847_000),
        _fac("museofile", "M9", "culture", "musee", "Musée du Pont", 847_080),  # 80 m: too far
        _fac("osm", "n6", "energie", "eolienne", None, 848_000, power_mw=2.0),
        _fac("eoliennes", "E1", "energie", "eolienne", None, 848_010, power_mw=2.3),
        _fac("osm", "n7", "commerces", "boulangerie", "Au Bon Pain", 849_000, chain=False),
        _fac("osm", "n8", "commerces", "boulangerie", "Au Bon Pain", 849_005, chain=False),
        _fac("osm", "n9", "services", "banque", "Crédit Agricole", 850_000),
        _fac("bpe", "L10", "sante", "pharmacie", "Crédit Agricole", 850_001),  # other category
    )
    out = facilities.deduplicate(table, settings=mirror_settings).set_index("facility_id")
    assert len(out) == len(table) - 3
    assert out.at["osm:n1", "source"] == "osm;bpe"
    assert out.at["osm:n1", "source_id"] == "n1;L2"
    assert "bpe:L3" in out.index
    # the cinema register's row is kept (first), with the OSM id listed after it
    assert out.at["cinemas:77", "source_id"] == "77;n4"
    assert out.at["cinemas:77", "subcategory"] == "cinema"
    assert {"osm:n5", "museofile:M9"} <= set(out.index)
    assert out.at["eoliennes:E1", "source"] == "eoliennes;osm"
    assert out.at["eoliennes:E1", "power_mw"] == 2.3
    assert {"osm:n7", "osm:n8"} <= set(out.index)  # one source never merges with itself
    assert {"osm:n9", "bpe:L10"} <= set(out.index)
    assert list(out.reset_index().columns) == facilities.FACILITY_COLUMNS
    # 100 m merges the museums too.
    wide = facilities.deduplicate(table, distance_m=100, settings=mirror_settings)
    assert len(wide) == len(out) - 1
    with pytest.raises(GeoError, match="metric CRS"):
        facilities.deduplicate(table.to_crs("EPSG:4326"), settings=mirror_settings)


def test_names_similar():
    assert facilities.names_similar("Cinéma Le Manoir", "CINEMA LE MANOIR")
    assert facilities.names_similar("Pharmacie du Port", "PHARMACIE DU PORT SARL",
                                    generic={"pharmacie", "sarl"})
    assert not facilities.names_similar("Pharmacie du Port", "Pharmacie Centrale",
                                        generic={"pharmacie"})
    assert facilities.names_similar("Pharmacie", "Pharmacie du Port",
                                    generic={"pharmacie"}) is None
    assert facilities.names_similar(None, "x") is None


def test_locate_communes_needs_a_crs(polygons_wgs84):
    pts = gpd.GeoSeries([shapely.Point(4.88, 46.26)])
    with pytest.raises(MissingCrsError):
        facilities.locate_communes(pts, polygons_wgs84)
    pts = pts.set_crs("EPSG:4326")
    assert facilities.locate_communes(pts, polygons_wgs84).tolist() == ["01306"]


# --- towns and national counts --------------------------------------------------------------


def test_town_facilities_cli(use_settings, tmp_path, capsys):
    mirror_settings = use_settings
    out = tmp_path / "01306.parquet"
    assert main(["facilities", "01306", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sante" in printed and "osm" in printed and "total" in printed
    got = gpd.read_parquet(out)
    assert list(got.columns) == facilities.FACILITY_COLUMNS
    assert got.crs.to_epsg() == 2154
    meta = read_parquet_metadata(out)
    catchment = communes.catchment("01306", settings=mirror_settings)
    assert set(meta["catchment_communes"]) == set(catchment.insee_codes)
    assert set(got["insee"]) <= set(catchment.insee_codes)
    assert "osm_pont_de_veyle: OSM 2022-03-11" in meta["vintages"]["osm"]
    assert meta["reports"]["eoliennes"]["excluded"]["not yet commissioned"] > 0
    assert got["facility_id"].is_unique
    assert {"sante", "services", "commerces", "education", "culture"} <= set(got["category"])
    assert (got.loc[got["category"] == "sante", "source"] == "osm").all()
    # Every facility lies in the commune it is assigned to (or within 100 m of it).
    polys = catchment.communes.set_index("insee").geometry
    dist = [polys[i].distance(p) for i, p in zip(got["insee"], got.geometry, strict=True)]
    assert max(dist) <= 100


def test_redon_town_facilities(mirror_settings):
    got = facilities.town_facilities("35236", settings=mirror_settings)
    shops = got[got["category"] == "commerces"]
    assert (shops["chain"] == True).sum() >= 20  # noqa: E712
    assert (shops["chain"] == False).sum() >= 80  # noqa: E712
    energy = got[got["category"] == "energie"]
    assert len(energy) and energy["power_mw"].gt(0).all()
    assert (got[got["category"] != "energie"]["power_mw"]).isna().all()
    assert got.crs.to_epsg() == 2154
    summary = facilities.summarize(got)
    assert summary.loc["total", "total"] == len(got)


def test_national_counts_match_the_raw_tables(counts, shared_data, mirror_settings):
    ref = communes.load_reference(mirror_settings)
    assert list(counts["insee"]) == list(ref["insee"])
    code_map = communes.current_code_map(mirror_settings)
    c = counts.set_index("insee")
    # BPE 2013: pharmacies (D301) and GPs (D201) per current commune, computed here.
    bpe = pd.read_csv(shared_data / "bpe/bpe2013_nb_equip_commune_typequ_long.csv.gz",
                      dtype={"depcom": str, "typequ": str})
    bpe["insee"] = bpe["depcom"].map(code_map)
    covered = c["n_pharmacie"].notna()
    for code, col in (("D301", "n_pharmacie"), ("D201", "n_medecin_generaliste"),
                      ("C201", "n_college")):
        expected = bpe[bpe["typequ"] == code].groupby("insee")["nb_equip"].sum()
        expected = expected.reindex(c.index[covered], fill_value=0)
        pd.testing.assert_series_equal(c.loc[covered, col].astype("int64"),
                                       expected.astype("int64"), check_names=False)
    # Cinemas from the CNC file (arrondissements -> commune), turbines from Géorisques.
    cnc = pd.read_csv(shared_data / "culture/cinemas_cnc_2022.csv.gz", dtype=str)
    expected = cnc["code INSEE"].map(code_map).value_counts().reindex(c.index, fill_value=0)
    assert (c["n_cinema"].astype("int64") == expected).all()
    assert c.at["75056", "n_cinema"] == (cnc["code INSEE"].str.startswith("751")).sum()
    wind = pd.read_csv(shared_data / "energie/eoliennes_terrestres_georisques_2022.csv.gz",
                       dtype=str)
    wind = wind[~(pd.to_datetime(wind["date_mise_en_service"]) > pd.to_datetime(
        wind["date_maj"]))]
    wind["insee"] = wind["code_insee"].map(code_map)
    mw = pd.to_numeric(wind["puissance"]).groupby(wind["insee"]).sum()
    np.testing.assert_allclose(c["eolienne_power_mw"], mw.reindex(c.index, fill_value=0),
                               atol=1e-3)
    assert int(c["n_eolienne"].sum()) == len(wind)
    # Per 10,000 inhabitants.
    pop = c["population"].astype("float64")
    ok = c["n_sante"].notna() & (pop > 0)
    np.testing.assert_allclose(c.loc[ok, "n_sante_per_10k"].astype(float),
                               (c.loc[ok, "n_sante"] / pop[ok] * 1e4).astype(float), atol=1e-3)
    # Category totals are the sums of their subcategories.
    cats = load_categories(mirror_settings)
    cols = [f"n_{k}" for k in cats.subcategory_keys("services")]
    assert (c.loc[covered, "n_services"] == c.loc[covered, cols].sum(axis=1)).all()
    assert counts.attrs["meta"]["bpe"] == "bpe_2013_counts"


def test_national_counts_file(counts, mirror_settings, tmp_path):
    path = facilities.write_commune_counts(counts, tmp_path / "counts.parquet",
                                           settings=mirror_settings)
    back = pd.read_parquet(path)
    assert len(back) == len(counts) and back["insee"].is_unique
    meta = read_parquet_metadata(path)
    assert meta["cog_year"] == mirror_settings.cog_year
    assert meta["sources_by_subcategory"]["cinema"] == "cinemas"
    assert meta["sources_by_subcategory"]["pharmacie"] == "bpe_2013_counts"
    assert 0 < meta["checks"]["cinemas"]["mismatch_rate"] < 0.03
    # What no national source measures is empty, not zero: no café register, no town hall
    # in the BPE 2013 nomenclature, no heritage list.
    for key in ("cafe_bar", "mairie", "monument_historique"):
        assert key in meta["not_measured"]
        assert back[f"n_{key}"].isna().all()
    assert back["n_pharmacie_per_10k"].notna().sum() > 30_000


def test_facilities_by_commune_is_cached(mirror_settings):
    first = facilities.facilities_by_commune(mirror_settings)
    cache = mirror_settings.interim_dir / facilities.COUNTS_FILE
    stamp = cache.stat().st_mtime_ns
    again = facilities.facilities_by_commune(mirror_settings)
    assert cache.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(first, again)
    assert {"n_sante_per_10k", "n_cinema", "n_musee", "n_festival", "n_eolienne",
            "eolienne_power_mw", "commerces_chain_share"} <= set(first.columns)


def test_interim_cache_helpers(tmp_path):
    """geo._io.is_stale (make's rule) and read_parquet_cached (one read per file version,
    a copy per call) behind facilities_by_commune and apl_by_commune."""
    import os

    from geo._io import is_stale, read_parquet_cached, write_parquet

    src, cache = tmp_path / "input.csv", tmp_path / "table.parquet"
    src.write_text("x\n1\n")
    assert is_stale(cache, [src])
    write_parquet(pd.DataFrame({"x": [1, 2]}), cache)
    os.utime(src, ns=(cache.stat().st_mtime_ns - 10**9,) * 2)
    assert not is_stale(cache, [src])
    os.utime(src, ns=(cache.stat().st_mtime_ns + 10**9,) * 2)
    assert is_stale(cache, [src])

    first = read_parquet_cached(cache)
    first.loc[0, "x"] = 99
    assert read_parquet_cached(cache)["x"].tolist() == [1, 2]  # callers get copies
    write_parquet(pd.DataFrame({"x": [1, 2, 3]}), cache)  # a new version is read again
    assert read_parquet_cached(cache)["x"].tolist() == [1, 2, 3]
    pts = gpd.GeoDataFrame({"x": [1]}, geometry=[shapely.Point(0, 0)], crs="EPSG:2154")
    write_parquet(pts, tmp_path / "pts.parquet")
    back = read_parquet_cached(tmp_path / "pts.parquet")
    assert isinstance(back, gpd.GeoDataFrame) and back.crs == pts.crs


# --- France services -----------------------------------------------------------------------


def test_france_services_register(mirror_settings, shared_data, national):
    """The ANCT list: fixed counters kept at their points, mobile units left out."""
    raw = json.loads((shared_data / "services/france_services_anct_2020-09.geojson")
                     .read_text(encoding="utf-8"))["features"]
    fixed = [f for f in raw if "itinerante" not in normalize_text(f["properties"]["categorie"])]
    got = facilities.read_france_services(settings=mirror_settings,
                                          code_map=communes.current_code_map(mirror_settings))
    rep = got.attrs["report"]
    assert len(got) == len(fixed) == 855 and rep.rows_read == 908
    assert rep.excluded["mobile unit (no fixed counter)"] == 53
    assert set(got["subcategory"]) == {"france_services"} and set(got["category"]) == {"services"}
    # codes are current INSEE codes; the file's one malformed code ("2B14", an itinerant
    # Corsican unit filed as a counter) is dropped: the national table locates its point
    codes = got["insee"].dropna()
    assert codes.str.fullmatch(r"[0-9][0-9AB][0-9]{3}").all() and got["insee"].isna().sum() == 1
    assert got.loc[got["insee"].isna(), "source_id"].tolist() == ["811"]
    first = got.set_index("source_id").loc["1"]  # Valserhône, in the Ain
    assert first["insee"] == "01033" and first["name"] == "Valserhône"
    assert (first.geometry.x, first.geometry.y) == pytest.approx((5.825644, 46.105747))
    # the national register table holds them, each in the commune it names or beside it
    fs = national[national["source"] == "france_services"].set_index("source_id")
    assert len(fs) == 855 and fs["insee"].notna().all()
    assert fs.at["811", "insee"].startswith("2B")


def test_france_services_counted_per_commune(counts, shared_data, mirror_settings):
    """n_france_services: the fixed counters of the register per current commune,
    recomputed here from the raw GeoJSON (the BPE's A116 is not counted twice)."""
    raw = json.loads((shared_data / "services/france_services_anct_2020-09.geojson")
                     .read_text(encoding="utf-8"))["features"]
    code_map = communes.current_code_map(mirror_settings)
    # the file's one malformed code is Corsican ("2B14"): the commune its point falls in
    corse = communes.commune_polygons(sorted({c for c in code_map.values() if c[:2] == "2B"}),
                                      crs="EPSG:2154", settings=mirror_settings)
    to_l93 = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
    expected: dict[str, int] = {}
    for f in raw:
        p = f["properties"]
        if "itinerante" in normalize_text(p["categorie"]):
            continue
        code = code_map.get(str(p["insee_com"]).zfill(5))  # None: unknown, left out
        if not re.fullmatch(r"[0-9][0-9AB][0-9]{3}", str(p["insee_com"]).zfill(5)):
            where = shapely.Point(to_l93.transform(p["LONGITUDE"], p["LATITUDE"]))
            code = corse["insee"].iloc[int(np.argmin(corse.distance(where).to_numpy()))]
        if code is not None:
            expected[code] = expected.get(code, 0) + 1
    got = counts.set_index("insee")["n_france_services"]
    got = got[got > 0].astype(int).to_dict()
    assert got == expected
    meta = counts.attrs["meta"]
    assert meta["sources_by_subcategory"]["france_services"] == "france_services"


def test_town_facilities_include_france_services(mirror_settings):
    got = facilities.town_facilities("01306", settings=mirror_settings)
    fs = got[got["subcategory"] == "france_services"]
    assert fs["name"].tolist() == ["La Veyle"] and fs["insee"].tolist() == ["01306"]
