"""What every task decoder shares: a predicted picture as uint8 RGB, and the size to decode to.

A decoder module (``tasks/<name>.py``, or any module a task YAML names) provides
``render_gt(target) -> picture``, ``decode(picture, target) -> prediction`` (at the target's
size, ``size_of``) and optionally ``visualize(prediction, target) -> picture``; keyword
arguments named like a ``task.options`` key (e.g. semseg's ``palette``) receive its value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image


def as_rgb(picture: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image (any mode, converted to RGB) or uint8 array (h, w, 3) -> uint8 (h, w, 3).

    Raises ValueError for an array of another dtype or shape.
    """
    if isinstance(picture, Image.Image):
        return np.asarray(picture.convert("RGB"))
    rgb = np.asarray(picture)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"picture must be a uint8 array (h, w, 3), got {rgb.dtype} {rgb.shape}")
    return rgb


def size_of(target: Any) -> tuple[int, int]:
    """(W, H) of what a decoder decodes to: a (W, H) pair, a PIL image, an array (H, W, ...)
    or a record with a ``size`` (W, H) (``types.Landmarks``)."""
    if isinstance(target, Image.Image):
        return target.size
    if isinstance(target, np.ndarray):
        return int(target.shape[1]), int(target.shape[0])
    if isinstance(target, (tuple, list)) and len(target) == 2:
        return int(target[0]), int(target[1])
    size = target.size
    return int(size[0]), int(size[1])
