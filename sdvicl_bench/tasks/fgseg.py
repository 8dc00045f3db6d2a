"""Foreground segmentation (Pascal-5i): the mask of one class, white on black.

An episode shows the model prompt pairs (image A, its class mask B) and the query image C;
the model paints D, the query's mask. The ground truth is the query's pixels of the episode
class in white, everything else (other classes, background, the 255 "void" border) black.
The predicted picture is decoded per pixel to white or black at the picture's own resolution
by the rule `task.options.binarize` names (``binarize``): ``nearest`` (default) the nearer of
white and black (mean RGB > 127.5), ``vp`` Visual Prompting's ``round_image`` on uint8
(``vp_white``). The binary map is then resized to the image's size by pixel centres
(``resize_mask``), never the RGB picture bilinearly (that would move the boundary with the
interpolation). Scored with ``metrics.iou.foreground_iou`` per episode.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from PIL import Image

from sdvicl_bench.errors import ConfigError
from sdvicl_bench.tasks.pictures import as_rgb, size_of

OPTIONS: dict[str, Any] = {
    "score_size": int | None,  # null: the image's size; 111: VP/UnsupPR's cell
    "binarize": Literal["nearest", "vp"],  # mean RGB > 127.5, or VP's uint8 round_image
    "void": Literal["ignore", "background"],  # 255 pixels in class_miou/fb_iou counts
}
"""`task.options` of fgseg (its decoder, family and metrics read them), with the type or
choices of each (`protocols.registry.check_task_options` checks them)."""

BINARIZE_RULES = ("nearest", "vp")
"""`task.options.binarize` values (OPTIONS lists the same)."""

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
"""The normalisation Visual Prompting's canvas goes through (its mae_utils.py)."""


def render_gt(mask: np.ndarray) -> Image.Image:
    """RGB picture of a mask: bool (H, W) -> PIL RGB (W, H), True white, False black."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    grey = np.where(mask.astype(bool), np.uint8(255), np.uint8(0))
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), mode="RGB")


def binarize(picture: Image.Image | np.ndarray, rule: str = "nearest") -> np.ndarray:
    """White pixels of a picture at its own resolution by ``rule``: -> bool (h, w).

    ``picture``: PIL image (any mode, converted to RGB) or uint8 array (h, w, 3). ``rule``:
    ``nearest`` (``nearest_white``) or ``vp`` (``vp_white``); anything else is a one-line
    ConfigError.
    """
    rgb = as_rgb(picture)
    if rule == "nearest":
        return nearest_white(rgb)
    if rule == "vp":
        return vp_white(rgb)
    raise ConfigError(
        f"Unknown binarize rule {rule!r}. Fix: pass task.options.binarize=nearest "
        "(mean RGB > 127.5, the default) or task.options.binarize=vp (Visual Prompting's rule)."
    )


binarize_picture = binarize
"""``binarize`` under the name ``decode`` calls it by (its ``binarize`` argument, the task
option, shadows the function there)."""


def nearest_white(rgb: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3) -> bool (h, w): True where the mean of R, G, B exceeds 127.5, the
    nearer of white and black in RGB (computed exactly on integers: R + G + B >= 383)."""
    return rgb.sum(axis=2, dtype=np.uint16) >= 383


def vp_white(rgb: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3) -> bool (h, w): Visual Prompting's ``round_image(img, [WHITE, BLACK])``.

    VP (evaluate/reasoning_dataloader.py) runs it on uint8 canvases, so its arithmetic wraps:
    per channel the difference to 255 (WHITE) and to 0 (BLACK) is taken modulo 256, squared
    modulo 256, the three channels averaged as floats, and the smaller average wins, WHITE
    (the first option, ``argmin``) on ties. The averages of integer sums of three compare as
    the sums do, and never tie: per channel (g + 1)^2 and g^2 differ in parity. So grey 200
    rounds to black (white 209 vs black 64 per channel) and 15 to white (0 vs 225); of the 256
    greys, 64 below 128 round to white and 64 from 128 up to black.
    """
    x = rgb.astype(np.int32)
    to_white = (((x - 255) % 256) ** 2 % 256).sum(axis=2)
    to_black = ((x**2) % 256).sum(axis=2)
    return to_white <= to_black


def vp_canvas_levels(normalize: type[np.floating]) -> np.ndarray:
    """uint8 (256, 3): the level each channel of VP's canvas holds for a grey level g of a
    truth picture, after VP's float round trip and before ``round_image``.

    VP turns the resized truth into a tensor (``ToTensor``: float32 g / 255), normalises it
    with ImageNet's mean and std, and reads the canvas back as
    ``int(clip((x * std + mean) * 255, 0, 255))`` in float64 (truncation). ``normalize`` is
    the precision of the normalising step: np.float64 for fgseg (evaluate_segmentation.py
    subtracts NumPy float64 arrays; every level comes back unchanged), np.float32 for det
    (DETR's ``Normalize`` on float32 tensors; many levels come back one lower, per channel).
    """
    value = (np.arange(256, dtype=np.float32) / np.float32(255))[:, None]
    mean, std = IMAGENET_MEAN.astype(normalize), IMAGENET_STD.astype(normalize)
    normalized = (value.astype(normalize) - mean) / std
    back = (normalized.astype(np.float64) * IMAGENET_STD + IMAGENET_MEAN) * 255
    return np.trunc(np.clip(back, 0, 255)).astype(np.uint8)


def binarize_label_cell(
    grey: np.ndarray, rule: str = "nearest", normalize: type[np.floating] = np.float64
) -> np.ndarray:
    """A resized truth picture's grey levels uint8 (h, w) -> bool (h, w), white by ``rule``.

    ``nearest``: grey >= 128 (the nearer of white and black). ``vp``: the levels VP's canvas
    holds (``vp_canvas_levels(normalize)``) rounded with ``vp_white``, as VP rounds its label
    cell.
    """
    grey = np.asarray(grey, dtype=np.uint8)
    if rule == "vp":
        return binarize(vp_canvas_levels(normalize)[grey], "vp")
    return binarize(np.repeat(grey[:, :, None], 3, axis=2), rule)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize bool (h, w) to bool (H, W) by pixel centres; ``size`` is (W, H) as in PIL.

    Destination pixel j takes source pixel floor((j + 1/2) * h / H), computed exactly in
    integers (``centre_indices``): the nearest-neighbour kernel torch calls ``nearest-exact``
    and ``tasks.det.scale_box`` uses, without float error. PIL's NEAREST computes the same in
    16.16 fixed point and, where a centre falls exactly on a source pixel edge, takes the
    pixel before (a one-row or one-column shift at those ties).
    """
    w, h = int(size[0]), int(size[1])
    if mask.shape == (h, w):
        return mask.copy()
    rows = centre_indices(mask.shape[0], h)
    cols = centre_indices(mask.shape[1], w)
    return np.asarray(mask, dtype=bool)[np.ix_(rows, cols)]


def centre_indices(src: int, dst: int) -> np.ndarray:
    """int (dst,): the source index of each destination pixel's centre, floor((2j + 1) *
    src / (2 dst)), in integers."""
    return (2 * np.arange(dst, dtype=np.int64) + 1) * src // (2 * dst)


def decode(picture: Image.Image | np.ndarray, target: Any, binarize: str = "nearest") -> np.ndarray:
    """Predicted picture (PIL or uint8 (h, w, 3)) -> foreground bool (H, W).

    ``target``: the truth mask (H, W) or a size (W, H) (``pictures.size_of``). ``binarize``:
    the rule (`task.options.binarize`, ``BINARIZE_RULES``)."""
    return resize_mask(binarize_picture(picture, binarize), size_of(target))
