"""Foreground IoU per sample, and the mean over samples with a bootstrap interval.

Averaging: ``foreground_iou`` scores one episode; a task's "mIoU" (Pascal-5i, VP's
detection) is the plain mean of these per-episode values (``mean_with_ci``), not an IoU of
pixels pooled over the dataset.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


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


def mean_with_ci(
    values: Iterable[float], *, confidence: float = 0.95, n_boot: int = 1000, seed: int = 0
) -> dict[str, float | int]:
    """Mean of per-sample scores with a percentile-bootstrap confidence interval.

    Every sample weighs the same (a plain mean). The interval resamples the values with
    replacement ``n_boot`` times (numpy Generator seeded by ``seed``, so deterministic) and
    takes the (1 - confidence)/2 and (1 + confidence)/2 quantiles of the resampled means.
    Returns ``{"mean", "low", "high", "n"}``; a single value gives low = high = mean.
    """
    x = np.asarray(list(values), dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_with_ci needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    mean = float(x.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, 2_000_000 // x.size)  # bound memory to ~16 MB of indices per chunk
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean": mean, "low": float(low), "high": float(high), "n": int(x.size)}
