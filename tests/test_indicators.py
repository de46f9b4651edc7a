"""APL mapping, facility counts, access per zone, E2SFCA and the aggregate stage."""

from __future__ import annotations

import itertools
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo import access, indicators, network
from geo._io import read_parquet_metadata
from geo.cli import main
from geo.errors import MissingColumnsError

# --- APL per cell -----------------------------------------------------------------------


def test_area_weighted_mean():
    pieces = pd.DataFrame({"h3": ["a", "a", "b"], "insee": ["1", "2", "2"],
                           "cell_share": [0.25, 0.75, 1.0]})
    values = pd.DataFrame({"insee": ["1", "2"], "x": [4.0, 8.0], "y": [np.nan, 2.0]})
    out = indicators.area_weighted(pieces, values, ["x", "y"])
    assert out.at["a", "x"] == pytest.approx(0.25 * 4 + 0.75 * 8)
    assert out.at["a", "y"] == pytest.approx(2.0)  # commune 1 has no y: left out
    assert out.at["b", "x"] == 8.0


# --- facilities and access --------------------------------------------------------------------


def test_facility_counts():
    f = pd.DataFrame({
        "category": ["sante", "sante", "commerces", "sante"],
        "subcategory": ["medecin_generaliste", "pharmacie", "boulangerie", "pharmacie"],
        "h3": ["a", "a", "b", None],
    })
    out = indicators.facility_counts(f, "h3")
    assert out.loc["a", "n_sante"] == 2 and out.loc["b", "n_commerces"] == 1
    assert out.loc["a", "n_pharmacie"] == 1
    assert {f"n_{c}" for c in indicators.CATEGORIES} <= set(out.columns)
    assert out.loc["b", "n_energie"] == 0
    with pytest.raises(MissingColumnsError, match="category"):
        indicators.facility_counts(f.drop(columns="category"), "h3")


def _zones():
    return gpd.GeoDataFrame(
        {"z": ["with_nodes", "empty_near", "empty_far"]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(250, 0, 350, 100),
                  shapely.box(5000, 0, 5100, 100)],
        crs="EPSG:2154",
    )


def _nodes():
    return gpd.GeoDataFrame(
        {"node": [1, 2, 3],
         "sante_minutes": [2.0, 4.0, 7.0],
         "sante_count_5min": [1, 2, 4], "sante_count_10min": [3, 5, 6],
         "sante_count_15min": [8, 9, 9], "sante_count_20min": [9, 9, 9]},
        geometry=[shapely.Point(20, 50), shapely.Point(80, 50), shapely.Point(150, 50)],
        crs="EPSG:2154",
    )


def test_access_by_zone_medians_and_nearest_node_rule(mirror_settings):
    s = mirror_settings
    out = indicators.access_by_zone(_nodes(), _zones(), key="z", mode="walk", settings=s)
    assert out.at["with_nodes", "walk_sante_minutes_min"] == 2.0
    assert out.at["with_nodes", "walk_sante_minutes_median"] == 3.0
    assert out.at["with_nodes", "walk_sante_count_10min"] == 4.0  # median of 3 and 5
    assert out.at["with_nodes", "walk_nodes"] == 2
    # empty_near: centroid (300, 50) is 150 m from node 3 = 2 min at 4.5 km/h
    leg = 150 / (s.walk_speed_kmh * 1000 / 60)
    assert out.at["empty_near", "walk_sante_minutes_min"] == pytest.approx(7.0 + leg)
    assert out.at["empty_near", "walk_sante_minutes_median"] == pytest.approx(7.0 + leg)
    # counts: the node's count at the largest threshold <= T - leg (10 - 2 -> 5 min)
    assert out.at["empty_near", "walk_sante_count_10min"] == 4
    assert out.at["empty_near", "walk_sante_count_15min"] == 6  # 15 - 2 -> 10 min
    # beyond nearest_node_max_m: nothing
    assert np.isnan(out.at["empty_far", "walk_sante_minutes_min"])


# --- E2SFCA ---------------------------------------------------------------------------------


def _line_graph(mode):
    """Four nodes 375 m apart (5 min at 4.5 km/h, 1.5 min at 15 km/h), two-way links."""
    xs = [0.0, 375.0, 750.0, 1125.0]
    nodes = gpd.GeoDataFrame({"node_id": [10, 11, 12, 13]},
                             geometry=[shapely.Point(x, 0) for x in xs], crs="EPSG:2154")
    secs = {"walk": 300.0, "bike": 90.0}[mode]
    edges = gpd.GeoDataFrame(
        {"u": [10, 11, 12], "v": [11, 12, 13], "length_m": 375.0, f"{mode}_s": secs,
         f"{mode}_reverse_s": secs},
        geometry=[shapely.LineString([(a, 0), (b, 0)]) for a, b in itertools.pairwise(xs)],
        crs="EPSG:2154",
    )
    return network.graph_from_frames(nodes, edges, mode)


def _w(t, t0=20.0):
    floor = math.exp(-0.5)
    return (math.exp(-t * t / (2 * t0 * t0)) - floor) / (1 - floor) if t < t0 else 0.0


def test_gaussian_decay_shape():
    w = indicators.gaussian_decay(np.array([0.0, 10.0, 20.0, 25.0]), 20.0)
    assert w[0] == pytest.approx(1.0)
    assert w[1] == pytest.approx(0.7013665732, rel=1e-9)  # (e^-1/8 - e^-1/2)/(1 - e^-1/2)
    assert w[2] == 0.0 and w[3] == 0.0


def test_e2sfca_hand_computed():
    # GP 0 at node 0, GP 3 at node 3; 100 people at node 0 ("a"), 200 at node 2 ("c").
    times = pd.DataFrame({"supply": [0, 3, 0, 3], "demand": ["a", "a", "c", "c"],
                          "minutes": [0.0, 15.0, 10.0, 5.0]})
    acc = indicators.e2sfca(times, pd.Series(1.0, index=[0, 3]),
                            pd.Series({"a": 100.0, "c": 200.0}), catchment_min=20.0)
    r0 = 1 / (100 * _w(0) + 200 * _w(10))
    r3 = 1 / (100 * _w(15) + 200 * _w(5))
    assert acc["a"] == pytest.approx(r0 * _w(0) + r3 * _w(15), rel=1e-12)
    assert acc["c"] == pytest.approx(r0 * _w(10) + r3 * _w(5), rel=1e-12)
    # by hand: W(10)=0.701367, W(5)=0.921806, W(15)=0.376926 ->
    # A_a = 58.5938 and A_c = 70.7031 GPs per 10,000 inhabitants
    assert acc["a"] * 1e4 == pytest.approx(58.5938, abs=1e-4)
    assert acc["c"] * 1e4 == pytest.approx(70.7031, abs=1e-4)
    # E2SFCA redistributes the whole supply: sum of A_k P_k = number of GPs
    assert acc["a"] * 100 + acc["c"] * 200 == pytest.approx(2.0)


def test_gp_accessibility_on_a_street_graph(mirror_settings):
    s = mirror_settings.replace(e2sfca_catchment_min=20)
    gps = gpd.GeoDataFrame({"subcategory": ["medecin_generaliste"] * 2},
                           geometry=[shapely.Point(0, 0), shapely.Point(1125, 0)],
                           crs="EPSG:2154")
    # cell "a" is 75 m (1 min walk) off node 10; cell "c" sits on node 12
    pts = gpd.GeoSeries([shapely.Point(0, 75), shapely.Point(750, 0)], index=["a", "c"],
                        crs="EPSG:2154")
    pop = pd.Series({"a": 100.0, "c": 200.0})
    out = indicators.gp_accessibility(pts, pop, gps, _line_graph("walk"), settings=s)
    assert out.name == "e2sfca_mg_walk_per_10k"
    r0 = 1 / (100 * _w(1) + 200 * _w(10))
    r3 = 1 / (100 * _w(16) + 200 * _w(5))
    assert out["a"] == pytest.approx((r0 * _w(1) + r3 * _w(16)) * 1e4, rel=1e-9)
    assert out["c"] == pytest.approx((r0 * _w(10) + r3 * _w(5)) * 1e4, rel=1e-9)
    # on a bike each link takes 1.5 min (the walked leg to the network stays 1 min)
    bike = indicators.gp_accessibility(pts, pop, gps, _line_graph("bike"), settings=s)
    r0 = 1 / (100 * _w(1) + 200 * _w(3))
    r3 = 1 / (100 * _w(5.5) + 200 * _w(1.5))
    assert bike["a"] == pytest.approx((r0 * _w(1) + r3 * _w(5.5)) * 1e4, rel=1e-9)
    # a GP in the middle of a link counts its partial link time
    mid = gps.iloc[[0]].set_geometry([shapely.Point(187.5, 0)])
    one = indicators.gp_accessibility(pts, pop, mid, _line_graph("walk"), settings=s)
    r = 1 / (100 * _w(1 + 2.5) + 200 * _w(7.5))
    assert one["c"] == pytest.approx(r * _w(7.5) * 1e4, rel=1e-9)
    # a cell beyond nearest_node_max_m from the graph gets nothing
    far = gpd.GeoSeries([shapely.Point(0, 5000)], index=["far"], crs="EPSG:2154")
    none = indicators.gp_accessibility(far, pd.Series({"far": 10.0}), gps,
                                       _line_graph("walk"), settings=s)
    assert np.isnan(none["far"])


def test_graph_from_access_frames_matches_the_built_graph(pdv_streets, mirror_settings):
    """The graph rebuilt from the access stage's node and edge tables is the graph the
    access stage searched: same arcs and times, same times to facilities."""
    for mode in ("walk", "bike"):
        built = network.build_graph(pdv_streets, mode, settings=mirror_settings)
        again = network.graph_from_frames(built.nodes_frame(), built.edges_frame(), mode,
                                          settings=mirror_settings)
        assert (built.matrix != again.matrix).nnz == 0
        np.testing.assert_allclose(again.matrix.data, built.matrix.data, rtol=1e-12)
        pts = gpd.GeoSeries(shapely.points(built.node_xy[::40] + np.array([7.0, 3.0])),
                            crs="EPSG:2154")
        a = access.times_within(built, pts, 10, settings=mirror_settings)
        b = access.times_within(again, pts, 10, settings=mirror_settings)
        pd.testing.assert_frame_equal(a, b, atol=1e-6)
    with pytest.raises(MissingColumnsError, match="walk_reverse_s"):
        network.graph_from_frames(built.nodes_frame(),
                                  built.edges_frame().rename(columns={"bike_s": "walk_s"}),
                                  "walk")


def test_cell_population_built_up_or_area():
    pieces = pd.DataFrame({"h3": ["a", "b", "a", "b"], "insee": ["1", "1", "2", "2"],
                           "commune_share": [0.5, 0.5, 0.2, 0.8]})
    pop = pd.Series({"1": 1000.0, "2": 500.0})
    built_pieces = pd.Series([30.0, 10.0, np.nan, np.nan], index=pieces.index)
    built_communes = pd.Series({"1": 40.0, "2": np.nan})
    out = indicators.cell_population(pieces, pop, piece_built=built_pieces,
                                     commune_built=built_communes)
    assert out["population"].tolist() == pytest.approx([750.0, 250.0, 100.0, 400.0])
    assert out["weighting"].tolist() == ["built", "built", "area", "area"]


# --- the aggregate stage on real data ----------------------------------------------------------


def test_aggregate_lot_town_cli(use_settings, tmp_path):
    out = tmp_path / "out"
    assert main(["aggregate", "46127", "--res", "8", "--out", str(out)]) == 0
    cells = gpd.read_parquet(out / "h3_r8.parquet")
    comm = gpd.read_parquet(out / "communes.parquet")
    meta = read_parquet_metadata(out / "h3_r8.parquet")
    assert meta["clc_year"] == 2018 and meta["clc_sources"] == ["clc2018_lot"]
    assert any("access walk" in m for m in meta["missing"])
    assert cells["h3"].is_unique and cells.crs == "EPSG:2154"
    level1 = [c for c in cells.columns if c.startswith("clc_") and c[4].isalpha()
              and c not in ("clc_nodata_share",) and "change" not in c]
    assert len(level1) == 5
    assert np.allclose(cells[level1].sum(axis=1), 1.0)
    assert cells["apl_mg"].notna().all()
    assert "clc_artificialise_change_2012_2018" in cells
    town = comm.set_index("insee").loc["46127"]
    assert town["is_town"] and town["nom"] == "Gourdon"
    assert town["clc_artificialise_share"] > 0.02
    # the town is wholly inside the grid: its population is spread entirely over cells
    assert cells["population"].sum() > town["population"]
    assert comm["insee"].str.len().eq(5).all()


def test_rouen_clip_cells_have_land_cover_and_access_times(use_settings, tmp_path):
    """Rouen (76540): CORINE 2012 clip + the OSM road lines inside it, through the real
    stages (facilities, access, aggregate): some cells get both land cover and times."""
    out = tmp_path / "76540"
    assert main(["facilities", "76540", "--out", str(out / "facilities.parquet")]) == 0
    assert main(["access", "76540", "--out", str(out)]) == 0
    assert main(["aggregate", "76540", "--res", "9", "--out", str(out)]) == 0
    cells = gpd.read_parquet(out / "h3_r9.parquet")
    meta = read_parquet_metadata(out / "h3_r9.parquet")
    assert meta["clc_year"] == 2012 and meta["clc_sources"] == ["clc2012_rouen"]
    assert any(m.startswith("land cover change") for m in meta["missing"])
    covered = cells["clc_nodata_share"] < 1
    timed = cells["walk_culture_minutes_median"].notna()
    with_nodes = cells["walk_nodes"] > 0
    assert (covered & with_nodes).sum() >= 5
    assert (covered & timed).sum() > (covered & with_nodes).sum()  # nearest-node fill
    both = cells[covered & with_nodes]
    assert (both["clc_artificialise_share"] > 0.5).all()  # the city centre
    assert (both["walk_culture_minutes_min"] <= both["walk_culture_minutes_median"]).all()
    # beyond the clip: no land cover, but APL and population everywhere
    assert (~covered).sum() > 0 and cells.loc[~covered, "clc_artificialise_share"].isna().all()
    assert cells["apl_mg"].notna().all()
    assert (out / "landcover.parquet").exists()
    assert gpd.read_parquet(out / "landcover.parquet")["code_12"].isin(
        [111, 112, 121, 122, 123, 141, 142, 211, 231, 311, 312, 511]).all()
