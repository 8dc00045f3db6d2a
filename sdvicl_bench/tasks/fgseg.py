"""Foreground segmentation (Pascal-5i): the mask of one class, white on black.

An episode shows the model prompt pairs (image A, its class mask B) and the query image C;
the model paints D, the query's mask. The ground truth is the query's pixels of the episode
class in white, everything else (other classes, background, the 255 "void" border) black.
The predicted picture is decoded per pixel to the nearer of white and black (mean RGB
> 127.5) at the picture's own resolution; the binary map is then resized to the image's
size with NEAREST, never the RGB picture bilinearly (that would move the boundary with the
interpolation). Scored with ``metrics.iou.foreground_iou`` per episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.tasks.pictures import as_rgb, size_of


def render_gt(mask: np.ndarray) -> Image.Image:
    """RGB picture of a mask: bool (H, W) -> PIL RGB (W, H), True white, False black."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    grey = np.where(mask.astype(bool), np.uint8(255), np.uint8(0))
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), mode="RGB")


def binarize(picture: Image.Image | np.ndarray) -> np.ndarray:
    """Nearer of white/black per pixel at the picture's resolution: -> bool (h, w).

    ``picture``: PIL image (any mode, converted to RGB) or uint8 array (h, w, 3). True where
    the mean of R, G, B exceeds 127.5 (computed exactly on integers: R + G + B >= 383).
    """
    rgb = as_rgb(picture)
    return rgb.sum(axis=2, dtype=np.uint16) >= 383


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize bool (h, w) to bool (H, W) with NEAREST; ``size`` is (W, H) as in PIL."""
    w, h = int(size[0]), int(size[1])
    if mask.shape == (h, w):
        return mask.copy()
    grey = Image.fromarray(mask.astype(np.uint8) * np.uint8(255), mode="L")
    return np.asarray(grey.resize((w, h), Image.Resampling.NEAREST)) > 127


def decode(picture: Image.Image | np.ndarray, target: Any) -> np.ndarray:
    """Predicted picture (PIL or uint8 (h, w, 3)) -> foreground bool (H, W).

    ``target``: the truth mask (H, W) or a size (W, H) (``pictures.size_of``)."""
    return resize_mask(binarize(picture), size_of(target))
