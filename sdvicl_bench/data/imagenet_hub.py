"""ImageNet-1k val through the ``datasets`` library: an alternative to the ImageFolder layout.

``HubImageDataset`` wraps an already-loaded ``datasets.Dataset`` with an ``image`` column
(PIL images, or the ``{"bytes", "path"}`` dicts of an undecoded Image feature) and an integer
``label`` column, and exposes the API of ``data.imagenet.ImageFolderDataset``:

- ids ``"<label:04d>/<row index:06d>"`` (e.g. ``"0042/001337"``), sorted, hence ordered by
  class then row and stable for a given dataset revision;
- ``image(id)`` -> PIL RGB, ``classes()`` -> the label strings, ``label(id)`` -> ``"0042"``.

``load_hub_imagenet`` calls ``datasets.load_dataset`` (imported lazily: ``datasets`` is only
needed for this source). ImageNet on the hub is gated: log in (``hf auth login``, formerly
``huggingface-cli login``, or ``HF_TOKEN``) and accept the terms on the dataset page first.
Any failure is a one-line DataError naming the dataset and the fix.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from sdvicl_bench.data.imagenet import ClassImageIds
from sdvicl_bench.data.images import UNREADABLE
from sdvicl_bench.errors import DataError

_FIX_HUB = (
    "Fix: log in (`hf auth login`, formerly `huggingface-cli login`, or set HF_TOKEN), accept "
    "the ImageNet terms on the dataset's hub page and load it once online to fill the cache, "
    "or put the val images in the ImageFolder layout and pass data.root=<that folder>."
)
_FIX_ID = "Fix: use an id from HubImageDataset.ids()."
_MAX_DETAIL = 200


def _one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    """``text`` with all whitespace runs collapsed to one space, cut to ``limit`` chars."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class HubImageDataset(ClassImageIds):
    """Read-only ImageFolder-like access to a ``datasets.Dataset`` (``image``, ``label``):
    ids ``"<label:04d>/<row:06d>"``, classes the zero-padded labels (``"0042"``).

    The labels are read once, at construction (the ``label`` column only; no image is
    decoded); images are decoded on demand and not cached. Labels must be integers >= 0
    (ImageNet's unlabelled test split, label -1, is refused).
    """

    def __init__(self, dataset: Any, name: str = "dataset") -> None:
        self.dataset = dataset
        self.name = name
        columns = list(getattr(dataset, "column_names", None) or [])
        missing = [c for c in ("image", "label") if c not in columns]
        if missing:
            raise DataError(
                f"hub dataset {name!r} has no {' / '.join(missing)} column "
                f"(columns: {', '.join(columns) or 'none'}). "
                "Fix: use an image classification dataset with 'image' and 'label' columns."
            )
        try:
            labels = [int(v) for v in dataset["label"]]
        except (TypeError, ValueError) as err:
            raise DataError(
                f"hub dataset {name!r} label column is not integer ({_one_line(str(err))}). "
                "Fix: use an image classification dataset with integer labels."
            ) from None
        if not labels:
            raise DataError(f"hub dataset {name!r} has no rows. {_FIX_HUB}")
        if min(labels) < 0:
            raise DataError(
                f"hub dataset {name!r} has unlabelled rows (label {min(labels)}). "
                "Fix: use a labelled split (split=validation)."
            )
        self._labels = labels
        self._label_width = max(4, len(str(max(labels))))
        self._index_width = max(6, len(str(len(labels) - 1)))
        self._ids = sorted(self._make_id(i, lab) for i, lab in enumerate(labels))

    def _make_id(self, index: int, label: int) -> str:
        return f"{label:0{self._label_width}d}/{index:0{self._index_width}d}"

    def __len__(self) -> int:
        return len(self._labels)

    @staticmethod
    def label_index(image_id: str) -> int:
        """The integer label of an image id (``"0042/001337"`` -> 42)."""
        return int(image_id.split("/", 1)[0])

    def row_index(self, image_id: str) -> int:
        """The dataset row of an id; an id not from this dataset is a one-line DataError."""
        parts = image_id.split("/")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise DataError(f"hub image id {image_id!r} is not '<label>/<row index>'. {_FIX_ID}")
        label, index = int(parts[0]), int(parts[1])
        if index >= len(self._labels) or self._labels[index] != label:
            raise DataError(f"hub image id {image_id!r} is not in {self.name!r}. {_FIX_ID}")
        return index

    def image(self, image_id: str) -> Image.Image:
        """The image of an id as PIL RGB of size (W, H) (grey or CMYK images are converted)."""
        index = self.row_index(image_id)
        try:
            value = self.dataset[index]["image"]
            return _to_pil(value).convert("RGB")
        except (*UNREADABLE, TypeError, KeyError) as err:
            raise DataError(
                f"hub dataset {self.name!r} row {index} image is not readable "
                f"({type(err).__name__}). Fix: clear the dataset cache and load it again."
            ) from None


def _to_pil(value: Any) -> Image.Image:
    """A PIL image from an Image feature value: PIL, ``{"bytes": ..., "path": ...}`` or a path."""
    if isinstance(value, Image.Image):
        value.load()
        return value
    if isinstance(value, dict):
        if value.get("bytes"):
            with Image.open(io.BytesIO(value["bytes"])) as im:
                im.load()
                return im.copy()
        if value.get("path"):
            value = value["path"]
    if isinstance(value, (str, Path)):
        with Image.open(value) as im:
            im.load()
            return im.copy()
    raise TypeError(f"not an image: {type(value).__name__}")


def load_hub_imagenet(
    name: str = "imagenet-1k",
    split: str = "validation",
    *,
    revision: str | None = None,
    cache_dir: Path | str | None = None,
) -> HubImageDataset:
    """``datasets.load_dataset(name, split=split, ...)`` wrapped as a ``HubImageDataset``.

    ``name`` is the hub id (``"imagenet-1k"``, now also ``"ILSVRC/imagenet-1k"``); pin
    ``revision`` for reproducible ids. Offline (``HF_HUB_OFFLINE=1``) it works from the local
    cache only. ``datasets`` not installed, a gated or unreachable dataset, or a missing
    cache is a one-line DataError naming the dataset and the fix.
    """
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"hub dataset {name!r} needs the `datasets` library, which is not installed. "
            "Fix: pip install datasets (or use the ImageFolder layout with data.root=<folder>)."
        ) from None
    try:
        loaded = datasets.load_dataset(
            name,
            split=split,
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as err:  # hub, network, auth, cache errors vary
        raise DataError(
            f"cannot load hub dataset {name!r} split {split!r} "
            f"({type(err).__name__}: {_one_line(str(err))}). {_FIX_HUB}"
        ) from None
    if not isinstance(loaded, datasets.Dataset):
        raise DataError(
            f"hub dataset {name!r} split {split!r} loaded as {type(loaded).__name__}, not a "
            "Dataset. Fix: pass one split name (split=validation) and do not stream."
        )
    return HubImageDataset(loaded, name=name)
