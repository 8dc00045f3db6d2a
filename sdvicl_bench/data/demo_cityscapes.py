"""Demo data: a small deterministic Cityscapes look-alike, written in the real on-disk layout.

``make_demo_cityscapes`` paints simple street scenes (sky, a skyline of buildings, maybe a
tree, a pole with a sign, sidewalk, road, cars and people as shapes, the ego-vehicle's bonnet
at the bottom) and writes them exactly as Cityscapes stores them, so the real loader
(``data.cityscapes``) is what reads them::

    <root>/leftImg8bit/train/{aachen,bochum}/<city>_000000_<frame>_leftImg8bit.png   RGB
    <root>/gtFine/train/{aachen,bochum}/<city>_000000_<frame>_gtFine_labelIds.png    'L'
    <root>/leftImg8bit/val/{frankfurt,lindau}/...  and  <root>/gtFine/val/{frankfurt,lindau}/...

The labelIds PNGs hold real Cityscapes label ids, void ones included (0 unlabeled, 1 ego
vehicle, 3 out of roi, 4 static, 6 ground), so ``LABEL_TO_TRAIN`` maps them as it would real
data. Images alternate between the split's two cities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import draw

from sdvicl_bench.data.demo import DemoMarker
from sdvicl_bench.errors import ConfigError

DEMO_VERSION = 1
"""Bump when the generator's output changes, so old demo folders are rewritten."""

CITIES: dict[str, tuple[str, str]] = {
    "train": ("aachen", "bochum"),
    "val": ("frankfurt", "lindau"),
}
"""The demo's two cities per split (real Cityscapes city names)."""

# Cityscapes label ids used by the demo.
UNLABELED, EGO_VEHICLE, OUT_OF_ROI, STATIC, GROUND = 0, 1, 3, 4, 6
ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN = 7, 8, 11, 17, 20
VEGETATION, SKY, PERSON, CAR, BUS, BICYCLE = 21, 23, 24, 26, 28, 33

_BASE_COLOUR: dict[int, tuple[float, float, float]] = {
    UNLABELED: (30, 30, 30),
    EGO_VEHICLE: (40, 40, 48),
    OUT_OF_ROI: (10, 10, 10),
    STATIC: (120, 90, 60),
    GROUND: (110, 100, 80),
    ROAD: (85, 85, 90),
    SIDEWALK: (170, 160, 150),
    POLE: (140, 140, 140),
    TRAFFIC_SIGN: (230, 200, 20),
    VEGETATION: (60, 120, 40),
    PERSON: (150, 60, 70),
    BICYCLE: (100, 30, 40),
}


def make_demo_cityscapes(
    root: Path,
    *,
    seed: int = 0,
    num_train: int = 12,
    num_val: int = 6,
    size: tuple[int, int] = (128, 64),
) -> Path:
    """Write the demo Cityscapes set under ``root`` (see the module docstring), return ``root``.

    Deterministic: the same (seed, num_train, num_val, size) give the same bytes. Idempotent:
    if ``root/.demo_complete`` records the same parameters nothing is rewritten; otherwise the
    marker is removed first, the demo cities' files are (re)written, and the marker is
    written last. ``size`` is (W, H), at least (64, 32).
    """
    root = Path(root)
    width, height = int(size[0]), int(size[1])
    params = {
        "generator": "cityscapes",
        "version": DEMO_VERSION,
        "seed": int(seed),
        "num_train": int(num_train),
        "num_val": int(num_val),
        "size": [width, height],
    }
    marker = DemoMarker(root, params)
    if marker.current():
        return root
    if num_train < 1 or num_val < 1:
        raise ConfigError(
            f"demo num_train={num_train}, num_val={num_val}: both must be at least 1. "
            "Fix: use positive counts."
        )
    if width < 64 or height < 32:
        raise ConfigError(f"demo size={size} is too small. Fix: use a size of at least (64, 32).")

    marker.clear()
    counts = {"train": int(num_train), "val": int(num_val)}
    seeds = iter(np.random.SeedSequence(int(seed)).spawn(num_train + num_val))
    for split, cities in CITIES.items():
        for city in cities:
            for top in ("leftImg8bit", "gtFine"):
                folder = root / top / split / city
                folder.mkdir(parents=True, exist_ok=True)
                for old in sorted(folder.glob(f"{city}_*.png")):
                    old.unlink()
        for index in range(counts[split]):
            city = cities[index % len(cities)]
            name = f"{city}_000000_{19 + 20 * (index // len(cities)):06d}"
            image, labels = _render(np.random.default_rng(next(seeds)), width, height)
            Image.fromarray(image, mode="RGB").save(
                root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png"
            )
            Image.fromarray(labels, mode="L").save(
                root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png"
            )
    marker.write()
    return root


def _render(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: picture uint8 (H, W, 3) and Cityscapes label ids uint8 (H, W)."""
    shape = (height, width)
    labels = np.full(shape, SKY, dtype=np.uint8)
    image = np.zeros((height, width, 3), dtype=np.float64)
    yy, xx = np.mgrid[0:height, 0:width]

    def paint(mask: np.ndarray, label: int, colour: np.ndarray | tuple[float, ...]) -> None:
        labels[mask] = label
        image[mask] = np.asarray(colour, dtype=np.float64) + rng.uniform(-10, 10, size=3)

    # Sky: a vertical blue gradient.
    t = (yy / height)[:, :, None]
    image[:] = np.array([90, 140, 210]) * (1 - t) + np.array([170, 200, 230]) * t

    horizon = int(rng.uniform(0.42, 0.52) * height)
    kerb = horizon + max(3, int(rng.uniform(0.1, 0.16) * height))

    # Buildings: a skyline of blocks of random width and height, greyish or brownish.
    x = 0
    while x < width:
        w = int(rng.integers(width // 10, width // 4 + 1))
        top = int(rng.uniform(0.06, 0.3) * height)
        block = (yy >= top) & (yy < horizon) & (xx >= x) & (xx < x + w)
        grey = rng.uniform(70, 160)
        paint(block, BUILDING, grey + rng.uniform(-20, 20, size=3))
        windows = block & ((yy - top) % 6 < 2) & ((xx - x) % 5 < 2) & (yy > top + 2)
        image[windows] *= 0.6  # texture only: still building
        x += w

    # Maybe a tree: an ellipse crown on the skyline.
    if rng.random() < 0.6:
        cx = rng.uniform(0.1, 0.9) * width
        rr, cc = draw.ellipse(horizon - 0.18 * height, cx, 0.16 * height, 0.08 * width, shape)
        paint(_mask(rr, cc, shape), VEGETATION, _BASE_COLOUR[VEGETATION])

    # Sidewalk and road bands, with a patch of ground and maybe a static object on the kerb.
    paint((yy >= horizon) & (yy < kerb), SIDEWALK, _BASE_COLOUR[SIDEWALK])
    paint(yy >= kerb, ROAD, _BASE_COLOUR[ROAD])
    gx = int(rng.integers(0, width - width // 8))
    paint(
        (yy >= horizon) & (yy < kerb) & (xx >= gx) & (xx < gx + width // 8),
        GROUND,
        _BASE_COLOUR[GROUND],
    )
    if rng.random() < 0.5:
        sx = int(rng.integers(0, width - 6))
        paint(
            (yy >= kerb - 5) & (yy < kerb) & (xx >= sx) & (xx < sx + 5),
            STATIC,
            _BASE_COLOUR[STATIC],
        )

    # A pole with a traffic sign.
    px = int(rng.integers(2, width - 4))
    pole_top = int(rng.uniform(0.12, 0.3) * height)
    paint((xx >= px) & (xx < px + 2) & (yy >= pole_top) & (yy < kerb), POLE, _BASE_COLOUR[POLE])
    sign = (yy >= pole_top) & (yy < pole_top + 5) & (xx >= px - 2) & (xx < px + 4)
    paint(sign, TRAFFIC_SIGN, _BASE_COLOUR[TRAFFIC_SIGN])

    # People on the sidewalk: an ellipse head over a body; sometimes a bicycle beside one.
    for _ in range(int(rng.integers(1, 3))):
        px = rng.uniform(0.05, 0.95) * width
        foot = rng.uniform(horizon + 2, kerb + 1)
        tall = rng.uniform(0.25, 0.35) * height
        body = (xx >= px - 2) & (xx < px + 2) & (yy >= foot - 0.8 * tall) & (yy < foot)
        rr, cc = draw.ellipse(foot - 0.9 * tall, px, 0.12 * tall, 0.1 * tall + 1, shape)
        person = body | _mask(rr, cc, shape)
        paint(person, PERSON, rng.uniform(40, 220, size=3))
        if rng.random() < 0.4:
            for wheel_x in (px + 5, px + 11):
                rr, cc = draw.ellipse(foot - 3, wheel_x, 3, 3, shape)
                paint(_mask(rr, cc, shape) & (labels != PERSON), BICYCLE, _BASE_COLOUR[BICYCLE])

    # Vehicles on the road: cars (box body, narrower roof); sometimes one bus.
    n_cars = int(rng.integers(1, 4))
    for k in range(n_cars):
        label = BUS if k == 0 and rng.random() < 0.3 else CAR
        w = rng.uniform(0.18, 0.28) * width * (1.6 if label == BUS else 1.0)
        h = rng.uniform(0.14, 0.2) * height * (1.8 if label == BUS else 1.0)
        x0 = rng.uniform(0, width - w)
        bottom = rng.uniform(kerb + 0.3 * (height - kerb), height - 0.1 * height)
        car = (xx >= x0) & (xx < x0 + w) & (yy >= bottom - 0.6 * h) & (yy < bottom)
        roof = (xx >= x0 + 0.2 * w) & (xx < x0 + 0.8 * w) & (yy >= bottom - h)
        car |= roof & (yy < bottom)
        paint(car, label, rng.uniform(20, 235, size=3))

    # Void: the ego vehicle's bonnet, a 1-px out-of-roi frame, an unlabeled patch.
    bonnet = yy >= height - 0.08 * height - 0.04 * height * np.cos(np.pi * (xx / width - 0.5))
    paint(bonnet, EGO_VEHICLE, _BASE_COLOUR[EGO_VEHICLE])
    frame = (yy == 0) | (xx == 0) | (xx == width - 1)
    paint(frame, OUT_OF_ROI, _BASE_COLOUR[OUT_OF_ROI])
    ux = int(rng.integers(1, width - 5))
    paint((yy >= 1) & (yy < 4) & (xx >= ux) & (xx < ux + 4), UNLABELED, _BASE_COLOUR[UNLABELED])

    texture = ndimage.gaussian_filter(rng.normal(size=shape), 1.0)
    texture *= 6.0 / max(texture.std(), 1e-6)
    image += texture[:, :, None] + rng.normal(0.0, 3.0, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), labels


def _mask(rr: np.ndarray, cc: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[rr, cc] = True
    return mask
