"""Demo data: a small deterministic Pascal VOC look-alike, written in the real on-disk layout.

``make_demo_voc`` paints coloured shapes (one colour and shape kind per VOC class) on textured
backgrounds and writes them exactly as VOC2012 + SBD + Pascal-5i store them, so the real
loaders (``data.pascal``) are what reads them::

    <root>/JPEGImages/demo_000001.jpg            RGB, size (W, H)
    <root>/SegmentationClassAug/demo_000001.png  'P' PNG (VOC palette): class ids, 255 void
                                                 band ~2 px wide around each object
    <root>/Annotations/demo_000001.xml           VOC XML, 1-based inclusive pixel boxes
    <root>/ImageSets/Main/{train,val}.txt        image ids per split
    <root>/splits/pascal5i/{trn,val}/fold{0-3}.txt   HSNet lists of the two-object images

Images alternate train/val. Within a split every second image holds one small object (box
under 20% of the image: VP's detection filter keeps it) next to an unannotated grey "clutter"
shape (no class, not in the labels or the XML), and the others two objects of different
classes, side by side and apart (one may be marked ``difficult``). Classes are dealt so that
every class appears about equally often in each split; with the default size every class has
5 one-object images and about 10 list entries (two-object images) per split, so every
Pascal-5i fold has several val and trn entries for each of its 5 classes.

The world is built so that in-context learning is needed and possible: a class is visible
(one colour and shape kind per class), and a query never shows only what a prompt-free rule
would find. The Pascal-5i lists hold the two-object images only (as real Pascal-5i lists hold
a subset of VOC), so every fgseg query shows the episode's class and another one ("segment
every object" fails, only a prompt of the episode's class tells which); det's queries are the
one-object images, each with clutter ("box whatever stands out" fails, the prompt tells what
to box).
"""

from __future__ import annotations

import colorsys
import functools
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

try:
    import fcntl
except ImportError:  # not POSIX (Windows): demo folders are not locked
    fcntl = None

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import draw

from sdvicl_bench.data.pascal import NUM_FOLDS, VOC_CLASSES, VOID_LABEL, fold_classes
from sdvicl_bench.errors import ConfigError

DEMO_VERSION = 3
"""Bump when the generator's output changes, so old demo folders are rewritten."""

MARKER = ".demo_complete"


class DemoMarker:
    """`<root>/.demo_complete`: the JSON parameters a demo writer finished with.

    Writers check `current()` first (same parameters: nothing to do), `clear()` it before
    rewriting, and `write()` it last, so an interrupted write is redone on the next call.
    """

    def __init__(self, root: Path, params: dict) -> None:
        self.path = Path(root) / MARKER
        self.text = json.dumps(params, sort_keys=True) + "\n"

    def current(self) -> bool:
        return self.path.is_file() and self.path.read_text(encoding="utf-8") == self.text

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def write(self) -> None:
        self.path.write_text(self.text, encoding="utf-8")


def check_demo_size(size: tuple[int, int], minimum: tuple[int, int]) -> None:
    """A demo writer's ``size`` = (W, H) is at least ``minimum``: else a one-line ConfigError."""
    least_w, least_h = minimum
    if int(size[0]) < least_w or int(size[1]) < least_h:
        raise ConfigError(
            f"demo size={size} is too small. Fix: use a size of at least ({least_w}, {least_h})."
        )


LOCK = ".demo_lock"
"""The lock file of a demo folder (`one_writer_at_a_time`)."""

Writer = TypeVar("Writer", bound=Callable[..., Path])


def one_writer_at_a_time(writer: Writer) -> Writer:
    """A demo writer (`writer(root, ...)`) that holds an exclusive lock on `<root>/.demo_lock`
    while it runs, so two processes writing one demo folder at once (the same command
    started twice) take turns: the second finds the marker current instead of deleting and
    rewriting the files under the first one's readers. No lock where the platform has no
    `fcntl` (Windows)."""

    @functools.wraps(writer)
    def locked(root, *args, **kwargs):
        if fcntl is None:
            return writer(root, *args, **kwargs)
        Path(root).mkdir(parents=True, exist_ok=True)
        with open(Path(root) / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            return writer(root, *args, **kwargs)

    return locked  # type: ignore[return-value]


MIN_ENTRIES_PER_CLASS = 2
"""Each class appears in at least this many two-object images (list entries) of each split."""

_MARGIN = 3  # px kept free at the image edge (room for the void band)
_VOID_WIDTH = 2  # px of 255 around each object, outside it
_GAP = 2 * _VOID_WIDTH + 4  # px between the two objects of an image
_SHAPES = ("ellipse", "rectangle", "polygon")


@dataclass(frozen=True)
class _Planned:
    image_id: str
    split: str  # "train" | "val"
    class_ids: tuple[int, ...]  # 1 or 2 distinct VOC ids


@one_writer_at_a_time
def make_demo_voc(
    root: Path, *, seed: int = 0, num_images: int = 400, size: tuple[int, int] = (96, 80)
) -> Path:
    """Write the demo VOC set under ``root`` (see the module docstring) and return ``root``.

    Deterministic: the same (seed, num_images, size) give the same bytes. Idempotent: if
    ``root/.demo_complete`` records the same parameters nothing is rewritten; otherwise the
    marker is removed first, demo files are (re)written, and the marker is written last.
    ``size`` is (W, H). ``num_images`` must be at least ``min_demo_images()`` (46).
    """
    root = Path(root)
    width, height = int(size[0]), int(size[1])
    params = {
        "generator": "voc",
        "version": DEMO_VERSION,
        "seed": int(seed),
        "num_images": int(num_images),
        "size": [width, height],
    }
    marker = DemoMarker(root, params)
    if marker.current():
        return root
    if num_images < min_demo_images():
        raise ConfigError(
            f"demo num_images={num_images} is too small for every class to appear "
            f"{MIN_ENTRIES_PER_CLASS}x per split. Fix: use num_images >= {min_demo_images()}."
        )
    check_demo_size(size, (48, 40))

    seeds = np.random.SeedSequence(int(seed)).spawn(num_images + 1)
    plan = _plan(num_images, np.random.default_rng(seeds[0]))
    dirs = {name: root / name for name in ("JPEGImages", "SegmentationClassAug", "Annotations")}
    marker.clear()
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
        for old in sorted(folder.glob("demo_*")):
            old.unlink()

    palette = voc_palette()
    for item, image_seed in zip(plan, seeds[1:], strict=True):
        rng = np.random.default_rng(image_seed)
        image, labels, objects = _render(item, rng, width, height)
        Image.fromarray(image, mode="RGB").save(
            dirs["JPEGImages"] / f"{item.image_id}.jpg", quality=92
        )
        label_png = Image.fromarray(labels, mode="P")
        label_png.putpalette(palette)
        label_png.save(dirs["SegmentationClassAug"] / f"{item.image_id}.png")
        (dirs["Annotations"] / f"{item.image_id}.xml").write_text(
            _voc_xml(item.image_id, width, height, objects), encoding="utf-8"
        )

    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        ids = [p.image_id for p in plan if p.split == split]
        _write_lines(main / f"{split}.txt", ids)
    for split, voc_split in (("trn", "train"), ("val", "val")):
        for fold in range(NUM_FOLDS):
            classes = set(fold_classes(fold))
            lines = [
                f"{p.image_id}__{c:02d}"
                for p in plan
                if p.split == voc_split and len(p.class_ids) == 2  # fgseg: two-object images
                for c in sorted(p.class_ids)
                if c in classes
            ]
            path = root / "splits" / "pascal5i" / split / f"fold{fold}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_lines(path, lines)
    marker.write()
    return root


def min_demo_images() -> int:
    """Smallest ``num_images`` whose plan gives every class MIN_ENTRIES_PER_CLASS per split."""
    need = MIN_ENTRIES_PER_CLASS * len(VOC_CLASSES)
    n = 2
    while _slots(n // 2) < need:
        n += 1
    return n


def _slots(n_split: int) -> int:
    """List entries of a split of ``n_split`` images: the two-object images' objects (every
    2nd image, from the first, holds one object and is not listed)."""
    return 2 * (n_split - math.ceil(n_split / 2))


def _plan(num_images: int, rng: np.random.Generator) -> list[_Planned]:
    """Image ids, splits and classes.

    One-object images deal the classes round robin (a fresh shuffle per round), so every
    class has about as many one-object images (det's queries and prompts) per split; the
    two-object images take the least-used classes of their split (ties: at random).
    """
    counts = {split: np.zeros(len(VOC_CLASSES) + 1, dtype=int) for split in ("train", "val")}
    rounds: dict[str, list[int]] = {"train": [], "val": []}
    seen = {"train": 0, "val": 0}
    plan: list[_Planned] = []
    for i in range(num_images):
        split = "train" if i % 2 == 0 else "val"
        single = seen[split] % 2 == 0
        seen[split] += 1
        chosen: list[int] = []
        if single:
            if not rounds[split]:
                rounds[split] = [int(c) for c in rng.permutation(len(VOC_CLASSES)) + 1]
            chosen.append(rounds[split].pop())
            counts[split][chosen[0]] += 1
        for _ in range(0 if single else 2):
            free = [c for c in range(1, len(VOC_CLASSES) + 1) if c not in chosen]
            least = min(counts[split][c] for c in free)
            pick = int(rng.choice([c for c in free if counts[split][c] == least]))
            counts[split][pick] += 1
            chosen.append(pick)
        plan.append(_Planned(f"demo_{i + 1:06d}", split, tuple(chosen)))
    return plan


def class_colour(class_id: int) -> np.ndarray:
    """A saturated RGB colour per class (float (3,)), hues spread by the golden ratio."""
    hue = (class_id * 0.6180339887) % 1.0
    value = 0.95 if class_id % 2 else 0.75
    return np.array(colorsys.hsv_to_rgb(hue, 0.85, value)) * 255.0


def voc_palette() -> list[int]:
    """The VOC colour map (768 ints): index i -> RGB from the bits of i, as VOC ships it."""
    palette: list[int] = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Muted two-colour gradient plus smooth noise: float (H, W, 3) in 0..255."""
    grey = rng.uniform(70, 170, size=(2, 1))
    tint = rng.uniform(-25, 25, size=(2, 3))
    c0, c1 = grey + tint
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    t = (xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * np.sin(angle) + 0.5
    t = np.clip(t, 0.0, 1.0)[:, :, None]
    base = c0 * (1 - t) + c1 * t
    texture = ndimage.gaussian_filter(rng.normal(size=(height, width)), rng.uniform(0.8, 2.5))
    texture *= rng.uniform(10, 22) / max(texture.std(), 1e-6)
    return base + texture[:, :, None]


def _shape_mask(
    kind: str, box: tuple[int, int, int, int], rng: np.random.Generator, shape: tuple[int, int]
) -> np.ndarray:
    """bool (H, W) of one shape inside box (x0, y0, w, h)."""
    x0, y0, w, h = box
    mask = np.zeros(shape, dtype=bool)
    cy, cx = y0 + (h - 1) / 2, x0 + (w - 1) / 2
    if kind == "rectangle":
        mask[y0 : y0 + h, x0 : x0 + w] = True
    elif kind == "ellipse":
        rr, cc = draw.ellipse(cy, cx, h / 2, w / 2, shape=shape)
        mask[rr, cc] = True
    else:
        k = int(rng.integers(5, 8))
        # Increasing angles around the centre: a simple (star-shaped) polygon.
        steps = np.arange(k) + rng.uniform(-0.3, 0.3, size=k)
        angles = rng.uniform(0, 2 * np.pi) + steps * 2 * np.pi / k
        radius = rng.uniform(0.75, 1.0, size=k)
        rows = cy + radius * (h - 1) / 2 * np.sin(angles)
        cols = cx + radius * (w - 1) / 2 * np.cos(angles)
        rr, cc = draw.polygon(rows, cols, shape=shape)
        mask[rr, cc] = True
    return mask


def _boxes(
    n_objects: int, rng: np.random.Generator, width: int, height: int
) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, w, h) in two halves of the image, apart.

    Two objects: one large box per half. One object: a small box (under 20% of the image) in
    one half and, last in the list, the clutter's box in the other.
    """
    side_by_side = bool(rng.integers(2)) if width == height else width > height
    long = width if side_by_side else height
    cut = long // 2
    spans = [(_MARGIN, cut - _GAP // 2), (cut + _GAP - _GAP // 2, long - _MARGIN)]
    short_lo, short_hi = _MARGIN, (height if side_by_side else width) - _MARGIN
    if n_objects == 1 and rng.integers(2):
        spans.reverse()  # the object on either side
    boxes = []
    for index, (lo, hi) in enumerate(spans):
        if n_objects == 1 and index == 0:
            frac_a, frac_b = (0.2, 0.4), (0.2, 0.4)  # of the whole image: box < 16%
            full_a, full_b = (width, height) if side_by_side else (height, width)
            a = int(
                rng.integers(round(frac_a[0] * full_a), min(round(frac_a[1] * full_a), hi - lo) + 1)
            )
            b = int(rng.integers(round(frac_b[0] * full_b), round(frac_b[1] * full_b) + 1))
        else:
            a = int(rng.integers(round(0.6 * (hi - lo)), hi - lo + 1))
            b = int(rng.integers(round(0.5 * (short_hi - short_lo)), short_hi - short_lo + 1))
        pa = int(rng.integers(lo, hi - a + 1))
        pb = int(rng.integers(short_lo, short_hi - b + 1))
        boxes.append((pa, pb, a, b) if side_by_side else (pb, pa, b, a))
    return boxes


def _clutter(image: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Paint an unannotated grey striped blob (no class, no label) into ``image`` in place."""
    shape = image.shape[:2]
    mask = _shape_mask("polygon", box, rng, shape)
    yy, xx = np.indices(shape)
    period = rng.uniform(6.0, 10.0)
    angle = rng.uniform(0, np.pi)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0
    dark, light = sorted(rng.uniform(30, 225, size=2))
    if light - dark < 90:
        dark, light = max(dark - 45, 0.0), min(light + 45, 255.0)
    grey = np.where(stripes, light, dark)
    image[mask] = grey[mask][:, None] + rng.uniform(-6, 6, size=3)


def _render(
    item: _Planned, rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Picture uint8 (H, W, 3), labels uint8 (H, W) and the XML objects of one image."""
    shape = (height, width)
    image = _background(rng, width, height)
    labels = np.zeros(shape, dtype=np.uint8)
    objects = []
    xx = np.indices(shape)[1]
    boxes = _boxes(len(item.class_ids), rng, width, height)
    if len(item.class_ids) == 1:
        _clutter(image, boxes.pop(), rng)
    for index, (class_id, box) in enumerate(zip(item.class_ids, boxes, strict=True)):
        kind = _SHAPES[class_id % len(_SHAPES)]
        mask = _shape_mask(kind, box, rng, shape)
        colour = class_colour(class_id) + rng.uniform(-12, 12, size=3)
        shade = (xx - box[0]) / max(box[2], 1) * rng.uniform(-25, 25)
        image[mask] = colour + shade[mask][:, None]
        labels[mask] = class_id
        rows, cols = np.nonzero(mask)
        difficult = index == 1 and rng.random() < 0.25
        objects.append(
            {
                "name": VOC_CLASSES[class_id - 1],
                "difficult": int(difficult),
                # VOC boxes: 1-based, inclusive pixel coordinates.
                "bndbox": (
                    int(cols.min()) + 1,
                    int(rows.min()) + 1,
                    int(cols.max()) + 1,
                    int(rows.max()) + 1,
                ),
            }
        )
    objects_px = labels > 0
    structure = np.ones((3, 3), dtype=bool)
    band = ndimage.binary_dilation(objects_px, structure, iterations=_VOID_WIDTH) & ~objects_px
    labels[band] = VOID_LABEL
    image += rng.normal(0.0, 4.0, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), labels, objects


def _voc_xml(image_id: str, width: int, height: int, objects: list[dict]) -> str:
    """An ``Annotations/<id>.xml`` in the VOC2012 format."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "VOC2012"
    ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(ann, "source")
    ET.SubElement(source, "database").text = "sdvicl-bench demo"
    ET.SubElement(source, "annotation").text = "PASCAL VOC2012"
    ET.SubElement(source, "image").text = "synthetic"
    size = ET.SubElement(ann, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "1"
    for obj in objects:
        node = ET.SubElement(ann, "object")
        ET.SubElement(node, "name").text = obj["name"]
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = "0"
        ET.SubElement(node, "difficult").text = str(obj["difficult"])
        bndbox = ET.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj["bndbox"], strict=True):
            ET.SubElement(bndbox, tag).text = str(value)
    ET.indent(ann, space="\t")
    return ET.tostring(ann, encoding="unicode") + "\n"


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
