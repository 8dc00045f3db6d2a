"""Edge detection: an edge map, white on black (Canny on VOC images, or BSDS500's).

An episode shows prompt pairs (image A, its edge map B) and the query image C; the model
paints D, the query's edge map. By default (``task.options.source=voc``) images are the
Pascal VOC 2012 ones the other Pascal tasks use (val queries, train prompt pool), so nothing
extra is downloaded, and the ground truth is Canny (below). ``source=bsds500`` uses BSDS500
(test queries, train prompts) with the mean of the human boundary maps as the ground truth
(``data/bsds.py``; the dataset family is ``protocols.families.edges``).

Ground truth: ``canny_edges`` runs scikit-image's ``feature.canny`` with ``sigma=2`` and its
default hysteresis thresholds on the grey image (PIL ``convert("L")``, ITU-R 601 luma) as
float in [0, 1]; ``render_gt`` draws the edges white on black.

Decoding: the predicted picture's grey level (mean of R, G, B over 255) in [0, 1], resized to
the image's own size. Unlike the binary masks of ``tasks.fgseg`` this map is continuous and
scored with MSE (``metrics.mse.mse``), so a bilinear resize of the grey map is appropriate
(it is applied to the decoded map, not the RGB picture, and clipped to [0, 1]). An all-black
picture scores the edge density (the fraction of edge pixels): that is the trivial baseline.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import feature

from sdvicl_bench.tasks.pictures import as_rgb, size_of

OPTIONS: dict[str, Any] = {
    "source": Literal["voc", "bsds500"],
    "target_resize": Literal["nearest", "area"],  # B to the sampler's side (pipeline.RESAMPLE)
    "edge_width": int,  # Canny edges thickened to this many px (1: as Canny draws them)
    "canny_thresholds": tuple[float, float] | None,  # (low, high); null: scikit-image's
}
"""`task.options` of edges, with the type or choices of each."""

OPTION_RANGES: dict[str, tuple[float, float]] = {
    "edge_width": (1, 64),  # px
    "canny_thresholds": (0.0, 1.0),  # gradient magnitudes of a [0, 1] grey image, each
}
"""The valid closed range of a numeric option (of each item of a list)."""

CANNY_SIGMA = 2.0


def grey_float(image: Image.Image) -> np.ndarray:
    """Grey image as float64 (H, W) in [0, 1]: PIL ``convert("L")`` (ITU-R 601) / 255."""
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def canny_edges(image: Image.Image, thresholds: tuple[float, float] | None = None) -> np.ndarray:
    """Canny edges of an image (PIL, size (W, H)) -> bool (H, W).

    scikit-image ``feature.canny(grey, sigma=2)`` on ``grey_float``, with its default
    hysteresis thresholds or ``thresholds`` = (low, high) gradient magnitudes (a world whose
    backgrounds are textured sets higher ones, so its edges are contours, not texture).
    """
    low, high = (None, None) if thresholds is None else (float(t) for t in thresholds)
    return np.asarray(
        feature.canny(grey_float(image), sigma=CANNY_SIGMA, low_threshold=low, high_threshold=high),
        dtype=bool,
    )


def thicken(edges: np.ndarray, width: int) -> np.ndarray:
    """Edge map bool (H, W) with every line widened to ``width`` px: a binary dilation by a
    square of side ``width`` (1: unchanged). For worlds whose pictures the model sees at a
    fraction of their size, where one-pixel lines would not survive the resize."""
    edges = np.asarray(edges, dtype=bool)
    if int(width) < 1:
        raise ValueError(f"edge width must be at least 1, got {width}")
    if int(width) == 1:
        return edges
    return ndimage.binary_dilation(edges, structure=np.ones((int(width), int(width)), bool))


def render_gt(edges: np.ndarray) -> Image.Image:
    """RGB picture of an edge map (H, W): bool (edges white on black) or float in [0, 1]
    (grey level, e.g. BSDS500's mean of the human maps) -> PIL RGB (W, H)."""
    edges = np.asarray(edges)
    if edges.ndim != 2:
        raise ValueError(f"edges must be 2-D (H, W), got shape {edges.shape}")
    grey = (np.clip(edges.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def grey_level(picture: Image.Image | np.ndarray) -> np.ndarray:
    """Mean of R, G, B over 255 at the picture's resolution: -> float32 (h, w) in [0, 1].

    ``picture``: PIL image (any mode, converted to RGB) or uint8 array (h, w, 3).
    """
    rgb = as_rgb(picture)
    return (rgb.sum(axis=2, dtype=np.float64) / (3.0 * 255.0)).astype(np.float32)


def decode(picture: Image.Image | np.ndarray, target: Any) -> np.ndarray:
    """Predicted picture -> grey level float32 (H, W) in [0, 1] of ``target``'s size (the
    truth edge map, or a size (W, H): ``pictures.size_of``).

    The grey map is computed at the picture's resolution, then (if the size differs) resized
    bilinearly as a float ('F') image and clipped to [0, 1].
    """
    grey = grey_level(picture)
    w, h = size_of(target)
    if grey.shape == (h, w):
        return grey
    resized = Image.fromarray(grey, mode="F").resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
