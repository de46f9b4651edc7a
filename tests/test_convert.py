"""Converters from official download formats to the mirror layout (geo._convert).

Each test writes a small file in the official layout and checks the converter's output
against the real mirror file (``GEO_TEST_DATA``): same header, and the same rows where
the input rows are real upstream rows (samples below) or rebuilt from the mirror itself
(round trips through the official layout: JSON packages, xlsx workbooks, GeoJSON).
"""

from __future__ import annotations

import csv
import gzip
import inspect
import io
import json
import lzma
import zipfile
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
from shared_data import require_shared

from geo import _convert, sources
from geo.errors import GeoError, InputFileError, MissingColumnsError
from geo.settings import load_settings


def _bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path) as fh:
            return fh.read()
    return path.read_bytes()


def _text(path: Path) -> str:
    return _bytes(path).decode("utf-8")


def _mirror(rel: str) -> str:
    return _text(require_shared(rel))


def _lines(text: str, n: int | None = None) -> list[str]:
    lines = text.split("\n")
    return lines if n is None else lines[:n]


def _write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_every_catalogued_converter_exists() -> None:
    names = {d.convert for d in sources.load_catalogue(load_settings(environ={})).values()}
    names.discard("")
    assert names == set(_convert.__all__) - {"POPULATION_VINTAGES"}
    catalogue = sources.load_catalogue(load_settings(environ={}))
    needs = {d.convert: set(d.inputs) for d in catalogue.values() if d.convert}
    for name in names:
        params = list(inspect.signature(getattr(_convert, name)).parameters)
        # a converter reading other datasets gets them as ``inputs``, named in the
        # catalogue (no converter fetches a dataset itself)
        assert params == (["paths", "out", "inputs"] if needs[name] else ["paths", "out"]), name


# --- @etalab/decoupage-administratif: rebuild the JSON packages from the mirror -------------


def _records_from_mirror(df: pd.DataFrame) -> list[dict]:
    """communes.json records (as published) from mirror rows: lists split, ints restored,
    absent keys left out."""
    out = []
    for row in df.to_dict("records"):
        rec = {}
        for key, value in row.items():
            if key == "siren_epci" or value is None or value == "" or pd.isna(value):
                continue
            if key in ("codesPostaux", "anciensCodes"):
                value = value.split(";")
            elif key in ("population", "rangChefLieu", "typeLiaison"):
                value = int(float(value))
            rec[key] = value
        out.append(rec)
    return out


def test_decoupage_communes_and_epci_round_trip(tmp_path: Path) -> None:
    communes = pd.read_csv(require_shared("admin/communes_cog2026_decoupage_administratif.csv.gz"),
                           dtype=str, keep_default_na=False)
    epci = pd.read_csv(require_shared("admin/epci_membres_2026_decoupage_administratif.csv.gz"),
                       dtype=str, keep_default_na=False)
    # Ain (communes of every type), Paris and its arrondissements, an overseas COM.
    sub = communes[communes.code.str[:2].isin(["01", "75"]) | (communes.code == "97701")]
    assert set(sub.type) == {"commune-actuelle", "commune-deleguee", "commune-associee",
                             "arrondissement-municipal"}
    members = epci[epci.siren_epci.isin(sub.siren_epci)]
    epci_json = [
        {"code": s, "nom": g.nom_epci.iloc[0], "type": g.type_epci.iloc[0],
         "modeFinancement": g.mode_financement.iloc[0],
         "membres": [{"code": m.code_commune, "siren": m.siren_commune, "nom": m.nom_commune,
                      "populationTotale": int(m.population_totale),
                      "populationMunicipale": int(m.population_municipale)}
                     for m in g.itertuples()]}
        for s, g in members.groupby("siren_epci", sort=False)
    ]
    cj = _write(tmp_path / "communes.json", json.dumps(_records_from_mirror(sub)))
    ej = _write(tmp_path / "epci.json", json.dumps(epci_json))

    out = tmp_path / "communes.csv.gz"
    _convert.decoupage_communes([cj, ej], out)
    assert _text(out) == sub.to_csv(index=False, lineterminator="\n")
    assert out.read_bytes()[4:8] == b"\0\0\0\0"  # gzip without timestamp: reproducible

    out = tmp_path / "epci.csv.gz"
    _convert.decoupage_epci([ej], out)
    assert _text(out) == members.to_csv(index=False, lineterminator="\n")


def test_decoupage_population_history_round_trip(tmp_path: Path) -> None:
    pop = pd.read_csv(
        require_shared("population/populations_communes_2016_2023_decoupage_administratif.csv.gz"),
        dtype=str, keep_default_na=False)
    sub = pop[pop.code.str[:3].isin(["013", "976"])]  # Ain (013xx) and Mayotte (no 2016 pop)
    paths = []
    for i, (version, millesime, _) in enumerate(_convert.POPULATION_VINTAGES):
        rows = sub[sub.npm_version == version]
        assert (rows.pop_millesime == str(millesime)).all()
        recs = [{"code": r.code, "nom": r.nom, "type": "commune-actuelle",
                 "departement": r.departement,
                 **({"population": int(r.population)} if r.population else {})}
                for r in rows.itertuples()]
        recs.append({"code": "01015", "nom": "Arbignieu", "type": "commune-deleguee",
                     "departement": "01"})  # not a commune-actuelle: left out
        paths.append(_write(tmp_path / f"communes{i}.json", json.dumps(recs)))
    out = tmp_path / "pop.csv.gz"
    _convert.decoupage_population_history(paths, out)
    assert _text(out) == sub.to_csv(index=False, lineterminator="\n")
    with pytest.raises(InputFileError, match="expects 5 downloaded file"):
        _convert.decoupage_population_history(paths[:4], out)


def test_decoupage_bad_json(tmp_path: Path) -> None:
    bad = _write(tmp_path / "communes.json", '{"not": "a list"}')
    with pytest.raises(InputFileError, match="JSON array of commune objects"):
        _convert.decoupage_communes([bad, bad], tmp_path / "x.csv.gz")
    bad = _write(tmp_path / "epci.json", '[{"code": "1", "nom": "x"}]')
    with pytest.raises(MissingColumnsError, match=r"missing column\(s\) 'type', 'membres'"):
        _convert.decoupage_epci([bad], tmp_path / "x.csv.gz")


# --- plain CSVs ------------------------------------------------------------------------------


def test_gzip_csv_strip_bom(tmp_path: Path) -> None:
    plain = _mirror("typologies/ruralite_communes_ot_2026.csv.gz")
    src = _write(tmp_path / "ruralite.csv", plain, bom=True)
    out = tmp_path / "ruralite.csv.gz"
    _convert.gzip_csv_strip_bom([src], out)
    assert _text(out) == plain  # leading spaces of the values kept
    assert not _bytes(out).startswith(b"\xef\xbb\xbf")
    with pytest.raises(InputFileError, match="expected a ','-separated CSV header"):
        _convert.gzip_csv_strip_bom([_write(tmp_path / "x.csv", "a;b\n1;2\n")], out)


# Real upstream rows (Géorisques wind turbines, CNC cinemas) in their ';' layout; the
# VILLERET row has its codes stripped of leading zeros as a spreadsheet would.
EOLIENNES = """\
id_aerogenerateur;id_parc;code_insee;nom_commune;code_dept;code_reg;puissance;hauteur_totale;hauteur_mat_nacelle;diametre_rotor;cote_ngf;periode_allumage_lib;periode_allumage_desc;type_feu_lib;type_feu_desc;date_mise_en_service;constructeur;reference_modele;x_aerogenerateur;y_aerogenerateur;epsg;libelle;date_maj;nom_eolienne
0005503449_E1;0005503449;35068;CHATEAUBOURG;35;53;1.00;99.70;73.00;53.00;74.000;Jour;;Feux fixes;;2011-04-23;ENERCON;E-53;371155.0;6786614.0;2154;Lambert-93;2022-05-19;
0005306849_E1;0005306849;50363;MOYON VILLAGES;50;28;2.30;124.00;83.00;82.00;45.000;Jour et Nuit;;Feux à éclats;;2014-04-01;ENERCON;E-82 E2;395860.28;6887806.5;2154;Lambert-93;2022-05-31;
0005107943_E1;0005107943;2808;VILLERET;2;32;2.00;126.00;85.00;82.00;130.000;Jour et Nuit;;Feux à éclats;;2014-02-11;ENERCON;E-82;714565.0;6983186.0;2154;Lambert-93;2022-07-20;
"""  # noqa: E501

CINEMAS = """\
régionCNC;N° auto;nom;région administrative;adresse;code INSEE;commune;population de la commune;DEP;N°UU;unité urbaine;population unité urbaine;situation géographique;écrans;fauteuils;semaines d'activité;séances;entrées 2022;entrées 2021;évolution entrées;tranche d'entrées;programmateur;AE;catégorie Art et Essai;label Art et Essai;genre;multiplexe;zone de la commune;nombre de films programmés;nombre de films inédits;nombre de films en semaine 1;PdM en entrées des films français;PdM en entrées des films américains;PdM en entrées des films européens;PdM en entrées des autres films;films Art et Essai;PdM en entrées des films Art et Essai;latitude;longitude;geolocalisation
1;31;UGC NORMANDIE;ILE-DE-FRANCE;116 AVENUE DES CHAMPS ELYSEES;75108;Paris 8e Arrondissement;36218.0;75;00851;Paris;10949158.0;01-Paris;4.0;1533.0;53.0;6966.0;148007.0;119434.0;23.923673325853613;De 100 à 150 000 entrées;UGC;NON;NON;;FIXE;NON;C;125.0;79.0;77.0;44.70344051220713;36.505312038274816;12.451276999929641;6.339970449588404;54.0;23.97523394075846;48.872265;2.300938;48.872265, 2.300938
1;204;UGC OPERA;ILE-DE-FRANCE;32 BD DES ITALIENS;75109;Paris 9e Arrondissement;60784.0;75;00851;Paris;10949158.0;01-Paris;4.0;722.0;53.0;6840.0;110063.0;81837.0;34.490511626770285;De 100 à 150 000 entrées;UGC;NON;NON;;FIXE;NON;C;111.0;71.0;71.0;55.64449451677675;27.053596576506184;12.62277059502285;4.679138311694212;55.0;23.24759455947957;48.871332;2.335302;48.871332, 2.335302
"""  # noqa: E501


def test_semicolon_csv_to_gz(tmp_path: Path) -> None:
    out = tmp_path / "eoliennes.csv.gz"
    _convert.semicolon_csv_to_gz([_write(tmp_path / "eolien.csv", EOLIENNES)], out)
    mirror = _lines(_mirror("energie/eoliennes_terrestres_georisques_2022.csv.gz"))
    got = _lines(_text(out))
    assert got[:3] == mirror[:3]
    assert got[3] == next(line for line in mirror if line.startswith("0005107943_E1,"))
    assert got[3].split(",")[2:5] == ["02808", "VILLERET", "02"]

    out = tmp_path / "cinemas.csv.gz"
    _convert.semicolon_csv_to_gz([_write(tmp_path / "cine.csv", CINEMAS, bom=True)], out)
    assert _lines(_text(out)) == [*_lines(_mirror("culture/cinemas_cnc_2022.csv.gz"), 3), ""]
    with pytest.raises(InputFileError, match="do not have the 3 columns"):
        _convert.semicolon_csv_to_gz([_write(tmp_path / "bad.csv", "a;b;c\n1;2\n")], out)


# --- ANCT programmes ---------------------------------------------------------------------------

PVD_GEOJSON = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "properties": {
            "id_territoire": "pvd-01-971-1", "lib_territoire": "Bouillante",
            "date_signature": "2021-05-28", "liste_geo": "Bouillante (97106)"},
         "geometry": {"type": "Point", "coordinates": [-61.754143027145091, 16.143720684734344]}},
        {"type": "Feature", "properties": {
            "id_territoire": "pvd-01-971-2", "lib_territoire": "Lamentin",
            "date_signature": "2021-05-28", "liste_geo": "Lamentin (97115)"},
         "geometry": {"type": "Point", "coordinates": [-61.668611306587692, 16.241437533158329]}},
        {"type": "Feature", "properties": {
            "id_territoire": "pvd-01-971-3", "lib_territoire": "Morne à l'Eau",
            "date_signature": "2021-05-28", "liste_geo": "Morne-à-l'Eau (97116)"},
         "geometry": {"type": "Point", "coordinates": [-61.469927926687589, 16.324158042498553]}},
        # A synthetic two-commune territory without a signature date.
        {"type": "Feature", "properties": {
            "id_territoire": "pvd-99-2A-1", "lib_territoire": "Deux villes",
            "date_signature": None, "liste_geo": "Ajaccio (2A004); Saint-Denis (97411)"},
         "geometry": {"type": "MultiPoint", "coordinates": [[8.0, 41.0], [9.0, 42.0]]}},
    ],
}


def test_anct_pvd_geojson(tmp_path: Path) -> None:
    src = _write(tmp_path / "pvd.geojson", json.dumps(PVD_GEOJSON))
    out = tmp_path / "pvd.csv"
    _convert.anct_pvd_geojson([src], out)
    got = _lines(_text(out))
    assert got[:4] == _lines(_mirror("programmes/pvd_communes_anct_superposeur_2024-09.csv"), 4)
    assert got[4:6] == [
        "pvd-99-2A-1,Deux villes,,2A004,Ajaccio,2,8.5,41.5",
        "pvd-99-2A-1,Deux villes,,97411,Saint-Denis,2,8.5,41.5",
    ]
    bad = json.loads(json.dumps(PVD_GEOJSON))
    bad["features"][0]["properties"]["liste_geo"] = "Bouillante"
    with pytest.raises(InputFileError, match="pvd-01-971-1: no 'Name \\(code\\)'"):
        _convert.anct_pvd_geojson([_write(tmp_path / "bad.geojson", json.dumps(bad))], out)


def test_anct_pvd_2021_csv_drops_personal_data(tmp_path: Path) -> None:
    src = _write(tmp_path / "pvd2021.csv", "\n".join([
        '"id_pvd","insee_com","lib_com","lib_reg","insee_dep","lib_dep","nom_maire",'
        '"mel_mairie","site_mairie","regroupement","pop","date_signature","siren_epci",'
        '"lib_epci"',
        '"pvd-11-78-1","78003","Ablis","Île-de-France","78","Yvelines","Jean Dupont",'
        '"jean.dupont@example.org","",NA,3439,"","200073344","CA Rambouillet Territoires"',
        '"","50003","Agon-Coutainville","Normandie","50","Manche","Marie Martin",'
        '"marie@example.org","http://example.org",NA,2791,"","200067023",'
        '"CC Coutances Mer et Bocage"',
    ]) + "\n")
    out = tmp_path / "pvd2021.csv"
    _convert.anct_pvd_2021_csv([src], out)
    text = _text(out)
    assert _lines(text) == [*_lines(_mirror("programmes/pvd_communes_anct_2021-01.csv"), 3), ""]
    assert "Dupont" not in text and "@" not in text and "example.org" not in text


def test_anct_acv_js(tmp_path: Path) -> None:
    def feature(insee, id_acv, nom, pop, dep, reg, siren, lib_reg, lon, lat):
        return {"type": "Feature", "properties": {
            "insee_com": insee, "id_acv": id_acv, "lib_com": nom, "lib_com_carto": nom,
            "iso_territoire_2": "FR", "pop": pop, "insee_dep": dep, "insee_reg": reg,
            "siren_epci": siren, "lib_reg": lib_reg},
            "geometry": {"type": "Point", "coordinates": [lon, lat]}}

    fc = {"type": "FeatureCollection", "features": [
        feature(80001, "ACV001", "Abbeville", 22595, 80, 32, 200070993, "Hauts-de-France",
                1.8322, 50.1086),
        feature(34003, "ACV002", "Agde", 29103, 34, 76, 243400819, "Occitanie", 3.4838, 43.3097),
        feature(47001, "ACV003", "Agen", 32485, 47, 75, 200096956, "Nouvelle-Aquitaine",
                0.6252, 44.2024),
        feature("2A004", "ACV004", "Ajaccio", 73822, "2A", 94, 242010056, "Corse", 8.7021,
                41.9351),
        # the JS file has leading-zero codes as numbers here: re-padded
        feature(1004, "ACV008", "Ambérieu-en-Bugey", 14854, 1, 84, 240100883,
                "Auvergne-Rhône-Alpes", 5.3719, 45.9608),
    ]}
    fc["features"][4]["properties"]["lib_com_carto"] = "Ambérieu en Bugey"
    js = _write(tmp_path / "coeurdeville.js", "var JS_coeurdeville = " + json.dumps(fc, indent=2)
                + ";\n")
    acv2 = _write(tmp_path / "acv2.geojson", json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id_territoire": "acv-003", "liste_geo": "Agen (47001)"},
         "geometry": None},
        {"type": "Feature", "properties": {"id_territoire": "acv-004",
                                           "liste_geo": "Ajaccio (2A004)"}, "geometry": None},
        {"type": "Feature", "properties": {"id_territoire": "acv-031",
                                           "liste_geo": "Béthune (62119); Bruay (62178)"},
         "geometry": None},
    ]}))
    out = tmp_path / "acv.csv"
    _convert.anct_acv_js([js, acv2], out)
    mirror = _lines(_mirror("programmes/acv_communes_anct_2025-04.csv"))
    assert _lines(_text(out)) == [*mirror[:5], next(m for m in mirror if m.startswith("01004,")),
                                  ""]
    with pytest.raises(InputFileError, match="expected `var NAME"):
        _convert.anct_acv_js([_write(tmp_path / "x.js", "alert(1)"), acv2], out)


# --- INSEE -----------------------------------------------------------------------------------


def _workbook(rows: list[list], title: str = "Feuil1", extra_sheets: tuple = ()) -> bytes:
    wb = openpyxl.Workbook()
    for name in extra_sheets:
        wb.create_sheet(name).append(["Voir la documentation"])
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _numeric_codes(value: str) -> object:
    """How a spreadsheet stores a code: a number when it looks like one (zeros lost)."""
    return int(value) if value.isdigit() else value


def test_insee_appartenance_zip_round_trip(tmp_path: Path) -> None:
    rows = list(csv.reader(io.StringIO(_mirror(
        "admin/table_appartenance_geo_communes_2022_insee.csv.gz"))))
    header = rows[0]
    sample = [r for r in rows[1:] if r[0].startswith(("013", "2A0", "976"))]
    assert {r[2] for r in sample} == {"01", "2A", "976"}
    # INSEE layout: 5 title rows, long labels, then codes; extra columns (BV2022)
    # and a different column order than the mirror.
    order = [*header[:4], "BV2022", *header[6:8], *header[4:6], *header[8:]]
    book = _workbook(
        [["Table d'appartenance géographique des communes au 1er janvier 2022"],
         ["Découpage communal en vigueur au 1er janvier 2022"], ["Source : Insee"], [],
         ["Code géographique", "Libellé"], order]
        + [[_numeric_codes(dict(zip(header, r, strict=True)).get(c, "99999")) for c in order]
           for r in sample],
        title="COM", extra_sheets=("Variables",))
    src = tmp_path / "table-appartenance-geo-communes-22.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("table-appartenance-geo-communes-22.xlsx", book)
    out = tmp_path / "app.csv.gz"
    _convert.insee_appartenance_zip([src], out)
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerows([header, *sample])
    assert _text(out) == expected.getvalue()

    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("notes.txt", "nothing")
    with pytest.raises(InputFileError, match=r"holds no \.xlsx/\.csv file"):
        _convert.insee_appartenance_zip([src], out)
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("t.xlsx", _workbook([["CODGEO", "LIBGEO"], ["01001", "X"]], title="COM"))
    with pytest.raises(MissingColumnsError, match="'DEP', 'REG'"):
        _convert.insee_appartenance_zip([src], out)


def test_insee_bpe_xy_zip(tmp_path: Path) -> None:
    table = "AN;DEPCOM;TYPEQU;LAMBERT_X;LAMBERT_Y\n2023;01306;D265;846000;6575000\n"
    src = tmp_path / "BPE23.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("varmod_BPE23.csv", "COD_VAR;LIB_VAR\n" * 500)
        zf.writestr("BPE23.csv", table)
    out = tmp_path / "BPE23.csv"
    _convert.insee_bpe_xy_zip([src], out)
    assert out.read_text(encoding="utf-8") == table
    src.write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="not a valid zip archive"):
        _convert.insee_bpe_xy_zip([src], out)


@pytest.mark.parametrize("layout", ["labels", "codes"])
def test_insee_bpe_counts_xlsx_round_trip(tmp_path: Path, use_settings, layout: str) -> None:
    """A commune x type table (labels, some truncated by Excel, or TYPEQU codes under a
    label row) back to the mirror's long format; labels need the TYPEQU nomenclature
    (fetched from the mirror)."""
    long = pd.read_csv(require_shared("bpe/bpe2009_nb_equip_commune_typequ_long.csv.gz"),
                       dtype=str)
    sub = long[long.depcom.str.startswith(("013", "2A0"))]
    key = ["typequ", "depcom"]
    types = list(dict.fromkeys(sub.typequ))
    labels = dict(zip(sub.typequ, sub.libelle, strict=False))
    assert "C105" in labels and len(labels["C105"]) == 64  # truncated in the source
    wide = (sub.assign(n=sub.nb_equip.astype(int))
            .pivot(index="depcom", columns="typequ", values="n")
            .reindex(columns=types).fillna(0).astype(int).iloc[::-1])  # unsorted rows
    head = [["Base permanente des équipements 2009"]]
    if layout == "labels":
        head.append(["INSEECOM", "LIBGEO", *[labels[t] for t in types]])
    else:
        head += [["", "", *[labels[t] for t in types]], ["DEPCOM", "LIBGEO", *types]]
    src = _write(tmp_path / "bpe2009.xlsx", "")
    src.write_bytes(_workbook(head + [[_numeric_codes(d), "nom", *map(int, r)]
                                      for d, r in wide.iterrows()]))
    out = tmp_path / "bpe2009_nb_equip_commune_typequ_long.csv.gz"
    nomenclature = {"bpe_typequ": sources.ensure("bpe_typequ", use_settings)}
    _convert.insee_bpe_counts_xlsx([src], out, inputs=nomenclature)
    got = pd.read_csv(out, dtype=str)
    assert list(got.columns) == list(long.columns)
    assert list(dict.fromkeys(got.typequ)) == types  # the source's column order
    assert got.sort_values(key).reset_index(drop=True).equals(
        sub.sort_values(key).reset_index(drop=True))
    for _, rows in got.groupby("typequ"):
        assert rows.depcom.is_monotonic_increasing

    src.write_bytes(_workbook([["DEPCOM", "Piscine couverte olympique"], ["01001", 1]]))
    with pytest.raises(InputFileError, match="'Piscine couverte olympique' match no BPE 2009"):
        _convert.insee_bpe_counts_xlsx([src], out, inputs=nomenclature)
    with pytest.raises(InputFileError, match=r"nomenclature \(dataset bpe_typequ\) is needed"):
        _convert.insee_bpe_counts_xlsx([src], out)


# --- DREES APL -----------------------------------------------------------------------------------


def test_drees_apl_xlsx_round_trip(tmp_path: Path) -> None:
    rows = list(csv.reader(io.StringIO(_mirror(
        "apl/apl_medecins_generalistes_2021_drees.csv.gz"))))
    sample = rows[1:150] + [r for r in rows if r[0].startswith(("2A", "97"))][:20] + [
        r for r in rows if r[3] == ""][:3]  # communes without APL
    book = _workbook(
        [["Accessibilité potentielle localisée (APL) aux médecins généralistes"], [],
         ["Source : SNIIR-AM 2021, EGB 2019, CNAM-TS ; populations Insee 2019"], [],
         [h.replace(" (", "\n(") for h in rows[0]]]  # wrapped header cells
        + [[_numeric_codes(r[0]), r[1], *[float(v) if v else None for v in r[2:]]]
           for r in sample]
        + [[], ["Note : l'APL est exprimée en consultations par an et par habitant."]],
        title="APL 2021")
    src = tmp_path / "APL_mg_2021.xlsx"
    src.write_bytes(book)
    out = tmp_path / "apl.csv.gz"
    _convert.drees_apl_xlsx([src], out)
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerows([rows[0], *sample])
    assert _text(out) == expected.getvalue()

    src.write_bytes(_workbook([["Commune", "APL"], ["01001", 2.1]]))
    with pytest.raises(InputFileError, match="no 'Code commune' header row"):
        _convert.drees_apl_xlsx([src], out)
    src.write_text("not a workbook")
    with pytest.raises(InputFileError, match=r"not a readable \.xlsx workbook"):
        _convert.drees_apl_xlsx([src], out)


# --- culture ------------------------------------------------------------------------------------

MUSEOFILE = """\
Identifiant|Nom_officiel|Adresse|Lieu|Code_postal|Ville|Departement|Region|URL|Telephone|Categorie|Domaine_thematique|Histoire|Atout|Themes|Artiste|Personnage_phare|Interet|Protection_batiment|Protection_espace|Refmer|Annee_creation|Date_de_mise_a_jour|Coordonnees
"M1128"|"musée des sapeurs-pompiers de Lyon"|"358 avenue de Champagne"|"Centre de secours principal"|"69009"|"Lyon"|"Rhône"|"Auvergne-Rhône-Alpes"|"museepompiers.com/"|"04 00 00 00 00"|""|"Ethnologie;Histoire;Technique et industrie"|"Créé en 1971 | après Feyzin"|"Véhicules ""pompes"" anciens"|"Armes, Uniformes"|""|""|""|""|""|"SPR8400131"|"1971"|"2025-10-13"|"45.790491, 4.797411"
"M0001"|"musée de la Folie Marco"|"30 rue du docteur Sultzer"|""|"67140"|"Barr"|"Bas-Rhin"|"Grand Est"|"www.musee-foliemarco.com"|"03 00 00 00 00"|"Musée de site"|"Arts décoratifs"|"Legs des frères Schwartz, 1960."|"Mobilier"|"Arts décoratifs : Mobilier, Objets d'art"|""|""|"Demeure patricienne"|"Protégé au titre des Monuments historiques : https://www.pop.culture.gouv.fr/notice/merimee/PA00084599"|"Abords d'un Monument historique. Site inscrit."|"PA00084599;IA00115077"|"1960"|"2025-10-13"|"48.410166, 7.451102"
"""  # noqa: E501


def test_culture_museofile_csv(tmp_path: Path) -> None:
    out = tmp_path / "museofile.csv"
    _convert.culture_museofile_csv([_write(tmp_path / "museofile.csv", MUSEOFILE)], out)
    mirror = _lines(_mirror("culture/museofile_musees_de_france_2025-10.csv"), 3)
    assert _lines(_text(out)) == [*mirror, ""]
    # The Opendatasoft export: ';' separated, lower-case field names.
    ods = MUSEOFILE.replace("|", ";").replace("Nom_officiel", "nom_officiel")
    ods = ods.replace('"Créé en 1971 ; après Feyzin"', '"Créé en 1971"')
    _convert.culture_museofile_csv([_write(tmp_path / "ods.csv", ods)], out)
    assert _lines(_text(out))[1:] == [*mirror[1:], ""]


FESTIVALS = """\
Nom du festival;Envergure territoriale;Région principale de déroulement;Département principal de déroulement;Commune principale de déroulement;Code postal (de la commune principale de déroulement);Code Insee commune;Code Insee EPCI;Libellé EPCI;Numéro de voie;Type de voie (rue, Avenue, boulevard, etc.);Nom de la voie;Adresse postale;Complément d'adresse (facultatif);Site internet du festival;Adresse e-mail;Décennie de création du festival;Année de création du festival;Discipline dominante;Sous-catégorie spectacle vivant;Sous-catégorie musique;Sous-catégorie Musique CNM;Sous-catégorie cinéma et audiovisuel;Sous-catégorie arts visuels et arts numériques;Sous-catégorie livre et littérature;Période principale de déroulement du festival;Identifiant Agence A;Identifiant;Géocodage xy;identifiant CNM
Les Nuits (Re)Belles;;Bourgogne-Franche-Comté;Jura;Brainans;39800;39073;200071595;CC Arbois, Poligny, Salins, Cœur du Jura;;;;;;http://www.moulindebrainans.com/wp-content/uploads/2017/06/Depliant_LesNuitsReBelles4.pdf;;2010 et après;2014;Musique;;;07- Musiques actuelles sans distinction;;;;Saison (21 juin - 5 septembre);;FEST_39073_1020;46.8746666632, 5.6278782462;2980
Y'a pas l'feu;Régionale;Hauts-de-France;Pas-de-Calais;Cambrin;62149;62200;200072460;CA de Béthune-Bruay, Artois-Lys Romane;94;Boulevard;Louis Lesage;94 Boulevard Louis Lesage;;www.festival-yapaslfeu.com;contact@example.org;2010 et après;2014;Musique;;Rock, Métal;02- Musiques amplifiées ou électroniques;;;;Avant-saison (1er janvier - 20 juin);;FEST_62200_1194;50.5116047377, 2.73659179875;2156
Festival du jeune art russe;;Provence-Alpes-Côte d'Azur;Alpes-Maritimes;Cannes;6414;6004;240600585;CA de Sophia Antipolis;;;;;;www.palaisdesfestivals.com;someone@example.org;2010 et après;2019;Musique;;Musique traditionnelle;;;;;Saison (21 juin - 5 septembre);;FEST_06004_1222;43.587465146, 7.10635418256;
"""  # noqa: E501


def test_culture_festivals_csv(tmp_path: Path) -> None:
    out = tmp_path / "festivals.csv.gz"
    _convert.culture_festivals_csv([_write(tmp_path / "f.csv", FESTIVALS, bom=True)], out)
    text = _text(out)
    assert _lines(text) == [*_lines(_mirror("culture/festivals_culture_gouv.csv.gz"), 4), ""]
    assert "@" not in text  # the e-mail column is dropped
    broken = FESTIVALS.replace("Géocodage xy", "Coordonnées")
    with pytest.raises(MissingColumnsError, match="'Géocodage xy'"):
        _convert.culture_festivals_csv([_write(tmp_path / "g.csv", broken)], out)


# --- commune polygons ---------------------------------------------------------------------------


def test_geoapi_communes_geojson_round_trip(tmp_path: Path) -> None:
    packed = require_shared("communes/france/communes_france_simplified_wgs84.gpkg.xz")
    plain = tmp_path / "mirror.gpkg"
    plain.write_bytes(lzma.decompress(packed.read_bytes()))
    mirror = gpd.read_file(plain)
    sub = mirror[mirror.insee.str.startswith(("013", "7510", "6938", "2A00", "974"))]
    assert set(sub["type"]) == {"COM", "ARM"}
    fc = json.loads(sub.iloc[::-1].rename(columns={"insee": "code"}).drop(columns="type")
                    .to_json(drop_id=True))
    first = fc["features"][0]["geometry"]
    if first["type"] == "MultiPolygon" and len(first["coordinates"]) == 1:
        fc["features"][0]["geometry"] = {"type": "Polygon", "coordinates": first["coordinates"][0]}
    fc["features"].append({"type": "Feature", "geometry": None,
                           "properties": {"code": "99999", "nom": "Sans contour"}})
    src = _write(tmp_path / "communes.geojson", json.dumps(fc))
    out = tmp_path / "communes.gpkg.xz"
    _convert.geoapi_communes_geojson([src], out)
    back_path = tmp_path / "back.gpkg"
    back_path.write_bytes(lzma.decompress(out.read_bytes()))
    back = gpd.read_file(back_path, layer="communes")
    ref = sub.sort_values("insee").reset_index(drop=True)
    assert list(back.columns) == list(mirror.columns) == ["insee", "type", "nom", "geometry"]
    assert back.crs == mirror.crs
    assert back.drop(columns="geometry").equals(ref.drop(columns="geometry"))
    assert set(back.geom_type) == {"MultiPolygon"}
    assert back.geometry.geom_equals_exact(ref.geometry, 1e-12).all()


# --- the converters inside fetch ------------------------------------------------------------


def test_converter_errors_are_reported_by_fetch(tmp_path: Path, monkeypatch) -> None:
    """A converter failing on an unexpected official layout gives one DataSourceError
    naming the dataset and the URL, and leaves no file."""
    from geo import sources as src_mod

    s = load_settings(environ={}, data_dir=tmp_path / "data", mirror=None)
    ds = sources.get_dataset("pvd", s)

    def fake_download(url, dest, settings, *, label):
        dest.write_text('{"type": "FeatureCollection", "features": [{"properties": {}}]}')

    monkeypatch.setattr(src_mod, "_http_download", fake_download)
    with pytest.raises(GeoError) as err:
        sources.fetch(["pvd"], settings=s)
    msg = str(err.value)
    assert "dataset pvd" in msg and ds.urls[0] in msg and "id_territoire" in msg
    assert not sources.dataset_path("pvd", s).exists()
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()
                and p.parent.name != ".locks"]
