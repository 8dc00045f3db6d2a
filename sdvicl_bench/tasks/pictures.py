"""The one picture format every task decoder reads: a predicted picture as uint8 RGB."""

from __future__ import annotations

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
