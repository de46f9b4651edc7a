"""Multi-source shortest-path searches on the graph's sparse matrix
(:func:`scipy.sparse.csgraph.dijkstra`): minutes to the nearest facility of each target
(:func:`nearest_times`), the minutes between many points and the nodes within a cutoff
(:func:`times_within`) and cumulative counts (:func:`cumulative_counts`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from geo.access.snapping import Anchors, PointsLike, _anchors_from_snap, snap_points
from geo.errors import BadArgumentError
from geo.network import StreetGraph
from geo.settings import Settings, get_settings

# --- searches ----------------------------------------------------------------------------------


def _with_sources(
    matrix: sparse.csr_array, groups: Sequence[tuple[np.ndarray, np.ndarray]]
) -> sparse.csr_array:
    """``matrix`` plus one virtual source row per group of (head nodes, seconds).

    Virtual sources get arcs only out of them, so they never shortcut each other.
    """
    n = matrix.shape[0]
    k = len(groups)
    rows_idx, rows_data, counts = [], [], []
    for heads, secs in groups:
        keep = np.isfinite(secs)
        heads, secs = heads[keep], secs[keep]
        if heads.size:
            order = np.lexsort((secs, heads))
            heads, secs = heads[order], secs[order]
            first = np.r_[True, heads[1:] != heads[:-1]]
            heads, secs = heads[first], secs[first]
        rows_idx.append(heads.astype(np.int32))
        rows_data.append(secs.astype(float))
        counts.append(heads.size)
    indptr = np.r_[matrix.indptr, matrix.indptr[-1] + np.cumsum(counts, dtype=np.int64)]
    indices = np.concatenate([matrix.indices, *rows_idx])
    data = np.concatenate([matrix.data, *rows_data])
    index_dtype = np.int32 if indices.size < 2**31 - 1 else np.int64
    return sparse.csr_array(
        (data, indices.astype(index_dtype), indptr.astype(index_dtype)), shape=(n + k, n + k)
    )


def _toward_groups(graph: StreetGraph, anchors: Anchors) -> tuple[np.ndarray, np.ndarray]:
    """Arcs of a virtual source on the reversed graph: reach the anchor from u and v."""
    u, v = graph.link_u[anchors.link], graph.link_v[anchors.link]
    return np.r_[u, v], np.r_[anchors.to_from_u, anchors.to_from_v]


def _away_groups(graph: StreetGraph, anchors: Anchors) -> tuple[np.ndarray, np.ndarray]:
    """Arcs of a virtual source on the graph: leave the anchor towards u and v."""
    u, v = graph.link_u[anchors.link], graph.link_v[anchors.link]
    return np.r_[u, v], np.r_[anchors.from_to_u, anchors.from_to_v]


def nearest_times(
    graph: StreetGraph,
    facilities: PointsLike,
    targets: Mapping[str, np.ndarray] | None = None,
    *,
    snap: pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Minutes from every node to the nearest facility of each target.

    Parameters
    ----------
    facilities
        Facility points.
    targets
        Target name -> boolean mask (or positions) over ``facilities``; default one
        target ``all``.
    snap
        :func:`snap_points` result for ``facilities`` (computed when None).

    Returns
    -------
    DataFrame indexed by node index, one float column per target (minutes; NaN where no
    facility of the target can be reached).
    """
    snap = snap if snap is not None else snap_points(graph, facilities, settings=settings)
    targets = {"all": np.ones(len(snap), dtype=bool)} if targets is None else targets
    n = graph.n_nodes
    ok = snap["snapped"].to_numpy(bool)
    anchors = _anchors_from_snap(snap)  # the snapped facilities, in order
    masks = {name: (_as_mask(sel, len(snap)) & ok)[ok] for name, sel in targets.items()}
    heads, secs = _toward_groups(graph, anchors)
    groups = [(heads[np.r_[m, m]], secs[np.r_[m, m]]) for m in masks.values()]
    augmented = _with_sources(graph.matrix_t, groups)
    out = {}
    for k, (name, mask) in enumerate(masks.items()):
        if not mask.any():
            out[name] = np.full(n, np.nan)
            continue
        dist = dijkstra(augmented, directed=True, indices=n + k)[:n]
        dist[np.isinf(dist)] = np.nan
        out[name] = dist / 60.0
    return pd.DataFrame(out)


def _as_mask(sel: Any, n: int) -> np.ndarray:
    arr = np.asarray(sel)
    if arr.dtype == bool:
        if arr.size != n:
            raise BadArgumentError(f"target mask has {arr.size} values for {n} facilities")
        return arr
    mask = np.zeros(n, dtype=bool)
    mask[arr.astype(np.int64)] = True
    return mask


def _reach(
    graph: StreetGraph,
    anchors: Anchors,
    limit_s: float,
    *,
    toward: bool,
    max_cells: int = 8_000_000,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Chunks of (anchor position, node index, seconds) for nodes within ``limit_s``.

    ``toward``: times from the nodes to the anchors (reversed graph), else from the
    anchors to the nodes. One virtual source per anchor; dense results are produced for
    at most ``max_cells`` (anchors x nodes) at a time and turned into triplets.
    """
    n = graph.n_nodes
    base = graph.matrix_t if toward else graph.matrix
    u, v = graph.link_u[anchors.link], graph.link_v[anchors.link]
    if toward:
        w_u, w_v = anchors.to_from_u, anchors.to_from_v
    else:
        w_u, w_v = anchors.from_to_u, anchors.from_to_v
    groups = [(np.array([u[i], v[i]]), np.array([w_u[i], w_v[i]])) for i in range(len(anchors))]
    augmented = _with_sources(base, groups)
    chunk = max(1, max_cells // (n + len(anchors)))
    for start in range(0, len(anchors), chunk):
        idx = np.arange(start, min(start + chunk, len(anchors)))
        dist = dijkstra(augmented, directed=True, indices=n + idx, limit=limit_s)[:, :n]
        rows, cols = np.nonzero(dist <= limit_s)
        yield idx[rows], cols, dist[rows, cols]


def times_within(
    graph: StreetGraph,
    points: PointsLike,
    max_minutes: float,
    *,
    direction: Literal["to", "from"] = "to",
    snap: pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Minutes between points and every node within ``max_minutes``, as a long table.

    Parameters
    ----------
    points
        Points (e.g. facilities for E2SFCA). They snap to the nearest link
        (:func:`snap_points`); unsnapped points have no row.
    max_minutes
        Cutoff (minutes); node-point pairs beyond it are left out.
    direction
        ``to``: time from each node to the point (people travelling to a facility);
        ``from``: time from the point to each node.

    Returns
    -------
    DataFrame ``point`` (position in ``points``), ``node`` (node index), ``node_id``,
    ``minutes``; sorted by point then node.
    """
    if not max_minutes > 0:
        raise BadArgumentError(f"max_minutes must be > 0, got {max_minutes!r}")
    snap = snap if snap is not None else snap_points(graph, points, settings=settings)
    ok = np.flatnonzero(snap["snapped"].to_numpy(bool))
    anchors = _anchors_from_snap(snap)
    parts_p, parts_n, parts_t = [], [], []
    for p, node, secs in _reach(graph, anchors, max_minutes * 60.0, toward=direction == "to"):
        parts_p.append(ok[p])
        parts_n.append(node)
        parts_t.append(secs)
    point = np.concatenate(parts_p) if parts_p else np.zeros(0, np.int64)
    node = np.concatenate(parts_n) if parts_n else np.zeros(0, np.int64)
    secs = np.concatenate(parts_t) if parts_t else np.zeros(0)
    order = np.lexsort((node, point))
    return pd.DataFrame({
        "point": point[order].astype(np.int64), "node": node[order].astype(np.int64),
        "node_id": graph.node_id[node[order]], "minutes": secs[order] / 60.0,
    })


def cumulative_counts(
    graph: StreetGraph,
    facilities: PointsLike,
    targets: Mapping[str, np.ndarray] | None = None,
    *,
    thresholds_min: Sequence[int] | None = None,
    snap: pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Number of facilities of each target reachable from every node within each
    threshold (minutes).

    Facilities at the same place on the same link are searched once. Returns a DataFrame
    indexed by node index with int32 columns ``<target>_count_<N>min``.
    """
    s = settings or get_settings()
    thresholds = tuple(s.time_thresholds_min if thresholds_min is None else thresholds_min)
    snap = snap if snap is not None else snap_points(graph, facilities, settings=s)
    targets = {"all": np.ones(len(snap), dtype=bool)} if targets is None else targets
    ok = snap["snapped"].to_numpy(bool)
    weights = np.column_stack(
        [(_as_mask(sel, len(snap)) & ok) for sel in targets.values()]
    ).astype(np.int32) if targets else np.zeros((len(snap), 0), np.int32)
    n = graph.n_nodes
    out = np.zeros((n, len(targets), len(thresholds)), dtype=np.int32)
    used = weights.any(axis=1)
    if used.any():
        sub = snap[used]
        key = pd.DataFrame({"link": sub["link"].to_numpy(),
                            "off": np.round(sub["offset_m"].to_numpy(), 2)})
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(key))
        w = np.zeros((len(uniques), weights.shape[1]), dtype=np.int32)
        np.add.at(w, codes, weights[used])
        first_of = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
        anchors = _anchors_from_snap(sub.iloc[first_of])
        limits = np.asarray(thresholds, dtype=float) * 60.0
        nb = len(limits)
        for p, node, secs in _reach(graph, anchors, float(limits.max()), toward=True):
            # counted in the first threshold >= secs, then in every later one (cumsum)
            cell = node * nb + np.searchsorted(limits, secs, side="left")
            for k in range(weights.shape[1]):
                out[:, k] += np.bincount(cell, weights=w[p, k],
                                         minlength=n * nb).reshape(n, nb).astype(np.int32)
        np.cumsum(out, axis=2, out=out)
    cols = {}
    for k, name in enumerate(targets):
        for j, t in enumerate(thresholds):
            cols[f"{name}_count_{t}min"] = out[:, k, j]
    return pd.DataFrame(cols)
