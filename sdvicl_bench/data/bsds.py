"""BSDS500 (Berkeley Segmentation Data Set) as the edge-detection option, and a demo set.

Layout, as ``BSR_bsds500.tgz`` unpacks::

    <root>/BSR/BSDS500/data/images/{train,val,test}/<id>.jpg
    <root>/BSR/BSDS500/data/groundTruth/{train,val,test}/<id>.mat

``root`` may be the folder holding ``BSR/`` or the ``BSDS500/data`` folder itself (the one
holding ``images/`` and ``groundTruth/``); ``BSR/`` and ``BSR/BSDS500/`` are accepted too.

Each ``.mat`` file (MATLAB v5) holds ``groundTruth``, a 1 x K cell array (K human
annotators, usually 5-7) of structs with fields ``Segmentation`` (uint16 (H, W), labels from
1) and ``Boundaries`` (logical (H, W), thin boundaries). The edge ground truth (TASKS.md 5)
is the MEAN of the K binary boundary maps: float32 (H, W) in [0, 1] (a pixel every annotator
marks is 1, one that half of them mark is 0.5).

Image ids are the file stems (``"100075"``), sorted per split. Only ``.jpg`` files are listed
(the archive's ``Thumbs.db`` files are ignored); a missing ``.mat`` is reported when its
boundaries are asked for. Nothing here downloads anything.

``make_demo_bsds`` writes a small deterministic set in the same layout.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image
from scipy import ndimage
from skimage import draw

from sdvicl_bench.data.demo import DemoMarker, check_demo_size, one_writer_at_a_time
from sdvicl_bench.data.images import load_mat, read_rgb
from sdvicl_bench.errors import ConfigError, DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The BSDS500 splits (200 / 100 / 200 images in the real set)."""

_FIX = "Fix: download BSR_bsds500.tgz (Berkeley) and pass data.root=<the folder holding BSR/>."


def resolve_data_dir(root: Path) -> Path:
    """The ``BSDS500/data`` folder (holding ``images/`` and ``groundTruth/``) under ``root``.

    Tried in order: ``root/BSR/BSDS500/data``, ``root/BSDS500/data``, ``root/data``, ``root``.
    None of them holding both sub-folders is a one-line DataError.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"BSDS500 root not found: {root}. {_FIX}")
    for candidate in (root / "BSR" / "BSDS500" / "data", root / "BSDS500" / "data", root / "data"):
        if (candidate / "images").is_dir() and (candidate / "groundTruth").is_dir():
            return candidate
    if (root / "images").is_dir() and (root / "groundTruth").is_dir():
        return root
    raise DataError(
        f"BSDS500 root {root} holds neither BSR/BSDS500/data/ nor images/ and groundTruth/. {_FIX}"
    )


def mean_boundaries(ground_truth: Any, where: str = "groundTruth") -> np.ndarray:
    """Mean of the annotators' ``Boundaries`` maps -> float32 (H, W) in [0, 1].

    ``ground_truth`` is the ``groundTruth`` variable as ``scipy.io.loadmat(...,
    squeeze_me=True, struct_as_record=False)`` returns it: one ``mat_struct`` (K = 1, squeezed)
    or an object array of them (K > 1). Every map counts as binary (non-zero = boundary).
    Malformed content (no annotators, no ``Boundaries``, not 2-D, sizes that differ) raises
    ``ValueError`` naming ``where``.
    """
    maps = boundary_maps(ground_truth, where)
    total = np.sum(maps, axis=0, dtype=np.float64)
    return (total / len(maps)).astype(np.float32)


def boundary_maps(ground_truth: Any, where: str = "groundTruth") -> np.ndarray:
    """The annotators' ``Boundaries`` maps as bool (K, H, W) (non-zero = boundary).

    ``ground_truth`` and the errors as ``mean_boundaries``, which averages these maps.
    """
    annotators = np.asarray(ground_truth, dtype=object).ravel()
    if annotators.size == 0:
        raise ValueError(f"{where} holds no annotators")
    maps: list[np.ndarray] = []
    for k, entry in enumerate(annotators):
        if isinstance(entry, dict):
            boundaries = entry.get("Boundaries")
        else:
            boundaries = getattr(entry, "Boundaries", None)
        if boundaries is None:
            raise ValueError(f"{where} annotator {k + 1} has no Boundaries field")
        array = np.asarray(boundaries)
        if array.ndim != 2 or array.dtype == object:
            raise ValueError(
                f"{where} annotator {k + 1} Boundaries is {array.dtype} {array.shape}, "
                "not a 2-D map"
            )
        if maps and array.shape != maps[0].shape:
            raise ValueError(
                f"{where} annotator {k + 1} Boundaries is {array.shape}, annotator 1 is "
                f"{maps[0].shape}"
            )
        maps.append(array != 0)
    return np.stack(maps)


class BSDSDataset:
    """Read-only access to BSDS500 images and boundary ground truth (see the module doc).

    Split listings are made on first use and cached; images and ``.mat`` files are read on
    demand and not cached. Every missing or unreadable file raises a one-line DataError.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.data_dir = resolve_data_dir(self.root)
        self._ids: dict[str, list[str]] = {}

    @staticmethod
    def _check_split(split: str) -> str:
        if split not in SPLITS:
            raise ConfigError(
                f"BSDS500 split {split!r} is not one of {', '.join(SPLITS)}. "
                "Fix: use train, val or test."
            )
        return split

    def ids(self, split: str) -> list[str]:
        """Image ids (``.jpg`` file stems) of a split, sorted; an empty split is a DataError."""
        split = self._check_split(split)
        if split not in self._ids:
            folder = self.data_dir / "images" / split
            if not folder.is_dir():
                raise DataError(f"BSDS500 image folder not found: {folder}. {_FIX}")
            ids = sorted(
                path.stem
                for path in folder.iterdir()
                if path.is_file() and not path.name.startswith(".") and path.suffix == ".jpg"
            )
            if not ids:
                raise DataError(f"BSDS500 image folder {folder} holds no .jpg images. {_FIX}")
            self._ids[split] = ids
        return list(self._ids[split])

    def _path(self, kind: str, image_id: str, split: str, suffix: str) -> Path:
        split = self._check_split(split)
        if not image_id or image_id in (".", "..") or "/" in image_id or "\\" in image_id:
            raise DataError(
                f"BSDS500 image id {image_id!r} is not a file stem. "
                "Fix: use an id from BSDSDataset.ids(split)."
            )
        return self.data_dir / kind / split / f"{image_id}{suffix}"

    def image_path(self, image_id: str, split: str) -> Path:
        """``data/images/<split>/<id>.jpg``."""
        return self._path("images", image_id, split, ".jpg")

    def gt_path(self, image_id: str, split: str) -> Path:
        """``data/groundTruth/<split>/<id>.mat``."""
        return self._path("groundTruth", image_id, split, ".mat")

    def image(self, image_id: str, split: str) -> Image.Image:
        """The image as PIL RGB of size (W, H) (481 x 321 or 321 x 481 in the real set)."""
        return read_rgb(self.image_path(image_id, split), "BSDS500 image", _FIX)

    def boundaries(self, image_id: str, split: str) -> np.ndarray:
        """Mean human boundary map of an image: float32 (H, W) in [0, 1] (``mean_boundaries``).

        A missing ``.mat``, one ``scipy.io.loadmat`` cannot read, or one without a usable
        ``groundTruth`` variable is a one-line DataError. The size is not checked against the
        image (that would decode the JPEG); the real set's maps match their images.
        """
        return self._ground_truth(image_id, split, mean_boundaries)

    def annotator_boundaries(self, image_id: str, split: str) -> np.ndarray:
        """Each annotator's boundary map of an image: bool (K, H, W) (``boundary_maps``; the
        maps ``boundaries`` averages, for the BSDS benchmark's ODS / OIS). Errors as there."""
        return self._ground_truth(image_id, split, boundary_maps)

    def _ground_truth(self, image_id: str, split: str, read: Any) -> np.ndarray:
        """``read(groundTruth, where)`` of an image's ``.mat`` file, with one-line errors."""
        path = self.gt_path(image_id, split)
        if not path.is_file():
            raise DataError(f"BSDS500 ground truth not found: {path}. {_FIX}")
        contents = load_mat(path, _FIX)
        if "groundTruth" not in contents:
            raise DataError(f"{path} holds no groundTruth variable. {_FIX}")
        try:
            return read(contents["groundTruth"], f"{path} groundTruth")
        except ValueError as err:
            message = " ".join(str(err).split())
            raise DataError(f"{message}. {_FIX}") from None


# --- demo set -----------------------------------------------------------------------------

DEMO_VERSION = 1
"""Bump when the generator's output changes, so old demo folders are rewritten."""

_DEMO_FILE = re.compile(r"^demo_\d{6}\.(jpg|mat)$")
_MAT_DESCRIPTION = b"MATLAB 5.0 MAT-file, written by sdvicl_bench make_demo_bsds"


def demo_data_dir(root: Path) -> Path:
    """Where ``make_demo_bsds`` puts ``images/`` and ``groundTruth/``: ``root/BSR/BSDS500/data``."""
    return Path(root) / "BSR" / "BSDS500" / "data"


@one_writer_at_a_time
def make_demo_bsds(
    root: Path, *, seed: int = 0, per_split: int = 4, size: tuple[int, int] = (96, 64)
) -> Path:
    """Write a demo BSDS500 tree under ``root`` (``root/BSR/BSDS500/data/...``), return ``root``.

    Each split gets ``per_split`` images ``demo_000001.jpg``, ... (numbered across splits) of
    ``size`` = (W, H): a few flat-coloured, textured regions (background halves and one or
    two shapes). Each ``.mat`` holds a 1 x K ``groundTruth`` cell array, K = 2 or 3 annotators
    whose segmentations differ slightly (one shifted by a pixel, one merging the background
    halves), so the mean boundary map holds values 1/K, 2/K and 1.

    Deterministic: the same parameters give the same bytes (the ``.mat`` header's date is
    replaced by a fixed text). Idempotent: if ``root/.demo_complete`` records the same
    parameters nothing is rewritten; otherwise the marker is removed, old demo files are
    removed, the tree is written, and the marker is written last.
    """
    root = Path(root)
    width, height = int(size[0]), int(size[1])
    params = {
        "generator": "bsds",
        "version": DEMO_VERSION,
        "seed": int(seed),
        "per_split": int(per_split),
        "size": [width, height],
    }
    marker = DemoMarker(root, params)
    if marker.current():
        return root
    if per_split < 1:
        raise ConfigError(f"demo per_split={per_split}. Fix: use at least 1.")
    check_demo_size(size, (16, 16))

    root.mkdir(parents=True, exist_ok=True)
    marker.clear()
    data = demo_data_dir(root)
    for kind in ("images", "groundTruth"):
        for split in SPLITS:
            folder = data / kind / split
            if folder.is_dir():
                for old in sorted(folder.iterdir()):
                    if _DEMO_FILE.match(old.name):
                        old.unlink()
            folder.mkdir(parents=True, exist_ok=True)

    seeds = np.random.SeedSequence(int(seed)).spawn(len(SPLITS) * per_split)
    number = 0
    for split in SPLITS:
        for _ in range(per_split):
            rng = np.random.default_rng(seeds[number])
            number += 1
            name = f"demo_{number:06d}"
            pixels, segmentations = _demo_sample(rng, width, height)
            Image.fromarray(pixels, mode="RGB").save(
                data / "images" / split / f"{name}.jpg", format="JPEG", quality=92
            )
            (data / "groundTruth" / split / f"{name}.mat").write_bytes(_mat_bytes(segmentations))
    marker.write()
    return root


def segmentation_boundaries(segmentation: np.ndarray) -> np.ndarray:
    """Thin boundaries of a label map: uint8 (H, W), 1 where a pixel's label differs from its
    right or lower neighbour's, else 0."""
    seg = np.asarray(segmentation)
    out = np.zeros(seg.shape, dtype=bool)
    out[:, :-1] |= seg[:, :-1] != seg[:, 1:]
    out[:-1, :] |= seg[:-1, :] != seg[1:, :]
    return out.astype(np.uint8)


def _mat_bytes(segmentations: list[np.ndarray]) -> bytes:
    """A v5 ``.mat`` file with ``groundTruth`` = 1 x K cell of {Segmentation, Boundaries}."""
    cell = np.empty((1, len(segmentations)), dtype=object)
    for k, seg in enumerate(segmentations):
        cell[0, k] = {
            "Segmentation": seg.astype(np.uint16),
            "Boundaries": segmentation_boundaries(seg),
        }
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"groundTruth": cell}, do_compression=False)
    raw = bytearray(buffer.getvalue())
    raw[:116] = _MAT_DESCRIPTION.ljust(116, b" ")  # the header's date would break determinism
    return bytes(raw)


def _demo_sample(
    rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One demo picture uint8 (H, W, 3) and K = 2 or 3 annotator label maps uint16 (H, W)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(-0.15, 0.15)
    side = (xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * np.sin(angle) > offset
    labels = np.where(side, 2, 1).astype(np.int64)
    for shape in range(int(rng.integers(1, 3))):
        cy = rng.uniform(0.3, 0.7) * height
        cx = rng.uniform(0.25, 0.75) * width
        ry = rng.uniform(0.12, 0.25) * height
        rx = rng.uniform(0.12, 0.25) * width
        mask = np.zeros((height, width), dtype=bool)
        if rng.random() < 0.5:
            rr, cc = draw.ellipse(cy, cx, ry, rx, shape=(height, width))
            mask[rr, cc] = True
        else:
            y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, height)
            x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, width)
            mask[y0:y1, x0:x1] = True
        labels[mask] = 3 + shape

    colours = rng.uniform(30, 225, size=(int(labels.max()) + 1, 3))
    image = colours[labels]
    texture = ndimage.gaussian_filter(rng.normal(size=(height, width, 3)), (1.0, 1.0, 0))
    texture *= rng.uniform(4, 10) / max(float(texture.std()), 1e-6)
    image += texture + rng.normal(0.0, 2.0, size=image.shape)
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    if rng.random() < 0.5:  # shift down by a pixel, repeating the first row
        shifted = np.concatenate([labels[:1], labels[:-1]], axis=0)
    else:  # shift right by a pixel, repeating the first column
        shifted = np.concatenate([labels[:, :1], labels[:, :-1]], axis=1)
    merged = np.where(labels == 2, 1, labels)
    segmentations = [labels, shifted]
    if rng.random() < 0.5:
        segmentations.append(merged)
    return pixels, [_relabel(seg) for seg in segmentations]


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..n in order of first appearance (as BSDS stores them): uint16."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return (order[inverse].reshape(labels.shape) + 1).astype(np.uint16)
