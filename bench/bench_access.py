"""Benchmark the access engine: nearest-facility times for every node, and memory.

Each figure is a ratio to baselines run on the same graph in the same process:

- ``networkx``: ``networkx.multi_source_dijkstra_path_length`` on the same arcs, one run
  per category from a virtual source tied to the facilities' links with the same partial
  times (so both give the same minutes; the largest difference is reported), on a
  MultiDiGraph keeping parallel links (how osmnx represents street graphs) and on a
  DiGraph with the fastest of parallel arcs (networkx's best case);
- ``floor``: a bare ``scipy.sparse.csgraph.dijkstra(..., min_only=True)`` per category on
  the same reversed matrix from the facilities' link ends (no partial times, no
  bookkeeping: the least any csgraph-based engine can do).

Cumulative counts (facilities of each category within 5/10/15/20 minutes of every node)
are compared with a dense reference: csgraph from every facility's link ends with the
same partial link times, a nodes x facilities matrix, then a count per threshold; both
give the same counts (the number of differing cells is reported, and must be ~0).

Graphs: Saint-Germain-en-Laye (OSM XML, the largest OSM graph of the mirror) and the
whole département of Alpes-de-Haute-Provence (198 commune road-line files, duplicates
removed, noded), walking and cycling. Facilities are synthetic (seeded): per category, a
realistic number of points scattered around random nodes (the mirror has no facility
points for these areas). A separate process measures the peak memory of the 04 graph
build and access run.

Times are CPU seconds of the benchmark process (``time.process_time``; every engine
compared is single-threaded), so that other jobs on a shared machine do not skew the
ratios. Real data come from ``GEO_MIRROR`` (default ``../shared/data``); results go to
``bench/results/access.csv`` and ``bench/results/access_memory.csv``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from _common import RESULTS_DIR, ROOT, best_of, interleaved, mirror_settings, write_rows
from scipy.sparse.csgraph import dijkstra

from geo import access, network, sources

RESULTS = RESULTS_DIR / "access.csv"
MEMORY = RESULTS_DIR / "access_memory.csv"

#: Facilities per category per 10,000 street nodes (about a town's mix).
MIX = {"sante": 150, "commerces": 300, "culture": 40, "education": 80, "services": 120,
       "energie": 15}


def synthetic_facilities(graph: network.StreetGraph, seed: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    cats, xy = [], []
    for cat, per_10k in MIX.items():
        n = max(3, int(per_10k * graph.n_nodes / 10_000))
        centre = graph.node_xy[rng.integers(0, graph.n_nodes, n)]
        xy.append(centre + rng.normal(0, 80, (n, 2)))
        cats += [cat] * n
    return gpd.GeoDataFrame({"category": cats, "subcategory": "x"},
                            geometry=shapely.points(np.concatenate(xy)), crs=graph.crs)


def networkx_setup(graph, snap, targets, *, multi: bool):
    """The reversed graph in networkx plus one virtual source per target.

    ``multi``: a MultiDiGraph keeping parallel links, as osmnx builds street graphs;
    else a DiGraph with the fastest of parallel arcs (networkx's best case).
    """
    if multi:
        tail, head, cost = graph.arcs
        g = nx.MultiDiGraph()
        g.add_nodes_from(range(graph.n_nodes))
        g.add_weighted_edges_from(zip(head.tolist(), tail.tolist(), cost.tolist(),
                                      strict=True), weight="time_s")
    else:
        m = graph.matrix_t.tocoo()
        g = nx.DiGraph()
        g.add_nodes_from(range(graph.n_nodes))
        g.add_weighted_edges_from(zip(m.row.tolist(), m.col.tolist(), m.data.tolist(),
                                      strict=True), weight="time_s")
    ok = snap["snapped"].to_numpy(bool)
    heads = {}
    for name, mask in targets.items():
        src = ("source", name)
        sel = snap[mask & ok]
        for end, col in (("u", "to_from_u_s"), ("v", "to_from_v_s")):
            nodes = (graph.link_u if end == "u" else graph.link_v)[sel["link"].to_numpy()]
            for node, t in zip(nodes.tolist(), sel[col].tolist(), strict=True):
                if not np.isfinite(t):
                    continue
                if multi or not g.has_edge(src, node) or g[src][node]["time_s"] > t:
                    g.add_edge(src, node, time_s=t)  # a loop link has u == v
        heads[name] = src
    return g, heads


def floor_sources(graph, snap, targets):
    ok = snap["snapped"].to_numpy(bool)
    out = {}
    for name, mask in targets.items():
        links = snap.loc[mask & ok, "link"].to_numpy()
        out[name] = np.unique(np.r_[graph.link_u[links], graph.link_v[links]])
    return out


def dense_counts(graph, snap, targets, thresholds_min, chunk: int = 200) -> dict:
    """Cumulative counts the plain way: the time from every node to every facility as a
    dense matrix (csgraph from each facility's link ends, plus the partial link times),
    then a count per threshold. Same snapping, so the counts must equal ours."""
    ok = snap["snapped"].to_numpy(bool)
    limit = max(thresholds_min) * 60.0
    mt = graph.matrix_t
    out = {name: np.zeros((graph.n_nodes, len(thresholds_min)), np.int32)
           for name in targets}
    idx = np.flatnonzero(ok)
    for start in range(0, len(idx), chunk):
        rows_ = idx[start:start + chunk]
        links = snap["link"].to_numpy()[rows_]
        u, v = graph.link_u[links], graph.link_v[links]
        d_u = dijkstra(mt, directed=True, indices=u, limit=limit)
        d_v = dijkstra(mt, directed=True, indices=v, limit=limit)
        t = np.minimum(d_u + snap["to_from_u_s"].to_numpy()[rows_, None],
                       d_v + snap["to_from_v_s"].to_numpy()[rows_, None])
        for name, mask in targets.items():
            sel = mask[rows_]
            if not sel.any():
                continue
            for j, m in enumerate(thresholds_min):
                out[name][:, j] += (t[sel] <= m * 60.0).sum(axis=0).astype(np.int32)
    return out


def bench_graph(label: str, graph: network.StreetGraph, rows: list) -> None:
    fac = synthetic_facilities(graph)
    targets = {c: (fac["category"] == c).to_numpy() for c in MIX}
    t_snap = best_of(lambda: access.snap_points(graph, fac))
    snap = access.snap_points(graph, fac)
    result = access.nearest_times(graph, fac, targets, snap=snap)
    heads = floor_sources(graph, snap, targets)
    mt = graph.matrix_t

    def floor_run():
        return [dijkstra(mt, directed=True, indices=idx, min_only=True)
                for idx in heads.values()]

    fns = {"ours": lambda: access.nearest_times(graph, fac, targets, snap=snap),
           "floor": floor_run}
    diff, nx_setup, refs = 0.0, 0.0, []
    for multi in (True, False):
        t0 = time.process_time()
        g, sources_ = networkx_setup(graph, snap, targets, multi=multi)
        nx_setup = max(nx_setup, time.process_time() - t0)
        ref: dict = {}
        refs.append(ref)

        def run_networkx(g=g, sources_=sources_, ref=ref):
            for name, src in sources_.items():
                ref[name] = nx.multi_source_dijkstra_path_length(g, [src], weight="time_s")

        fns["networkx_multi" if multi else "networkx_digraph"] = run_networkx
    best = interleaved(fns, rounds=3 if graph.n_nodes < 20_000 else 2,
                       inner={"ours": 7, "floor": 7})
    for ref in refs:
        for name in targets:
            mine = result[name].to_numpy() * 60
            theirs = np.array([ref[name].get(i, np.nan) for i in range(graph.n_nodes)])
            both = np.isfinite(mine) & np.isfinite(theirs)
            if (np.isfinite(mine) != np.isfinite(theirs)).any():
                raise AssertionError(f"{label}: reachability differs from networkx for {name}")
            diff = max(diff, float(np.abs(mine[both] - theirs[both]).max()))
    refs.clear()
    ours, floor = best["ours"], best["floor"]
    nx_multi, nx_digraph = best["networkx_multi"], best["networkx_digraph"]
    thresholds = (5, 10, 15, 20)
    timed = interleaved({
        "ours": lambda: access.cumulative_counts(graph, fac, targets, snap=snap,
                                                 thresholds_min=thresholds),
        "dense": lambda: dense_counts(graph, snap, targets, thresholds),
    }, rounds=3 if graph.n_nodes < 20_000 else 1)
    ours_counts = access.cumulative_counts(graph, fac, targets, snap=snap,
                                           thresholds_min=thresholds)
    ref_counts = dense_counts(graph, snap, targets, thresholds)
    cells = differ = 0
    for name in targets:
        for j, m in enumerate(thresholds):
            mine = ours_counts[f"{name}_count_{m}min"].to_numpy()
            cells += mine.size
            differ += int((mine != ref_counts[name][:, j]).sum())
    if differ > cells * 1e-4:  # float ties at a threshold may round either way
        raise AssertionError(f"{label}: cumulative counts differ from the dense reference "
                             f"in {differ} of {cells} cells")
    rows.append({
        "graph": label, "mode": graph.mode, "nodes": graph.n_nodes, "links": graph.n_links,
        "arcs": int(graph.matrix.nnz), "facilities": len(fac),
        "facilities_snapped": int(snap["snapped"].sum()), "categories": len(targets),
        "ours_s": ours, "floor_s": floor, "networkx_s": nx_multi,
        "networkx_digraph_s": nx_digraph,
        "speedup_vs_networkx": nx_multi / ours,
        "speedup_vs_networkx_digraph": nx_digraph / ours,
        "ratio_to_floor": ours / floor,
        "floor_speedup_vs_networkx_digraph": nx_digraph / floor,
        "max_abs_diff_s": diff, "snap_s": t_snap, "networkx_setup_s": nx_setup,
        "cumulative_counts_s": timed["ours"], "counts_dense_reference_s": timed["dense"],
        "counts_speedup_vs_dense": timed["dense"] / timed["ours"],
        "counts_cells_differing": differ, "counts_cells": cells,
    })


MEMORY_SCRIPT = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from geo import access, network

def peak_mb():
    # VmHWM: peak RSS of this address space (ru_maxrss would include the parent's peak
    # before exec on Linux)
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

before = peak_mb()
t0 = time.process_time()
streets = network.read_road_lines({path!r}, crs="EPSG:2154")
out = {{"rss_after_imports_mb": before}}
for mode in ("walk", "bike"):
    graph = network.build_graph(streets, mode)
    import numpy as np, geopandas as gpd, shapely
    rng = np.random.default_rng(0)
    xy = graph.node_xy[rng.integers(0, graph.n_nodes, 2000)] + rng.normal(0, 80, (2000, 2))
    cats = np.array(list(access.CATEGORIES))[rng.integers(0, 6, 2000)]
    fac = gpd.GeoDataFrame({{"category": cats, "subcategory": "x"}},
                           geometry=shapely.points(xy), crs=graph.crs)
    result = access.node_access(graph, fac)
    out[mode + "_nodes"] = graph.n_nodes
out["cpu_seconds"] = time.process_time() - t0
out["peak_rss_mb"] = peak_mb()
print(json.dumps(out))
"""


def measure_memory(path: Path) -> dict:
    """Peak RSS of a fresh process reading the 04 lines, building both graphs and running
    nearest times and cumulative counts for 2,000 facilities on each."""
    script = MEMORY_SCRIPT.format(root=str(ROOT), path=str(path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    rows: list[dict] = []
    with mirror_settings("bench_access") as s:
        if s is None:
            return 0
        sgl = network.read_osm(sources.ensure("osm_saint_germain", s), crs="EPSG:2154")
        for mode in network.MODES:
            bench_graph("saint-germain-en-laye 78551 (OSM XML)", network.build_graph(sgl, mode),
                        rows)
        roads04 = sources.ensure("roads_04", s)
        t0 = time.process_time()
        d04 = network.read_road_lines(roads04, crs="EPSG:2154")
        read_s = time.process_time() - t0
        for mode in network.MODES:
            t0 = time.process_time()
            graph = network.build_graph(d04, mode)
            build_s = time.process_time() - t0
            bench_graph("departement 04 (road lines)", graph, rows)
            rows[-1]["read_s"] = read_s
            rows[-1]["build_s"] = build_s
        memory = measure_memory(roads04)
    write_rows(RESULTS, rows)
    write_rows(MEMORY, [{"run": "departement 04: read, build walk + bike, node_access 2000 "
                                "facilities", **memory}])

    print(f"{'graph':<40}{'mode':<6}{'nodes':>8}{'ours s':>9}{'floor s':>9}{'nx s':>9}"
          f"{'nx di s':>9}{'x nx':>7}{'x nxdi':>7}{'/floor':>7}{'diff s':>9}")
    for r in rows:
        print(f"{r['graph']:<40}{r['mode']:<6}{r['nodes']:>8}{r['ours_s']:>9.4f}"
              f"{r['floor_s']:>9.4f}{r['networkx_s']:>9.3f}{r['networkx_digraph_s']:>9.3f}"
              f"{r['speedup_vs_networkx']:>7.1f}{r['speedup_vs_networkx_digraph']:>7.1f}"
              f"{r['ratio_to_floor']:>7.2f}{r['max_abs_diff_s']:>9.1e}")
    for r in rows:
        print(f"{r['graph']:<40}{r['mode']:<6} cumulative counts {r['cumulative_counts_s']:.3f} s"
              f", dense reference {r['counts_dense_reference_s']:.3f} s "
              f"(x{r['counts_speedup_vs_dense']:.1f}), {r['counts_cells_differing']} of "
              f"{r['counts_cells']} cells differ")
    print(f"04 build and access: peak RSS {memory['peak_rss_mb']:.0f} MB "
          f"({memory['rss_after_imports_mb']:.0f} MB after imports), "
          f"{memory['cpu_seconds']:.1f} CPU s")
    print(f"wrote {RESULTS} and {MEMORY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
