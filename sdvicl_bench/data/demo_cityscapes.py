"""Demo data: a small deterministic Cityscapes look-alike, written in the real on-disk layout.

``make_demo_cityscapes`` paints simple street scenes of seven classes (``DEMO_TRAIN_IDS``:
sky, a skyline of buildings, maybe a tree, sidewalk, road, cars and people as shapes) and the
ego-vehicle's bonnet at the bottom, and writes them exactly as Cityscapes stores them, so
the real loader (``data.cityscapes``) is what reads them::

    <root>/leftImg8bit/train/{aachen,bochum}/<city>_000000_<frame>_leftImg8bit.png   RGB
    <root>/gtFine/train/{aachen,bochum}/<city>_000000_<frame>_gtFine_labelIds.png    'L'
    <root>/leftImg8bit/val/{frankfurt,lindau}/...  and  <root>/gtFine/val/{frankfurt,lindau}/...

The labelIds PNGs hold real Cityscapes label ids, void ones included (0 unlabeled, 1 ego
vehicle, 3 out of roi), so ``LABEL_TO_TRAIN`` maps them as it would real
data. Images alternate between the split's two cities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import draw

from sdvicl_bench.data.demo import DemoMarker, check_demo_size, one_writer_at_a_time
from sdvicl_bench.errors import ConfigError

DEMO_VERSION = 2
"""Bump when the generator's output changes, so old demo folders are rewritten."""

CITIES: dict[str, tuple[str, str]] = {
    "train": ("aachen", "bochum"),
    "val": ("frankfurt", "lindau"),
}
"""The demo's two cities per split (real Cityscapes city names)."""

# Cityscapes label ids used by the demo.
UNLABELED, EGO_VEHICLE, OUT_OF_ROI = 0, 1, 3
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = 7, 8, 11, 21, 23, 24, 26

_BASE_COLOUR: dict[int, tuple[float, float, float]] = {
    UNLABELED: (30, 30, 30),
    EGO_VEHICLE: (40, 40, 48),
    OUT_OF_ROI: (10, 10, 10),
    ROAD: (70, 70, 78),
    SIDEWALK: (200, 185, 160),
    BUILDING: (150, 110, 90),
    VEGETATION: (40, 140, 40),
    PERSON: (230, 200, 40),
    CAR: (200, 30, 40),
}
"""The look of each class: one colour each (plus per-scene jitter and texture), far apart."""

DEMO_TRAIN_IDS: tuple[int, ...] = (0, 1, 2, 8, 10, 11, 13)
"""The trainIds the demo draws: road, sidewalk, building, vegetation, sky, person, car.
`data=demo` declares them (`task.options.classes`), so the decoder and the mean use these."""


@one_writer_at_a_time
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
    check_demo_size(size, (64, 32))

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
    """One street scene: picture uint8 (H, W, 3) and Cityscapes label ids uint8 (H, W).

    Few, large regions of the seven classes in ``DEMO_TRAIN_IDS``, each with its own look
    (``_BASE_COLOUR`` plus a little per-scene jitter and texture), so a class is told by its
    appearance, and a layout that moves from scene to scene (horizon, skyline, tree, cars,
    people), so copying a prompt's map is no answer. Void ids (ego-vehicle bonnet, a 1-px
    out-of-roi frame, an unlabeled patch) are kept, so the loader maps them as real data.
    """
    shape = (height, width)
    labels = np.full(shape, SKY, dtype=np.uint8)
    image = np.zeros((height, width, 3), dtype=np.float64)
    yy, xx = np.mgrid[0:height, 0:width]

    def paint(mask: np.ndarray, label: int, colour: np.ndarray | tuple[float, ...]) -> None:
        labels[mask] = label
        image[mask] = np.asarray(colour, dtype=np.float64) + rng.uniform(-12, 12, size=3)

    # Sky: a vertical blue gradient.
    t = (yy / height)[:, :, None]
    image[:] = np.array([70, 130, 230]) * (1 - t) + np.array([150, 190, 245]) * t

    horizon = int(rng.uniform(0.35, 0.6) * height)
    kerb = horizon + max(3, int(rng.uniform(0.08, 0.16) * height))

    # Buildings: a few wide blocks of random height, with a window grid (texture only).
    x = int(rng.integers(-width // 6, 1))
    while x < width:
        w = int(rng.integers(width // 5, width // 2 + 1))
        top = int(rng.uniform(0.05, 0.6) * horizon)
        block = (yy >= top) & (yy < horizon) & (xx >= x) & (xx < x + w)
        paint(block, BUILDING, _BASE_COLOUR[BUILDING])
        windows = block & ((yy - top) % 6 < 2) & ((xx - x) % 6 < 2) & (yy > top + 2)
        image[windows] *= 0.55
        x += w + int(rng.integers(0, width // 5))

    # Maybe a tree: a big crown on the skyline.
    if rng.random() < 0.7:
        cx = rng.uniform(0.1, 0.9) * width
        ry, rx = rng.uniform(0.15, 0.25) * height, rng.uniform(0.08, 0.14) * width
        rr, cc = draw.ellipse(horizon - 0.8 * ry, cx, ry, rx, shape)
        paint(_mask(rr, cc, shape), VEGETATION, _BASE_COLOUR[VEGETATION])

    # Sidewalk and road bands.
    paint((yy >= horizon) & (yy < kerb), SIDEWALK, _BASE_COLOUR[SIDEWALK])
    paint(yy >= kerb, ROAD, _BASE_COLOUR[ROAD])

    # People on the sidewalk: a body with a head, larger than life so they survive resizing.
    for _ in range(int(rng.integers(0, 3))):
        px = rng.uniform(0.05, 0.95) * width
        foot = rng.uniform(horizon + 2, kerb + 1)
        tall = rng.uniform(0.3, 0.42) * height
        half = max(2.0, 0.05 * width)
        body = (xx >= px - half) & (xx < px + half) & (yy >= foot - 0.8 * tall) & (yy < foot)
        rr, cc = draw.ellipse(foot - 0.88 * tall, px, 0.12 * tall, half, shape)
        paint(body | _mask(rr, cc, shape), PERSON, _BASE_COLOUR[PERSON])

    # Vehicles on the road: cars (a body with a narrower roof).
    for _ in range(int(rng.integers(1, 3))):
        w = rng.uniform(0.22, 0.38) * width
        h = rng.uniform(0.2, 0.3) * height
        x0 = rng.uniform(-0.1 * width, width - 0.9 * w)
        lowest = height - 0.08 * height
        bottom = rng.uniform(min(kerb + 0.5 * h, lowest), lowest)
        car = (xx >= x0) & (xx < x0 + w) & (yy >= bottom - 0.6 * h) & (yy < bottom)
        roof = (xx >= x0 + 0.2 * w) & (xx < x0 + 0.8 * w) & (yy >= bottom - h)
        paint(car | (roof & (yy < bottom)), CAR, _BASE_COLOUR[CAR])

    # Void: the ego vehicle's bonnet, a 1-px out-of-roi frame, an unlabeled patch.
    bonnet = yy >= height - 0.06 * height - 0.03 * height * np.cos(np.pi * (xx / width - 0.5))
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
