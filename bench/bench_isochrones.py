"""Benchmark isochrones against the osmnx example method, with fidelity.

- ``ours``: :func:`geo.access.isochrones` (exact times along every reachable link,
  including the reachable part of partly reached links; grid of 5 m cells, disk filter,
  traced along cell edges), all four thresholds;
- ``osmnx``: the method of the osmnx examples notebook (``make_iso_polys``): for each
  threshold, ``networkx.ego_graph`` from the node nearest the origin with travel times as
  distance, then the union of the buffered nodes and buffered edges of the subgraph
  (``infill=False``), on a MultiDiGraph of the same links with their geometries. Same
  buffer as ours (``settings.isochrone_buffer_m``) for nodes and edges.

Fidelity: both are compared with an exact reference, the union of the reachable parts of
the streets (every link cut at the exact offset where the time runs out, from either end
and around the origin; ``shapely.ops.substring``) buffered by the same distance. Reported:
areas, intersection over union with the reference, and the area difference
(symmetric difference / reference area).

Graphs: Saint-Germain-en-Laye (from its commune centroid) and Pont-de-Veyle (from the OSM
town hall), walking and cycling. Times are CPU seconds of the process
(``time.process_time``; both methods are single-threaded). Results:
``bench/results/isochrones.csv``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from _common import RESULTS_DIR, interleaved, mirror_settings, write_rows
from shapely.geometry import LineString, Point
from shapely.ops import substring

from geo import access, network, sources

RESULTS = RESULTS_DIR / "isochrones.csv"
MINUTES = (5, 10, 15, 20)


def to_osmnx_style(graph: network.StreetGraph) -> nx.MultiDiGraph:
    """The graph's links as an osmnx-like MultiDiGraph (x, y; time_s and geometry)."""
    g = nx.MultiDiGraph()
    for i, (x, y) in enumerate(graph.node_xy.tolist()):
        g.add_node(i, x=x, y=y)
    geoms = graph.geometries
    for i in range(graph.n_links):
        u, v = int(graph.link_u[i]), int(graph.link_v[i])
        if graph.link_forward[i]:
            g.add_edge(u, v, time_s=float(graph.link_fwd_s[i]), geometry=geoms[i])
        if graph.link_backward[i]:
            g.add_edge(v, u, time_s=float(graph.link_bwd_s[i]), geometry=geoms[i].reverse())
    return g


def make_iso_polys(g, center_node, trip_times, node_buff, edge_buff):
    """The osmnx examples' isochrone method (notebook 13, infill=False)."""
    isochrone_polys = []
    for trip_time in sorted(trip_times, reverse=True):
        subgraph = nx.ego_graph(g, center_node, radius=trip_time * 60, distance="time_s")
        node_points = [Point((data["x"], data["y"])) for node, data in subgraph.nodes(data=True)]
        nodes_gdf = gpd.GeoDataFrame({"id": list(subgraph.nodes)}, geometry=node_points)
        nodes_gdf = nodes_gdf.set_index("id")
        edge_lines = []
        for n_fr, n_to in subgraph.edges():
            f = nodes_gdf.loc[n_fr].geometry
            t = nodes_gdf.loc[n_to].geometry
            edge_lookup = g.get_edge_data(n_fr, n_to)[0].get("geometry", LineString([f, t]))
            edge_lines.append(edge_lookup)
        n = nodes_gdf.buffer(node_buff).geometry
        e = gpd.GeoSeries(edge_lines).buffer(edge_buff).geometry
        all_gs = list(n) + list(e)
        new_iso = gpd.GeoSeries(all_gs).union_all()
        isochrone_polys.append(new_iso)
    return isochrone_polys[::-1]


def reference(graph, origin, minutes, buffer_m):
    """Exact reachable street parts within ``minutes``, buffered (the fidelity yardstick)."""
    snap = access.snap_points(graph, [origin])
    anchors = access._anchors_from_snap(snap)
    from scipy.sparse.csgraph import dijkstra

    aug = access._with_sources(graph.matrix, [access._away_groups(graph, anchors)])
    t_node = dijkstra(aug, indices=graph.n_nodes)[: graph.n_nodes]
    o_link, o_off = int(anchors.link[0]), float(anchors.offset_m[0])
    out = []
    for limit in (m * 60.0 for m in minutes):
        pieces = []
        for i in range(graph.n_links):
            sl = slice(graph.vtx_ptr[i], graph.vtx_ptr[i + 1])
            dist, fwd, bwd = graph.vtx_m[sl], graph.vtx_fwd_s[sl], graph.vtx_bwd_s[sl]
            length, geom = graph.link_length_m[i], graph.geometries[i]
            tu, tv = t_node[graph.link_u[i]], t_node[graph.link_v[i]]
            if graph.link_forward[i] and tu <= limit:
                pieces.append(substring(geom, 0, np.interp(limit - tu, fwd, dist)))
            if graph.link_backward[i] and tv <= limit:
                budget = bwd[-1] - (limit - tv)  # reach x with cumbwd(x) >= budget
                pieces.append(substring(geom, np.interp(budget, bwd, dist), length))
            if i == o_link:
                f0 = np.interp(o_off, dist, fwd)
                b0 = np.interp(o_off, dist, bwd)
                if graph.link_forward[i]:
                    pieces.append(substring(geom, o_off, np.interp(f0 + limit, fwd, dist)))
                if graph.link_backward[i]:
                    pieces.append(substring(geom, np.interp(b0 - limit, bwd, dist), o_off))
        out.append(shapely.union_all(shapely.buffer(np.array(pieces, dtype=object),
                                                    buffer_m)))
    return out


def compare(poly, ref) -> tuple[float, float]:
    inter = poly.intersection(ref).area
    union = poly.union(ref).area
    return inter / union, (union - inter) / ref.area


def bench(label, graph, origin, buffer_m, rows):
    center = int(access.nearest_nodes(graph, [origin])["node"].iloc[0])
    t0 = time.process_time()
    g = to_osmnx_style(graph)
    t_build = time.process_time() - t0
    access.isochrones(graph, origin, buffer_m=buffer_m)  # warm imports
    result: dict[str, Any] = {}

    def run_ours() -> None:
        result["ours"] = access.isochrones(graph, origin, buffer_m=buffer_m)

    def run_osmnx() -> None:
        result["osmnx"] = make_iso_polys(g, center, MINUTES, buffer_m, buffer_m)

    best = interleaved({"ours": run_ours, "osmnx": run_osmnx}, rounds=2, inner={"ours": 3})
    t_ours, t_osmnx = best["ours"], best["osmnx"]
    ours, theirs = result["ours"], result["osmnx"]
    refs = reference(graph, origin, MINUTES, buffer_m)
    for k, m in enumerate(MINUTES):
        mine = ours.geometry.iloc[k]
        iou_ours, diff_ours = compare(mine, refs[k])
        iou_osmnx, diff_osmnx = compare(theirs[k], refs[k])
        rows.append({
            "graph": label, "mode": graph.mode, "nodes": graph.n_nodes, "minutes": m,
            "ours_s": t_ours, "osmnx_s": t_osmnx, "speedup": t_osmnx / t_ours,
            "osmnx_graph_build_s": t_build,
            "area_ours_km2": mine.area / 1e6, "area_osmnx_km2": theirs[k].area / 1e6,
            "area_reference_km2": refs[k].area / 1e6,
            "iou_ours": iou_ours, "iou_osmnx": iou_osmnx,
            "area_diff_ours": diff_ours, "area_diff_osmnx": diff_osmnx,
            "holes_ours": sum(len(p.interiors) for p in mine.geoms),
            "valid_ours": bool(mine.is_valid),
        })


def main() -> int:
    rows: list[dict] = []
    with mirror_settings("bench_isochrones") as s:
        if s is None:
            return 0
        buffer_m = s.isochrone_buffer_m
        communes78 = gpd.read_file(Path(s.mirror) / "communes/france-geojson-2018/"
                                   "communes-78-yvelines.geojson")
        sgl_poly = communes78[communes78["code"] == "78551"].to_crs(2154).geometry.iloc[0]
        sgl = network.read_osm(sources.ensure("osm_saint_germain", s), crs="EPSG:2154")
        pdv = network.read_osm(sources.ensure("osm_pont_de_veyle", s), crs="EPSG:2154")
        for label, streets, origin in (
            ("saint-germain-en-laye 78551 (commune centroid)", sgl, sgl_poly.centroid),
            ("pont-de-veyle 01306 (OSM town hall)", pdv, pdv.townhalls.geometry.iloc[0]),
        ):
            for mode in network.MODES:
                bench(label, network.build_graph(streets, mode, settings=s), origin, buffer_m,
                      rows)
    write_rows(RESULTS, rows)
    print(f"{'graph':<48}{'mode':<6}{'min':>4}{'ours s':>8}{'osmnx s':>9}{'x':>6}"
          f"{'IoU ours':>9}{'IoU osmnx':>10}{'diff ours':>10}{'diff osmnx':>11}")
    for r in rows:
        print(f"{r['graph']:<48}{r['mode']:<6}{r['minutes']:>4}{r['ours_s']:>8.3f}"
              f"{r['osmnx_s']:>9.3f}{r['speedup']:>6.1f}{r['iou_ours']:>9.3f}"
              f"{r['iou_osmnx']:>10.3f}{r['area_diff_ours']:>10.1%}"
              f"{r['area_diff_osmnx']:>11.1%}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
