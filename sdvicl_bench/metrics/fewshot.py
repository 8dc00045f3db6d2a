"""Few-shot segmentation scores pooled over episodes: class mIoU and FB-IoU (HSNet convention).

Averaging: unlike the per-episode foreground IoU (``metrics.iou``, the "mIoU" of the V-ICL
literature), these pool pixels. Each episode contributes its counts
``(fg_inter, fg_union, bg_inter, bg_union)`` (``binary_counts``); within a fold,

- the IoU of a class is sum(fg_inter) / sum(fg_union) over the episodes of that class, and
  the fold's class mIoU is the mean over the fold's classes (``class_miou``);
- FB-IoU is the mean of the foreground IoU sum(fg_inter) / sum(fg_union) and the background
  IoU sum(bg_inter) / sum(bg_union), both over all the fold's episodes (``fb_iou``).

The benchmark number is then the mean over folds (as HSNet's ``AverageMeter`` per fold run,
averaged over the four folds). A pooled union of 0 (no foreground in any ground truth and
none predicted) gives IoU 1.0, as ``foreground_iou`` does for one episode (HSNet's code would
give 0; it cannot happen on Pascal-5i, where every query shows its class).

Void pixels (the 255 border of the VOC labels): by default (``void=ignore``) they leave all
four counts, in the prediction and in the truth alike, as HSNet's ``Evaluator`` does (its
``classify_prediction`` sets the prediction to 255 wherever the query's ignore mask is set,
and ``torch.histc(bins=2, min=0, max=1)`` then counts neither; PFENet's scheme). With
``void=background`` they count as background, as the per-episode ``iou`` counts them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

VOID_RULES = ("ignore", "background")
"""`task.options.void` values (tasks/fgseg.py OPTIONS lists the same); the first is the default."""


def void_rule(options: dict[str, Any]) -> str:
    """The void rule a task's options name (`task.options.void`; ``ignore`` when unset)."""
    return str(options.get("void") or VOID_RULES[0])


def binary_counts(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None
) -> tuple[int, int, int, int]:
    """(fg_inter, fg_union, bg_inter, bg_union) pixel counts of two bool masks (H, W).

    Foreground is True; background is False in both. ``void``: bool (H, W), pixels left out
    of all four counts (HSNet's ignore mask); None counts every pixel. Shapes must match
    (ValueError otherwise). Non-bool arrays are read as ``!= 0``.
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    gt = np.asarray(gt).astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    keep = np.ones(gt.shape, dtype=bool)
    if void is not None:
        void = np.asarray(void).astype(bool, copy=False)
        if void.shape != gt.shape:
            raise ValueError(f"void mask shape {void.shape} differs from ground truth {gt.shape}")
        keep = ~void
    return (
        int(np.count_nonzero(pred & gt & keep)),
        int(np.count_nonzero((pred | gt) & keep)),
        int(np.count_nonzero(~pred & ~gt & keep)),
        int(np.count_nonzero((~pred | ~gt) & keep)),
    )


def pooled_iou(inter: Sequence[int] | np.ndarray, union: Sequence[int] | np.ndarray) -> float:
    """sum(inter) / sum(union) of per-episode counts (N,); NaN for N = 0; 1.0 if the union is 0."""
    inter = np.asarray(inter, dtype=np.int64).ravel()
    union = np.asarray(union, dtype=np.int64).ravel()
    if inter.shape != union.shape:
        raise ValueError(f"inter {inter.shape} and union {union.shape} must have one shape")
    if inter.size == 0:
        return float("nan")
    total = int(union.sum())
    return 1.0 if total == 0 else float(inter.sum()) / total


def class_iou(counts: np.ndarray, classes: Sequence[Hashable]) -> dict[Hashable, float]:
    """IoU per class from the foreground counts of its episodes: {class: pooled IoU}.

    ``counts`` int (N, 4) rows of ``binary_counts``; ``classes`` (N,) the class of each
    episode. Classes appear in sorted order; only classes with at least one episode appear.
    """
    counts = _check(counts)
    labels = list(classes)
    if len(labels) != counts.shape[0]:
        raise ValueError(f"{len(labels)} classes for {counts.shape[0]} episodes")
    out: dict[Hashable, float] = {}
    for c in sorted(set(labels), key=lambda x: (str(type(x)), x)):
        rows = [i for i, label in enumerate(labels) if label == c]
        out[c] = pooled_iou(counts[rows, 0], counts[rows, 1])
    return out


def class_miou(counts: np.ndarray, classes: Sequence[Hashable]) -> float:
    """Mean over the classes present of ``class_iou`` (one fold's class mIoU); NaN if none."""
    per_class = class_iou(counts, classes)
    return float(np.mean(list(per_class.values()))) if per_class else float("nan")


def fb_iou(counts: np.ndarray) -> float:
    """Mean of the pooled foreground IoU and the pooled background IoU of counts (N, 4).

    NaN for N = 0.
    """
    counts = _check(counts)
    if counts.shape[0] == 0:
        return float("nan")
    fg = pooled_iou(counts[:, 0], counts[:, 1])
    bg = pooled_iou(counts[:, 2], counts[:, 3])
    return (fg + bg) / 2.0


def _check(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size == 0:
        return counts.reshape(0, 4)
    if counts.ndim != 2 or counts.shape[1] != 4:
        raise ValueError(f"counts must have shape (N, 4), got {counts.shape}")
    return counts
