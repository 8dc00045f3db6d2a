"""Decoder of the `shapes` task: the mask drawn white on black, read back by a threshold.

Its option is declared here, beside the code that reads it (sdvicl-bench checks
`task.options` against `OPTIONS` and `OPTION_RANGES` before a run: a bad value is one line).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

OPTIONS: dict[str, Any] = {"threshold": int}  # grey level above which a pixel is the shape
OPTION_RANGES: dict[str, tuple[float, float]] = {"threshold": (0, 254)}
DEFAULT_THRESHOLD = 127


def render_gt(mask: np.ndarray) -> Image.Image:
    """bool (H, W) -> PIL RGB: the mask white on black."""
    grey = np.where(np.asarray(mask, dtype=bool), np.uint8(255), np.uint8(0))
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), mode="RGB")


def decode(
    picture: Image.Image, target: np.ndarray, threshold: int = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Picture -> bool mask of the target's size: mean RGB above `threshold`."""
    h, w = np.asarray(target).shape[:2]
    rgb = np.asarray(picture.convert("RGB").resize((w, h), Image.Resampling.NEAREST))
    return rgb.mean(axis=2) > threshold
