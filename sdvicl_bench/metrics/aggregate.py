"""Aggregation of per-sample scores: the mean with a bootstrap interval, per group and overall.

A task's per-sample metrics (IoU, MSE, PCK ...) reach results.json through `metric_block`:
the plain mean over the samples that have a score (NaN = not scorable, or a record made
before the metric existed), its 95% percentile-bootstrap interval, the same per group
(Pascal-5i folds) and the mean of the groups' means (the papers' "mean of folds").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


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


def aggregate(values: Iterable[float]) -> dict[str, float | int]:
    """Mean with a 95% bootstrap interval over the finite values; NaNs are left out.

    No finite value: ``{"mean": nan, "n": 0}``.
    """
    kept = [v for v in values if v == v]
    return mean_with_ci(kept) if kept else {"mean": float("nan"), "n": 0}


def metric_block(values: Sequence[float], groups: Sequence[str | None]) -> dict:
    """results.json's block of one per-sample metric: overall, per group, mean of groups.

    values[i] is sample i's score (NaN if it has none), groups[i] its group (None: none).
    Returns ``{"overall": aggregate, "per_fold": {group: aggregate}, "mean_of_folds": float}``;
    the mean of folds averages the groups that have a score (NaN when none has).
    """
    if len(values) != len(groups):
        raise ValueError(f"{len(values)} values but {len(groups)} groups")
    names = sorted({g for g in groups if g is not None})
    per_group = {
        g: aggregate([v for v, h in zip(values, groups, strict=True) if h == g]) for g in names
    }
    means = [b["mean"] for b in per_group.values() if b.get("n")]
    return {
        "overall": aggregate(values),
        "per_fold": per_group,
        "mean_of_folds": float(np.mean(means)) if means else float("nan"),
    }
