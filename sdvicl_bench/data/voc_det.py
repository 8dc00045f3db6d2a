"""Pascal VOC 2012 boxes for single object detection (VP's filter), read from the VOC layout.

Reads the standard VOC2012 files under a root (the same root as ``data.pascal.VOCDataset``)::

    <root>/Annotations/<id>.xml              VOC XML: <size> and one <object> per object
    <root>/ImageSets/Main/{train,val}.txt    image ids per split

Boxes are kept exactly as the XML writes them: ``(xmin, ymin, xmax, ymax)`` in VOC's 1-based,
inclusive pixel coordinates (pixel column ``xmin - 1`` .. ``xmax - 1`` of a 0-based array).
``box_mask`` does the conversion to array indices.

VP's filter (Bar et al. 2022) keeps an image when it has exactly one annotated object
(``difficult`` objects count as objects) and that object's box covers under 20% of the image.
Queries are the filtered val ids, the prompt pool the filtered train ids.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdvicl_bench.data.pascal import VOC_CLASSES
from sdvicl_bench.errors import ConfigError, DataError

IMAGE_SETS: tuple[str, ...] = ("train", "val")
MAX_BOX_FRACTION = 0.2
"""VP's filter keeps a single object whose box covers strictly less than this image fraction."""

_ANNOTATION_FIX = "Fix: restore Annotations/ from the VOC2012 archive (VOCtrainval_11-May-2012)."


@dataclass(frozen=True)
class VOCObject:
    """One ``<object>`` of a VOC annotation.

    ``box`` is (xmin, ymin, xmax, ymax) as in the XML: 1-based, inclusive pixel coordinates.
    ``class_id`` is the VOC id (1..20) of ``name``.
    """

    name: str
    class_id: int
    difficult: bool
    box: tuple[int, int, int, int]

    @property
    def area(self) -> int:
        """Pixels the box covers: ``(xmax - xmin + 1) * (ymax - ymin + 1)``."""
        xmin, ymin, xmax, ymax = self.box
        return (xmax - xmin + 1) * (ymax - ymin + 1)


@dataclass(frozen=True)
class VOCAnnotation:
    """One ``Annotations/<id>.xml``: the image size (from ``<size>``) and its objects."""

    image_id: str
    width: int
    height: int
    objects: tuple[VOCObject, ...]


def annotation_path(root: Path, image_id: str) -> Path:
    """``root / "Annotations" / f"{image_id}.xml"``."""
    return Path(root) / "Annotations" / f"{image_id}.xml"


def parse_annotation(path: Path) -> VOCAnnotation:
    """Parse one VOC XML file into a VOCAnnotation; ``image_id`` is the file's stem.

    Coordinates written as decimals (a few VOC files do) are rounded to the nearest integer.
    A missing file, malformed XML, a missing or non-numeric ``<size>``/``<bndbox>`` field, an
    empty box (xmax < xmin) or an unknown class name raises a one-line DataError naming the
    file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"VOC annotation not found: {path}. {_ANNOTATION_FIX}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(
            f"VOC annotation {path} is not well-formed XML ({_one_line(err)}). {_ANNOTATION_FIX}"
        ) from None
    except OSError as err:
        raise DataError(
            f"VOC annotation {path} cannot be read ({type(err).__name__}). {_ANNOTATION_FIX}"
        ) from None

    width = _int_field(root, "size/width", path)
    height = _int_field(root, "size/height", path)
    if width < 1 or height < 1:
        raise DataError(
            f"VOC annotation {path} gives image size {width}x{height}. {_ANNOTATION_FIX}"
        )
    objects = []
    for index, node in enumerate(root.findall("object"), start=1):
        name = (node.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise DataError(
                f"VOC annotation {path}, object {index}: class {name!r} is not one of the 20 "
                f"VOC classes. {_ANNOTATION_FIX}"
            )
        difficult_text = (node.findtext("difficult") or "0").strip()
        box = tuple(_int_field(node, f"bndbox/{tag}", path) for tag in _BOX_TAGS)
        xmin, ymin, xmax, ymax = box
        if xmax < xmin or ymax < ymin:
            raise DataError(
                f"VOC annotation {path}, object {index}: empty box {box}. {_ANNOTATION_FIX}"
            )
        objects.append(
            VOCObject(
                name=name,
                class_id=VOC_CLASSES.index(name) + 1,
                difficult=difficult_text not in ("", "0"),
                box=(xmin, ymin, xmax, ymax),
            )
        )
    return VOCAnnotation(path.stem, width, height, tuple(objects))


_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def _int_field(node: ET.Element, tag: str, path: Path) -> int:
    text = node.findtext(tag)
    try:
        return round(float(text))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        shown = "missing" if text is None else repr(text.strip()[:30])
        raise DataError(
            f"VOC annotation {path}: <{tag}> is {shown}, not a number. {_ANNOTATION_FIX}"
        ) from None


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def read_image_set(root: Path, split: str) -> list[str]:
    """Image ids of ``root/ImageSets/Main/{split}.txt`` (split train|val), in file order.

    Blank lines are skipped and surrounding whitespace (CRLF included) stripped. A missing or
    unreadable file raises a one-line DataError; another split a ConfigError.
    """
    if split not in IMAGE_SETS:
        raise ConfigError(f"VOC image set {split!r} does not exist. Fix: use 'train' or 'val'.")
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    fix = "Fix: restore ImageSets/Main/ from the VOC2012 archive (VOCtrainval_11-May-2012)."
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"VOC image set not found: {path}. {fix}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(
            f"VOC image set {path} cannot be read ({type(err).__name__}). {fix}"
        ) from None
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def passes_vp_filter(ann: VOCAnnotation) -> bool:
    """VP's filter: exactly one object (difficult ones counted), box area < 20% of the image.

    Box area is ``(xmax - xmin + 1) * (ymax - ymin + 1)`` pixels, the image area
    ``width * height`` from the XML's ``<size>``.
    """
    if len(ann.objects) != 1:
        return False
    return ann.objects[0].area < MAX_BOX_FRACTION * ann.width * ann.height


def single_object_entries(root: Path, split: str) -> list[str]:
    """Sorted ids of ``split`` (train|val) whose annotation passes ``passes_vp_filter``.

    Every listed id's ``Annotations/<id>.xml`` is parsed; a missing or malformed one raises
    DataError (a broken dataset is reported, not silently shrunk).
    """
    ids = read_image_set(root, split)
    return sorted(
        image_id
        for image_id in set(ids)
        if passes_vp_filter(parse_annotation(annotation_path(root, image_id)))
    )


BoxLike = VOCAnnotation | VOCObject | tuple[int, int, int, int]


def box_mask(
    ann_or_box: BoxLike, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """bool (H, W), True inside the box(es): ``mask[ymin-1 : ymax, xmin-1 : xmax]``.

    ``ann_or_box``: a VOC box (xmin, ymin, xmax, ymax) in 1-based inclusive coordinates, a
    VOCObject, or a VOCAnnotation (the union of all its boxes; one box after VP's filter).
    ``width``/``height`` give the mask size (W, H); they default to the annotation's size and
    are required for a box or object. Boxes are drawn at their pixel coordinates (never
    scaled) and clipped to the mask.
    """
    if isinstance(ann_or_box, VOCAnnotation):
        boxes = [obj.box for obj in ann_or_box.objects]
        width = ann_or_box.width if width is None else width
        height = ann_or_box.height if height is None else height
    elif isinstance(ann_or_box, VOCObject):
        boxes = [ann_or_box.box]
    else:
        boxes = [tuple(int(v) for v in ann_or_box)]
        if len(boxes[0]) != 4:
            raise ValueError(f"a box is (xmin, ymin, xmax, ymax), got {ann_or_box!r}")
    if width is None or height is None:
        raise ValueError("box_mask needs width and height for a box or VOCObject")
    mask = np.zeros((int(height), int(width)), dtype=bool)
    for xmin, ymin, xmax, ymax in boxes:
        # 1-based inclusive [xmin, xmax] -> 0-based half-open [xmin - 1, xmax).
        x0, y0 = max(xmin - 1, 0), max(ymin - 1, 0)
        x1, y1 = min(xmax, int(width)), min(ymax, int(height))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = True
    return mask
