"""Dataset-level semantic segmentation scores from one confusion matrix (Cityscapes convention).

Averaging: these are dataset-level, not per-episode means. Accumulate ONE matrix over all
episodes (``conf += confusion_matrix(pred, gt)`` for each query), then compute ``miou`` /
``pixel_accuracy`` / ``per_class_iou`` once on the sum. (The mean of per-image mIoUs is a
different, noisier number; the paper's Table 4 and the Cityscapes benchmark pool pixels.)

``task.options.miou=per_image`` asks for that other number instead: ``per_image_miou`` (the
mean over images of each image's mIoU) and ``per_image_class_iou`` (per class, the mean over
the images where the class is present of its IoU), from the per-image matrices.

The matrix is int64 (C, C + 1): row = ground-truth class, column = predicted class, and an
extra last column for "predicted black" (prediction 255). Pixels whose ground truth is the
ignore label are skipped; a valid pixel predicted black is a false negative of its class.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, num_classes: int = 19, ignore: int = 255
) -> np.ndarray:
    """Pixel counts int64 (C, C + 1) of one prediction against its ground truth.

    ``pred``, ``gt``: integer class maps (H, W) of the same shape. ``gt`` holds 0..C-1 or
    ``ignore`` (skipped); ``pred`` holds 0..C-1 or ``ignore`` (counted in the last column,
    "predicted black"). Other values raise ValueError.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    c = int(num_classes)
    gt = gt.astype(np.int64).ravel()
    pred = pred.astype(np.int64).ravel()
    valid = gt != ignore
    gt = gt[valid]
    pred = pred[valid]
    if gt.size and (gt.min() < 0 or gt.max() >= c):
        raise ValueError(f"ground truth holds values outside 0..{c - 1} and {ignore}")
    black = pred == ignore
    if pred.size and ((pred < 0) | ((pred >= c) & ~black)).any():
        raise ValueError(f"prediction holds values outside 0..{c - 1} and {ignore}")
    pred = np.where(black, c, pred)
    counts = np.bincount(gt * (c + 1) + pred, minlength=c * (c + 1))
    return counts.reshape(c, c + 1).astype(np.int64)


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """IoU per class, float64 (C,), from a (C, C + 1) matrix: TP / (TP + FN + FP).

    FN counts the class's pixels predicted as another class or black; FP the pixels predicted
    as the class whose ground truth is another (valid) class. A class absent from both the
    ground truth and the prediction has NaN.
    """
    conf = _check(conf)
    c = conf.shape[0]
    tp = np.diag(conf[:, :c]).astype(np.float64)
    gt_total = conf.sum(axis=1)  # TP + FN (FN includes predicted black)
    pred_total = conf[:, :c].sum(axis=0)  # TP + FP
    union = gt_total + pred_total - tp
    iou = np.full(c, np.nan)
    present = union > 0
    iou[present] = tp[present] / union[present]
    return iou


def miou(conf: np.ndarray) -> float:
    """Mean IoU over the classes present in the ground truth or the prediction (nanmean).

    NaN if no class is present (an empty matrix).
    """
    iou = per_class_iou(conf)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


def per_image_miou(confs: list[np.ndarray] | np.ndarray) -> list[float]:
    """Each image's mIoU (``miou`` of its own matrix) from matrices (N, C, C + 1).

    An image with no valid pixel and nothing predicted gives NaN (callers leave it out).
    """
    return [miou(conf) for conf in confs]


def per_image_class_iou(confs: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Per class, the mean over images of its IoU where it is present: float64 (C,).

    ``confs``: per-image matrices (N, C, C + 1). An image counts for a class when the class
    is in its ground truth or its prediction; a class present in no image has NaN.
    """
    stacked = np.stack([per_class_iou(conf) for conf in confs]) if len(confs) else None
    if stacked is None:
        raise ValueError("per_image_class_iou needs at least one matrix")
    present = ~np.isnan(stacked)
    counts = present.sum(axis=0)
    sums = np.where(present, stacked, 0.0).sum(axis=0)
    out = np.full(stacked.shape[1], np.nan)
    out[counts > 0] = sums[counts > 0] / counts[counts > 0]
    return out


def pixel_accuracy(conf: np.ndarray) -> float:
    """Correct pixels / valid ground-truth pixels (predicted black is wrong); NaN if none."""
    conf = _check(conf)
    total = conf.sum()
    if total == 0:
        return float("nan")
    return float(np.trace(conf[:, : conf.shape[0]]) / total)


def _check(conf: np.ndarray) -> np.ndarray:
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[1] != conf.shape[0] + 1:
        raise ValueError(f"confusion matrix must have shape (C, C + 1), got {conf.shape}")
    return conf
