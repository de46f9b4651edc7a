"""Basemap layers (geo.export.basemap), the composed styles (geo.export.views) and what
each view says it measures (geo.export.captions)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, Polygon, box

from geo import sources
from geo.export import basemap, captions
from geo.export.layers import add_basemap_layers
from geo.export.views import SLOTS, load_views, tile_fields
from geo.settings import PROJECT_ROOT

L93 = "EPSG:2154"
VALIDATOR = PROJECT_ROOT / "node_modules" / ".bin" / "gl-style-validate"


def test_label_points_sit_inside_their_commune() -> None:
    # a U-shaped commune: its centroid is outside, the label point is not
    u = Polygon([(0, 0), (3000, 0), (3000, 3000), (2000, 3000), (2000, 1000), (1000, 1000),
                 (1000, 3000), (0, 3000)])
    com = gpd.GeoDataFrame({"insee": ["01001", "01002"], "nom": ["U", "Carré"],
                            "population": [120.4, 50.0], "is_town": [True, False]},
                           geometry=[u, box(5000, 0, 6000, 1000)], crs=L93)
    assert not u.contains(u.centroid)
    pts = basemap.commune_label_points(com)
    assert list(pts["nom"]) == ["U", "Carré"]
    assert all(g.within(p) for g, p in zip(pts.geometry, com.geometry, strict=True))
    assert pts["population"].tolist() == [120, 50]  # whole inhabitants


def test_street_limit_and_estimated_cells() -> None:
    edges = gpd.GeoDataFrame(geometry=[LineString([(0, 0), (1000, 0)]),
                                       LineString([(1000, 0), (1000, 1000)])], crs=L93)
    limit = basemap.street_limit(edges, buffer_m=300)
    assert len(limit) == 1 and limit["buffer_m"].iloc[0] == 300
    area = limit.geometry.iloc[0]
    assert area.contains(box(-200, -200, 1200, 200)) is False  # rounded ends
    assert area.buffer(1).contains(box(0, -250, 1000, 250))
    assert not area.interiors if area.geom_type == "Polygon" else True
    cells = gpd.GeoDataFrame({"h3": ["near", "far"]},
                             geometry=[box(400, -100, 600, 100), box(3000, 3000, 3200, 3200)],
                             crs=L93)
    flagged = basemap.with_street_limit_flag(cells, limit)
    assert flagged["beyond_street_data"].tolist() == [False, True]
    with pytest.raises(Exception, match="metric CRS"):
        basemap.street_limit(edges.to_crs(4326), buffer_m=300)


def test_cells_get_the_commune_covering_most_of_them() -> None:
    com = gpd.GeoDataFrame({"insee": ["01001", "01002"], "nom": ["A", "B"]},
                           geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)], crs=L93)
    cells = gpd.GeoDataFrame(geometry=[box(700, 0, 1100, 100), box(950, 0, 1900, 100),
                                       box(5000, 0, 5100, 100)], crs=L93)
    got = basemap.cell_communes(cells, com)
    assert got["nom"].tolist()[:2] == ["A", "B"] and pd.isna(got["nom"].iloc[2])


def test_osm_water_of_the_demo_town(mirror_settings) -> None:
    path = sources.ensure("osm_pont_de_veyle", mirror_settings)
    water = basemap.read_osm_water(path, crs=L93)
    counts = water.groupby("kind").size().to_dict()
    assert counts["area"] >= 5 and counts["line"] >= 30, counts
    assert (water["source"] == "osm").all() and water.crs == L93
    assert "La Veyle" in set(water["name"].dropna())
    assert water.geometry.is_valid.all()


def test_basemap_layers_from_prepared_layers() -> None:
    com = gpd.GeoDataFrame({"insee": ["01001"], "nom": ["A"], "is_town": [True]},
                           geometry=[box(0, 0, 2000, 2000)], crs=L93)
    cells = gpd.GeoDataFrame({"h3": ["x", "y"]},
                             geometry=[box(0, 0, 100, 100), box(1800, 1800, 1900, 1900)],
                             crs=L93)
    edges = gpd.GeoDataFrame({"mode": ["walk"]}, geometry=[LineString([(0, 50), (200, 50)])],
                             crs=L93)
    lc = gpd.GeoDataFrame({"clc_level1": ["eau", "agricole"]},
                          geometry=[box(500, 500, 600, 600), box(0, 0, 10, 10)], crs=L93)
    out = add_basemap_layers({"communes": com, "landcover": lc, "h3_r9": cells,
                              "network_edges": edges})
    assert list(out) == ["communes", "water", "landcover", "h3_r9", "street_limit",
                         "network_edges", "commune_labels"]
    assert out["water"]["source"].tolist() == ["corine"] and "waterways" not in out
    assert out["h3_r9"]["beyond_street_data"].tolist() == [False, True]
    assert out["h3_r9"]["nom"].tolist() == ["A", "A"]
    # no streets: no limit, no flag (access values are absent anyway)
    bare = add_basemap_layers({"communes": com, "h3_r9": cells})
    assert "street_limit" not in bare and "beyond_street_data" not in bare["h3_r9"]


def test_composed_styles_validate_and_order_by_slot(node: str, tmp_path: Path) -> None:
    views = load_views()
    files = []
    for view in views:
        style = view.style
        assert "glyphs" not in style and set(style["font-faces"]) >= {"Noto Sans Regular",
                                                                     "Noto Sans Bold"}
        urls = [f["url"] for faces in style["font-faces"].values() for f in faces]
        assert all(u.startswith("vendor/fonts/noto-sans-") for u in urls)  # local, no CDN
        ids = [lyr["id"] for lyr in style["layers"]]
        assert ids[0] == "fond" and ids[-1] == "communes-noms"  # names on every view
        assert "rues-noms" in ids and "eau-surfaces" in ids
        assert ids.index("communes-fond") < min(ids.index(e.layer) for e in view.legend)
        path = tmp_path / f"{view.id}.json"
        path.write_text(json.dumps(style), encoding="utf-8")
        files.append(str(path))
    proc = subprocess.run([node, str(VALIDATOR), *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert SLOTS[0] == "background" and SLOTS[-1] == "labels"


def test_tile_fields_list_what_the_styles_read() -> None:
    fields = tile_fields(load_views())
    assert {"nom", "is_town"} <= fields["commune_labels"]
    assert {"name", "mode", "sante_minutes"} <= fields["network_edges"]
    assert {"walk_sante_minutes_median", "beyond_street_data", "nom"} <= fields["h3_r9"]
    assert {"walk_sante_minutes_median", "beyond_street_data"} <= fields["h3_r8"]
    assert {"name"} <= fields["waterways"]
    assert {"category", "brand", "chain"} <= fields["facilities"]  # popup conditions too


def test_facility_summary_and_view_status() -> None:
    fac = pd.DataFrame({"category": ["sante"] * 5 + ["commerces"],
                        "subcategory": ["pharmacie"] * 4 + ["laboratoire", "boulangerie"],
                        "source": ["osm"] * 4 + ["osm;bpe", "osm"]})
    labels = {"sante": "Santé", "pharmacie": "Pharmacie", "laboratoire": "Laboratoire",
              "medecin_generaliste": "Médecin généraliste"}
    text = captions.facility_summary(fac, "sante", labels=labels,
                                     key_subcategories=["medecin_generaliste", "pharmacie"],
                                     osm_date="OSM 2019-09-09", national_count=98)
    assert text == ("5 équipements de santé localisés (OpenStreetMap 2019-09-09) : "
                    "pharmacie 4, laboratoire 1 ; aucun médecin généraliste. La Base "
                    "permanente des équipements (INSEE) en recense 98 dans la commune : les "
                    "temps ne portent que sur les points localisés.")
    empty = captions.facility_summary(fac[fac["category"] != "sante"], "sante", labels=labels,
                                      national_count=62)
    assert empty.startswith("Aucun équipement de santé localisé dans la zone d'étude")
    assert "en recense 62 dans la commune, sans position" in empty
    view = next(v for v in load_views() if v.id == "acces_sante_pied")
    fields = {"h3_r9": {"walk_sante_minutes_median"}}
    ok = captions.view_status(view, fields, facilities=fac, labels=labels)
    assert ok.available and ok.summary.startswith("5 équipements de santé")
    none = captions.view_status(view, fields, facilities=fac[fac["category"] != "sante"],
                                labels=labels)
    assert not none.available and none.reason.startswith("Aucun équipement de santé localisé")
    no_streets = captions.view_status(view, {"h3_r9": {"population"}}, facilities=fac)
    assert not no_streets.available
    assert no_streets.reason.startswith("Pas de réseau de rues pour cette ville")
