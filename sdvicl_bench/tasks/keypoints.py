"""Keypoint detection (DeepFashion FLD): landmarks as coloured discs on black.

The ground-truth picture is a black canvas with one filled disc per *visible* landmark
(FLD visibility 0), of radius ``disc_radius`` (1.5% of the short side, at least 3 px), in the
fixed colour of the landmark's *name* (``LANDMARK_COLOURS``), so "left_hem" has the same
colour for every clothes type. Occluded (1) and truncated (2) landmarks are not drawn.

Decoding a predicted picture: for each landmark name, the pixels whose RGB lies within half
the smallest distance between two landmark colours of that name's colour (``COLOUR_RADIUS``)
are its candidates; the centroid of the largest 8-connected blob of them is the landmark,
mapped from the picture's pixel grid to the image's by pixel centres,
``x' = (x + 0.5) * W / w - 0.5``; no candidate pixel means the landmark is missing (NaN).

Scoring in the clothes box (``task.options.normalize=box``): the truth is a
``BoxLandmarks``, its positions relative to the box's upper-left corner and its ``size`` the
box's (w, h), so the metrics (``metrics.keypoints``, which normalise by ``size``) normalise
by the box. ``render_gt`` draws it back in its image, and ``decode`` locates landmarks in the
image the picture shows, then moves them into the box.

Colours: the seven non-black corners of the RGB cube plus the cube's centre (mid grey).
Every pair is at least 220 apart (so ``COLOUR_RADIUS`` is 110) and every colour at least 221
from the black canvas, the most that 8 colours plus black allow in the cube.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import numpy as np
from PIL import Image
from scipy import ndimage

from sdvicl_bench.tasks.pictures import as_rgb, size_of
from sdvicl_bench.types import Landmarks

OPTIONS: dict[str, Any] = {
    "pck_thresholds": tuple[float, ...],  # pck@<alpha> metrics, x max(W, H)
    "marker_radius": float | None,  # disc radius / short side (null: 1.5%, at least 3 px)
    "normalize": Literal["image", "box"],  # offsets / image size, or / list_bbox.txt box
}
"""`task.options` of keypoints, with the type or choices of each."""

OPTION_RANGES: dict[str, tuple[float, float]] = {
    "marker_radius": (0.001, 0.5),  # a fraction of the short side
}
"""The valid closed range of a numeric option (of each item of a list)."""

LANDMARK_COLOURS: dict[str, tuple[int, int, int]] = {
    "left_collar": (255, 0, 0),
    "right_collar": (0, 255, 0),
    "left_sleeve": (0, 0, 255),
    "right_sleeve": (255, 255, 0),
    "left_waistline": (255, 0, 255),
    "right_waistline": (0, 255, 255),
    "left_hem": (255, 255, 255),
    "right_hem": (128, 128, 128),
}
"""RGB colour of each landmark name (the 8 names of FLD's three clothes types)."""

COLOUR_RADIUS: float = 0.5 * min(
    float(np.linalg.norm(np.subtract(a, b))) for a, b in combinations(LANDMARK_COLOURS.values(), 2)
)
"""Half the smallest distance between two landmark colours: a pixel strictly closer than this
to a landmark's colour counts for that landmark (so no pixel counts for two)."""

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def disc_radius(w: int, h: int, marker_radius: float | None = None) -> int:
    """Disc radius in px for a (w, h) picture: ``max(3, round(0.015 * min(w, h)))``, or
    ``max(1, round(marker_radius * min(w, h)))`` where a world sets ``task.options.marker_radius``
    (a fraction of the short side; the demo's garments are seen at 32 px, where 3 px vanish)."""
    if marker_radius is None:
        return max(3, round(0.015 * min(w, h)))
    return max(1, round(float(marker_radius) * min(w, h)))


def scale_points(
    xy: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """Map pixel (x, y) float (K, 2) between grids of (W, H) sizes, by pixel centres.

    ``x' = (x + 0.5) * W' / W - 0.5`` (likewise y); NaN stays NaN.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    factor = np.asarray(to_size, dtype=np.float64) / np.asarray(from_size, dtype=np.float64)
    return (xy + 0.5) * factor - 0.5


@dataclass(frozen=True, eq=False)
class BoxLandmarks(Landmarks):
    """Landmarks in a box of their image (FLD's clothes box), for scoring in the box.

    ``xy`` are relative to the box's upper-left corner ``origin`` (image pixels, (x_1, y_1)),
    ``size`` is the box's (w, h) = (x_2 - x_1, y_2 - y_1), and ``image_size`` the (W, H) of
    the image the landmarks and the pictures belong to.
    """

    origin: tuple[float, float] = (0.0, 0.0)
    image_size: tuple[int, int] = (0, 0)


def in_box(landmarks: Landmarks, box: Sequence[int]) -> BoxLandmarks:
    """``landmarks`` (in their image) moved into ``box`` (x_1, y_1, x_2, y_2), integer
    pixels of that image: positions minus (x_1, y_1), size (x_2 - x_1, y_2 - y_1); NaN stays
    NaN."""
    x1, y1, x2, y2 = (int(v) for v in box)
    xy = np.asarray(landmarks.xy, dtype=np.float64).reshape(-1, 2) - (x1, y1)
    return BoxLandmarks(
        tuple(landmarks.names),
        xy,
        landmarks.visible,
        (x2 - x1, y2 - y1),
        (float(x1), float(y1)),
        tuple(landmarks.size),
    )


def in_image(landmarks: Landmarks) -> Landmarks:
    """``landmarks`` in their image: a ``BoxLandmarks`` moved back out of its box (plus the
    box's origin, the image's size); any other ``Landmarks`` as it is."""
    if not isinstance(landmarks, BoxLandmarks):
        return landmarks
    xy = np.asarray(landmarks.xy, dtype=np.float64) + landmarks.origin
    return Landmarks(tuple(landmarks.names), xy, landmarks.visible, landmarks.image_size)


Points = Landmarks | Mapping[str, Sequence[float]]
"""What ``render_gt`` draws: a record with ``names``, ``xy`` and ``visible`` (``Landmarks``,
``data.deepfashion.FLDRecord``) or a mapping name -> (x, y)."""


def _points(record_or_points: Points) -> list[tuple[str, float, float]]:
    """(name, x, y) of the landmarks to draw: a record's visible ones, or every mapping item."""
    if hasattr(record_or_points, "names"):
        rec = record_or_points
        return [
            (name, float(x), float(y))
            for name, v, (x, y) in zip(rec.names, rec.visible, rec.xy, strict=True)
            if v
        ]
    return [(name, float(p[0]), float(p[1])) for name, p in record_or_points.items()]


def render_gt(
    record_or_points: Points,
    size: tuple[int, int] | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    marker_radius: float | None = None,
) -> Image.Image:
    """Ground-truth picture: PIL RGB of ``size`` (W, H), black with one disc per landmark.

    ``record_or_points``: a record (only its visible landmarks, e.g. FLD visibility 0, are
    drawn) or a mapping name -> (x, y) (all drawn); a ``BoxLandmarks`` is drawn in its image
    (``in_image``). ``size`` defaults to a ``Landmarks``'s own. Coordinates are pixels of an
    image of ``image_size`` (W, H) (default: ``size``) and are mapped to the canvas by pixel
    centres.
    Each disc fills the pixels whose centres lie within ``disc_radius`` of the point, in
    ``LANDMARK_COLOURS[name]``; later landmarks paint over earlier ones where discs overlap.
    Unknown names raise KeyError.
    """
    if isinstance(record_or_points, Landmarks):
        record_or_points = in_image(record_or_points)
    w, h = size_of(record_or_points if size is None else size)
    points = _points(record_or_points)
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    if not points:
        return Image.fromarray(canvas, mode="RGB")
    xy = np.array([(x, y) for _, x, y in points], dtype=np.float64)
    if image_size is not None:
        xy = scale_points(xy, image_size, (w, h))
    r = disc_radius(w, h, marker_radius)
    yy, xx = np.mgrid[0:h, 0:w]
    for (name, _, _), (x, y) in zip(points, xy, strict=True):
        colour = LANDMARK_COLOURS[name]
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        x0, x1 = max(0, int(np.floor(x - r))), min(w, int(np.ceil(x + r)) + 1)
        y0, y1 = max(0, int(np.floor(y - r))), min(h, int(np.ceil(y + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        inside = (xx[y0:y1, x0:x1] - x) ** 2 + (yy[y0:y1, x0:x1] - y) ** 2 <= r * r
        canvas[y0:y1, x0:x1][inside] = colour
    return Image.fromarray(canvas, mode="RGB")


def decode(picture: Image.Image | np.ndarray, target: Landmarks) -> Landmarks:
    """Predicted picture -> the landmarks of ``target``'s names found in it, in an image of
    ``target.size`` (``locate``); ``visible`` marks the ones found (the rest are NaN).

    A ``BoxLandmarks`` target: the picture shows its image (``image_size``); the landmarks
    are located there and moved into the box, a ``BoxLandmarks`` like the target."""
    image = in_image(target)
    xy = locate(picture, target.names, image.size)
    found = np.isfinite(xy).all(axis=1)
    if isinstance(target, BoxLandmarks):
        return BoxLandmarks(
            tuple(target.names),
            xy - target.origin,
            found,
            tuple(target.size),
            target.origin,
            target.image_size,
        )
    return Landmarks(tuple(target.names), xy, found, tuple(target.size))


def locate(
    picture: Image.Image | np.ndarray, names: Sequence[str], size: tuple[int, int]
) -> np.ndarray:
    """Predicted picture -> landmark positions float (K, 2) in an image of ``size`` (W, H).

    ``picture``: PIL image (any mode, converted to RGB) or uint8 array (h, w, 3). For each of
    the K ``names``: pixels strictly within ``COLOUR_RADIUS`` of the name's colour, the largest
    8-connected blob of them (ties: the first in raster order), its centroid (mean pixel x, y)
    mapped to the image grid by pixel centres. A name with no such pixel gives (NaN, NaN).
    """
    rgb = as_rgb(picture)
    h, w = rgb.shape[:2]
    pixels = rgb.astype(np.int32)
    out = np.full((len(names), 2), np.nan, dtype=np.float64)
    limit = COLOUR_RADIUS * COLOUR_RADIUS
    for k, name in enumerate(names):
        colour = np.asarray(LANDMARK_COLOURS[name], dtype=np.int32)
        mask = ((pixels - colour) ** 2).sum(axis=2) < limit
        if not mask.any():
            continue
        labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        sizes[0] = 0
        ys, xs = np.nonzero(labels == int(np.argmax(sizes)))
        out[k] = xs.mean(), ys.mean()
    return scale_points(out, (w, h), size)
