"""The town GeoPackage: layers, QGIS styles table, provenance metadata, atomic writes."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from shapely.geometry import Point

from export.synthetic_town import TOWN, layer_names, write_synthetic_town
from geo import __version__
from geo.errors import InputFileError, MissingColumnsError, MissingCrsError
from geo.export import gpkg as gpkg_module
from geo.export.gpkg import build_gpkg, read_gpkg_provenance, read_layer_styles
from geo.export.views import load_views
from geo.settings import Settings
from geo.sources import datasets_for_town, load_catalogue

#: Columns of the table QGIS creates to save styles in a GeoPackage.
QGIS_LAYER_STYLES_COLUMNS = [
    "id", "f_table_catalog", "f_table_schema", "f_table_name", "f_geometry_column",
    "styleName", "styleQML", "styleSLD", "useAsDefault", "description", "owner", "ui",
    "update_time",
]


def _legend(view_id: str, layer: str):
    view = next(v for v in load_views() if v.id == view_id)
    return next(e for e in view.legend if e.layer == layer)


#: Layers of the demo town run (streets, no land cover in the Ain), with the basemap
#: layers derived from them.
DEMO_LAYERS = {"communes", "h3_r8", "h3_r9", "isochrones", "network_edges", "facilities",
               "water", "waterways", "street_limit", "commune_labels"}


def test_layers_crs_and_counts(town_gpkg: Path, town_dir: Path) -> None:
    listed = {str(name): geom for name, geom in pyogrio.list_layers(town_gpkg)}
    assert set(listed) == {*DEMO_LAYERS, "layer_styles"}
    assert listed["layer_styles"] is None  # an attributes table, as QGIS makes it
    for name in DEMO_LAYERS:
        info = pyogrio.read_info(town_gpkg, layer=name)
        assert info["crs"] == "EPSG:2154", name
        assert info["features"] > 0, name
    walk = gpd.read_parquet(town_dir / "access_walk_edges.parquet")
    bike = gpd.read_parquet(town_dir / "access_bike_edges.parquet")
    edges = pyogrio.read_dataframe(town_gpkg, layer="network_edges")
    assert len(edges) == len(walk) + len(bike)
    assert edges["mode"].value_counts().to_dict() == {"walk": len(walk), "bike": len(bike)}
    # access minutes per street travel unchanged from the stage's file
    walk_out = edges[edges["mode"] == "walk"].reset_index(drop=True)
    assert np.allclose(walk_out["sante_minutes"], walk["sante_minutes"], equal_nan=True)
    for layer in ("facilities", "h3_r9", "communes", "isochrones"):
        src = gpd.read_parquet(town_dir / f"{layer}.parquet")
        out = pyogrio.read_dataframe(town_gpkg, layer=layer)
        assert len(out) == len(src), layer
        # geometries are the stage's, not moved
        assert np.allclose(out.geometry.bounds, src.to_crs(2154).geometry.bounds), layer
    communes = pyogrio.read_dataframe(town_gpkg, layer="communes")
    assert communes.loc[communes["is_town"].astype(bool), "insee"].tolist() == [TOWN]


def test_fields_are_snake_case_with_units(town_gpkg: Path) -> None:
    for name in DEMO_LAYERS:
        fields = pyogrio.read_info(town_gpkg, layer=name)["fields"]
        for f in fields:
            assert f == f.lower() and " " not in f and f.isascii(), (name, f)
    edges = pyogrio.read_info(town_gpkg, layer="network_edges")["fields"]
    assert {"length_m", "walk_s", "bike_s"} <= set(edges)


def test_layer_styles_table_follows_the_qgis_schema(town_gpkg: Path) -> None:
    with closing(sqlite3.connect(town_gpkg)) as con:
        cols = [r[1] for r in con.execute("PRAGMA table_info(layer_styles)")]
        geometry_columns = dict(con.execute(
            "SELECT table_name, column_name FROM gpkg_geometry_columns").fetchall())
        contents = con.execute("SELECT data_type FROM gpkg_contents WHERE table_name = "
                               "'layer_styles'").fetchone()
    assert cols == QGIS_LAYER_STYLES_COLUMNS
    assert contents == ("attributes",)
    with closing(sqlite3.connect(town_gpkg)) as con:
        # GeoPackage 1.2: what every QGIS 3 reads fully (GDAL 3.6 warns on 1.4)
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
        assert con.execute("PRAGMA user_version").fetchone()[0] == 10200
    rows = read_layer_styles(town_gpkg)
    for layer in DEMO_LAYERS:
        mine = [r for r in rows if r["f_table_name"] == layer]
        assert mine, f"no style for {layer}"
        assert sum(r["useAsDefault"] for r in mine) == 1, layer
        assert {r["f_geometry_column"] for r in mine} == {geometry_columns[layer]}
        assert all(r["f_table_catalog"] == "" and r["f_table_schema"] == "" for r in mine)
    for r in rows:
        assert len(r["styleName"]) <= 30, r["styleName"]  # TEXT(30) in QGIS' schema
        root = ET.fromstring(r["styleQML"].split("\n", 1)[1])
        assert root.tag == "qgis"
        renderer = root.find("renderer-v2")
        assert renderer.get("type") in {"graduatedSymbol", "categorizedSymbol", "RuleRenderer",
                                        "singleSymbol"}
    defaults = {r["f_table_name"]: r["styleName"] for r in rows if r["useAsDefault"]}
    assert defaults["h3_r9"] == "Accès santé à pied"
    assert defaults["communes"] == "APL médecins généralistes"


def _qml(town_gpkg: Path, layer: str, name: str) -> ET.Element:
    row = next(r for r in read_layer_styles(town_gpkg)
               if r["f_table_name"] == layer and r["styleName"] == name)
    return ET.fromstring(row["styleQML"].split("\n", 1)[1])


def _qgis_range(ranges: list[ET.Element], value: float) -> str | None:
    """The label QGIS draws a value with: the first range with lower <= v <= upper."""
    for r in ranges:
        if float(r.get("lower")) <= value <= float(r.get("upper")):
            return r.get("label")
    return None


def test_graduated_qml_matches_the_map_legend(town_gpkg: Path) -> None:
    entry = _legend("apl", "apl-communes")
    root = _qml(town_gpkg, "communes", entry.qgis_name)
    renderer = root.find("renderer-v2")
    # rules, so that communes without a value are drawn in the "donnée non disponible"
    # class like on the web map (QGIS's graduated renderer would leave them out)
    assert renderer.get("type") == "RuleRenderer"
    rules = renderer.findall("rules/rule")
    assert [r.get("label") for r in rules] == [c.label for c in entry.classes] + [
        "donnée non disponible"]
    assert rules[-1].get("filter") == '"apl_mg" IS NULL'
    colours = {s.get("name"): s.find("layer/Option/Option[@name='color']").get("value")
               for s in renderer.findall("symbols/symbol")}
    for c, r in zip(entry.classes, rules, strict=False):
        rgb = ",".join(str(int(c.color[i:i + 2], 16)) for i in (1, 3, 5))
        assert colours[r.get("symbol")].startswith(rgb + ",")
        # MapLibre's step puts a value equal to a break in the upper class: so does QGIS
        want = f'"apl_mg" >= {float(c.min or 0)!r}'
        if c.max is not None:
            want += f' AND "apl_mg" < {float(c.max)!r}'
        assert r.get("filter") == want
    # French field aliases with units
    aliases = {a.get("field"): a.get("name") for a in root.findall("aliases/alias")}
    assert aliases["apl_mg"] == ("APL médecins généralistes de 65 ans et moins "
                                 "(consultations/hab./an)")
    assert aliases["population"] == "Population (hab.)"


def test_filtered_legends_become_rules(town_gpkg: Path) -> None:
    entry = _legend("commerces", "commerces-points")
    renderer = _qml(town_gpkg, "facilities", entry.qgis_name).find("renderer-v2")
    assert renderer.get("type") == "RuleRenderer"
    rules = renderer.findall("rules/rule")
    assert [r.get("label") for r in rules] == [c.label for c in entry.classes] + [
        entry.nodata.label]
    assert all(r.get("filter").startswith('"category" = \'commerces\' AND') for r in rules)


def test_map_draw_order_and_outlines_carry_over(town_gpkg: Path) -> None:
    walk = _qml(town_gpkg, "isochrones", "Isochrones à pied").find("renderer-v2")
    # MapLibre draws the 5-minute area on top (sort key -minutes): QGIS draws the largest
    # minutes first
    assert walk.get("enableorderby") == "1"
    clause = walk.find("orderby/orderByClause")
    assert (clause.text, clause.get("asc")) == ('"minutes"', "0")
    # a line style of polygons on the map: outline-only fills in QGIS
    bike = _qml(town_gpkg, "isochrones", "Isochrones à vélo")
    fill = bike.find("renderer-v2/symbols/symbol/layer")
    assert fill.get("class") == "SimpleFill"
    options = {o.get("name"): o.get("value") for o in fill.findall("Option/Option")}
    assert options["style"] == "no" and options["outline_style"] == "dash"


def test_missing_field_gives_an_explicit_no_data_style(synthetic_gpkg: Path) -> None:
    # cells without any land-cover field: the style says so instead of drawing nothing
    entry = _legend("occupation_sols", "sols-h3")
    root = _qml(synthetic_gpkg, "h3_r9", entry.qgis_name)
    assert root.find("renderer-v2").get("type") == "RuleRenderer"
    [rule] = root.findall("renderer-v2/rules/rule")
    assert rule.get("filter") is None  # every feature
    assert rule.get("label") == "donnée non disponible (clc_dominant absent)"
    assert "clc_dominant" not in pyogrio.read_info(synthetic_gpkg, layer="h3_r9")["fields"]


def test_empty_land_cover_is_drawn_as_no_data(town_gpkg: Path, town_dir: Path) -> None:
    """The Ain has no CORINE raster: the aggregation leaves the shares empty, and the
    published cells say "donnée non disponible" rather than a class."""
    src = gpd.read_parquet(town_dir / "h3_r9.parquet")
    assert src["clc_agricole_share"].isna().all()
    cells = pyogrio.read_dataframe(town_gpkg, layer="h3_r9")
    assert cells["clc_dominant"].isna().all()
    entry = _legend("occupation_sols", "sols-h3")
    renderer = _qml(town_gpkg, "h3_r9", entry.qgis_name).find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol"
    other = renderer.findall("categories/category")[-1]
    assert (other.get("value"), other.get("label")) == ("", "donnée non disponible")


def test_land_cover_and_missing_optional_layers(publish_settings: Settings,
                                                tmp_path: Path) -> None:
    folder = write_synthetic_town(tmp_path / TOWN, streets=False, landcover=True, card=False)
    out = build_gpkg(TOWN, settings=publish_settings, town_dir=folder)
    # (and the waterways of the demo town's catalogued OSM extract, on the basemap)
    assert set(map(str, pyogrio.list_layers(out)[:, 0])) == {
        *layer_names(streets=False, landcover=True), "waterways", "layer_styles"}
    corine = _qml(out, "landcover", "CORINE Land Cover (niveau 1)").find("renderer-v2")
    assert (corine.get("type"), corine.get("attr")) == ("categorizedSymbol", "clc_level1")
    cells = pyogrio.read_dataframe(out, layer="h3_r9")
    keys = ["artificialise", "agricole", "foret_semi_naturel", "zone_humide", "eau"]
    shares = cells[[f"clc_{k}_share" for k in keys]].to_numpy()
    assert cells["clc_dominant"].tolist() == [keys[i] for i in shares.argmax(axis=1)]
    renderer = _qml(out, "h3_r9", "Occupation des sols").find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol"
    assert renderer.get("attr") == "clc_dominant"
    assert not [r for r in read_layer_styles(out) if r["f_table_name"] == "isochrones"]
    # no town card: the name comes from the communes layer
    assert read_gpkg_provenance(out)["spatialCoverage"]["name"] == "Pont-de-Veyle"


def test_provenance_in_the_metadata_tables(town_gpkg: Path, publish_settings: Settings) -> None:
    with closing(sqlite3.connect(town_gpkg)) as con:
        ext = con.execute("SELECT table_name FROM gpkg_extensions WHERE extension_name = "
                          "'gpkg_metadata'").fetchall()
        refs = con.execute("SELECT reference_scope, table_name, md_file_id, md_parent_id "
                           "FROM gpkg_metadata_reference").fetchall()
        docs = dict(con.execute("SELECT id, metadata FROM gpkg_metadata WHERE "
                                "mime_type = 'application/ld+json'").fetchall())
    assert {t for (t,) in ext} == {"gpkg_metadata", "gpkg_metadata_reference"}
    # GDAL adds its own (XML) rows; ours are the JSON-LD documents
    dataset = next(r for r in refs if r[0] == "geopackage" and r[2] in docs)
    assert json.loads(docs[dataset[2]])["@type"] == "Dataset"
    per_table = {r[1]: r for r in refs if r[0] == "table" and r[2] in docs}
    assert set(per_table) >= DEMO_LAYERS
    for table, (_, _, md_id, parent) in per_table.items():
        doc = json.loads(docs[md_id])
        assert parent == dataset[2]
        assert doc["pvdgeo:layer"] == table
        fields = pyogrio.read_info(town_gpkg, layer=table)["fields"]
        assert [v["name"] for v in doc["variableMeasured"]] == list(fields)
    prov = read_gpkg_provenance(town_gpkg)
    meta = prov["pvdgeo:provenance"]
    assert meta["cog_year"] == publish_settings.cog_year
    assert meta["osm_date"] == "OSM 2022-03-11"  # vintage of the catalogued extract
    assert meta["software"]["pvdgeo"] == __version__
    # every dataset the town run fetched (national, or local to this town) is cited,
    # with the licence and vintage of the catalogue and the sha256 of the lock file
    lock = json.loads(publish_settings.lock_file.read_text())
    catalogue = load_catalogue(publish_settings)
    local = {d.id for d in datasets_for_town(TOWN, settings=publish_settings)}
    expected = {i for i in lock if catalogue[i].scope == "national" or i in local}
    based_on = {d["identifier"]: d for d in prov["isBasedOn"]}
    assert set(based_on) == expected and "osm_pont_de_veyle" in expected
    for ds_id, doc in based_on.items():
        assert doc["license"] == catalogue[ds_id].licence
        assert doc["version"] == catalogue[ds_id].vintage
        assert doc["sha256"] == lock[ds_id]["sha256"]
    assert based_on["osm_pont_de_veyle"]["license"] == "ODbL 1.0"
    assert "OpenStreetMap" in prov["creditText"] and "DREES" in prov["creditText"]
    # what each stage recorded in its file travels with the layer
    edges_doc = json.loads(docs[per_table["network_edges"][2]])
    assert [i["file"] for i in edges_doc["pvdgeo:inputs"]] == [
        "access_walk_edges.parquet", "access_bike_edges.parquet"]
    assert edges_doc["pvdgeo:inputs"][0]["metadata"]["vintage"] == "OSM 2022-03-11"
    # GDAL (ogrinfo, QGIS) shows the document as a metadata item
    gdal_md = pyogrio.read_info(town_gpkg, layer="communes")["dataset_metadata"]
    shown = [json.loads(v) for k, v in gdal_md.items() if k.startswith("GPKG_METADATA_ITEM")]
    assert [d["pvdgeo:provenance"]["osm_date"] for d in shown] == ["OSM 2022-03-11"]
    # and reading the file leaves no GDAL sidecar behind
    assert not list(town_gpkg.parent.glob("*.aux.xml"))


def test_no_layer_is_a_clear_error(publish_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"no layer to publish for town 01306.*"
                                             r"communes\.parquet"):
        build_gpkg(TOWN, settings=publish_settings, town_dir=tmp_path)


def test_layer_without_crs_is_named(publish_settings: Settings, tmp_path: Path) -> None:
    folder = write_synthetic_town(tmp_path / TOWN, streets=False)
    gpd.GeoDataFrame({"category": ["sante"]}, geometry=[Point(0, 0)]).to_parquet(
        folder / "facilities.parquet")
    with pytest.raises(MissingCrsError, match=r"facilities\.parquet: layer has no CRS"):
        build_gpkg(TOWN, settings=publish_settings, town_dir=folder)


def test_missing_columns_are_named(publish_settings: Settings, tmp_path: Path) -> None:
    folder = write_synthetic_town(tmp_path / TOWN, streets=False)
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[Point(0, 0)], crs=2154).to_parquet(
        folder / "facilities.parquet")
    with pytest.raises(MissingColumnsError, match=r"layer facilities: missing column\(s\) "
                                                  r"'category'"):
        build_gpkg(TOWN, settings=publish_settings, town_dir=folder)


def test_interrupted_write_leaves_no_file(publish_settings: Settings, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_synthetic_town(tmp_path / TOWN, streets=False)
    final = folder / f"{TOWN}.gpkg"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full while writing metadata")

    monkeypatch.setattr(gpkg_module, "_write_metadata", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_gpkg(TOWN, settings=publish_settings, town_dir=folder)
    assert not final.exists()
    assert not [p for p in folder.iterdir() if ".part" in p.name]
    # a previous good GeoPackage stays as it was
    monkeypatch.undo()
    build_gpkg(TOWN, settings=publish_settings, town_dir=folder)
    before = final.read_bytes()
    monkeypatch.setattr(gpkg_module, "_write_metadata", boom)
    with pytest.raises(RuntimeError):
        build_gpkg(TOWN, settings=publish_settings, town_dir=folder)
    assert final.read_bytes() == before
    assert not [p for p in folder.iterdir() if ".part" in p.name]


def test_communes_from_the_reference_when_not_aggregated(mirror_settings: Settings,
                                                         tmp_path: Path) -> None:
    """A town run without communes.parquet (no aggregation yet) still gets its communes,
    from the commune reference: the maps' background and the town's outline."""
    folder = write_synthetic_town(tmp_path / TOWN, streets=False)
    (folder / "communes.parquet").unlink()
    out = build_gpkg(TOWN, settings=mirror_settings, town_dir=folder)
    communes = pyogrio.read_dataframe(out, layer="communes")
    town = communes[communes["is_town"].astype(bool)]
    assert town["insee"].tolist() == [TOWN] and town["nom"].tolist() == ["Pont-de-Veyle"]
    assert town["population"].iloc[0] > 1000  # legal population from the reference
    # the catchment: every commune within 5 km of the town, as geo.communes defines it
    from geo.communes import catchment

    assert sorted(communes["insee"]) == sorted(catchment(TOWN, settings=mirror_settings)
                                               .insee_codes)
    assert "apl_mg" not in communes.columns  # no indicator is invented


def test_qgis_metadata_scales_and_licences(town_gpkg: Path) -> None:
    """QGIS shows licence and rights in Layer Properties (its own XML in gpkg_metadata),
    and the H3 resolutions' default styles do not overlap (scale-dependent visibility)."""
    with closing(sqlite3.connect(town_gpkg)) as con:
        rows = con.execute(
            "SELECT r.table_name, m.metadata FROM gpkg_metadata m JOIN "
            "gpkg_metadata_reference r ON r.md_file_id = m.id WHERE m.md_standard_uri = "
            "'http://mrcc.com/qgis.dtd' AND m.md_scope = 'dataset' AND "
            "r.reference_scope = 'table'").fetchall()
    docs = {t: ET.fromstring(x.split("\n", 1)[1]) for t, x in rows}
    assert set(docs) == DEMO_LAYERS
    h3 = docs["h3_r9"]
    assert h3.findtext("title") == "Hexagones H3 (résolution 9)"
    assert h3.findtext("language") == "fr"
    assert {e.text for e in h3.findall("license")} == {"Licence Ouverte 2.0", "ODbL 1.0"}
    rights = [e.text for e in h3.findall("rights")]
    assert "© contributeurs OpenStreetMap (ODbL)" in rights and "DREES" in rights
    assert not any("Copernicus" in r for r in rights)  # no land cover in the Ain
    assert h3.find("links/link").get("url").startswith("https://")
    styles = {(r["f_table_name"], r["styleName"]): r for r in read_layer_styles(town_gpkg)}
    r8 = ET.fromstring(styles[("h3_r8", "Accès santé à pied")]["styleQML"].split("\n", 1)[1])
    r9 = ET.fromstring(styles[("h3_r9", "Accès santé à pied")]["styleQML"].split("\n", 1)[1])
    assert r8.get("hasScaleBasedVisibilityFlag") == r9.get("hasScaleBasedVisibilityFlag") == "1"
    # r9 from the street scale down, r8 above it: the two ranges meet, never overlap
    assert float(r9.get("maxScale")) == 0 and float(r8.get("maxScale")) == float(
        r9.get("minScale")) > 0
    assert float(r8.get("minScale")) > float(r8.get("maxScale"))
    assert styles[("h3_r8", "Accès santé à pied")]["useAsDefault"]
    assert styles[("h3_r9", "Accès santé à pied")]["useAsDefault"]
