"""ImageNet-1k val in the ImageFolder layout, query sampling, grey images, and a demo set.

The root folder holds one sub-folder per class (WordNet id), as torchvision's ImageFolder
reads it::

    <root>/n01440764/ILSVRC2012_val_00000293.JPEG
    <root>/n01443537/...

Images ending in ``.JPEG``, ``.jpg``, ``.jpeg`` or ``.png`` (any case) are listed; hidden
files and files directly under the root are ignored. Image ids are ``"<wnid>/<file name>"``,
sorted, so they are stable across machines. The hub dataset (``datasets``) is an alternative
source not implemented here. Nothing here downloads anything.

``make_demo_imagenet`` writes a small deterministic tree in the same layout.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import draw

from sdvicl_bench.data.demo import DemoMarker, check_demo_size, one_writer_at_a_time
from sdvicl_bench.data.images import read_rgb
from sdvicl_bench.errors import ConfigError, DataError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpeg", ".jpg", ".png"})
"""File endings (lower-cased) that count as images."""

_FIX_ROOT = (
    "Fix: put the ILSVRC2012 val images in one folder per class (<root>/<wnid>/<file>.JPEG) "
    "and pass data.root=<that folder> (or data=demo for the demo set)."
)
_FIX_FILE = "Fix: restore the file from the ILSVRC2012 val archive."


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.suffix.lower() in (IMAGE_SUFFIXES)
    )


class ClassImageIds:
    """The id API of both ImageNet sources (``ImageFolderDataset``, ``imagenet_hub``'s
    ``HubImageDataset``): sorted image ids ``"<class>/<name>"``, held in ``_ids``."""

    _ids: list[str]

    def ids(self) -> list[str]:
        """All image ids ``"<class>/<name>"``, sorted (by class, then name)."""
        return list(self._ids)

    def classes(self) -> list[str]:
        """The classes that hold at least one image, sorted."""
        return sorted({self.label(image_id) for image_id in self._ids})

    @staticmethod
    def label(image_id: str) -> str:
        """The class of an image id: the part before the ``/``."""
        return image_id.split("/", 1)[0]


class ImageFolderDataset(ClassImageIds):
    """Read-only access to an ImageFolder tree (``<root>/<wnid>/<file>``): ids
    ``"<wnid>/<file name>"``, classes the wnids.

    The listing is made once, at construction; images are read on demand and not cached.
    Every missing or unreadable file raises a one-line DataError naming it and the fix.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"ImageNet val root not found: {self.root}. {_FIX_ROOT}")
        ids: list[str] = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            ids.extend(
                f"{folder.name}/{path.name}" for path in sorted(folder.iterdir()) if _is_image(path)
            )
        if not ids:
            raise DataError(
                f"ImageNet val root {self.root} holds no class folders with images "
                f"({', '.join(sorted(s.upper() for s in IMAGE_SUFFIXES))}). {_FIX_ROOT}"
            )
        self._ids = ids

    def image_path(self, image_id: str) -> Path:
        """``root / wnid / file`` of an id; an id not of the form ``wnid/file`` is a DataError."""
        parts = image_id.split("/")
        if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p for p in parts):
            raise DataError(
                f"ImageNet image id {image_id!r} is not '<wnid>/<file name>'. "
                "Fix: use an id from ImageFolderDataset.ids()."
            )
        return self.root / parts[0] / parts[1]

    def image(self, image_id: str) -> Image.Image:
        """The image as PIL RGB of size (W, H) (grey or CMYK files are converted)."""
        return read_rgb(self.image_path(image_id), "ImageNet image", _FIX_FILE)


def sample_queries(ids: list[str], count: int = 1000, seed: int = 0) -> list[str]:
    """``min(count, len(set(ids)))`` distinct ids drawn without replacement, deterministic.

    The ids are de-duplicated and sorted first (so the input order does not matter); the
    generator is ``numpy.random.default_rng`` seeded from the sha256 of
    ``"imagenet-queries/<seed>"`` (stable across platforms and numpy versions' hashing). The
    result keeps the sorted order of the drawn ids.
    """
    if count < 0:
        raise ConfigError(f"query count {count} is negative. Fix: use a count >= 0.")
    pool = sorted(set(ids))
    count = min(int(count), len(pool))
    digest = hashlib.sha256(f"imagenet-queries/{int(seed)}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    chosen = np.sort(rng.choice(len(pool), size=count, replace=False))
    return [pool[int(i)] for i in chosen]


def grey(image: Image.Image) -> Image.Image:
    """The grey image as 3 equal channels: PIL RGB (W, H) via ``convert("L")`` (ITU-R 601)."""
    return image.convert("L").convert("RGB")


# --- demo set -----------------------------------------------------------------------------

DEMO_VERSION = 2
"""Bump when the generator's output changes, so old demo folders are rewritten."""

_DEMO_FOLDER = re.compile(r"^n\d{8}$")
_DEMO_FILE = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")


def demo_wnid(k: int) -> str:
    """The demo class folder name of class ``k``: ``n`` and 8 digits, like a WordNet id."""
    return f"n{k:08d}"


@one_writer_at_a_time
def make_demo_imagenet(
    root: Path,
    *,
    seed: int = 0,
    classes: int = 4,
    per_class: int = 6,
    size: tuple[int, int] = (64, 64),
) -> Path:
    """Write a demo ImageFolder tree under ``root`` and return ``root``.

    ``classes`` folders ``n00000000``, ``n00000001``, ... hold ``per_class`` JPEGs each,
    named ``ILSVRC2012_val_<8-digit running number>.JPEG``, of size ``size`` = (W, H):
    a hue-shifted textured background and one coloured shape (per class a base hue), so the
    colours are not predictable from the grey image alone.

    Deterministic: the same parameters give the same bytes. Idempotent: if
    ``root/.demo_complete`` records the same parameters nothing is rewritten; otherwise the
    marker is removed, old demo files (and emptied demo folders) are removed, the tree is
    written, and the marker is written last.
    """
    root = Path(root)
    width, height = int(size[0]), int(size[1])
    params = {
        "generator": "imagenet",
        "version": DEMO_VERSION,
        "seed": int(seed),
        "classes": int(classes),
        "per_class": int(per_class),
        "size": [width, height],
    }
    marker = DemoMarker(root, params)
    if marker.current():
        return root
    if classes < 1 or per_class < 1:
        raise ConfigError(
            f"demo classes={classes}, per_class={per_class}. Fix: use at least 1 of each."
        )
    check_demo_size(size, (16, 16))

    root.mkdir(parents=True, exist_ok=True)
    marker.clear()
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and _DEMO_FOLDER.match(folder.name):
            for old in sorted(folder.iterdir()):
                if _DEMO_FILE.match(old.name):
                    old.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()

    seeds = np.random.SeedSequence(int(seed)).spawn(classes * per_class)
    number = 0
    for k in range(classes):
        folder = root / demo_wnid(k)
        folder.mkdir(parents=True, exist_ok=True)
        base_hue = k / classes
        for _ in range(per_class):
            rng = np.random.default_rng(seeds[number])
            number += 1
            pixels = _demo_image(rng, base_hue, width, height)
            Image.fromarray(pixels, mode="RGB").save(
                folder / f"ILSVRC2012_val_{number:08d}.JPEG", format="JPEG", quality=92
            )
    marker.write()
    return root


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255.0


def _demo_image(rng: np.random.Generator, base_hue: float, width: int, height: int) -> np.ndarray:
    """One demo picture, uint8 (H, W, 3): coloured textured background and a coloured shape."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    t = (xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * np.sin(angle) + 0.5
    t = np.clip(t, 0.0, 1.0)[:, :, None]
    bg_hue = base_hue + 0.5 + rng.uniform(-0.08, 0.08)
    # Saturated colours: the grey picture alone cannot tell them, a prompt of the class can.
    c0 = _hsv(bg_hue, rng.uniform(0.6, 0.85), rng.uniform(0.5, 0.8))
    c1 = _hsv(bg_hue + rng.uniform(0.05, 0.12), rng.uniform(0.6, 0.85), rng.uniform(0.5, 0.8))
    image = c0 * (1 - t) + c1 * t
    texture = ndimage.gaussian_filter(rng.normal(size=(height, width, 3)), (1.5, 1.5, 0))
    texture *= rng.uniform(8, 16) / max(float(texture.std()), 1e-6)
    image += texture

    cy = rng.uniform(0.35, 0.65) * height
    cx = rng.uniform(0.35, 0.65) * width
    ry = rng.uniform(0.18, 0.3) * height
    rx = rng.uniform(0.18, 0.3) * width
    mask = np.zeros((height, width), dtype=bool)
    if rng.random() < 0.5:
        rr, cc = draw.ellipse(cy, cx, ry, rx, shape=(height, width))
        mask[rr, cc] = True
    else:
        mask[int(cy - ry) : int(cy + ry) + 1, int(cx - rx) : int(cx + rx) + 1] = True
    colour = _hsv(base_hue + rng.uniform(-0.04, 0.04), rng.uniform(0.75, 0.95), 0.9)
    image[mask] = colour + rng.normal(0.0, 6.0, size=(int(mask.sum()), 3))
    image += rng.normal(0.0, 3.0, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
