"""Pascal VOC 2012 and Pascal-5i, read from the standard on-disk layout.

The root folder holds the VOC2012 tree plus the SBD-augmented masks (as HSNet/PANet use)::

    <root>/JPEGImages/<id>.jpg               RGB photographs
    <root>/SegmentationClassAug/<id>.png     class ids per pixel ('P' or 'L' PNG), 255 = void
    <root>/Annotations/<id>.xml              VOC XML boxes (detection)
    <root>/ImageSets/Main/{train,val}.txt    image ids per split

Pascal-5i splits the 20 classes into 4 folds of 5 (fold i holds classes 5i+1..5i+5). Its split
lists (HSNet format) hold one ``<image id>__<2-digit class>`` line per (image, fold class) pair.
Nothing here downloads anything; pins for the public split lists are in ``SPLIT_SHA256``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sdvicl_bench.data.images import open_image, read_label_png, read_rgb
from sdvicl_bench.errors import ConfigError, DataError

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
"""VOC class names; ``VOC_CLASSES[c - 1]`` is the name of class id ``c`` (1..20)."""

NUM_FOLDS = 4
CLASSES_PER_FOLD = 5
VOID_LABEL = 255
_FIX_IMAGES = "Fix: restore JPEGImages/ from the VOC2012 archive."
SPLITS: tuple[str, ...] = ("trn", "val")

SPLIT_SHA256: dict[str, str] = {
    "trn0": "a2a3db91d404a227807d7d0570081a6fde9f4b014941fe0729739fe18503691d",
    "trn1": "070b993d7ed8faac0d089285e074d6260d8fc0d6451a1c516b23d7e4cb4320f6",
    "trn2": "8aaacdba0b1b4834ed5f9862445d553b093321af1922e2bda5c0afa69af66fe3",
    "trn3": "bdc323ce41cfc96346d7bdbfcb4f1fc155b3ca94082c901cb9cc67752982648d",
    "val0": "2f1745b5a73597ec9acaf0a99a0ff4dbee59f223c9e724975e2e277195f9bb34",
    "val1": "504fcf60d6b68b857bf9f412f7d04db788a05cce127cba59feda54324e32fb32",
    "val2": "c02c57e4ebb6a15d004e3fccd6fa2bc7d25ac762d7753744b56b35329d6e6dfd",
    "val3": "d6f9adfdb74991ee4a297497e7999e4889a5bcf8941bcbf2967b7df017d4e26c",
}
"""sha256 of the Pascal-5i lists in visual_prompting@6351e0d ``evaluate/splits/pascal/
{trn,val}/fold{0-3}.txt`` (bytes as published, CRLF line ends), keyed ``f"{split}{fold}"``."""

_LINE = re.compile(r"^(?P<image_id>\S+)__(?P<class_id>\d{2})$")


def fold_classes(fold: int) -> list[int]:
    """VOC class ids (1-based) of Pascal-5i fold ``fold`` (0..3): ``[5*fold+1 .. 5*fold+5]``."""
    if not isinstance(fold, int) or not 0 <= fold < NUM_FOLDS:
        raise ConfigError(f"Pascal-5i fold {fold!r} does not exist. Fix: use a fold in 0..3.")
    first = CLASSES_PER_FOLD * fold + 1
    return list(range(first, first + CLASSES_PER_FOLD))


def fold_of_class(class_id: int) -> int:
    """The Pascal-5i fold (0..3) that holds VOC class id ``class_id`` (1..20)."""
    _check_class_id(class_id)
    return (class_id - 1) // CLASSES_PER_FOLD


def _check_class_id(class_id: int) -> None:
    if not isinstance(class_id, (int, np.integer)) or not 1 <= class_id <= len(VOC_CLASSES):
        raise ConfigError(f"VOC class id {class_id!r} does not exist. Fix: use an id in 1..20.")


@dataclass(frozen=True)
class PascalEntry:
    """One Pascal-5i list line: an image and one fold class it contains."""

    image_id: str
    class_id: int

    @property
    def key(self) -> str:
        """The HSNet list-line form, ``f"{image_id}__{class_id:02d}"``."""
        return f"{self.image_id}__{self.class_id:02d}"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_split_list(path: Path) -> list[PascalEntry]:
    """Parse an HSNet split list: one ``<image id>__<2-digit class>`` per line.

    Accepts LF or CRLF line ends; blank lines are skipped; order is kept. A line of any other
    form, or a class outside 1..20, raises DataError naming the file and the line number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"Pascal-5i split list not found: {path}. Fix: pass the folder that holds "
            "{trn,val}/fold{0-3}.txt (HSNet format), or let the benchmark fetch it."
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(
            f"Pascal-5i split list {path} cannot be read ({type(err).__name__}). "
            "Fix: replace it with the published HSNet list."
        ) from None
    entries: list[PascalEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _LINE.match(line)
        class_id = int(match["class_id"]) if match else 0
        if match is None or not 1 <= class_id <= len(VOC_CLASSES):
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise DataError(
                f"{path}, line {number}: {shown!r} is not '<image id>__<class 01-20>'. "
                "Fix: replace the file with the published HSNet split list."
            )
        entries.append(PascalEntry(match["image_id"], class_id))
    return entries


def split_list_path(splits_dir: Path, split: str, fold: int) -> Path:
    """Path of a Pascal-5i list: ``splits_dir / split / f"fold{fold}.txt"``, split trn|val."""
    if split not in SPLITS:
        raise ConfigError(f"Pascal-5i split {split!r} does not exist. Fix: use 'trn' or 'val'.")
    fold_classes(fold)  # validates the fold
    return Path(splits_dir) / split / f"fold{fold}.txt"


class VOCDataset:
    """Read-only access to a Pascal VOC 2012 root (with SBD ``SegmentationClassAug``).

    Files are read on demand; nothing is cached. Every missing or unreadable file raises a
    one-line DataError naming the file and the fix.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not (self.root / "JPEGImages").is_dir():
            raise DataError(
                f"Pascal VOC root not found: {self.root} (no JPEGImages/ folder there). "
                "Fix: download VOC2012 + SBD SegmentationClassAug into one folder and pass "
                "data.root=<folder containing JPEGImages/> (or data=demo for the demo set)."
            )

    def image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def mask_path(self, image_id: str) -> Path:
        return self.root / "SegmentationClassAug" / f"{image_id}.png"

    def annotation_path(self, image_id: str) -> Path:
        return self.root / "Annotations" / f"{image_id}.xml"

    def image(self, image_id: str) -> Image.Image:
        """The photograph as an RGB PIL image of size (W, H)."""
        return read_rgb(self.image_path(image_id), "Pascal VOC image", _FIX_IMAGES)

    def image_size(self, image_id: str) -> tuple[int, int]:
        """(W, H) of the photograph, read from the file header only."""
        path = self.image_path(image_id)
        with open_image(path, "Pascal VOC image", _FIX_IMAGES, load=False) as im:
            return im.size

    def label_map(self, image_id: str) -> np.ndarray:
        """Class ids per pixel, uint8 (H, W): 0 background, 1..20 classes, 255 void.

        Read from ``SegmentationClassAug/<id>.png``; a 'P' PNG gives its palette indices
        (the class ids), an 'L' PNG its grey values.
        """
        path = self.mask_path(image_id)
        fix = "Fix: unpack the SBD SegmentationClassAug masks (HSNet/PANet) into the VOC root."
        return read_label_png(path, "Pascal VOC class mask", fix, "a class-id PNG ('P' or 'L')")

    def class_mask(self, image_id: str, class_id: int) -> np.ndarray:
        """bool (H, W): pixels of class ``class_id``; void (255) counts as background."""
        _check_class_id(class_id)
        return self.label_map(image_id) == class_id
