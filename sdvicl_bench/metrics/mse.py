"""Mean squared error on [0, 1] maps, and Visual Prompting's ImageNet-normalised variant.

Averaging: each function scores one sample, as the mean over all its elements (pixels, and
channels where there are any); a task's MSE is the plain mean of these per-sample values
(``metrics.iou.mean_with_ci``), so images of different sizes weigh the same.
"""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over all elements of (pred - gt)^2; arrays of any shape, equal shapes, in [0, 1].

    Computed in float64. Shapes must match (ValueError otherwise; no broadcasting).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    if pred.size == 0:
        raise ValueError("mse needs at least one element")
    return float(np.mean((pred - gt) ** 2))


def imagenet_normalise(rgb: np.ndarray) -> np.ndarray:
    """(x - mean) / std per channel of an RGB array (..., 3) in [0, 1] -> float64 (..., 3)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an RGB array (..., 3), got shape {rgb.shape}")
    return (rgb - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)


def mse_vp(pred_rgb: np.ndarray, gt_rgb: np.ndarray) -> float:
    """MSE after ImageNet normalisation, as Visual Prompting computed it for colorization.

    ``pred_rgb`` and ``gt_rgb``: float (H, W, 3) in [0, 1], equal shapes. Both are normalised
    per channel with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); the result is
    the mean over all H * W * 3 elements of the squared difference (so each channel's error
    is scaled by 1 / std_c^2). VP compared its 111 px crops; this scores the whole image.
    """
    pred = np.asarray(pred_rgb, dtype=np.float64)
    gt = np.asarray(gt_rgb, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    if pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"mse_vp needs RGB arrays (H, W, 3), got shape {pred.shape}")
    return mse(imagenet_normalise(pred), imagenet_normalise(gt))
