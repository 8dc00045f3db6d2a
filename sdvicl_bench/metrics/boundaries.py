"""BSDS500 boundary benchmark: ODS and OIS F-measure (Martin et al. 2004; Arbelaez et al. 2011).

As the BSDS benchmark (``boundaryBench``) and Dollar's ``edgesEvalImg`` / ``edgesEvalDir``,
which reproduce it: per image and per threshold t of ``thresholds()`` (99 values 0.01 ..
0.99), the predicted map E in [0, 1] is binarised (E >= t) and thinned to one-pixel lines
(``thin=True``: ``thin_lines``, the same output as ``skimage.morphology.thin``, the Guo-Hall
algorithm, where the benchmark uses MATLAB ``bwmorph(..., 'thin', inf)``), then matched
against each annotator's boundary map G_k one to one within ``max_dist`` = 0.0075 x the image
diagonal (pairs with dx^2 + dy^2 <= max_dist^2, as the benchmark's ``correspondPixels``). Per
threshold (``boundary_counts``):

- cntR = sum over annotators of the matched pixels of G_k; sumR = sum over annotators |G_k|;
- cntP = predicted pixels matched to at least one annotator; sumP = predicted pixels.

R = cntR / sumR, P = cntP / sumP, F = 2PR / (P + R), with the benchmark's ``max(eps, .)``
guards, so an empty prediction has P = 0 and F = 0 (``rpf``).

Averaging over a dataset (N images):

- ODS (optimal dataset scale): counts summed over the images per threshold; the best F over
  thresholds, interpolating linearly between adjacent thresholds as ``findBestRPF`` does
  (``ods``);
- OIS (optimal image scale): each image's best threshold (the first argmax of its own F);
  the counts at those thresholds summed over the images give one F (``ois``). This is
  ``edgesEvalDir``'s OIS, which weighs images by their boundary pixels (not the mean over
  images of each image's best F, a simpler number some re-implementations quote).

Matching. ``correspondPixels`` solves a min-cost assignment (Goldberg's CSA) between the two
pixel sets, real pairs costing their distance and each unmatched pixel an outlier cost of
100 x ``max_dist``, so it first maximises the number of matched pairs and then prefers short
pairs; its outlier edges are a random sparse graph, so it can fall a few pixels short of the
maximum and its counts move by a few pixels from run to run. Both counts need only *which*
pixels are matched: cntR the number (the same for every maximum matching), cntP the union
over annotators of the matched predicted pixels (which depends on the choice among maximum
matchings: a rule blind to distances inflates it). ``_match_annotators`` keeps the min-cost
preference for near pairs without costs: a maximal matching in which every annotator pixel
takes its nearest free predicted pixel (``_nearest_first``), then grown to maximum
cardinality along augmenting paths (Dinic's max flow on the residual graph, scipy's
``maximum_flow``), which keep every matched predicted pixel matched and add one at each
path's end, preferably one near an annotator pixel (``_augment_to_maximum``). Against
pyEdgeEval 0.2.8 (a port of the benchmark with its C++ ``correspondPixels``; built for the
comparison, not a dependency) on the synthetic scenes of ``scripts/bench_boundaries.py`` (3
images x 4 maps, 5 annotators, 481 x 321), ODS differs by at most 0.00043 and OIS by 0.00056
(table in tests/test_boundaries_fast.py). No non-maximum suppression is applied to the
prediction (the benchmark expects thin input; the thinning stands in for it).

Cost: 1.7 to 3.8 s of one CPU core per 481 x 321 image with 5 annotators, clean or uniform
noise (``scripts/bench_boundaries.py``); ``boundary_counts_many`` spreads images over
processes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

N_THRESHOLDS = 99
"""The benchmark's ``nThresh``."""
MAX_DIST = 0.0075
"""Matching tolerance as a fraction of the image diagonal (the benchmark's ``maxDist``)."""
_EPS = float(np.finfo(np.float64).eps)  # MATLAB's eps, as in computeRPF and findBestRPF


def thresholds(n: int = N_THRESHOLDS) -> np.ndarray:
    """The benchmark's thresholds: ``linspace(1 / (n + 1), 1 - 1 / (n + 1), n)``, float64 (n,)."""
    if n < 1:
        raise ValueError(f"need at least one threshold, got {n}")
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def max_dist_px(shape: tuple[int, int], max_dist: float = MAX_DIST) -> float:
    """The matching tolerance in pixels for an image of ``shape`` (H, W): max_dist x diagonal."""
    return float(max_dist) * math.hypot(float(shape[0]), float(shape[1]))


# ----------------------------------------------------------------------------- thinning


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """Guo-Hall deletion tables of the two sub-iterations, bool (256,) each.

    Indexed by the 8-neighbour code with bit i set when neighbour x_(i+1) is on, x1..x8 = E,
    NE, N, NW, W, SW, S, SE (scikit-image's ``thin`` and its paper, Lam et al. 1992): delete
    when G1 (one 8-connected run), G2 (2 <= min(n1, n2) <= 3) and G3 (first sub-iteration) or
    G3' (second) hold.
    """
    code = np.arange(256)
    x = [None] + [((code >> i) & 1).astype(bool) for i in range(8)]
    x.append(x[1])  # x9 = x1
    crossings = sum((~x[2 * i - 1]) & (x[2 * i] | x[2 * i + 1]) for i in range(1, 5))
    n1 = sum(x[2 * k - 1] | x[2 * k] for k in range(1, 5))
    n2 = sum(x[2 * k] | x[2 * k + 1] for k in range(1, 5))
    g12 = (crossings == 1) & (np.minimum(n1, n2) >= 2) & (np.minimum(n1, n2) <= 3)
    g3 = ~((x[2] | x[3] | ~x[8]) & x[1])
    g3_prime = ~((x[6] | x[7] | ~x[4]) & x[5])
    return g12 & g3, g12 & g3_prime


_THIN_TABLES = _thinning_tables()


def thin_lines(binary: np.ndarray) -> np.ndarray:
    """Thin a bool (H, W) map to one-pixel lines: the output of ``skimage.morphology.thin``.

    Same sub-iterations and stopping rule (an iteration that deletes nothing), but each
    sub-iteration looks again only at the pixels whose 3x3 neighbourhood changed since that
    sub-iteration last looked at them (the others would take the same decision), so a dense
    map costs its deletions rather than a full pass per iteration: 6 to 8 times faster on
    noisy maps.
    """
    binary = np.asarray(binary, dtype=bool)
    if binary.ndim != 2:
        raise ValueError(f"thin_lines needs a 2-D map, got shape {binary.shape}")
    h, w = binary.shape
    width = w + 2
    image = np.zeros((h + 2) * width, dtype=np.uint8)
    image.reshape(h + 2, width)[1:-1, 1:-1] = binary
    neighbours = np.array([1, -width + 1, -width, -width - 1, -1, width - 1, width, width + 1])
    ring = np.append(neighbours, 0)
    scratch = np.empty(image.size, dtype=np.int64)
    everything = np.flatnonzero(image)
    pending: list[list[np.ndarray]] = [[everything], [everything]]
    sub, deleted = 0, 0
    while True:
        candidates = _distinct(pending[sub], scratch)
        pending[sub] = []
        candidates = candidates[image[candidates] != 0]
        code = np.zeros(len(candidates), dtype=np.uint8)
        for bit, offset in enumerate(neighbours):
            code |= image[candidates + offset] << np.uint8(bit)
        gone = candidates[_THIN_TABLES[sub][code]]
        if len(gone):
            image[gone] = 0
            touched = (gone[:, None] + ring).ravel()
            touched = touched[image[touched] != 0]
            pending[0].append(touched)
            pending[1].append(touched)
        deleted += len(gone)
        if sub == 1:
            if deleted == 0:
                break
            deleted = 0
        sub = 1 - sub
    return image.reshape(h + 2, width)[1:-1, 1:-1].astype(bool)


def _distinct(parts: list[np.ndarray], scratch: np.ndarray) -> np.ndarray:
    """The values of ``parts`` once each, in O(n) with a scratch array as large as the image."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    values = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if len(parts) == 1:
        return values
    position = np.arange(len(values))
    scratch[values] = position
    return values[scratch[values] == position]


# ----------------------------------------------------------------------------- matching


class _Disk:
    """Pixel offsets within the tolerance, nearest first, as flat indices of a padded frame.

    Pixels of an (H, W) map live at ``(y + pad) * width + (x + pad)`` in an (H + 2 pad, W +
    2 pad) frame, so ``flat + offsets`` lists a pixel's neighbours within the tolerance
    (dx^2 + dy^2 <= tolerance^2, as ``correspondPixels``) without bounds checks; offsets of
    equal length keep raster order.
    """

    def __init__(self, shape: tuple[int, int], tolerance: float):
        self.pad = math.ceil(tolerance) if tolerance > 0 else 0
        self.width = shape[1] + 2 * self.pad
        self.size = (shape[0] + 2 * self.pad) * self.width
        dy, dx = (g.ravel() for g in np.mgrid[-self.pad : self.pad + 1, -self.pad : self.pad + 1])
        d2 = dy * dy + dx * dx
        inside = np.flatnonzero(d2 <= tolerance * tolerance)
        order = inside[np.argsort(d2[inside], kind="stable")]
        self.offsets = dy[order] * self.width + dx[order]

    def flat(self, mask: np.ndarray) -> np.ndarray:
        """Flat frame indices of the on pixels of ``mask``, raster order."""
        y, x = np.nonzero(mask)
        return (y + self.pad) * self.width + (x + self.pad)


def _nearest_first(
    partners: np.ndarray, column_offset: np.ndarray, n_columns: int, valid: np.ndarray
) -> np.ndarray:
    """A maximal matching of rows to columns in which every row takes its nearest free column.

    ``partners``: int (R, K), row r's candidate predicted pixels by distance rank, -1 where
    none (``valid``: ``partners >= 0``); its columns are ``partners[r] + column_offset[r]``
    (< ``n_columns``). Rounds in parallel: each unmatched row claims its nearest free column;
    a column claimed by several rows goes to the one for which it is nearest (then the first
    row). Returns int (R,), each row's column or -1.
    """
    match = np.full(len(partners), -1, dtype=np.int64)
    taken = np.zeros(n_columns + 1, dtype=bool)
    taken[n_columns] = True  # stands for "no candidate"
    first_claim = np.empty(n_columns + 1, dtype=np.int64)
    pick = valid.argmax(axis=1)  # each row's nearest candidate
    pending = np.flatnonzero(valid[np.arange(len(partners)), pick])
    pick = pick[pending]
    claimed = partners[pending, pick] + column_offset[pending]
    while len(pending):
        order = np.argsort(pick, kind="stable")  # nearest claims first, then row order
        claims = claimed[order]
        position = np.arange(len(claims))
        first_claim[claims[::-1]] = position[::-1]
        winners = order[first_claim[claims] == position]
        match[pending[winners]] = claimed[winners]
        taken[claimed[winners]] = True
        losers = np.ones(len(pending), dtype=bool)
        losers[winners] = False
        pending = pending[losers]
        candidates = partners[pending]
        table = np.where(candidates >= 0, candidates + column_offset[pending, None], n_columns)
        free = ~taken[table]
        pick = free.argmax(axis=1)
        able = free[np.arange(len(pending)), pick]
        pending, pick = pending[able], pick[able]
        claimed = table[able, pick]
    return match


def _augment_to_maximum(
    partners: np.ndarray, match: np.ndarray, preference: np.ndarray
) -> np.ndarray:
    """Grow ``match`` (in place) to a maximum matching along augmenting paths.

    ``partners``: int (R, K), each row's candidate predicted pixels (0 .. P - 1), -1 where
    none; ``match``: int (R,), a matching (pixel or -1); ``preference``: int (P,), lower for
    the predicted pixels a path should rather end at (``_max_flow_augment``). When few rows
    are free (dense predictions), the paths within 3 steps of them are tried first, on that
    part of the graph alone; then, if rows are still free, on the whole graph.
    """
    valid = partners >= 0
    free = (match < 0) & valid.any(axis=1)
    if 8 * int(free.sum()) < len(partners):
        near = _rows_near(partners, match, len(preference), free, 3)
        _augment_within(partners[near], valid[near], match, preference, near)
        free &= match < 0
    if free.any():
        _augment_within(partners, valid, match, preference, None)
    return match


def _rows_near(
    partners: np.ndarray, match: np.ndarray, n_pred: int, start: np.ndarray, steps: int
) -> np.ndarray:
    """The rows reached from the ``start`` rows (bool (R,)) in up to ``steps`` alternating
    steps (row -> a candidate pixel -> the row matched to it), ascending."""
    row_of_pixel = np.full(n_pred + 1, -1, dtype=np.int64)  # [-1]: "no candidate"
    matched = np.flatnonzero(match >= 0)
    row_of_pixel[match[matched]] = matched
    seen = start.copy()
    frontier = np.flatnonzero(start)
    for _ in range(steps):
        reached = row_of_pixel[partners[frontier].ravel()]
        frontier = np.unique(reached[reached >= 0])
        frontier = frontier[~seen[frontier]]
        seen[frontier] = True
    return np.flatnonzero(seen)


def _augment_within(
    partners: np.ndarray,
    valid: np.ndarray,
    match: np.ndarray,
    preference: np.ndarray,
    rows: np.ndarray | None,
) -> None:
    """Augment ``match`` (in place) along the paths among some rows and their candidates.

    ``partners``, ``valid`` (its ``>= 0``): those rows' candidates; ``rows``: their indices
    in ``match`` (None: all rows). Pixels matched to other rows are left out (the paths
    through them leave the part). A unit max flow between the free rows and the free pixels
    in the residual graph (row -> pixel for the unmatched pairs, pixel -> row for the matched
    ones), by Dinic's algorithm, which neither slows down on rows that cannot be matched
    (scipy's Hopcroft-Karp does: minutes per image) nor lets a matched pixel go free. The
    flow starts from the side with fewer free vertices (the reversed graph when that is the
    pixels): its searches then cover less.
    """
    part = match if rows is None else match[rows]
    pair_rows, ranks = np.nonzero(valid)
    pixels = partners[pair_rows, ranks].astype(np.int64)
    if rows is not None:
        outside = np.zeros(len(preference), dtype=bool)
        outside[match[match >= 0]] = True
        outside[part[part >= 0]] = False
        keep = ~outside[pixels]
        pair_rows, pixels = pair_rows[keep], pixels[keep]
    part = _max_flow_augment(pair_rows, pixels, part, preference)
    if rows is not None:
        match[rows] = part


def _max_flow_augment(
    rows: np.ndarray, columns: np.ndarray, match: np.ndarray, preference: np.ndarray
) -> np.ndarray:
    """``_augment_within`` on explicit pairs (row, column), rows ascending; returns ``match``.

    Column nodes are numbered by ``preference`` (then pixel index), and scipy's Dinic tries
    a node's edges in that order, so a path ends at a preferred free pixel when it can: near
    some annotator pixel, as the benchmark's distance cost would choose.
    """
    n_rows, n_pred = len(match), len(preference)
    has_pair = np.zeros(n_rows, dtype=bool)
    has_pair[rows] = True
    free_rows = np.flatnonzero((match < 0) & has_pair)
    used = np.zeros(n_pred, dtype=bool)
    used[columns] = True
    matched = np.flatnonzero(match >= 0)
    n_used = int(used.sum())
    if not len(free_rows) or len(matched) == n_used:
        return match
    column_of_node = np.flatnonzero(used)
    column_of_node = column_of_node[np.argsort(preference[column_of_node], kind="stable")]
    node_of_column = np.empty(n_pred, dtype=np.int64)
    node_of_column[column_of_node] = np.arange(n_used)
    row_of_column = np.full(n_used, -1, dtype=np.int64)
    row_of_column[node_of_column[match[matched]]] = matched
    # nodes: 0 source, 1..R rows, R+1..R+C columns, R+C+1 sink; CSR in node order:
    # source -> free rows, row -> its unmatched pairs' columns, column -> its row or the sink
    first_column, sink = 1 + n_rows, 1 + n_rows + n_used
    unmatched = columns != match[rows]
    n_open = int(unmatched.sum())
    ends = np.concatenate(
        [
            [0],  # source's edges
            np.cumsum(np.bincount(rows[unmatched], minlength=n_rows)),  # rows'
            n_open + np.arange(1, n_used + 1),  # one per column
            [n_open + n_used],  # none from the sink
        ]
    )
    indptr = np.concatenate([[0], len(free_rows) + ends])
    heads = np.concatenate(
        [
            1 + free_rows,
            first_column + node_of_column[columns[unmatched]],
            np.where(row_of_column >= 0, 1 + row_of_column, sink),
        ]
    )
    graph = csr_matrix(
        (np.ones(len(heads), dtype=np.int32), heads.astype(np.int32), indptr.astype(np.int32)),
        shape=(sink + 1, sink + 1),
    )
    reverse = n_used - len(matched) < len(free_rows)
    if reverse:
        graph = graph.T.tocsr()
    flow = maximum_flow(graph, *((sink, 0) if reverse else (0, sink)), method="dinic").flow
    tails, heads = _positive_edges(flow, *((first_column, sink) if reverse else (1, first_column)))
    row_nodes, column_nodes = (heads, tails) if reverse else (tails, heads)
    new = (row_nodes >= 1) & (row_nodes < first_column)
    new &= (column_nodes >= first_column) & (column_nodes < sink)
    match[row_nodes[new] - 1] = column_of_node[column_nodes[new] - first_column]
    return match


def _positive_edges(flow, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(tail, head) nodes of the edges with positive flow leaving nodes lo .. hi - 1 (CSR)."""
    start, stop = flow.indptr[lo], flow.indptr[hi]
    edges = start + np.flatnonzero(flow.data[start:stop] > 0)
    return np.searchsorted(flow.indptr, edges, side="right") - 1, flow.indices[edges]


def _match_annotators(
    partners: np.ndarray, owner: np.ndarray, preference: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum matchings of each annotator's pixels to the predicted pixels, one per annotator.

    ``partners``: int (R, K), for each annotator pixel (rows grouped by ``owner``, int (R,),
    ascending) the indices of the predicted pixels within the tolerance, nearest first, -1
    where none. ``preference``: int (A, P), each annotator's order of preference among the
    predicted pixels as path ends (their distance to its nearest boundary pixel). Returns
    (matched rows, bool (R,); matched predicted pixels, the union over annotators, bool (P,)).
    """
    n_annotators, n_pred = preference.shape
    matched_rows = np.zeros(len(partners), dtype=bool)
    matched_pred = np.zeros(n_pred, dtype=bool)
    if n_pred == 0 or not len(partners):
        return matched_rows, matched_pred
    # one column per (annotator, predicted pixel): annotators never compete for a column
    match = _nearest_first(partners, owner * n_pred, n_annotators * n_pred, partners >= 0)
    bounds = np.searchsorted(owner, np.arange(n_annotators + 1))
    for a in range(n_annotators):
        lo, hi = bounds[a], bounds[a + 1]
        local = np.where(match[lo:hi] >= 0, match[lo:hi] - a * n_pred, -1)
        local = _augment_to_maximum(partners[lo:hi], local, preference[a])
        matched_rows[lo:hi] = local >= 0
        matched_pred[local[local >= 0]] = True
    return matched_rows, matched_pred


def _distance_ranks(boundary_maps: np.ndarray) -> np.ndarray:
    """int32 (A, H, W): 100 x each pixel's distance to the nearest on pixel of each map."""
    out = np.zeros(boundary_maps.shape, dtype=np.int32)
    for a, boundary in enumerate(boundary_maps):
        if boundary.any():
            out[a] = np.rint(100 * ndi.distance_transform_edt(~boundary))
    return out


def match_boundaries(
    pred: np.ndarray, gt: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of boundary pixels at most ``tolerance`` px apart (Euclidean).

    ``pred``, ``gt``: bool (H, W) of the same shape. Returns (matched_pred, matched_gt), bool
    (H, W) each: the pixels of either map in a maximum-cardinality matching built nearest
    first (module doc); the two hold equally many pixels.
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    gt = np.asarray(gt).astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    disk = _Disk(pred.shape, tolerance)
    pred_flat, gt_flat = disk.flat(pred), disk.flat(gt)
    index = np.full(disk.size, -1, dtype=np.int32)
    index[pred_flat] = np.arange(len(pred_flat))
    partners = index[gt_flat[:, None] + disk.offsets[None, :]]
    preference = _distance_ranks(gt[None])[:, pred]
    rows, cols = _match_annotators(partners, np.zeros(len(gt_flat), int), preference)
    out_pred = np.zeros(pred.shape, dtype=bool)
    out_gt = np.zeros(gt.shape, dtype=bool)
    out_pred[tuple(np.argwhere(pred)[cols].T)] = True
    out_gt[tuple(np.argwhere(gt)[rows].T)] = True
    return out_pred, out_gt


def boundary_counts(
    edge_map: np.ndarray,
    annotators: np.ndarray,
    *,
    n_thresholds: int = N_THRESHOLDS,
    max_dist: float = MAX_DIST,
    thin: bool = True,
) -> np.ndarray:
    """Per threshold, (cntR, sumR, cntP, sumP) of one image: int64 (T, 4).

    ``edge_map``: float (H, W) in [0, 1], higher = more boundary. ``annotators``: bool
    (K, H, W), one boundary map per human annotator (K >= 1; a single (H, W) map is read as
    K = 1). See the module doc for the counts and the matching.
    """
    edge_map = np.asarray(edge_map, dtype=np.float64)
    gts = np.asarray(annotators).astype(bool, copy=False)
    if gts.ndim == 2:
        gts = gts[None]
    if gts.ndim != 3 or gts.shape[1:] != edge_map.shape or gts.shape[0] == 0:
        raise ValueError(
            f"annotators {gts.shape} must be (K, H, W) with K >= 1 and (H, W) = "
            f"{edge_map.shape} of the edge map"
        )
    disk = _Disk(edge_map.shape, max_dist_px(edge_map.shape, max_dist))
    gt_flat = [disk.flat(g) for g in gts]
    owner = np.repeat(np.arange(len(gts)), [len(f) for f in gt_flat])
    windows = (np.concatenate(gt_flat)[:, None] + disk.offsets[None, :]).astype(np.int32)
    sum_r = len(owner)
    closeness = _distance_ranks(gts)
    index = np.full(disk.size, -1, dtype=np.int32)
    out = np.zeros((n_thresholds, 4), dtype=np.int64)
    previous: tuple[int, np.ndarray] | None = None  # (pixels >= t, counts): nested sets
    for i, t in enumerate(thresholds(n_thresholds)):
        above = edge_map >= max(_EPS, t)
        size = int(np.count_nonzero(above))
        if previous is not None and previous[0] == size:
            out[i] = previous[1]
            continue
        binary = thin_lines(above) if thin and size else above
        pred_flat = disk.flat(binary)
        index[pred_flat] = np.arange(len(pred_flat))
        partners = index[windows]
        index[pred_flat] = -1
        rows, pred = _match_annotators(partners, owner, closeness[:, binary])
        out[i] = (int(rows.sum()), sum_r, int(pred.sum()), len(pred_flat))
        previous = (size, out[i].copy())
    return out


def _counts_of(item: tuple[np.ndarray, np.ndarray, dict]) -> np.ndarray:
    edge_map, annotators, kwargs = item
    return boundary_counts(edge_map, annotators, **kwargs)


def boundary_counts_many(
    images: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    workers: int | None = None,
    **kwargs,
) -> list[np.ndarray]:
    """``boundary_counts`` of many (edge_map, annotators) pairs, in order, over processes.

    ``workers``: processes (None: every core, ``os.cpu_count()``; 1: in this process).
    ``kwargs`` go to ``boundary_counts``. The scores do not depend on ``workers``.
    """
    items: Sequence = [(np.asarray(e), np.asarray(a), kwargs) for e, a in images]
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(items) < 2:
        return [_counts_of(item) for item in items]
    with ProcessPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(_counts_of, items))


def rpf(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, P, F) of counts (..., 4) = (cntR, sumR, cntP, sumP), float64 (...) each.

    ``R = cntR / max(eps, sumR)``, ``P = cntP / max(eps, sumP)``,
    ``F = 2PR / max(eps, P + R)`` (the benchmark's computeRPF).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.shape[-1:] != (4,):
        raise ValueError(f"counts must have shape (..., 4), got {c.shape}")
    r = c[..., 0] / np.maximum(_EPS, c[..., 1])
    p = c[..., 2] / np.maximum(_EPS, c[..., 3])
    f = 2.0 * p * r / np.maximum(_EPS, p + r)
    return r, p, f


def best_rpf(t: np.ndarray, r: np.ndarray, p: np.ndarray) -> tuple[float, float, float, float]:
    """(R, P, F, T) at the best F along a threshold sweep, interpolating as findBestRPF.

    ``t``, ``r``, ``p`` float (T,). Between each pair of adjacent thresholds, 100 points of
    the segment (R, P, T linear in a) are tried; one threshold is taken as is.
    """
    t, r, p = (np.asarray(x, dtype=np.float64).ravel() for x in (t, r, p))
    if len(t) == 1:
        f = 2 * p[0] * r[0] / max(_EPS, p[0] + r[0])
        return float(r[0]), float(p[0]), float(f), float(t[0])
    a = np.linspace(0.0, 1.0, 100)
    b = 1.0 - a
    best = (float("nan"), float("nan"), -1.0, float("nan"))
    for j in range(1, len(t)):
        rj = r[j] * a + r[j - 1] * b
        pj = p[j] * a + p[j - 1] * b
        tj = t[j] * a + t[j - 1] * b
        fj = 2.0 * pj * rj / np.maximum(_EPS, pj + rj)
        k = int(np.argmax(fj))
        if fj[k] > best[2]:
            best = (float(rj[k]), float(pj[k]), float(fj[k]), float(tj[k]))
    return best


def ods(counts: np.ndarray) -> float:
    """ODS F-measure of per-image counts (N, T, 4): the best F of the counts summed over
    images, interpolated between thresholds (``best_rpf``). NaN for N = 0."""
    counts = _check(counts)
    if counts.shape[0] == 0:
        return float("nan")
    r, p, _ = rpf(counts.sum(axis=0))
    return best_rpf(thresholds(counts.shape[1]), r, p)[2]


def ois(counts: np.ndarray) -> float:
    """OIS F-measure of per-image counts (N, T, 4): the F of the counts summed over images,
    each image at its own best threshold (first argmax of its F). NaN for N = 0."""
    counts = _check(counts)
    if counts.shape[0] == 0:
        return float("nan")
    _, _, f = rpf(counts)
    best = np.argmax(f, axis=1)
    chosen = counts[np.arange(counts.shape[0]), best]
    return float(rpf(chosen.sum(axis=0))[2])


def _check(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 3 or counts.shape[2] != 4:
        raise ValueError(f"counts must have shape (N, T, 4), got {counts.shape}")
    return counts
