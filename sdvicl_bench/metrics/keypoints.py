"""Keypoint metrics per image: PCK, MSE and NE of normalised coordinates (DeepFashion FLD).

Averaging: each function scores one image over its *visible* landmarks; a task's number
(overall or per clothes type) is the plain mean of these per-image values over the images
that have at least one visible landmark (an image with none gives NaN and is left out).
Missing predictions (NaN) are never skipped: PCK counts them wrong, MSE and NE put them at
the image centre.

Normalisers: ``size`` (W, H) is the frame the coordinates are in. PCK's threshold is
``alpha * max(W, H)`` px; MSE and NE work in normalised coordinates (x / W, y / H). With
``task.options.normalize=image`` (default) the frame is the query image; with ``box`` it is
the clothes box of FLD's ``Anno/list_bbox.txt`` (coordinates relative to its upper-left
corner, ``tasks.keypoints.BoxLandmarks``), the crop FLD-trained models are scored on
(mmfashion's ``LandmarkDetectDataset`` crops to the box and its ``LandmarkDetectorEvaluator``
takes the L2 distance of (dx / box w, dy / box h)). A missing prediction is put at the
frame's centre: the image's, or the box's.
"""

from __future__ import annotations

import numpy as np


def _prepare(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    visible = np.asarray(visible).astype(bool).ravel()
    if not pred.shape == gt.shape or visible.shape != (gt.shape[0],):
        raise ValueError(
            f"pred {pred.shape}, gt {gt.shape} and visible {visible.shape} must be "
            "(K, 2), (K, 2) and (K,)"
        )
    return pred, gt, visible


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    size: tuple[int, int],
    alpha: float = 0.1,
) -> float:
    """Fraction of the visible landmarks predicted within ``alpha * max(W, H)`` px.

    ``pred``, ``gt`` float (K, 2) pixel (x, y) in the frame of ``size`` (W, H) (the image,
    or the clothes box: the module docstring); ``visible``
    bool (K,). A landmark is right when its Euclidean distance to the ground truth is
    <= the threshold; a missing prediction (any NaN) is wrong. The mean is over the visible
    landmarks of this image; no visible landmark gives NaN.
    """
    pred, gt, visible = _prepare(pred, gt, visible)
    if not visible.any():
        return float("nan")
    threshold = alpha * max(float(size[0]), float(size[1]))
    dist = np.linalg.norm(pred[visible] - gt[visible], axis=1)
    right = np.isfinite(dist) & (dist <= threshold)
    return float(right.mean())


def normalized_mse(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, size: tuple[int, int]
) -> float:
    """Mean squared error of normalised coordinates (x / W, y / H) over the visible landmarks.

    ``pred``, ``gt`` float (K, 2) pixel (x, y) in the frame of ``size`` (W, H); ``visible``
    bool (K,). The mean runs over both coordinates of every visible landmark (2 x K_visible
    squared differences). A missing prediction (any NaN) is replaced by the frame's centre
    ((W - 1) / 2, (H - 1) / 2) in pixel-centre coordinates. No visible landmark gives NaN.
    """
    diff = _normalized_offsets(pred, gt, visible, size)
    return float("nan") if diff is None else float(np.mean(diff**2))


def normalized_error(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, size: tuple[int, int]
) -> float:
    """FLD's normalised error (NE): mean L2 distance in normalised coordinates (x / W, y / H).

    ``pred``, ``gt`` float (K, 2) pixel (x, y) in the frame of ``size`` (W, H); ``visible``
    bool (K,). The mean runs over the visible landmarks of ``sqrt((dx / W)^2 + (dy / H)^2)``.
    A missing prediction (any NaN) is replaced by the frame's centre ((W - 1) / 2, (H - 1) / 2),
    as in ``normalized_mse``. No visible landmark gives NaN.
    """
    diff = _normalized_offsets(pred, gt, visible, size)
    return float("nan") if diff is None else float(np.mean(np.linalg.norm(diff, axis=1)))


def _normalized_offsets(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, size: tuple[int, int]
) -> np.ndarray | None:
    """(pred - gt) / (W, H) of the visible landmarks, float (K_visible, 2); a missing
    prediction (any NaN) counts as the frame's centre. None when no landmark is visible."""
    pred, gt, visible = _prepare(pred, gt, visible)
    if not visible.any():
        return None
    w, h = float(size[0]), float(size[1])
    pred = pred.copy()
    missing = ~np.isfinite(pred).all(axis=1)
    pred[missing] = ((w - 1) / 2, (h - 1) / 2)
    return (pred[visible] - gt[visible]) / np.array([w, h])


def pck_name(alpha: float) -> str:
    """The metric name of PCK at threshold ``alpha``: ``pck@0.05``, ``pck@0.1``, ``pck@0.2``."""
    return f"pck@{float(alpha):g}"
