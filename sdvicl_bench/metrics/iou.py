"""Foreground IoU per sample, and the mean over samples with a bootstrap interval.

Averaging: ``foreground_iou`` scores one episode; a task's "mIoU" (Pascal-5i, VP's
detection) is the plain mean of these per-episode values (``mean_with_ci``), not an IoU of
pixels pooled over the dataset.
"""

from __future__ import annotations

import numpy as np

from sdvicl_bench.metrics.aggregate import mean_with_ci


def foreground_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """|pred & gt| / |pred | gt| of two bool masks (H, W) of one sample.

    Both empty: 1.0 (nothing to find, nothing found); one empty: 0.0. Shapes must match
    (ValueError otherwise). Non-bool arrays are read as ``!= 0``.
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    gt = np.asarray(gt).astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


__all__ = ["foreground_iou", "mean_with_ci"]
