"""Foreground IoU against torchmetrics and hand cases; bootstrap interval sanity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torchmetrics.functional.classification import binary_jaccard_index

from sdvicl_bench.metrics.iou import foreground_iou, mean_with_ci


def test_hand_cases() -> None:
    empty = np.zeros((4, 5), dtype=bool)
    some = empty.copy()
    some[1, 2] = True
    assert foreground_iou(empty, empty) == 1.0
    assert foreground_iou(some, empty) == 0.0
    assert foreground_iou(empty, some) == 0.0
    assert foreground_iou(some, some) == 1.0
    pred = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    gt = np.array([[0, 1, 1], [0, 1, 1], [0, 0, 1]], dtype=bool)
    # intersection 2 (the middle column's top two), union 4 + 5 - 2 = 7
    assert foreground_iou(pred, gt) == pytest.approx(2 / 7)


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        foreground_iou(np.zeros((3, 4), bool), np.zeros((4, 3), bool))


@pytest.mark.parametrize("seed", range(20))
def test_matches_torchmetrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
    pred = rng.random(shape) < rng.uniform(0, 1)
    gt = rng.random(shape) < rng.uniform(0, 1)
    if seed % 5 == 0:
        gt[:] = False  # one side empty
    if not (pred | gt).any():
        pred.flat[0] = True
    ref = binary_jaccard_index(torch.from_numpy(pred).float(), torch.from_numpy(gt).long())
    assert foreground_iou(pred, gt) == pytest.approx(float(ref), abs=1e-6)


def test_mean_with_ci_constant_and_single() -> None:
    out = mean_with_ci([0.5] * 10)
    assert out == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 10}
    one = mean_with_ci([0.3])
    assert one["mean"] == one["low"] == one["high"] == pytest.approx(0.3) and one["n"] == 1
    with pytest.raises(ValueError):
        mean_with_ci([])


def test_mean_with_ci_deterministic_and_plausible() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.4, 0.2, size=300)
    a = mean_with_ci(values, seed=7)
    assert a == mean_with_ci(list(values), seed=7)
    assert a != mean_with_ci(values, seed=8)
    assert a["mean"] == pytest.approx(values.mean())
    assert a["low"] < a["mean"] < a["high"] and a["n"] == 300
    # normal approximation: half width ~ 1.96 * sd / sqrt(n)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert (a["high"] - a["low"]) / 2 == pytest.approx(half, rel=0.15)
    # an independent percentile bootstrap (scipy) agrees up to resampling noise
    ref = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=0.95,
        n_resamples=2000,
        method="percentile",
        random_state=0,
    ).confidence_interval
    assert a["low"] == pytest.approx(ref.low, abs=0.25 * half)
    assert a["high"] == pytest.approx(ref.high, abs=0.25 * half)
    wider = mean_with_ci(values, confidence=0.99, seed=7)
    assert wider["low"] < a["low"] and wider["high"] > a["high"]
