"""Decoder of the test task `fgseg_inverted`: the class mask drawn black on white.

Same data and metric as fgseg (the pascal5i loader, IoU), only the picture convention is
flipped: what the model must paint is the background.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def render_gt(mask: np.ndarray) -> Image.Image:
    """bool (H, W) -> PIL RGB (W, H): the mask's pixels black, the rest white."""
    grey = np.where(np.asarray(mask, dtype=bool), np.uint8(0), np.uint8(255))
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), mode="RGB")


def decode(picture: Image.Image, target: np.ndarray) -> np.ndarray:
    """Picture -> bool mask of the target's size: the pixels nearer black than white."""
    h, w = np.asarray(target).shape[:2]
    rgb = np.asarray(picture.convert("RGB").resize((w, h), Image.Resampling.NEAREST))
    return rgb.sum(axis=2, dtype=np.uint16) < 383
