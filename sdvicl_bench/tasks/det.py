"""Single object detection (VOC 2012, VP's filter): the object's box, filled white on black.

An episode shows prompt pairs (image A, its box picture B) and the query image C; the model
paints D. The ground truth is the query's box (``data.voc_det.box_mask``) filled white on
black. Decoding a predicted picture (h, w) to an image of size (W, H):

1. binarise per pixel as task 1 (``fgseg.binarize`` by `task.options.binarize`: ``nearest``,
   mean RGB > 127.5, or ``vp``, Visual Prompting's uint8 ``round_image``), at (h, w);
2. keep the largest 8-connected white component (``scipy.ndimage.label``, 3x3 structure;
   on a tie in pixel count the component met first in row-major order wins);
3. take its bounding box (x0, y0, x1, y1): 0-based, inclusive, at (h, w);
4. map the box to (W, H) by scaling coordinates (``scale_box``), never by resizing the RGB
   picture, and fill it. No white pixel at all: the empty prediction (IoU 0 against a box).

Scored with ``metrics.iou.foreground_iou`` of the two box masks, per episode.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from PIL import Image
from scipy import ndimage

from sdvicl_bench.tasks import fgseg
from sdvicl_bench.tasks.pictures import size_of

OPTIONS: dict[str, Any] = {"score_size": int | None, "binarize": Literal["nearest", "vp"]}
"""`task.options` of det (as fgseg's `score_size` and `binarize`)."""

Box = tuple[int, int, int, int]
"""(x0, y0, x1, y1): 0-based, inclusive array indices (column x, row y)."""

_EIGHT = np.ones((3, 3), dtype=bool)


def render_gt(box_mask: np.ndarray) -> Image.Image:
    """RGB picture of a box mask: bool (H, W) -> PIL RGB (W, H), box white, rest black."""
    return fgseg.render_gt(box_mask)


def decode_box(picture: Image.Image | np.ndarray, rule: str = "nearest") -> Box | None:
    """Bounding box of the largest 8-connected white component, at the picture's resolution.

    ``picture``: PIL image (any mode) or uint8 array (h, w, 3), binarised by ``fgseg.binarize``
    with ``rule`` (``fgseg.BINARIZE_RULES``).
    Returns (x0, y0, x1, y1), 0-based inclusive, with 0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h;
    None when no pixel is white. Ties in size go to the lowest label (first in row-major order).
    """
    white = fgseg.binarize(picture, rule)
    labels, count = ndimage.label(white, structure=_EIGHT)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0  # background
    largest = int(np.argmax(sizes))
    rows, cols = np.nonzero(labels == largest)
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def scale_box(box: Box, src_size: tuple[int, int], dst_size: tuple[int, int]) -> Box:
    """Map a 0-based inclusive box from an image of ``src_size`` (w, h) to ``dst_size`` (W, H).

    Pixel i covers the interval [i, i + 1). The box's source extent [x0, x1 + 1) scales to
    [x0 * W/w, (x1 + 1) * W/w); the destination box holds the pixels whose centres j + 0.5 lie
    in that interval: the pixel-centre rule of NEAREST resizing (destination pixel j samples
    source pixel floor((j + 1/2) * w/W)), so the box neither grows nor shrinks on average and
    equals the box mask resized with exact NEAREST (PIL's float NEAREST may differ by one
    pixel where a centre falls exactly on a box edge):

        x0' = ceil(x0 * W/w - 1/2),   x1' = ceil((x1 + 1) * W/w - 1/2) - 1   (same for y, H/h)

    computed exactly in integers. Same size: the box is unchanged. When downscaling leaves no
    centre inside (a box thinner than one destination pixel), the one destination pixel that
    holds the box's centre, floor((x0 + x1 + 1) / 2 * W/w), is kept, so a found box never
    becomes empty.
    """
    (w, h), (big_w, big_h) = src_size, dst_size
    x0, x1 = _scale_span(box[0], box[2], int(w), int(big_w))
    y0, y1 = _scale_span(box[1], box[3], int(h), int(big_h))
    return x0, y0, x1, y1


def _scale_span(lo: int, hi: int, src: int, dst: int) -> tuple[int, int]:
    """Inclusive index span [lo, hi] on ``src`` pixels -> inclusive span on ``dst`` pixels."""
    new_lo = _ceil_div(2 * lo * dst - src, 2 * src)
    new_hi = _ceil_div(2 * (hi + 1) * dst - src, 2 * src) - 1
    new_lo, new_hi = max(new_lo, 0), min(new_hi, dst - 1)
    if new_hi < new_lo:
        centre = min((lo + hi + 1) * dst // (2 * src), dst - 1)
        new_lo = new_hi = centre
    return new_lo, new_hi


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def box_to_mask(box: Box | None, size: tuple[int, int]) -> np.ndarray:
    """bool (H, W), ``size`` = (W, H), True on the 0-based inclusive ``box``; None: all False."""
    w, h = int(size[0]), int(size[1])
    mask = np.zeros((h, w), dtype=bool)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def decode(picture: Image.Image | np.ndarray, target: Any, binarize: str = "nearest") -> np.ndarray:
    """Predicted picture (PIL or uint8 (h, w, 3)) -> box mask bool (H, W) of ``target``'s size
    (the truth box mask, or a size (W, H): ``pictures.size_of``).

    The largest white component's bounding box (``decode_box``, white by the ``binarize``
    rule, `task.options.binarize`) at the picture's (h, w), mapped to (W, H) with
    ``scale_box`` and filled; all False when no pixel is white.
    """
    size = size_of(target)
    box = decode_box(picture, binarize)
    if box is None:
        return box_to_mask(None, size)
    src = picture.size if isinstance(picture, Image.Image) else picture.shape[1::-1]
    return box_to_mask(scale_box(box, src, (int(size[0]), int(size[1]))), size)
