"""Street graphs: OSM XML/PBF and road-line readers, defects, mode rules, components,
slope-aware times, on real extracts from the mirror and synthetic edge cases."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo import network, sources, streets
from geo.errors import EmptyGraphError, InputFileError, MissingColumnsError, MissingCrsError
from geo.network import build_graph, mode_rules, read_osm, read_road_lines

L93 = "EPSG:2154"


# --- helpers -------------------------------------------------------------------------------


def xml_way_counts(path):
    """Independent count, by ElementTree: street ways, and ways (all / streets) that
    reference nodes missing from the file."""
    nodes: set[str] = set()
    ways = []
    for _, el in ET.iterparse(path):
        if el.tag == "node":
            nodes.add(el.get("id"))
        elif el.tag == "way":
            refs = [nd.get("ref") for nd in el.iter("nd")]
            highway = any(t.get("k") == "highway" for t in el.iter("tag"))
            ways.append((highway, all(r in nodes for r in refs)))
            el.clear()
    return {
        "streets": sum(h for h, _ in ways),
        "incomplete": sum(not c for _, c in ways),
        "incomplete_streets": sum(h and not c for h, c in ways),
    }


def graph_signature(g):
    """Links as sorted (u id, v id, length, forward, backward) tuples, direction-free."""
    u, v = g.node_id[g.link_u], g.node_id[g.link_v]
    swap = u > v
    a, b = np.where(swap, v, u), np.where(swap, u, v)
    fw = np.where(swap, g.link_backward, g.link_forward)
    bw = np.where(swap, g.link_forward, g.link_backward)
    return sorted(zip(a.tolist(), b.tolist(), np.round(g.link_length_m, 6).tolist(),
                      fw.tolist(), bw.tolist(), strict=True))


def lines_gdf(coords_list, crs=L93, **cols):
    n = len(coords_list)
    data = {"osm_id": np.arange(1, n + 1), "fclass": ["residential"] * n, "oneway": ["B"] * n}
    data.update(cols)
    return gpd.GeoDataFrame(data, geometry=[shapely.LineString(c) for c in coords_list],
                            crs=crs)


# --- OSM files -------------------------------------------------------------------------------


def test_osm_xml_keeps_streets_only(pdv_streets, mirror_settings):
    path = sources.ensure("osm_pont_de_veyle", mirror_settings)
    counts = xml_way_counts(path)
    assert len(pdv_streets.ways) == counts["streets"]  # buildings and POIs left out
    assert pdv_streets.ways["highway"].notna().all()
    assert pdv_streets.dropped_ways == counts["incomplete_streets"] == 0
    assert pdv_streets.vintage == "OSM 2022-03-11"
    assert pdv_streets.crs == L93
    # the Mairie of Pont-de-Veyle, inside the commune
    assert len(pdv_streets.townhalls) == 1
    hall = pdv_streets.townhalls.geometry.iloc[0]
    assert 840_000 < hall.x < 850_000 and 6_570_000 < hall.y < 6_580_000


@pytest.mark.parametrize(("raw", "complete"), [
    ("osm_redon", "osm_redon_complete"),
    ("osm_saint_barthelemy_xml", "osm_saint_barthelemy_complete"),
    ("osm_saint_barthelemy_pbf", "osm_saint_barthelemy_complete"),
])
def test_ways_with_missing_nodes_are_dropped_and_logged(raw, complete, mirror_settings,
                                                        caplog):
    path = sources.ensure(raw, mirror_settings)
    xml_path = sources.ensure(raw.replace("_pbf", "_xml"), mirror_settings)
    expected = xml_way_counts(xml_path)
    crs = "EPSG:5490" if "barthelemy" in raw else L93
    with caplog.at_level(logging.WARNING, logger="geo.network"):
        streets = read_osm(path, crs=crs)
    assert expected["incomplete"] > 0
    assert streets.incomplete_ways == expected["incomplete"]
    assert streets.dropped_ways == expected["incomplete_streets"]
    assert (f"{expected['incomplete']} ways reference nodes missing from the extract; "
            f"{expected['incomplete_streets']} of them are streets and were dropped"
            ) in caplog.text
    # the same graph as from the copy where those ways were removed beforehand
    clean = read_osm(sources.ensure(complete, mirror_settings), crs=crs)
    assert clean.dropped_ways == 0
    for mode in network.MODES:
        assert graph_signature(build_graph(streets, mode)) == graph_signature(
            build_graph(clean, mode))


def test_redon_raw_drops_real_street_ways(mirror_settings):
    # Redon's clip cut 46 street ways: a real loss, reported, never a crash
    counts = xml_way_counts(sources.ensure("osm_redon", mirror_settings))
    assert counts["incomplete_streets"] > 0
    streets = read_osm(sources.ensure("osm_redon", mirror_settings), crs=L93)
    g = build_graph(streets, "walk")
    assert g.report["dropped_ways_missing_nodes"] == counts["incomplete_streets"]
    assert g.n_nodes > 100


def test_pbf_reader_and_osmnx_xml_reader_agree(mirror_settings):
    pbf = read_osm(sources.ensure("osm_saint_barthelemy_pbf", mirror_settings),
                   crs="EPSG:5490")
    xml = read_osm(sources.ensure("osm_saint_barthelemy_xml", mirror_settings),
                   crs="EPSG:5490")
    assert len(pbf.ways) == len(xml.ways)
    for mode in network.MODES:
        gp, gx = build_graph(pbf, mode), build_graph(xml, mode)
        assert graph_signature(gp) == graph_signature(gx)
        np.testing.assert_allclose(np.sort(gp.link_fwd_s + gp.link_bwd_s),
                                   np.sort(gx.link_fwd_s + gx.link_bwd_s), rtol=1e-9)


def test_components_reported_and_largest_kept(pdv_streets):
    g = build_graph(pdv_streets, "walk")
    everything = build_graph(pdv_streets, "walk", keep="all")
    r = g.report
    assert r["components"] == everything.report["components"] > 1
    n_all = everything.report["nodes"]
    assert g.n_nodes < n_all
    # the kept graph is one weakly connected component
    n_comp, _ = connected_components(g.matrix, directed=True, connection="weak")
    assert n_comp == 1
    # dropped vertices are counted on the unsimplified vertices
    raw_all = build_graph(pdv_streets, "walk", keep="all", simplify=False)
    raw_kept = build_graph(pdv_streets, "walk", simplify=False)
    assert r["dropped_nodes"] == raw_all.n_nodes - raw_kept.n_nodes > 0


def test_simplification_keeps_geometry_and_lengths(pdv_streets):
    for mode in network.MODES:
        full = build_graph(pdv_streets, mode, simplify=False)
        simple = build_graph(pdv_streets, mode)
        assert simple.n_nodes < full.n_nodes
        assert simple.link_length_m.sum() == pytest.approx(full.link_length_m.sum(),
                                                           rel=1e-12)
        assert set(simple.node_id) <= set(full.node_id)
        geoms = simple.geometries
        np.testing.assert_allclose(shapely.length(geoms), simple.link_length_m, rtol=1e-9)
        # links start and end at their nodes
        start = shapely.get_coordinates(shapely.get_point(geoms, 0))
        np.testing.assert_allclose(start, simple.node_xy[simple.link_u])
        # walking graphs have every link both ways
        if mode == "walk":
            assert simple.link_forward.all() and simple.link_backward.all()


# --- road lines --------------------------------------------------------------------------------


def test_forcalquier_road_lines_are_noded_into_a_connected_graph(mirror_settings,
                                                                 record_property):
    path = sources.ensure("roads_04088", mirror_settings)
    lines = gpd.read_file(path)
    # before: lines joined only where they share an end point
    ends = np.concatenate([shapely.get_coordinates(shapely.get_point(lines.geometry, i))
                           for i in (0, -1)])
    _, end_node = np.unique(np.round(ends * 1e7), axis=0, return_inverse=True)
    n = len(lines)
    m = int(end_node.max()) + 1
    adj = sparse.coo_array((np.ones(n), (end_node[:n], end_node[n:])), shape=(m, m))
    before, _ = connected_components(adj, directed=False)
    # after: noded at every shared vertex
    streets = read_road_lines(path, crs=L93)
    g = build_graph(streets, "walk", keep="all")
    after = g.report["components"]
    record_property("components_before_noding", int(before))
    record_property("components_after_noding", int(after))
    print(f"Forcalquier road lines: {before} components with end points only, "
          f"{after} after noding shared vertices; largest holds "
          f"{g.report['largest_component_share']:.1%} of the vertices")
    assert after * 10 < before
    assert g.report["largest_component_share"] > 0.95
    kept = build_graph(streets, "walk")
    assert kept.report["dropped_nodes"] < 0.05 * len(streets.node_id)


def test_crossing_without_shared_vertex_stays_unconnected():
    bridge = lines_gdf([[(0, 50), (100, 50)], [(50, 0), (50, 100)]])
    g = build_graph(read_road_lines(bridge, crs=L93), "walk", keep="all")
    assert g.report["components"] == 2
    junction = lines_gdf([[(0, 50), (50, 50), (100, 50)], [(50, 0), (50, 50), (50, 100)]])
    g = build_graph(read_road_lines(junction, crs=L93), "walk")
    assert g.report["components"] == 1
    assert g.n_nodes == 5 and g.n_links == 4


def test_road_line_attributes_and_noding_precision():
    # vertices 1 mm apart are one node (1 cm grid); 5 cm apart are not
    near = lines_gdf([[(0, 0), (10, 0)], [(10.001, 0), (20, 0)], [(20.05, 0), (30, 0)]],
                     fclass=["track_grade3", "steps", "motorway"], oneway=["F", "T", "B"])
    st = read_road_lines(near, crs=L93)
    assert len(st.node_id) == 5
    assert st.ways["highway"].tolist() == ["track", "steps", "motorway"]
    assert st.ways["oneway"].tolist() == [1, -1, 0]


def test_road_lines_archive_removes_repeated_lines(mirror_settings, caplog):
    path = sources.ensure("roads_04", mirror_settings)
    single = read_road_lines(sources.ensure("roads_04088", mirror_settings), crs=L93)
    with caplog.at_level(logging.INFO, logger="geo.network"):
        both = read_road_lines(path, crs=L93, members=["04088", "04134"])
    assert "duplicates across files removed" in caplog.text
    assert both.ways["way_id"].is_unique
    assert set(single.ways["way_id"]) < set(both.ways["way_id"])


def test_road_lines_errors(tmp_path):
    no_crs = lines_gdf([[(0, 0), (1, 0)]]).set_crs(None, allow_override=True)
    with pytest.raises(MissingCrsError, match="no CRS"):
        read_road_lines(no_crs, crs=L93)
    with pytest.raises(MissingColumnsError, match="fclass"):
        read_road_lines(lines_gdf([[(0, 0), (1, 0)]]).drop(columns="fclass"), crs=L93)
    with pytest.raises(MissingCrsError, match="not projected"):
        read_road_lines(lines_gdf([[(0, 0), (1, 0)]]), crs="EPSG:4326")
    bad = tmp_path / "broken.geojson"
    bad.write_text("{not json")
    with pytest.raises(InputFileError, match=r"broken\.geojson"):
        read_road_lines(bad, crs=L93)
    motorways = lines_gdf([[(0, 0), (100, 0)]], fclass=["motorway"])
    with pytest.raises(EmptyGraphError, match="no street usable for walk in road lines"):
        build_graph(read_road_lines(motorways, crs=L93), "walk")


def test_osm_file_errors(tmp_path):
    buildings = tmp_path / "buildings.osm"
    buildings.write_text(
        '<?xml version="1.0"?><osm version="0.6">'
        '<node id="1" lat="46.0" lon="4.0"/><node id="2" lat="46.001" lon="4.0"/>'
        '<node id="3" lat="46.001" lon="4.001"/>'
        '<way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="1"/>'
        '<tag k="building" v="yes"/></way></osm>'
    )
    with pytest.raises(EmptyGraphError, match=r"no street \(highway=\*\) way in OSM file .*"
                       "buildings.osm"):
        read_osm(buildings, crs=L93)
    corrupt = tmp_path / "corrupt.osm"
    corrupt.write_text("<osm><node id=")
    with pytest.raises(InputFileError, match=r"corrupt\.osm"):
        read_osm(corrupt, crs=L93)
    with pytest.raises(InputFileError, match="does not exist"):
        read_osm(tmp_path / "missing.osm.pbf", crs=L93)


def test_load_streets_dispatches_on_file_type(mirror_settings, pdv_streets):
    osm = network.load_streets(sources.ensure("osm_pont_de_veyle", mirror_settings), crs=L93)
    assert len(osm.ways) == len(pdv_streets.ways)
    roads = network.load_streets(sources.ensure("roads_rouen", mirror_settings), crs=L93)
    assert roads.ways["highway"].isin(["pedestrian", "footway", "residential"]).any()


def test_overpass_reader_wiring(monkeypatch, mirror_settings):
    """read_overpass asks osmnx for every street of the polygon (no live query here)."""
    import osmnx as ox

    seen = {}

    def fake_graph_from_polygon(poly, **kw):
        seen.update(kw, polygon=poly, tags=list(ox.settings.useful_tags_way))
        clean = sources.ensure("osm_redon_complete", mirror_settings)
        return ox.graph_from_xml(clean, simplify=False, retain_all=True)

    def fake_features(poly, tags):
        return gpd.GeoDataFrame({"name": ["Mairie"]},
                                geometry=[shapely.Point(-2.0864, 47.6507)], crs=4326)

    monkeypatch.setattr(ox, "graph_from_polygon", fake_graph_from_polygon)
    monkeypatch.setattr(ox, "features_from_polygon", fake_features)
    area = shapely.Point(318_400, 6_740_100).buffer(3_000)  # Redon, Lambert-93
    streets = network.read_overpass(area, crs=L93)
    assert seen["simplify"] is False and seen["retain_all"] is True
    assert '["highway"]' in seen["custom_filter"]
    assert "oneway:bicycle" in seen["tags"] and "foot" in seen["tags"]
    assert "oneway:bicycle" not in ox.settings.useful_tags_way  # restored afterwards
    assert seen["polygon"].contains(shapely.Point(-2.0864, 47.6507))  # in EPSG:4326
    assert streets.source.startswith("Overpass")
    assert len(streets.townhalls) == 1
    assert build_graph(streets, "walk").n_nodes > 100


# --- mode rules -----------------------------------------------------------------------------


def ways_table(rows):
    frame = pd.DataFrame(rows)
    frame["way_id"] = np.arange(len(frame))
    frame["oneway"] = frame.get("oneway", 0)
    frame["oneway"] = frame["oneway"].fillna(0).astype(np.int8)
    for col in network.WAY_TAGS:
        frame[col] = frame.get(col, pd.Series(pd.NA, index=frame.index)).astype("string")
    frame["bridge"] = frame["tunnel"] = False
    return frame


RULE_CASES = [
    # tags, walk (allowed, forward, backward), bike (allowed, forward, backward)
    ({"highway": "residential"}, (1, 1, 1), (1, 1, 1)),
    ({"highway": "motorway"}, (0, 1, 1), (0, 1, 1)),
    ({"highway": "motorway_link"}, (0, 1, 1), (0, 1, 1)),
    ({"highway": "trunk", "motorroad": "yes"}, (0, 1, 1), (0, 1, 1)),
    ({"highway": "residential", "foot": "no"}, (0, 1, 1), (1, 1, 1)),
    ({"highway": "footway"}, (1, 1, 1), (0, 1, 1)),
    ({"highway": "footway", "bicycle": "yes"}, (1, 1, 1), (1, 1, 1)),
    ({"highway": "steps"}, (1, 1, 1), (0, 1, 1)),
    ({"highway": "pedestrian", "bicycle": "designated"}, (1, 1, 1), (1, 1, 1)),
    ({"highway": "cycleway", "foot": "no"}, (0, 1, 1), (1, 1, 1)),
    ({"highway": "service", "access": "private"}, (0, 1, 1), (0, 1, 1)),
    ({"highway": "track", "access": "no", "foot": "yes"}, (1, 1, 1), (0, 1, 1)),
    ({"highway": "residential", "bicycle": "no"}, (1, 1, 1), (0, 1, 1)),
    ({"highway": "pedestrian", "area": "yes"}, (0, 1, 1), (0, 1, 1)),
    ({"highway": "proposed"}, (0, 1, 1), (0, 1, 1)),
    ({"highway": "residential", "oneway": 1}, (1, 1, 1), (1, 1, 0)),
    ({"highway": "residential", "oneway": -1}, (1, 1, 1), (1, 0, 1)),
    ({"highway": "residential", "oneway": 1, "oneway_bicycle": "no"}, (1, 1, 1), (1, 1, 1)),
    ({"highway": "residential", "oneway": 1, "cycleway": "opposite_lane"}, (1, 1, 1),
     (1, 1, 1)),
    ({"highway": "residential", "oneway": 1, "cycleway": "no;opposite_track"}, (1, 1, 1),
     (1, 1, 1)),
    ({"highway": "residential", "oneway_bicycle": "yes"}, (1, 1, 1), (1, 1, 0)),
]


@pytest.mark.parametrize(("tags", "walk", "bike"), RULE_CASES)
def test_mode_rules(tags, walk, bike):
    ways = ways_table([tags])
    for mode, expected in (("walk", walk), ("bike", bike)):
        got = mode_rules(ways, mode).iloc[0]
        if expected[0]:
            assert (got["allowed"], got["forward"], got["backward"]) == tuple(
                map(bool, expected)), (mode, tags)
        else:
            assert not got["allowed"], (mode, tags)


def test_osm_oneway_tags_read_like_osmnx():
    values = pd.Series(["yes", "-1", "no", None, "reverse", "true", "1", "T", "F", "no"])
    junction = pd.Series([None] * 9 + ["roundabout"])
    assert network._oneway_code(values, junction).tolist() == [1, -1, 0, 0, -1, 1, 1, -1, 1, 1]


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown travel mode 'car'"):
        mode_rules(ways_table([{"highway": "residential"}]), "car")


# --- travel times -------------------------------------------------------------------------------


def test_tobler_walking_speeds():
    assert network.tobler_speed_kmh(0.0, 4.5) == pytest.approx(4.5)
    s = np.linspace(-0.4, 0.4, 801)
    v = network.tobler_speed_kmh(s, 4.5)
    assert s[np.argmax(v)] == pytest.approx(-0.05)  # fastest on a gentle descent
    # Tobler's published values, rescaled from 6 km/h (5.04 km/h on the flat)
    assert network.tobler_speed_kmh(0.1, 4.5) == pytest.approx(
        6 * np.exp(-3.5 * 0.15) * 4.5 / (6 * np.exp(-0.175)))
    np.testing.assert_allclose(network.tobler_speed_kmh(-0.05 + 0.1, 4.5),
                               network.tobler_speed_kmh(-0.05 - 0.1, 4.5))


def test_cycling_speed_model():
    v = lambda s: float(network.bike_speed_kmh(s, 15.0, walk_kmh=4.5))  # noqa: E731
    assert v(0.0) == pytest.approx(15.0, rel=1e-6)
    assert v(0.01) == pytest.approx(15.0)  # a gentle climb: more effort, same speed
    assert 6 < v(0.06) < 10  # 120 W up 6 %
    assert v(0.03) > v(0.06) > v(0.10)
    assert v(-0.02) > 15.0
    assert v(-0.2) == pytest.approx(network.BIKE_MAX_KMH)
    # on very steep climbs the cyclist pushes the bike at walking speed
    assert v(0.3) == pytest.approx(float(network.tobler_speed_kmh(0.3, 4.5)))
    assert v(0.15) == pytest.approx(float(network.tobler_speed_kmh(0.15, 4.5)))
    speeds = network.bike_speed_kmh(np.linspace(0, 0.5, 200), 15.0)
    assert (np.diff(speeds) <= 1e-9).all()  # never faster when steeper


def test_flat_times_follow_settings(pdv_streets, mirror_settings):
    g = build_graph(pdv_streets, "walk", settings=mirror_settings)
    np.testing.assert_allclose(g.link_fwd_s, g.link_length_m / (4.5 / 3.6))
    fast = build_graph(pdv_streets, "bike", settings=mirror_settings.replace(bike_speed_kmh=20))
    np.testing.assert_allclose(fast.link_fwd_s, fast.link_length_m / (20 / 3.6))


@pytest.fixture(scope="module")
def cahors_slope(mirror_settings):
    """A street climbing from the Lot valley at Cahors to the causse (real relief), as
    road lines, with the 30 m SRTM DEM of the mirror and its 100 m Lambert-93 version."""
    import rasterio

    dem100 = sources.ensure("dem_cahors_100m", mirror_settings)
    with rasterio.open(dem100) as src:
        z = src.read(1).astype(float)
        if src.nodata is not None:
            z[z == src.nodata] = np.nan
        rows, cols = np.indices(z.shape)
        inner = (rows > 25) & (rows < z.shape[0] - 25) & (cols > 25) & (cols < z.shape[1] - 25)
        low = np.where(inner & np.isfinite(z), z, np.inf)
        r0, c0 = np.unravel_index(np.argmin(low), z.shape)
        near = np.hypot(rows - r0, cols - c0) <= 20  # 2 km on the 100 m grid
        high = np.where(near & np.isfinite(z), z, -np.inf)
        r1, c1 = np.unravel_index(np.argmax(high), z.shape)
        x0, y0 = src.xy(r0, c0)
        best = (z[r1, c1], *src.xy(r1, c1))
        rise = float(z[r1, c1] - z[r0, c0])
    line = lines_gdf([[(x0, y0), (best[1], best[2])]])
    return {"lines": line, "dem30": sources.ensure("dem_cahors_30m", mirror_settings),
            "dem100": dem100, "rise": rise}


def test_dem_times_are_direction_dependent(cahors_slope, mirror_settings):
    streets = read_road_lines(cahors_slope["lines"], crs=L93)
    assert cahors_slope["rise"] > 100  # the valley is deep
    for mode in network.MODES:
        flat = build_graph(streets, mode, settings=mirror_settings)
        hilly = build_graph(streets, mode, dem=cahors_slope["dem30"], settings=mirror_settings)
        up, down = hilly.link_fwd_s[0], hilly.link_bwd_s[0]
        assert up > 1.2 * flat.link_fwd_s[0]
        assert up > 1.2 * down  # climbing is slower than descending
        # independent estimate: bilinear elevations every 30 m, same speed model
        expected = _profile_times(cahors_slope["lines"].geometry.iloc[0],
                                  cahors_slope["dem30"], mode)
        assert up == pytest.approx(expected[0], rel=0.1)
        assert down == pytest.approx(expected[1], rel=0.1)
        assert hilly.dem == str(cahors_slope["dem30"])
        # the 100 m Lambert-93 DEM gives about the same times
        coarse = build_graph(streets, mode, dem=cahors_slope["dem100"],
                             settings=mirror_settings)
        assert coarse.link_fwd_s[0] == pytest.approx(up, rel=0.15)
        assert coarse.link_bwd_s[0] == pytest.approx(down, rel=0.15)


def _profile_times(line, dem_path, mode):
    import rasterio
    from pyproj import Transformer

    n = int(line.length // 30) + 1
    pts = [line.interpolate(d) for d in np.linspace(0, line.length, n + 1)]
    lon, lat = Transformer.from_crs(L93, 4326, always_xy=True).transform(
        [p.x for p in pts], [p.y for p in pts])
    from scipy.interpolate import RegularGridInterpolator

    with rasterio.open(dem_path) as src:
        grid = src.read(1).astype(float)
        t = src.transform  # north-up: pixel centres along each axis
        xs = t.c + t.a * (np.arange(src.width) + 0.5)
        ys = t.f + t.e * (np.arange(src.height) + 0.5)
    interp = RegularGridInterpolator((ys[::-1], xs), grid[::-1], method="linear")
    z = interp(np.column_stack([lat, lon]))
    piece = line.length / n
    slope = np.diff(z) / piece
    speed = network.tobler_speed_kmh if mode == "walk" else network.bike_speed_kmh
    flat = 4.5 if mode == "walk" else 15.0
    return ((piece / (speed(slope, flat) / 3.6)).sum(),
            (piece / (speed(-slope, flat) / 3.6)).sum())


def test_bridges_are_timed_flat_with_a_dem(cahors_slope, mirror_settings):
    line = cahors_slope["lines"].assign(bridge=["T"])
    g = build_graph(read_road_lines(line, crs=L93), "walk", dem=cahors_slope["dem30"],
                    settings=mirror_settings)
    assert g.link_fwd_s[0] == pytest.approx(g.link_length_m[0] / 1.25)


def test_dem_that_does_not_cover_the_graph(pdv_streets, cahors_slope):
    with pytest.raises(InputFileError, match="does not cover the street graph"):
        build_graph(pdv_streets, "walk", dem=cahors_slope["dem30"])


def test_street_make_rules(mirror_settings):
    rules = streets.street_make_rules(mirror_settings)
    assert "STREETS_01306 := $(RAW_osm_pont_de_veyle)\n" in rules
    assert "STREETS_04088 := $(RAW_roads_04)\n" in rules  # département archive first
    assert "STREETS_05179 := $(RAW_roads_05)\n" in rules  # every commune of an archive
    assert "STREETS_05046" not in rules  # a commune the archive has no file for
    assert "STREETS_46042" not in rules  # Cahors: DEM, no streets
    assert streets.street_dataset("46042", mirror_settings) is None
