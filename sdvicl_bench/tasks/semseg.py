"""Semantic segmentation (Cityscapes): a class map painted with one colour per class.

An episode shows the model prompt pairs (image A, its painted class map B) and the query
image C; the model paints D. The ground truth picture paints each of the 19 trainIds with
its palette colour and the ignored pixels (trainId 255) black. The predicted picture is
decoded per pixel to the nearest (Euclidean RGB) of the 19 palette colours and black, at
the picture's own resolution; black decodes to 255 ("predicted black", an error wherever
the ground truth is valid). The class map is then resized to the image's size with NEAREST.
Scored with ``metrics.confusion`` (one confusion matrix over the whole dataset).

Palettes (``PALETTES``):

- ``official``: the cityscapesScripts colours. Some are close: bus (0, 60, 100) and train
  (0, 80, 100) are 20 apart, pole/fence 37, truck (0, 0, 70) is 70 from black, so a little
  colour noise in the painted picture already flips classes.
- ``spread``: 19 colours far apart (as Painter does): a farthest-point choice on the 3 x 3 x 3
  RGB grid {0, 128, 255}^3, seeded with black (so no near-black colour is chosen). Every two
  colours, and every colour and black, are at least 127 apart. (A 6 x 6 x 6 grid was tried:
  its greedy choice only reaches 102.)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from sdvicl_bench.errors import ConfigError
from sdvicl_bench.tasks.pictures import as_rgb, size_of
from sdvicl_bench.types import IGNORE_LABEL, NUM_CLASSES

OPTIONS: dict[str, Any] = {
    "palette": Literal["official", "spread"],  # tasks.semseg.PALETTES
    "miou": Literal["dataset", "per_image"],  # one confusion matrix, or mean of images'
    "classes": tuple[int, ...] | None,  # trainIds the dataset draws (null: all 19)
}
"""`task.options` of semseg, with the type or choices of each."""

OPTION_RANGES: dict[str, tuple[float, float]] = {"classes": (0, 18)}  # trainIds, each
"""The valid closed range of a numeric option (of each item of a list)."""

OFFICIAL_PALETTE: np.ndarray = np.array(
    [
        (128, 64, 128),  # road
        (244, 35, 232),  # sidewalk
        (70, 70, 70),  # building
        (102, 102, 156),  # wall
        (190, 153, 153),  # fence
        (153, 153, 153),  # pole
        (250, 170, 30),  # traffic light
        (220, 220, 0),  # traffic sign
        (107, 142, 35),  # vegetation
        (152, 251, 152),  # terrain
        (70, 130, 180),  # sky
        (220, 20, 60),  # person
        (255, 0, 0),  # rider
        (0, 0, 142),  # car
        (0, 0, 70),  # truck
        (0, 60, 100),  # bus
        (0, 80, 100),  # train
        (0, 0, 230),  # motorcycle
        (119, 11, 32),  # bicycle
    ],
    dtype=np.uint8,
)
"""uint8 (19, 3): cityscapesScripts ``labels.py`` colours in trainId order."""


def _spread_palette(n: int = NUM_CLASSES, levels: tuple[int, ...] = (0, 128, 255)) -> np.ndarray:
    """uint8 (n, 3): greedy farthest-point colours on the grid ``levels``^3, seeded with black.

    Each step picks the grid colour farthest (Euclidean) from black and all colours picked so
    far; ties go to the first in ``itertools.product`` order. Deterministic.
    """
    grid = np.array(list(itertools.product(levels, repeat=3)), dtype=np.int64)
    nearest = (grid**2).sum(axis=1)  # squared distance to black
    picked = []
    for _ in range(n):
        index = int(np.argmax(nearest))
        picked.append(grid[index])
        nearest = np.minimum(nearest, ((grid - grid[index]) ** 2).sum(axis=1))
    return np.array(picked, dtype=np.uint8)


PALETTES: dict[str, np.ndarray] = {
    "official": OFFICIAL_PALETTE,
    "spread": _spread_palette(),
}
"""Palette name -> uint8 (19, 3) colours in trainId order (see the module docstring)."""

for _colours in PALETTES.values():
    _colours.flags.writeable = False

BLACK = np.zeros(3, dtype=np.uint8)


def get_palette(palette: str | np.ndarray) -> np.ndarray:
    """uint8 (19, 3) colours of a palette name in ``PALETTES`` or of an explicit array."""
    if isinstance(palette, str):
        if palette not in PALETTES:
            raise ConfigError(
                f"palette {palette!r} does not exist. Fix: use one of {sorted(PALETTES)}."
            )
        return PALETTES[palette]
    colours = np.asarray(palette)
    if colours.shape != (NUM_CLASSES, 3):
        raise ValueError(f"palette must have shape ({NUM_CLASSES}, 3), got {colours.shape}")
    return colours.astype(np.uint8)


def render_gt(train_ids: np.ndarray, palette: str | np.ndarray = "official") -> Image.Image:
    """RGB picture of a class map: uint8 (H, W) trainIds -> PIL RGB (W, H).

    Classes 0..18 get their palette colour, 255 (ignore) black; other values: ValueError.
    """
    ids = np.asarray(train_ids)
    if ids.ndim != 2:
        raise ValueError(f"train_ids must be 2-D (H, W), got shape {ids.shape}")
    bad = (ids != IGNORE_LABEL) & ((ids < 0) | (ids >= NUM_CLASSES))
    if bad.any():
        raise ValueError(
            f"train_ids holds {ids[bad].flat[0]}: expected 0..{NUM_CLASSES - 1} or {IGNORE_LABEL}"
        )
    lut = np.zeros((256, 3), dtype=np.uint8)  # every id not a class stays black
    lut[:NUM_CLASSES] = get_palette(palette)
    return Image.fromarray(lut[ids.astype(np.uint8)], mode="RGB")


def classify(
    picture: Image.Image | np.ndarray,
    palette: str | np.ndarray = "official",
    classes: Sequence[int] | None = None,
) -> np.ndarray:
    """Nearest palette colour per pixel at the picture's resolution: -> uint8 (h, w).

    ``picture``: PIL image (any mode, converted to RGB) or uint8 array (h, w, 3). Each pixel
    gets the trainId of the nearest (squared Euclidean RGB, exact integers) of the palette
    colours of ``classes`` (default: all 19) and black; black gives 255. Ties go to the
    lower trainId, black last. A dataset that draws only some classes declares them
    (``task.options.classes``, the demo city), so no pixel is decoded into a class it never has.
    """
    rgb = as_rgb(picture)
    ids = np.arange(NUM_CLASSES) if classes is None else _class_ids(classes)
    colours = np.vstack([get_palette(palette)[ids], BLACK]).astype(np.int32)  # (k + 1, 3)
    labels = np.append(ids.astype(np.uint8), np.uint8(IGNORE_LABEL))
    # argmin_c |x - c|^2 = argmin_c (|c|^2 - 2 x.c); all terms fit int32.
    bias = (colours**2).sum(axis=1)  # (20,)
    flat = rgb.reshape(-1, 3).astype(np.int32)
    out = np.empty(flat.shape[0], dtype=np.uint8)
    chunk = 1 << 18  # ~20 MB of scores per chunk
    for start in range(0, flat.shape[0], chunk):
        part = flat[start : start + chunk]
        scores = bias[None, :] - 2 * (part @ colours.T)
        out[start : start + chunk] = labels[np.argmin(scores, axis=1)]
    return out.reshape(rgb.shape[:2])


def _class_ids(classes: Sequence[int]) -> np.ndarray:
    ids = np.array(sorted({int(c) for c in classes}), dtype=np.int64)
    if ids.size == 0 or ids.min() < 0 or ids.max() >= NUM_CLASSES:  # OPTION_RANGES
        raise ValueError(f"classes must be trainIds in 0..{NUM_CLASSES - 1}, got {list(classes)}")
    return ids


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 (h, w) to uint8 (H, W) with NEAREST; ``size`` is (W, H) as in PIL."""
    w, h = int(size[0]), int(size[1])
    if labels.shape == (h, w):
        return labels.copy()
    im = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="L")
    return np.asarray(im.resize((w, h), Image.Resampling.NEAREST)).copy()


def decode(
    picture: Image.Image | np.ndarray,
    target: Any,
    palette: str | np.ndarray = "official",
    classes: Sequence[int] | None = None,
) -> np.ndarray:
    """Predicted picture (PIL or uint8 (h, w, 3)) -> trainIds uint8 (H, W) of ``target``'s
    size (the truth trainIds, or a size (W, H): ``pictures.size_of``).

    ``classify`` at the picture's resolution, then NEAREST resize; 255 = predicted black.
    """
    return resize_labels(classify(picture, palette, classes), size_of(target))
