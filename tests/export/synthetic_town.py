"""A small synthetic town run (the per-stage files of ARCHITECTURE.md) for publishing tests.

Layers sit around Pont-de-Veyle's real position with the agreed field names, so the
publishing code is exercised on every layer kind, with missing values and missing
optional layers, independently of the other stages.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
from shapely.geometry import LineString, Point, Polygon, box

from geo._io import write_parquet

TOWN = "01306"
#: A second built town in the viewer tests: no street network, with land cover.
OTHER_TOWN = ("46127", "Gourdon")
#: Town hall of Pont-de-Veyle (EPSG:2154, approximately).
HALL_X, HALL_Y = 845_365.0, 6_575_495.0
L93 = "EPSG:2154"

_COMMUNES = [  # insee, nom, population, dx, dy (km from the town hall)
    (TOWN, "Pont-de-Veyle", 1660, 0, 0),
    ("01134", "Crottet", 1900, 3, 0),
    ("01203", "Laiz", 1250, -3, 0),
    ("01179", "Grièges", 1800, 0, 3),
]


def _communes(town: str, nom_town: str) -> gpd.GeoDataFrame:
    rows = []
    for i, (insee, nom, pop, dx, dy) in enumerate(_COMMUNES):
        if i == 0:
            insee, nom = town, nom_town
        x, y = HALL_X + dx * 1000, HALL_Y + dy * 1000
        n_com = [14, 6, 3, 5][i]
        rows.append({
            "insee": insee, "nom": nom, "population": pop,
            "apl_mg": [3.2, 2.1, np.nan, 4.6][i],
            "apl_mg_sous_dote": [False, True, None, False][i],
            "apl_dentistes": [40.0, 25.0, np.nan, 60.0][i],
            "apl_infirmiers": 120.0, "apl_kine": 80.0, "apl_sages_femmes": 15.0,
            "n_sante": [9, 2, 0, 4][i], "n_commerces": n_com,
            "n_commerces_per_10k": n_com / pop * 10_000,
            "n_culture": [3, 1, 0, 1][i], "n_culture_per_10k": [3, 1, 0, 1][i] / pop * 1e4,
            "n_energie": [0, 2, 0, 0][i], "n_eolienne": [0, 2, 0, 0][i],
            "walk_sante_minutes_median": [6.5, 31.0, 40.0, 28.0][i],
            "geometry": box(x - 1500, y - 1500, x + 1500, y + 1500),
        })
    return gpd.GeoDataFrame(rows, crs=L93)


def _cells(res: int, communes: gpd.GeoDataFrame, landcover: bool) -> gpd.GeoDataFrame:
    area = communes.to_crs(4326).union_all()
    cells = h3.geo_to_cells(area.__geo_interface__, res)
    rows = []
    hall = Point(HALL_X, HALL_Y)
    for cell in sorted(cells):
        ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
        rows.append({"h3": cell, "geometry": Polygon(ring)})
    gdf = gpd.GeoDataFrame(rows, crs=4326)
    dist_m = gdf.to_crs(L93).centroid.distance(hall).to_numpy()
    gdf["population"] = np.round(2000 * np.exp(-dist_m / 800) + 5).astype("int64")
    for mode, kmh in (("walk", 4.5), ("bike", 15.0)):
        minutes = dist_m * 1.3 / (kmh * 1000 / 60)
        gdf[f"{mode}_sante_minutes_median"] = minutes
        gdf[f"{mode}_sante_minutes_min"] = minutes * 0.8
        gdf[f"{mode}_sante_count_15min"] = np.where(minutes < 15, 9, 0)
        gdf[f"{mode}_medecin_generaliste_minutes_median"] = minutes * 1.1
        gdf[f"{mode}_pharmacie_minutes_median"] = minutes * 1.05
        gdf[f"e2sfca_mg_{mode}_per_10k"] = 9.0 * np.exp(-minutes / 10)
    # a cell without access data (no graph node reachable)
    gdf.loc[gdf.index[-1], ["walk_sante_minutes_median", "bike_sante_minutes_median"]] = np.nan
    if landcover:
        rng = np.random.default_rng(res)
        shares = rng.dirichlet([2, 5, 3, 0.3, 0.3], size=len(gdf))
        for j, key in enumerate(["artificialise", "agricole", "foret_semi_naturel",
                                 "zone_humide", "eau"]):
            gdf[f"clc_{key}_share"] = shares[:, j]
    gdf["n_commerces"] = (dist_m < 600).astype("int64") * 3
    return gdf


def _facilities(town: str) -> gpd.GeoDataFrame:
    spec = [  # category, subcategory, name, brand, chain, dx, dy, power_mw
        ("sante", "medecin_generaliste", "Cabinet médical", None, None, 120, 40, None),
        ("sante", "pharmacie", "Pharmacie de la Veyle", None, None, -80, 60, None),
        ("sante", "infirmier", "Cabinet infirmier", None, None, 300, -200, None),
        ("commerces", "supermarche", "Carrefour Contact", "Carrefour Contact", True, 400, 100,
         None),
        ("commerces", "boulangerie", "Boulangerie du Pont", None, False, 30, -40, None),
        ("commerces", "boulangerie", "Au bon pain", None, False, -150, 10, None),
        ("commerces", "epicerie", "Épicerie", None, None, 60, 200, None),
        ("culture", "bibliotheque", "Médiathèque", None, None, -20, 90, None),
        ("culture", "monument_historique", "Château de Pont-de-Veyle", None, None, 250, 300, None),
        ("services", "mairie", "Mairie", None, None, 0, 0, None),
        ("education", "ecole", "École primaire", None, None, -300, -100, None),
        ("energie", "eolienne", "Éolienne E1", None, None, 2800, 500, 2.3),
        ("energie", "eolienne", "Éolienne E2", None, None, 3100, 700, 2.3),
    ]
    groups = {"bibliotheque": "vivant", "monument_historique": "patrimoine"}
    rows = []
    for i, (cat, sub, name, brand, chain, dx, dy, mw) in enumerate(spec):
        rows.append({
            "facility_id": f"F{i:03d}", "source": "osm", "source_id": f"node/{1000 + i}",
            "category": cat, "subcategory": sub, "name": name, "brand": brand, "chain": chain,
            "insee": town, "power_mw": mw, "group_hint": groups.get(sub),
            "geometry": Point(HALL_X + dx, HALL_Y + dy),
        })
    gdf = gpd.GeoDataFrame(rows, crs=L93)
    gdf["chain"] = gdf["chain"].astype("boolean")
    return gdf.drop(columns="group_hint")


def _isochrones() -> gpd.GeoDataFrame:
    hall = Point(HALL_X, HALL_Y)
    rows = []
    for mode, kmh in (("walk", 4.5), ("bike", 15.0)):
        for minutes in (5, 10, 15, 20):
            radius = kmh * 1000 / 60 * minutes * 0.7
            geom = hall.buffer(radius, 32)
            rows.append({"mode": mode, "minutes": minutes, "area_m2": geom.area,
                         "street_km": geom.area / 1e5, "origin": "OSM amenity=townhall",
                         "geometry": geom})
    return gpd.GeoDataFrame(rows, crs=L93)


def _edges(mode: str, step: float) -> gpd.GeoDataFrame:
    """Street links as the access stage writes them (``geo.access.run_town``)."""
    kmh = {"walk": 4.5, "bike": 15.0}[mode]
    rows = []
    coords = np.arange(-2000, 2001, step)
    hall = Point(HALL_X, HALL_Y)
    for c in coords:
        for a, b in itertools.pairwise(coords):
            for line in (LineString([(HALL_X + a, HALL_Y + c), (HALL_X + b, HALL_Y + c)]),
                         LineString([(HALL_X + c, HALL_Y + a), (HALL_X + c, HALL_Y + b)])):
                secs = line.length / (kmh / 3.6)
                to_health = line.interpolate(0.5, normalized=True).distance(hall) * 1.3 / (
                    kmh * 1000 / 60)
                rows.append({
                    "u": len(rows), "v": len(rows) + 1, "way_id": 100 + len(rows) // 4,
                    "highway": "residential", "name": None, "length_m": line.length,
                    f"{mode}_s": secs, f"{mode}_reverse_s": secs, "oneway": False,
                    "sante_minutes": to_health, "commerces_minutes": to_health * 0.9,
                    "medecin_generaliste_minutes": to_health * 1.1, "geometry": line,
                })
    return gpd.GeoDataFrame(rows, crs=L93)


def _corine(communes: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """CORINE polygons as the aggregate stage writes them (``landcover.parquet``)."""
    classes = [(112, "artificialise", "Tissu urbain discontinu"),
               (211, "agricole", "Terres arables hors périmètres d'irrigation"),
               (311, "foret_semi_naturel", "Forêts de feuillus"),
               (411, "zone_humide", "Marais intérieurs"),
               (512, "eau", "Plans d'eau")]
    x0, y0, x1, y1 = communes.total_bounds
    rows = []
    step = 500.0
    for i, x in enumerate(np.arange(x0, x1, step)):
        for j, y in enumerate(np.arange(y0, y1, step)):
            code, level1, label = classes[(i * 7 + j * 3) % len(classes)]
            cell = box(x, y, x + step, y + step)
            rows.append({"code_18": code, "clc_level1": level1, "label": label,
                         "area_m2": cell.area, "geometry": cell})
    return gpd.GeoDataFrame(rows, crs=L93)


def write_synthetic_town(town_dir: Path, *, streets: bool = True, landcover: bool = False,
                         card: bool = True, insee: str = TOWN,
                         nom: str = "Pont-de-Veyle") -> Path:
    """Write the stage files of a synthetic town run into ``town_dir`` (Pont-de-Veyle by
    default; another ``insee`` / ``nom`` names the central commune differently)."""
    town_dir.mkdir(parents=True, exist_ok=True)
    communes = _communes(insee, nom)
    communes.to_parquet(town_dir / "communes.parquet")
    _cells(8, communes, landcover).to_parquet(town_dir / "h3_r8.parquet")
    _cells(9, communes, landcover).to_parquet(town_dir / "h3_r9.parquet")
    _facilities(insee).to_parquet(town_dir / "facilities.parquet")
    if landcover:
        write_parquet(_corine(communes), town_dir / "landcover.parquet",
                      metadata={"layer": "landcover", "insee": insee, "clc_year": 2018})
    if streets:
        write_parquet(_isochrones(), town_dir / "isochrones.parquet",
                      metadata={"insee": insee, "origin": "OSM amenity=townhall (Mairie)"})
        for mode, step in (("walk", 100), ("bike", 200)):
            write_parquet(_edges(mode, step), town_dir / f"access_{mode}_edges.parquet",
                          metadata={"insee": insee, "mode": mode, "vintage": "OSM 2022-03-11"})
    if card:
        (town_dir / "town.json").write_text(json.dumps({
            "insee": insee, "nom": nom, "population": 1660,
            "typologie": "petite ville", "pvd": True, "acv": False, "crs": L93,
            "catchment": [c[0] for c in _COMMUNES],
        }, ensure_ascii=False), encoding="utf-8")
    return town_dir


def layer_names(streets: bool = True, landcover: bool = False) -> list[str]:
    """Layers a GeoPackage of the synthetic town holds."""
    names = ["communes", "h3_r8", "h3_r9", "facilities", "commune_labels"]
    names += ["landcover", "water"] if landcover else []  # CORINE 512: a water body
    return names + (["isochrones", "network_edges", "street_limit"] if streets else [])


__all__ = ["OTHER_TOWN", "TOWN", "layer_names", "write_synthetic_town"]

