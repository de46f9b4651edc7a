"""The street graph of one travel mode (:class:`StreetGraph`): built from
:class:`~geo.network.ways.Streets` (mode rules, largest connected component, segment
times, chains of degree-2 vertices contracted into links) or read back from its node and
edge frames.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from geo.errors import EmptyGraphError, InputFileError, MissingColumnsError
from geo.network.rules import mode_rules
from geo.network.speeds import Dem, segment_times
from geo.network.ways import Streets, _check_metric, _subset
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.network: log lines keep their logger name


# --- the graph ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StreetGraph:
    """A street graph for one travel mode, in a metric CRS, with times in seconds.

    Nodes are intersections and dead ends; a link is the street piece between two nodes
    (a chain of straight segments, like osmnx's simplified edges). A link may be
    travelled from ``u`` to ``v`` (``link_forward``), from ``v`` to ``u``
    (``link_backward``) or both; times may differ by direction (slopes).

    Vertex arrays describe every link's polyline: vertices ``vtx_ptr[i]:vtx_ptr[i+1]``
    belong to link ``i``, from ``u`` to ``v``, with the cumulative distance from ``u``
    (``vtx_m``), the time to get there from ``u`` (``vtx_fwd_s``) and the time to get
    back from there to ``u`` (``vtx_bwd_s``), so a point anywhere on a link has exact
    partial times.
    """

    mode: str
    crs: str
    speed_kmh: float
    node_id: np.ndarray
    node_xy: np.ndarray
    link_u: np.ndarray
    link_v: np.ndarray
    link_forward: np.ndarray
    link_backward: np.ndarray
    link_length_m: np.ndarray
    link_fwd_s: np.ndarray
    link_bwd_s: np.ndarray
    links: pd.DataFrame
    vtx_ptr: np.ndarray
    vtx_xy: np.ndarray
    vtx_m: np.ndarray
    vtx_fwd_s: np.ndarray
    vtx_bwd_s: np.ndarray
    source: str = ""
    vintage: str = ""
    dem: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.node_id.size)

    @property
    def n_links(self) -> int:
        """Number of links (undirected street pieces)."""
        return int(self.link_u.size)

    @functools.cached_property
    def vtx_link(self) -> np.ndarray:
        """Link of each vertex."""
        return np.repeat(np.arange(self.n_links), np.diff(self.vtx_ptr))

    @functools.cached_property
    def geometries(self) -> np.ndarray:
        """Link polylines (shapely LineStrings, u to v)."""
        return shapely.linestrings(self.vtx_xy, indices=self.vtx_link)

    @functools.cached_property
    def tree(self) -> shapely.STRtree:
        """Spatial index of the link polylines."""
        return shapely.STRtree(self.geometries)

    @functools.cached_property
    def node_tree(self) -> cKDTree:
        """Spatial index of the nodes (for the nearest node of a point)."""
        return cKDTree(self.node_xy)

    @functools.cached_property
    def vtx_key(self) -> np.ndarray:
        """Position (m) of every vertex with the links laid end to end, 1 m apart: it
        increases over all vertices, and a point ``offset`` metres along link ``i`` is at
        ``vtx_key[vtx_ptr[i]] + offset`` (where ``searchsorted`` finds its segment)."""
        start = np.r_[0.0, np.cumsum(self.link_length_m + 1.0)][:-1]
        return self.vtx_m + start[self.vtx_link]

    @functools.cached_property
    def arcs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Directed arcs (tail, head, seconds) of every allowed link direction, self-loops
        excluded, parallel arcs kept."""
        loop = self.link_u == self.link_v
        fwd = self.link_forward & ~loop
        bwd = self.link_backward & ~loop
        tail = np.concatenate([self.link_u[fwd], self.link_v[bwd]])
        head = np.concatenate([self.link_v[fwd], self.link_u[bwd]])
        cost = np.concatenate([self.link_fwd_s[fwd], self.link_bwd_s[bwd]])
        return tail, head, cost

    @functools.cached_property
    def matrix(self) -> sparse.csr_array:
        """Directed adjacency matrix, travel times in seconds (the fastest of parallel
        links); explicit zeros are zero-time arcs."""
        return _min_csr(*self.arcs, self.n_nodes)

    @functools.cached_property
    def matrix_t(self) -> sparse.csr_array:
        """Transpose of :attr:`matrix` (searches towards a target), as CSR."""
        tail, head, cost = self.arcs
        return _min_csr(head, tail, cost, self.n_nodes)

    def nodes_frame(self) -> gpd.GeoDataFrame:
        """Nodes as points: ``node_id``, geometry."""
        return gpd.GeoDataFrame({"node_id": self.node_id},
                                geometry=shapely.points(self.node_xy), crs=self.crs)

    def edges_frame(self) -> gpd.GeoDataFrame:
        """Links as lines: ``u``, ``v`` (node ids), way attributes, ``length_m``,
        ``<mode>_s`` (u to v) and ``<mode>_reverse_s`` (v to u; NaN where not allowed)."""
        t = f"{self.mode}_s"
        frame = pd.DataFrame({
            "u": self.node_id[self.link_u], "v": self.node_id[self.link_v],
            "way_id": self.links["way_id"].to_numpy(),
            "highway": self.links["highway"].to_numpy(),
            "name": self.links["name"].to_numpy(),
            "length_m": self.link_length_m,
            t: np.where(self.link_forward, self.link_fwd_s, np.nan),
            f"{self.mode}_reverse_s": np.where(self.link_backward, self.link_bwd_s, np.nan),
            "oneway": self.link_forward != self.link_backward,
        })
        return gpd.GeoDataFrame(frame, geometry=self.geometries, crs=self.crs)

    def summary(self) -> str:
        """One line: nodes, links, length and what was dropped."""
        r = self.report
        return (
            f"{self.mode} graph: {self.n_nodes:,} nodes, {self.n_links:,} links, "
            f"{self.link_length_m.sum() / 1000:,.1f} km of streets; "
            f"{r.get('components', '?')} connected component(s), kept the largest, "
            f"dropped {r.get('dropped_nodes', 0):,} vertices in the others"
        )


def graph_from_frames(
    nodes: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, mode: str, *,
    settings: Settings | None = None,
) -> StreetGraph:
    """Rebuild a :class:`StreetGraph` from what the access stage wrote
    (``access_<mode>_nodes.parquet`` and ``access_<mode>_edges.parquet``), so later stages
    (H3 aggregation, E2SFCA) search the same graph without re-reading the streets.

    Link times are exact; times to points inside a link are interpolated along its
    length (exact on flat links, an approximation of the slope profile otherwise).

    Parameters
    ----------
    nodes
        ``node_id`` and point geometries.
    edges
        ``u``, ``v`` (node ids), ``length_m``, ``<mode>_s`` (u to v) and
        ``<mode>_reverse_s`` (v to u; NaN where not allowed), LineStrings from u to v.
    """
    s = settings or get_settings()
    speed = s.speed_kmh(mode)
    t_fwd, t_bwd = f"{mode}_s", f"{mode}_reverse_s"
    for name, frame, cols in (("access nodes", nodes, ["node_id"]),
                              ("access edges", edges, ["u", "v", "length_m", t_fwd, t_bwd])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise MissingColumnsError(name, missing, list(frame.columns))
        if frame.crs is None:
            raise InputFileError(f"{name} have no CRS")
    if len(edges) == 0:
        raise EmptyGraphError(f"the {mode} graph has no link")
    crs = _check_metric(nodes.crs.to_string())
    edges = edges.to_crs(nodes.crs)
    node_id = nodes["node_id"].to_numpy()
    index = pd.Index(node_id)
    u = index.get_indexer(edges["u"].to_numpy())
    v = index.get_indexer(edges["v"].to_numpy())
    if (u < 0).any() or (v < 0).any():
        raise InputFileError(f"{int((u < 0).sum() + (v < 0).sum())} {mode} link end(s) "
                             "are not in the node table")
    coords, which = shapely.get_coordinates(edges.geometry.values, return_index=True)
    counts = np.bincount(which, minlength=len(edges))
    vtx_ptr = np.r_[0, np.cumsum(counts)]
    step = np.r_[0.0, np.hypot(*np.diff(coords, axis=0).T)]
    step[vtx_ptr[:-1]] = 0.0  # first vertex of each link
    cum = np.cumsum(step)
    vtx_m = cum - np.repeat(cum[vtx_ptr[:-1]], counts)
    geom_len = vtx_m[vtx_ptr[1:] - 1]
    length = edges["length_m"].to_numpy(float)
    fwd = edges[t_fwd].to_numpy(float)
    bwd = edges[t_bwd].to_numpy(float)
    flat = length / (speed / 3.6)
    link_fwd = np.where(np.isfinite(fwd), fwd, flat)
    link_bwd = np.where(np.isfinite(bwd), bwd, flat)
    frac = np.divide(vtx_m, np.repeat(np.where(geom_len > 0, geom_len, 1.0), counts))
    vtx_fwd = frac * np.repeat(link_fwd, counts)
    # time back to u from a vertex: the v->u time of the part between u and the vertex
    vtx_bwd = frac * np.repeat(link_bwd, counts)
    links = pd.DataFrame({
        "way_id": edges["way_id"].to_numpy() if "way_id" in edges else pd.NA,
        "highway": edges["highway"].to_numpy() if "highway" in edges else pd.NA,
        "name": edges["name"].to_numpy() if "name" in edges else pd.NA,
        "segments": np.maximum(counts - 1, 1).astype(np.int64),
    })
    return StreetGraph(
        mode=mode, crs=crs, speed_kmh=speed, node_id=node_id,
        node_xy=shapely.get_coordinates(nodes.geometry.values),
        link_u=u.astype(np.int64), link_v=v.astype(np.int64),
        link_forward=np.isfinite(fwd), link_backward=np.isfinite(bwd),
        link_length_m=length, link_fwd_s=link_fwd, link_bwd_s=link_bwd, links=links,
        vtx_ptr=vtx_ptr, vtx_xy=coords, vtx_m=vtx_m * np.repeat(
            np.divide(length, geom_len, out=np.ones_like(length), where=geom_len > 0), counts),
        vtx_fwd_s=vtx_fwd, vtx_bwd_s=vtx_bwd, source="access files",
    )


def _min_csr(tail: np.ndarray, head: np.ndarray, cost: np.ndarray, n: int) -> sparse.csr_array:
    """CSR matrix keeping the smallest cost of duplicate (tail, head) pairs."""
    if tail.size:
        order = np.lexsort((cost, head, tail))
        tail, head, cost = tail[order], head[order], cost[order]
        first = np.r_[True, (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])]
        tail, head, cost = tail[first], head[first], cost[first]
    indptr = np.r_[0, np.cumsum(np.bincount(tail, minlength=n))].astype(np.int32)
    return sparse.csr_array((cost.astype(float), head.astype(np.int32), indptr), shape=(n, n))


def build_graph(
    streets: Streets,
    mode: str,
    *,
    dem: str | Path | Dem | None = None,
    simplify: bool = True,
    keep: Literal["largest", "all"] = "largest",
    settings: Settings | None = None,
) -> StreetGraph:
    """The street graph of one travel mode.

    Parameters
    ----------
    streets
        Street ways from a reader (:func:`read_osm`, :func:`read_road_lines`,
        :func:`read_overpass`).
    mode
        ``walk`` or ``bike``: the rules of :func:`mode_rules` and the flat speed from
        ``settings`` (``walk_speed_kmh``, ``bike_speed_kmh``).
    dem
        Elevation raster (path or :class:`Dem`) for slope-aware, direction-dependent
        times (:func:`segment_times`).
    simplify
        Contract chains of degree-2 vertices into links (intersections and dead ends
        remain nodes). A vertex stays a node where the allowed directions change.
    keep
        ``largest``: keep the largest weakly connected component (what matters for a
        town; the others are counted in ``report``); ``all``: keep everything.

    Raises
    ------
    EmptyGraphError
        When no street of the source is usable by ``mode``.
    """
    s = settings or get_settings()
    speed = s.speed_kmh(mode)
    rules = mode_rules(streets.ways, mode)
    way_ok = rules["allowed"].to_numpy(bool)
    seg_ok = way_ok[streets.seg_way]
    if not seg_ok.any():
        raise EmptyGraphError(
            f"no street usable for {mode} in {streets.source or 'the source'} "
            f"({len(streets.ways)} ways, none allowed by the {mode} rules)"
        )
    st = _subset(streets, seg_ok)
    report: dict[str, Any] = {
        "source": streets.source, "mode": mode,
        "ways": len(streets.ways), "ways_allowed": len(st.ways),
        "dropped_ways_missing_nodes": streets.dropped_ways,
        "incomplete_ways": streets.incomplete_ways,
    }
    # connected components (weak: directions ignored)
    n = len(st.node_id)
    adj = sparse.coo_array((np.ones(st.n_segments), (st.seg_a, st.seg_b)), shape=(n, n))
    n_comp, label = connected_components(adj, directed=False)
    sizes = np.bincount(label)
    report["components"] = int(n_comp)
    report["largest_component_share"] = float(sizes.max() / n)
    if keep == "largest" and n_comp > 1:
        main = int(np.argmax(sizes))
        in_main = label[st.seg_a] == main
        report["dropped_nodes"] = int(n - sizes[main])
        report["dropped_components"] = int(n_comp - 1)
        log.info("%s graph: %d connected components; kept the largest (%d of %d vertices), "
                 "dropped %d vertices in %d smaller components", mode, n_comp, sizes[main], n,
                 n - sizes[main], n_comp - 1)
        st = _subset(st, in_main)
    else:
        report["dropped_nodes"] = 0
        report["dropped_components"] = 0
    rules = mode_rules(st.ways, mode)  # _subset renumbered the ways
    fw = rules["forward"].to_numpy(bool)[st.seg_way]
    bw = rules["backward"].to_numpy(bool)[st.seg_way]
    xa, xb = st.xy[st.seg_a], st.xy[st.seg_b]
    dem_obj: Dem | None
    if dem is None or isinstance(dem, Dem):
        dem_obj = dem
    else:
        lo = st.xy.min(axis=0)
        hi = st.xy.max(axis=0)
        dem_obj = Dem.read(dem, bounds=(lo[0], lo[1], hi[0], hi[1]), crs=st.crs)
    flat = (st.ways["bridge"].to_numpy(bool) | st.ways["tunnel"].to_numpy(bool))[st.seg_way]
    t_f, t_b, missing = segment_times(xa, xb, mode, flat_kmh=speed, dem=dem_obj,
                                      flat_mask=flat, walk_kmh=s.walk_speed_kmh)
    if dem_obj is not None:
        share = missing / max(st.n_segments, 1)
        report["segments_without_elevation"] = missing
        if share > 0.5:
            raise InputFileError(
                f"DEM {dem_obj.path} covers only {100 * (1 - share):.0f}% of the street "
                f"segments of {streets.source}; expected a DEM covering the area"
            )
        if missing:
            log.warning("%d of %d street segments have no elevation in %s: timed as flat",
                        missing, st.n_segments, dem_obj.path)
    length = np.hypot(*(xb - xa).T)
    graph = _contract(st, fw, bw, length, t_f, t_b, simplify=simplify)
    report.update(nodes=graph["node_id"].size, links=graph["link_u"].size,
                  length_km=float(length.sum() / 1000))
    g = StreetGraph(mode=mode, crs=st.crs, speed_kmh=speed, source=streets.source,
                    vintage=streets.vintage, dem=None if dem_obj is None else dem_obj.path,
                    report=report, **graph)
    log.info("%s", g.summary())
    return g


def _interior_vertices(
    a: np.ndarray, b: np.ndarray, fw: np.ndarray, bw: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices a chain passes through (two segments, same allowed directions), and the
    segment pairs they join. One vertex of every pure cycle stays a node."""
    m = a.size
    seg = np.arange(m)
    # incidences (vertex, segment, vertex is the segment's b end), grouped by vertex
    inc_v = np.concatenate([a, b])
    order = np.argsort(inc_v, kind="stable")
    inc_s = np.concatenate([seg, seg])[order]
    inc_end_b = (order >= m)
    deg = np.bincount(inc_v, minlength=n)
    del inc_v, order
    start = np.r_[0, np.cumsum(deg)[:-1]]
    cand = np.flatnonzero(deg == 2)
    s1, s2 = inc_s[start[cand]], inc_s[start[cand] + 1]
    e1b, e2b = inc_end_b[start[cand]], inc_end_b[start[cand] + 1]
    del inc_s, inc_end_b, start
    # into the vertex / out of it along each segment
    in1 = np.where(e1b, fw[s1], bw[s1])
    out1 = np.where(e1b, bw[s1], fw[s1])
    in2 = np.where(e2b, fw[s2], bw[s2])
    out2 = np.where(e2b, bw[s2], fw[s2])
    ok = (in1 == out2) & (out1 == in2)
    interior = np.zeros(n, dtype=bool)
    interior[cand[ok]] = True
    pair_v, pair_a, pair_b = cand[ok], s1[ok], s2[ok]
    if pair_a.size:
        chain = sparse.coo_array((np.ones(pair_a.size, dtype=np.int8), (pair_a, pair_b)),
                                 shape=(m, m))
        _, lab = connected_components(chain, directed=False)
        n_pairs = np.bincount(lab[pair_a], minlength=lab.max() + 1)
        n_segs = np.bincount(lab, minlength=lab.max() + 1)
        cyclic = n_pairs >= n_segs
        if cyclic.any():
            pair_lab = lab[pair_a]
            first_pair = pd.Series(np.arange(pair_a.size)).groupby(pair_lab).first()
            breaks = first_pair[cyclic[first_pair.index.to_numpy()]].to_numpy()
            interior[pair_v[breaks]] = False
            keep_pair = np.ones(pair_a.size, dtype=bool)
            keep_pair[breaks] = False
            pair_a, pair_b = pair_a[keep_pair], pair_b[keep_pair]
    return interior, pair_a, pair_b


def _orient(
    sa: np.ndarray, sb: np.ndarray, new_chain: np.ndarray, interior: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end vertex of each ordered segment, and whether it runs against its way.

    A chain's first segment leaves its end node; the others leave the vertex they share
    with the previous segment.
    """
    prev_a, prev_b = np.r_[-1, sa[:-1]], np.r_[-1, sb[:-1]]
    shares_a = interior[sa] & ((sa == prev_a) | (sa == prev_b))
    del prev_a, prev_b
    start_a = np.where(new_chain, ~interior[sa], shares_a)
    return np.where(start_a, sa, sb), np.where(start_a, sb, sa), ~start_a


def _chain_order(
    pair_a: np.ndarray, pair_b: np.ndarray, starts: np.ndarray, lab: np.ndarray, m: int
) -> np.ndarray:
    """Segments sorted by chain, then by position from the chain's start segment.

    A breadth-first search from a virtual root linked to every start segment gives each
    segment its predecessor in its chain; list ranking (pointer jumping, O(m log L) for
    chains of L segments) turns predecessors into positions. (scipy's depth-first order
    would give the sequence directly but is quadratic in the root's degree.)
    """
    root = m
    rows = np.concatenate([pair_a, pair_b, np.full(starts.size, root)])
    cols = np.concatenate([pair_b, pair_a, starts])
    walk = sparse.csr_array((np.ones(rows.size, dtype=np.int8), (rows, cols)),
                            shape=(m + 1, m + 1))
    _, pred = breadth_first_order(walk, root, directed=True, return_predecessors=True)
    nxt = pred.copy()
    nxt[root] = root
    if (nxt < 0).any():
        raise RuntimeError(f"chain ordering reached {(nxt >= 0).sum() - 1} of {m} segments")
    rank = np.ones(m + 1, dtype=np.int64)
    rank[root] = 0
    while (nxt[:m] != root).any():
        rank = rank + rank[nxt]
        rank[root] = 0
        nxt = nxt[nxt]
    return np.lexsort((rank[:m], lab))


def _contract(
    st: Streets,
    fw: np.ndarray,
    bw: np.ndarray,
    length: np.ndarray,
    t_f: np.ndarray,
    t_b: np.ndarray,
    *,
    simplify: bool,
) -> dict[str, Any]:
    """Chains of segments through degree-2 vertices -> links with vertex arrays."""
    a, b = st.seg_a, st.seg_b
    m, n = a.size, len(st.node_id)
    if simplify:
        interior, pair_a, pair_b = _interior_vertices(a, b, fw, bw, n)
    else:
        interior = np.zeros(n, dtype=bool)
        pair_a = pair_b = np.zeros(0, dtype=np.int64)
    # chains: components of segments joined at interior vertices
    chain = sparse.coo_array((np.ones(pair_a.size, dtype=np.int8), (pair_a, pair_b)),
                             shape=(m, m))
    _, lab = connected_components(chain, directed=False)
    del chain
    # a chain starts at a segment with a vertex that stays a node
    at_end = ~interior[a] | ~interior[b]
    starts = pd.Series(np.flatnonzero(at_end)).groupby(lab[at_end]).min().to_numpy()
    seq = _chain_order(pair_a, pair_b, starts, lab, m)
    del pair_a, pair_b, at_end, starts
    lab_seq = lab[seq]
    new_chain = np.r_[True, lab_seq[1:] != lab_seq[:-1]]
    del lab, lab_seq
    p, q, flip = _orient(a[seq], b[seq], new_chain, interior)
    s_fw = np.where(flip, bw[seq], fw[seq])
    s_bw = np.where(flip, fw[seq], bw[seq])
    s_tf = np.where(flip, t_b[seq], t_f[seq])
    s_tb = np.where(flip, t_f[seq], t_b[seq])
    s_len = length[seq]
    chain_id = np.cumsum(new_chain) - 1
    first_pos = np.flatnonzero(new_chain)
    last_pos = np.r_[first_pos[1:] - 1, m - 1]
    # vertex arrays: p of every segment, plus q of each chain's last segment
    seg_count = np.diff(np.r_[first_pos, m])
    vtx_ptr = np.r_[0, np.cumsum(seg_count + 1)]
    vtx_node = np.empty(vtx_ptr[-1], dtype=np.int64)
    pos_in_vtx = np.arange(m) + chain_id  # each earlier chain adds one extra vertex
    vtx_node[pos_in_vtx] = p
    vtx_node[vtx_ptr[1:] - 1] = q[last_pos]

    def cum(values: np.ndarray) -> np.ndarray:
        out = np.zeros(vtx_ptr[-1])
        c = np.cumsum(values)
        base = np.r_[0.0, c][first_pos]  # cumulative total before each chain
        out[pos_in_vtx + 1] = c - base[chain_id]
        return out

    vtx_m, vtx_fwd, vtx_bwd = cum(s_len), cum(s_tf), cum(s_tb)
    link_u_v, link_v_v = p[first_pos], q[last_pos]
    # nodes: the vertices at link ends
    is_node = np.zeros(n, dtype=bool)
    is_node[link_u_v] = is_node[link_v_v] = True
    node_index = np.cumsum(is_node) - 1
    ways = st.ways.iloc[st.seg_way[seq][first_pos]].reset_index(drop=True)
    return {
        "node_id": st.node_id[is_node],
        "node_xy": st.xy[is_node],
        "link_u": node_index[link_u_v],
        "link_v": node_index[link_v_v],
        "link_forward": s_fw[first_pos],
        "link_backward": s_bw[first_pos],
        "link_length_m": vtx_m[vtx_ptr[1:] - 1],
        "link_fwd_s": vtx_fwd[vtx_ptr[1:] - 1],
        "link_bwd_s": vtx_bwd[vtx_ptr[1:] - 1],
        "links": ways[["way_id", "highway", "name"]].assign(
            segments=seg_count.astype(np.int64)),
        "vtx_ptr": vtx_ptr,
        "vtx_xy": st.xy[vtx_node],
        "vtx_m": vtx_m,
        "vtx_fwd_s": vtx_fwd,
        "vtx_bwd_s": vtx_bwd,
    }
