"""Cityscapes (fine annotations), read from the official on-disk layout.

The root folder is where ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``
were unpacked::

    <root>/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png   RGB
    <root>/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png    'L' PNG

An image id is ``<city>/<city>_<seq>_<frame>`` (e.g. ``frankfurt/frankfurt_000000_000294``).
The labelIds PNGs hold the 34 full label ids (0..33, -1 "license plate" is never stored);
``LABEL_TO_TRAIN`` maps them to the 19 evaluation classes (trainIds 0..18) and everything
else (void 0-6, the rare classes 9, 10, 14-16, 18, 29, 30) to 255 (ignored), exactly as
cityscapesScripts' ``labels.py`` does. Nothing here downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sdvicl_bench.data.images import read_label_png, read_rgb
from sdvicl_bench.errors import DataError
from sdvicl_bench.types import IGNORE_LABEL, NUM_CLASSES

TRAIN_CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
"""The 19 evaluation classes; ``TRAIN_CLASSES[t]`` is the name of trainId ``t``."""

assert len(TRAIN_CLASSES) == NUM_CLASSES

_LABEL_TO_TRAIN_PAIRS: dict[int, int] = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}


def _label_to_train() -> np.ndarray:
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    for label_id, train_id in _LABEL_TO_TRAIN_PAIRS.items():
        lut[label_id] = train_id
    lut.flags.writeable = False
    return lut


LABEL_TO_TRAIN: np.ndarray = _label_to_train()
"""uint8 (256,): ``LABEL_TO_TRAIN[label_id]`` is the trainId (0..18) or 255 (ignored)."""

_FIX_DOWNLOAD = (
    "Fix: download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
    "cityscapes-dataset.com, unpack both into one folder and pass data.root=<that folder> "
    "(or data=demo for the demo set)."
)
_FIX_IMAGE = "Fix: restore leftImg8bit/ from leftImg8bit_trainvaltest.zip."
_FIX_LABELS = "Fix: restore gtFine/ from gtFine_trainvaltest.zip."
_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"


class CityscapesDataset:
    """Read-only access to a Cityscapes root holding ``leftImg8bit/`` and ``gtFine/``.

    Files are read on demand; nothing is cached. Every missing or unreadable file raises a
    one-line DataError naming the file and the fix.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for folder in ("leftImg8bit", "gtFine"):
            if not (self.root / folder).is_dir():
                raise DataError(
                    f"Cityscapes root not found: {self.root} (no {folder}/ folder there). "
                    + _FIX_DOWNLOAD
                )

    def ids(self, split: str) -> list[str]:
        """Sorted ids ``<city>/<name>`` of ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png``."""
        folder = self.root / "leftImg8bit" / split
        if not folder.is_dir():
            raise DataError(f"Cityscapes split folder not found: {folder}. {_FIX_DOWNLOAD}")
        ids = sorted(
            f"{path.parent.name}/{path.name[: -len(_IMAGE_SUFFIX)]}"
            for path in folder.glob(f"*/*{_IMAGE_SUFFIX}")
        )
        if not ids:
            raise DataError(
                f"Cityscapes split folder {folder} holds no <city>/*{_IMAGE_SUFFIX} files. "
                + _FIX_DOWNLOAD
            )
        return ids

    def image_path(self, image_id: str, split: str) -> Path:
        return self.root / "leftImg8bit" / split / f"{image_id}{_IMAGE_SUFFIX}"

    def label_path(self, image_id: str, split: str) -> Path:
        return self.root / "gtFine" / split / f"{image_id}{_LABEL_SUFFIX}"

    def image(self, image_id: str, split: str) -> Image.Image:
        """The photograph as an RGB PIL image of size (W, H) (2048 x 1024 for real data)."""
        return read_rgb(self.image_path(image_id, split), "Cityscapes image", _FIX_IMAGE)

    def label_ids(self, image_id: str, split: str) -> np.ndarray:
        """Full Cityscapes label ids per pixel, uint8 (H, W), from the labelIds PNG."""
        path = self.label_path(image_id, split)
        return read_label_png(
            path, "Cityscapes labelIds PNG", _FIX_LABELS, "an 8-bit labelIds PNG ('L')"
        )

    def train_ids(self, image_id: str, split: str) -> np.ndarray:
        """trainIds per pixel, uint8 (H, W): 0..18 classes, 255 ignored (``LABEL_TO_TRAIN``)."""
        return LABEL_TO_TRAIN[self.label_ids(image_id, split)]
