"""Access engine: nearest-facility times against networkx on real graphs, snapping,
one-way and contraflow, cumulative counts, times_within, isochrones, the town run."""

from __future__ import annotations

import itertools

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.strategies import composite as st_composite

from geo import access, network, sources
from geo._io import read_parquet_metadata
from geo.cli import main
from geo.errors import DataSourceError
from geo.network import build_graph, read_road_lines

L93 = "EPSG:2154"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pdv_facilities(mirror_settings):
    """Facilities of the Pont-de-Veyle OSM extract (geo.facilities), Lambert-93."""
    from geo import facilities

    fac = facilities.read_osm_pois(sources.ensure("osm_pont_de_veyle", mirror_settings),
                                   crs=L93, settings=mirror_settings)
    assert len(fac) >= 20
    return fac


def synthetic_facilities(graph, n, seed):
    """Points scattered around the graph's nodes (some far from any street)."""
    rng = np.random.default_rng(seed)
    centre = graph.node_xy[rng.integers(0, graph.n_nodes, n)]
    xy = centre + rng.normal(0, 120, (n, 2))
    cats = np.array(access.CATEGORIES)[rng.integers(0, 3, n)]
    return gpd.GeoDataFrame({"category": cats, "subcategory": "x"},
                            geometry=shapely.points(xy), crs=graph.crs)


def reference_times(graph, snap, mask):
    """Minutes from every node to the nearest facility by networkx: each facility becomes
    a node splitting its link (an independent construction from the access engine)."""
    g = nx.DiGraph()
    g.add_nodes_from(range(graph.n_nodes))
    for i in range(graph.n_links):
        u, v = int(graph.link_u[i]), int(graph.link_v[i])
        for a, b, t, ok in ((u, v, graph.link_fwd_s[i], graph.link_forward[i]),
                            (v, u, graph.link_bwd_s[i], graph.link_backward[i])):
            if ok and a != b and (not g.has_edge(a, b) or g[a][b]["w"] > t):
                g.add_edge(a, b, w=float(t))
    sources_ = []
    for f in np.flatnonzero(mask & snap["snapped"].to_numpy()):
        row = snap.iloc[f]
        link = int(row["link"])
        node = ("facility", int(f))
        sources_.append(node)
        for end, t in ((graph.link_u[link], row["to_from_u_s"]),
                       (graph.link_v[link], row["to_from_v_s"])):  # u == v on loops
            if np.isfinite(t) and (not g.has_edge(int(end), node) or g[end][node]["w"] > t):
                g.add_edge(int(end), node, w=float(t))
    if not sources_:
        return np.full(graph.n_nodes, np.nan)
    dist = nx.multi_source_dijkstra_path_length(g.reverse(copy=False), sources_, weight="w")
    return np.array([dist.get(i, np.nan) for i in range(graph.n_nodes)]) / 60.0


def line_streets(coords_list, **cols):
    n = len(coords_list)
    data = {"osm_id": np.arange(1, n + 1), "fclass": ["residential"] * n, "oneway": ["B"] * n}
    data.update(cols)
    return read_road_lines(gpd.GeoDataFrame(
        data, geometry=[shapely.LineString(c) for c in coords_list], crs=L93), crs=L93)


# --- nearest-facility times ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["walk", "bike"])
def test_nearest_times_equal_networkx_pont_de_veyle(pdv_streets, pdv_facilities, mode):
    graph = build_graph(pdv_streets, mode)
    targets = access.targets_from_facilities(pdv_facilities)
    snap = access.snap_points(graph, pdv_facilities)
    got = access.nearest_times(graph, pdv_facilities, targets, snap=snap)
    compared = 0
    for name, mask in targets.items():
        ref = reference_times(graph, snap, mask)
        np.testing.assert_allclose(got[name].to_numpy() * 60, ref * 60, atol=1e-6, rtol=0)
        compared += int(np.isfinite(ref).sum())
    assert compared > 5 * graph.n_nodes


@pytest.mark.parametrize("mode", ["walk", "bike"])
def test_nearest_times_equal_networkx_saint_germain(sgl_streets, mode):
    graph = build_graph(sgl_streets, mode)
    fac = synthetic_facilities(graph, 300, seed=3)
    targets = access.targets_from_facilities(fac)
    snap = access.snap_points(graph, fac)
    got = access.nearest_times(graph, fac, targets, snap=snap)
    for name in ("sante", "commerces", "culture"):
        ref = reference_times(graph, snap, targets[name])
        assert np.isfinite(ref).mean() > 0.9
        np.testing.assert_allclose(got[name].to_numpy() * 60, ref * 60, atol=1e-6, rtol=0)


def test_simplified_graph_gives_the_same_times(pdv_streets, pdv_facilities):
    for mode in network.MODES:
        simple = build_graph(pdv_streets, mode)
        full = build_graph(pdv_streets, mode, simplify=False)
        a = access.nearest_times(simple, pdv_facilities)["all"]
        b = access.nearest_times(full, pdv_facilities)["all"]
        b = pd.Series(b.to_numpy(), index=full.node_id)
        np.testing.assert_allclose(a.to_numpy(), b.loc[simple.node_id].to_numpy(),
                                   atol=1e-8, rtol=0)


def test_snapping_in_the_middle_of_an_edge():
    streets = line_streets([[(0, 0), (100, 0)], [(100, 0), (100, 100)], [(100, 0), (200, 0)]])
    graph = build_graph(streets, "walk")
    fac = gpd.GeoDataFrame({"category": ["sante"], "subcategory": ["pharmacie"]},
                           geometry=[shapely.Point(30, 12)], crs=L93)
    snap = access.snap_points(graph, fac)
    row = snap.iloc[0]
    assert row["snapped"] and row["snap_distance_m"] == pytest.approx(12)
    assert (row["x"], row["y"]) == pytest.approx((30, 0))
    times = access.nearest_times(graph, fac)["all"]
    speed = 4.5 / 3.6
    by_xy = {tuple(xy): t for xy, t in zip(graph.node_xy.tolist(), times, strict=True)}
    assert by_xy[(0.0, 0.0)] * 60 == pytest.approx(30 / speed)  # partial edge, not 0 or 100 m
    assert by_xy[(100.0, 0.0)] * 60 == pytest.approx(70 / speed)
    assert by_xy[(100.0, 100.0)] * 60 == pytest.approx(170 / speed)


def test_far_facilities_are_reported_and_left_out(caplog, mirror_settings):
    graph = build_graph(line_streets([[(0, 0), (1000, 0)]]), "walk")
    fac = gpd.GeoDataFrame({"category": ["sante", "sante"], "subcategory": ["x", "x"]},
                           geometry=[shapely.Point(500, 299), shapely.Point(500, 301)],
                           crs=L93)
    result = access.node_access(graph, fac, settings=mirror_settings)
    assert result.snap["snapped"].tolist() == [True, False]
    assert "1 of 2 facilities are more than 300 m from the walk graph" in caplog.text
    assert result.nodes["sante_count_20min"].max() == 1
    tight = access.snap_points(graph, fac, max_distance_m=100)
    assert not tight["snapped"].any()


def test_one_way_and_contraflow_streets():
    # a square block; the south side A->B is one-way eastwards
    a, b, c, d = (0, 0), (100, 0), (100, 100), (0, 100)
    ring = [[a, b], [b, c], [c, d], [d, a]]
    fac = gpd.GeoDataFrame({"category": ["commerces"], "subcategory": ["boulangerie"]},
                           geometry=[shapely.Point(0, -5)], crs=L93)  # at A
    speed = 15 / 3.6
    for extra, shortcut in (({}, False), ({"oneway_bicycle": "no"}, True),
                            ({"cycleway": "opposite_lane"}, True)):
        ways = line_streets(ring, oneway=["F", "B", "B", "B"])
        for key, value in extra.items():
            ways.ways[key] = pd.array([value, None, None, None], dtype="string")
        bike = build_graph(ways, "bike", simplify=False)
        walk = build_graph(ways, "walk", simplify=False)
        t_bike = dict(zip(map(tuple, bike.node_xy.tolist()),
                          access.nearest_times(bike, fac)["all"] * 60, strict=True))
        t_walk = dict(zip(map(tuple, walk.node_xy.tolist()),
                          access.nearest_times(walk, fac)["all"] * 60, strict=True))
        expected = 100 / speed if shortcut else 300 / speed  # B->A direct, or round
        assert t_bike[(100.0, 0.0)] == pytest.approx(expected), extra
        assert t_walk[(100.0, 0.0)] == pytest.approx(100 / (4.5 / 3.6))  # walkers ignore it
    # the times_within directions on the one-way street
    ways = line_streets([[a, b]], oneway=["F"])
    graph = build_graph(ways, "bike")
    pts = np.array([[50.0, 0.0]])
    to = access.times_within(graph, pts, 10, direction="to")
    frm = access.times_within(graph, pts, 10, direction="from")
    assert graph.node_xy[to["node"]].tolist() == [[0.0, 0.0]]  # only A reaches the point
    assert graph.node_xy[frm["node"]].tolist() == [[100.0, 0.0]]  # the point reaches B only
    assert to["minutes"].iloc[0] * 60 == pytest.approx(50 / speed)


# --- cumulative counts and times_within ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["walk", "bike"])
def test_cumulative_counts_match_brute_force(pdv_streets, pdv_facilities, mode):
    graph = build_graph(pdv_streets, mode)
    targets = access.targets_from_facilities(pdv_facilities)
    snap = access.snap_points(graph, pdv_facilities)
    counts = access.cumulative_counts(graph, pdv_facilities, targets, snap=snap)
    # brute force: one networkx search per facility
    per_facility = np.stack([reference_times(graph, snap, np.arange(len(snap)) == f)
                             for f in range(len(snap))])  # facilities x nodes, minutes
    for name, mask in targets.items():
        for t in (5, 10, 15, 20):
            reach = per_facility[mask & snap["snapped"].to_numpy()] <= t
            np.testing.assert_array_equal(counts[f"{name}_count_{t}min"], reach.sum(axis=0))
    for name in targets:  # cumulative: never fewer within a longer time
        steps = counts[[f"{name}_count_{t}min" for t in (5, 10, 15, 20)]].to_numpy()
        assert (np.diff(steps, axis=1) >= 0).all()
    assert counts.filter(like="_count_20min").to_numpy().max() >= 3


def test_times_within_agrees_with_nearest_times(pdv_streets, pdv_facilities):
    graph = build_graph(pdv_streets, "walk")
    table = access.times_within(graph, pdv_facilities, 12)
    assert (table["minutes"] <= 12).all()
    assert set(table.columns) == {"point", "node", "node_id", "minutes"}
    nearest = table.groupby("node")["minutes"].min()
    ref = access.nearest_times(graph, pdv_facilities)["all"]
    within = ref[ref <= 12]
    np.testing.assert_allclose(nearest.loc[within.index], within, atol=1e-9)
    assert set(nearest.index) == set(within.index)
    with pytest.raises(ValueError, match="max_minutes"):
        access.times_within(graph, pdv_facilities, 0)


def test_nearest_nodes(pdv_streets):
    graph = build_graph(pdv_streets, "walk")
    node = graph.node_xy[10]
    got = access.nearest_nodes(graph, node + np.array([[3.0, 4.0], [1e5, 0.0]]))
    assert got["node"].tolist()[0] == 10 and got["distance_m"].iloc[0] == pytest.approx(5)
    assert got["node"].iloc[1] == -1 and pd.isna(got["node_id"].iloc[1])
    assert got["node_id"].iloc[0] == graph.node_id[10]


# --- isochrones -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sgl_isochrones(sgl_streets):
    graph = build_graph(sgl_streets, "walk")
    centre = graph.node_xy.mean(axis=0)
    return graph, tuple(centre), access.isochrones(graph, tuple(centre))


def test_isochrones_are_valid_nested_with_holes(sgl_isochrones):
    _, origin, iso = sgl_isochrones
    assert iso.crs == L93
    assert iso["minutes"].tolist() == [5, 10, 15, 20]
    assert iso.is_valid.all() and not iso.is_empty.any()
    geoms = iso.geometry.tolist()
    for small, big in itertools.pairwise(geoms):
        assert small.within(big)
        assert big.area > small.area
    assert any(len(p.interiors) for p in geoms[-1].geoms)  # unreachable blocks are holes
    assert geoms[-1].area < 0.9 * geoms[-1].convex_hull.area  # not a hull
    assert geoms[0].contains(shapely.Point(origin)) or geoms[0].distance(
        shapely.Point(origin)) < 300


def test_isochrones_cover_exactly_the_reachable_streets(sgl_isochrones, mirror_settings):
    graph, origin, iso = sgl_isochrones
    snap = access.snap_points(graph, [shapely.Point(origin)])
    samples = access.reachable_samples(graph, snap, 30 * 60.0, step_m=5)
    pts = shapely.points(samples.xy)
    buffer = mirror_settings.isochrone_buffer_m
    for _, row in iso.iterrows():
        limit = row["minutes"] * 60
        reached = samples.seconds <= limit
        inside = shapely.contains_xy(row.geometry, samples.xy[:, 0], samples.xy[:, 1])
        assert inside[reached].mean() > 0.999
        # street points that take 2 minutes more and are far from every reached point
        tree = shapely.STRtree(pts[reached])
        late = np.flatnonzero(samples.seconds > limit + 120)
        (src, _), dist = tree.query_nearest(pts[late], return_distance=True,
                                            all_matches=False)
        nearest = np.full(late.size, np.inf)
        nearest[src] = dist
        far = nearest > buffer + 15  # the grid cell diagonal is 7 m
        assert far.sum() > 100
        assert not inside[late[far]].any()


def test_isochrone_origin_far_from_streets(sgl_isochrones):
    graph, _, _ = sgl_isochrones
    with pytest.raises(Exception, match="more than 300 m"):
        access.isochrones(graph, (0.0, 0.0))


def test_town_origin_prefers_the_town_hall(pdv_streets, pdv_facilities):
    town = shapely.Point(845_000, 6_575_500).buffer(2000)
    point, kind = access.town_origin("01306", town, townhalls=pdv_streets.townhalls)
    assert kind.startswith("OSM amenity=townhall")
    assert point.equals(pdv_streets.townhalls.geometry.iloc[0])
    fac = pdv_facilities.assign(insee="01306")
    point, kind = access.town_origin("01306", town, facilities=fac)
    assert kind.startswith("facility mairie")
    point, kind = access.town_origin("01306", town)
    assert kind == "commune centroid" and point.distance(town.centroid) < 1e-6


# --- the town run and the CLI --------------------------------------------------------------------


def test_cli_access_pont_de_veyle(tmp_path, mirror_settings, pdv_facilities, capsys):
    fac_path = tmp_path / "facilities.parquet"
    fac = pdv_facilities.copy()
    fac.attrs = {}  # the reader's reports are not JSON
    fac.to_parquet(fac_path)
    out = tmp_path / "out"
    args = ["--mirror", str(mirror_settings.mirror), "--set",
            f"data_dir={mirror_settings.data_dir}", "access", "01306", "--facilities",
            str(fac_path), "--out", str(out)]
    assert main([*args, "--mode", "walk"]) == 0
    assert main([*args, "--mode", "bike"]) == 0
    printed = capsys.readouterr().out
    assert "access_walk_nodes.parquet" in printed and "isochrones.parquet" in printed
    for mode in ("walk", "bike"):
        nodes = gpd.read_parquet(out / f"access_{mode}_nodes.parquet")
        edges = gpd.read_parquet(out / f"access_{mode}_edges.parquet")
        assert nodes.crs == L93 and edges.crs == L93
        for target in (*access.CATEGORIES, "medecin_generaliste", "pharmacie", "boulangerie",
                       "ecole"):
            assert f"{target}_minutes" in nodes and f"{target}_count_15min" in nodes
            assert f"{target}_minutes" in edges
        assert nodes["pharmacie_minutes"].notna().all()
        assert {"u", "v", "length_m", f"{mode}_s", f"{mode}_reverse_s"} <= set(edges.columns)
        snaps = gpd.read_parquet(out / f"access_{mode}_facilities.parquet")
        assert len(snaps) == len(pdv_facilities)
        near = snaps["snapped"]
        assert (snaps.loc[near, "snap_distance_m"] <= 300).all() and near.any()
        assert snaps.loc[near, "u"].isin(nodes["node_id"]).all()
        # the snapped point is on the street, snap_distance_m from the facility
        moved = snaps.loc[near].distance(pdv_facilities.loc[near.to_numpy()].reset_index(
            drop=True).geometry.set_axis(snaps.index[near]))
        np.testing.assert_allclose(moved, snaps.loc[near, "snap_distance_m"], atol=1e-6)
        meta = read_parquet_metadata(out / f"access_{mode}_nodes.parquet")
        assert meta["facilities_left_out"] == int((~near).sum())
        assert meta["vintage"] == "OSM 2022-03-11" and meta["insee"] == "01306"
        assert meta["graph"]["components"] >= 1
        # a street midpoint is never farther from a pharmacy than both its ends
        ends = nodes.set_index("node_id")["pharmacie_minutes"]
        half_fwd = edges[f"{mode}_s"].fillna(np.inf).to_numpy() / 120  # minutes
        half_bwd = edges[f"{mode}_reverse_s"].fillna(np.inf).to_numpy() / 120
        bound = np.minimum(ends.loc[edges["v"]].to_numpy() + half_fwd,
                           ends.loc[edges["u"]].to_numpy() + half_bwd)
        mid = edges["pharmacie_minutes"].fillna(np.inf).to_numpy()
        assert (mid <= bound + 1e-6).all()
        assert np.isfinite(mid).mean() > 0.95
    iso = gpd.read_parquet(out / "isochrones.parquet")
    assert sorted(set(iso["mode"])) == ["bike", "walk"]  # the second run kept the first
    assert (iso.groupby("mode")["minutes"].apply(list) == [[5, 10, 15, 20]] * 2).all()
    assert iso["origin"].str.startswith("OSM amenity=townhall").all()
    bike20 = iso[(iso["mode"] == "bike") & (iso["minutes"] == 20)].area.iloc[0]
    walk20 = iso[(iso["mode"] == "walk") & (iso["minutes"] == 20)].area.iloc[0]
    assert bike20 > walk20


def test_run_town_without_street_source(mirror_settings, pdv_facilities):
    with pytest.raises(DataSourceError, match="no street source for 46042"):
        access.run_town("46042", facilities=pdv_facilities, settings=mirror_settings)


# --- property: any small street grid -----------------------------------------------------------


@st_composite
def street_grids(draw):
    """Random grids of streets (some missing, one-way either way, bent in the middle) and
    facility points around them."""
    k = draw(hst.integers(2, 5))
    rng = np.random.default_rng(draw(hst.integers(0, 2**32 - 1)))
    lines, oneway = [], []
    for i in range(k):
        for j in range(k):
            for di, dj in ((1, 0), (0, 1)):
                if i + di >= k or j + dj >= k or rng.random() < 0.2:
                    continue
                a = (i * 100.0, j * 100.0)
                b = ((i + di) * 100.0, (j + dj) * 100.0)
                mid = ((a[0] + b[0]) / 2 + rng.normal(0, 10), (a[1] + b[1]) / 2 + rng.normal(0, 10))
                lines.append([a, mid, b] if rng.random() < 0.5 else [a, b])
                oneway.append(rng.choice(["B", "B", "F", "T"]))
    if not lines:
        lines, oneway = [[(0.0, 0.0), (100.0, 0.0)]], ["B"]
    n_fac = draw(hst.integers(1, 6))
    fac_xy = rng.uniform(-20, k * 100.0, (n_fac, 2))
    return lines, oneway, fac_xy


@given(street_grids())
@settings(max_examples=40, deadline=None)
def test_nearest_times_equal_networkx_on_random_grids(grid):
    lines, oneway, fac_xy = grid
    streets = line_streets(lines, oneway=oneway)
    n = len(fac_xy)
    fac = gpd.GeoDataFrame({"category": ["sante"] * n, "subcategory": ["x"] * n},
                           geometry=shapely.points(fac_xy), crs=L93)
    for mode in network.MODES:
        for simplify in (True, False):
            graph = build_graph(streets, mode, simplify=simplify)
            snap = access.snap_points(graph, fac)
            got = access.nearest_times(graph, fac, snap=snap)["all"].to_numpy()
            ref = reference_times(graph, snap, np.ones(len(fac), dtype=bool))
            np.testing.assert_allclose(got * 60, ref * 60, atol=1e-6, rtol=0)


def test_graph_rebuilt_from_the_access_files_gives_the_same_times(pdv_streets, pdv_facilities,
                                                                  tmp_path):
    """Later stages rebuild the graph from access_<mode>_{nodes,edges}.parquet."""
    for mode in network.MODES:
        graph = build_graph(pdv_streets, mode)
        graph.nodes_frame().to_parquet(tmp_path / "nodes.parquet")
        graph.edges_frame().to_parquet(tmp_path / "edges.parquet")
        again = network.graph_from_frames(gpd.read_parquet(tmp_path / "nodes.parquet"),
                                          gpd.read_parquet(tmp_path / "edges.parquet"), mode)
        a = access.nearest_times(graph, pdv_facilities)["all"]
        b = access.nearest_times(again, pdv_facilities)["all"]
        np.testing.assert_allclose(a, b, atol=1e-6)
        tw_a = access.times_within(graph, pdv_facilities, 10)
        tw_b = access.times_within(again, pdv_facilities, 10)
        assert len(tw_a) == len(tw_b)
        np.testing.assert_allclose(tw_a["minutes"], tw_b["minutes"], atol=1e-6)


def test_empty_graph_error_names_the_town_and_the_source(tmp_path, mirror_settings,
                                                         pdv_facilities):
    motorway = gpd.GeoDataFrame(
        {"osm_id": [1], "fclass": ["motorway"], "oneway": ["F"]},
        geometry=[shapely.LineString([(845_000, 6_575_000), (846_000, 6_575_500)])],
        crs=L93)
    path = tmp_path / "motorway.geojson"
    motorway.to_file(path)
    from geo.errors import EmptyGraphError

    with pytest.raises(EmptyGraphError, match=r"town 01306: no street usable for walk in "
                                              r".*motorway\.geojson"):
        access.run_town("01306", ("walk",), streets=path, facilities=pdv_facilities,
                        out_dir=tmp_path / "out", settings=mirror_settings)
