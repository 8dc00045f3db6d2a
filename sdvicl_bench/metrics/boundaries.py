"""BSDS500 boundary benchmark: ODS and OIS F-measure (Martin et al. 2004; Arbelaez et al. 2011).

As the BSDS benchmark (``boundaryBench``) and Dollar's ``edgesEvalImg`` / ``edgesEvalDir``,
which reproduce it: per image and per threshold t of ``thresholds()`` (99 values 0.01 ..
0.99), the predicted map E in [0, 1] is binarised (E >= t) and thinned to one-pixel lines
(``thin=True``: ``skimage.morphology.thin``, the Guo-Hall algorithm, where the benchmark uses
MATLAB ``bwmorph(..., 'thin', inf)``), then matched against each annotator's boundary map
G_k one to one within ``max_dist`` = 0.0075 x the image diagonal. Per threshold
(``boundary_counts``):

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

Matching [approximation]: the benchmark's ``correspondPixels`` solves a minimum-cost
assignment between the two pixel sets with edges up to ``max_dist`` and an outlier cost of
100 x ``max_dist``, so that one more match always beats a shorter one: its match count is the
maximum matching (up to its own sparse-graph approximation). Only that count enters P and R,
so this module computes a maximum-cardinality bipartite matching (Hopcroft-Karp,
``scipy.sparse.csgraph.maximum_bipartite_matching``) on the pairs at most ``max_dist`` apart
(``scipy.spatial.cKDTree``). No non-maximum suppression is applied to the prediction (the
benchmark expects thin input; the thinning above stands in for it).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial import cKDTree

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


def match_boundaries(
    pred: np.ndarray, gt: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of boundary pixels at most ``tolerance`` px apart (Euclidean).

    ``pred``, ``gt``: bool (H, W) of the same shape. Returns (matched_pred, matched_gt), bool
    (H, W) each: the pixels of either map that take part in a maximum-cardinality matching
    (the two hold equally many pixels).
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    gt = np.asarray(gt).astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    gt_points = np.argwhere(gt)
    pred_points = np.argwhere(pred)
    matched_pred, matched_gt = _match(pred_points, gt_points, cKDTree(gt_points), tolerance)
    out_pred = np.zeros(pred.shape, dtype=bool)
    out_gt = np.zeros(gt.shape, dtype=bool)
    out_pred[tuple(pred_points[matched_pred].T)] = True
    out_gt[tuple(gt_points[matched_gt].T)] = True
    return out_pred, out_gt


def _match(
    pred_points: np.ndarray, gt_points: np.ndarray, gt_tree: cKDTree, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into pred_points, into gt_points) of the matched pairs, as two int arrays."""
    empty = np.zeros(0, dtype=np.int64)
    if len(pred_points) == 0 or len(gt_points) == 0:
        return empty, empty
    pairs = cKDTree(pred_points).sparse_distance_matrix(gt_tree, tolerance, output_type="ndarray")
    if len(pairs) == 0:
        return empty, empty
    graph = csr_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs["i"], pairs["j"])),
        shape=(len(pred_points), len(gt_points)),
    )
    to_gt = maximum_bipartite_matching(graph, perm_type="column")
    rows = np.flatnonzero(to_gt >= 0)
    return rows, to_gt[rows].astype(np.int64)


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
    K = 1). See the module doc for the counts.
    """
    from skimage.morphology import thin as thin_lines

    edge_map = np.asarray(edge_map, dtype=np.float64)
    gts = np.asarray(annotators).astype(bool, copy=False)
    if gts.ndim == 2:
        gts = gts[None]
    if gts.ndim != 3 or gts.shape[1:] != edge_map.shape or gts.shape[0] == 0:
        raise ValueError(
            f"annotators {gts.shape} must be (K, H, W) with K >= 1 and (H, W) = "
            f"{edge_map.shape} of the edge map"
        )
    tolerance = max_dist_px(edge_map.shape, max_dist)
    gt_points = [np.argwhere(g) for g in gts]
    gt_trees = [cKDTree(p) for p in gt_points]
    sum_r = int(sum(len(p) for p in gt_points))
    out = np.zeros((n_thresholds, 4), dtype=np.int64)
    previous: tuple[int, np.ndarray] | None = None  # (pixels >= t, counts): nested sets
    for i, t in enumerate(thresholds(n_thresholds)):
        above = edge_map >= max(_EPS, t)
        size = int(np.count_nonzero(above))
        if previous is not None and previous[0] == size:
            out[i] = previous[1]
            continue
        binary = thin_lines(above) if thin and size else above
        pred_points = np.argwhere(binary)
        matched = np.zeros(len(pred_points), dtype=bool)
        cnt_r = 0
        for points, tree in zip(gt_points, gt_trees, strict=True):
            rows, _ = _match(pred_points, points, tree, tolerance)
            matched[rows] = True
            cnt_r += len(rows)
        out[i] = (cnt_r, sum_r, int(matched.sum()), len(pred_points))
        previous = (size, out[i].copy())
    return out


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
