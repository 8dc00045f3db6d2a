"""DeepFashion Fashion Landmark Detection (FLD), read from the published on-disk layout.

The root folder holds the FLD benchmark as distributed::

    <root>/Anno/list_landmarks.txt          landmarks per image (format below)
    <root>/Anno/list_bbox.txt               the clothes box per image (needed for
                                            ``task.options.normalize=box`` only)
    <root>/Eval/list_eval_partition.txt     train | val | test per image
    <root>/Img/img/...                      photographs; ``image_name`` is relative to Img/

``list_landmarks.txt``: line 1 the number of images, line 2 the header ``image_name
clothes_type variation_type landmark_visibility_1 landmark_location_x_1
landmark_location_y_1 ... _8``, then one whitespace-separated row per image: the image name,
the clothes type (1 upper body, 2 lower body, 3 full body), the variation type, then one
(visibility, x, y) triple per landmark of that clothes type (6, 4 or 8, named in
``LANDMARK_NAMES``). Rows padded with extra all-zero triples are accepted. Visibility is
FLD's own convention: 0 visible, 1 occluded, 2 truncated (not COCO's). ``x``, ``y`` are pixel
coordinates in the photograph.

``list_bbox.txt``: line 1 the number of images, line 2 the header ``image_name x_1 y_1 x_2
y_2``, then one row per image: the name and the clothes box's upper-left (x_1, y_1) and
lower-right (x_2, y_2) corners, integer pixels, x_2 > x_1 and y_2 > y_1.

``make_demo_fld`` writes a small deterministic look-alike in the same layout, so the loader
here is what reads it. Nothing here downloads anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import draw

from sdvicl_bench.data.demo import DemoMarker, check_demo_size, one_writer_at_a_time
from sdvicl_bench.data.images import read_rgb
from sdvicl_bench.errors import ConfigError, DataError

LANDMARK_NAMES: dict[int, tuple[str, ...]] = {
    1: ("left_collar", "right_collar", "left_sleeve", "right_sleeve", "left_hem", "right_hem"),
    2: ("left_waistline", "right_waistline", "left_hem", "right_hem"),
    3: (
        "left_collar",
        "right_collar",
        "left_sleeve",
        "right_sleeve",
        "left_waistline",
        "right_waistline",
        "left_hem",
        "right_hem",
    ),
}
"""Landmark names, in file column order, per clothes type (1 upper, 2 lower, 3 full body)."""

CLOTHES_TYPES: dict[int, str] = {1: "upper", 2: "lower", 3: "full"}
VISIBLE, OCCLUDED, TRUNCATED = 0, 1, 2
SPLITS: tuple[str, ...] = ("train", "val", "test")

LANDMARKS_FILE = "Anno/list_landmarks.txt"
BBOX_FILE = "Anno/list_bbox.txt"
BBOX_HEADER: tuple[str, ...] = ("image_name", "x_1", "y_1", "x_2", "y_2")
PARTITION_FILE = "Eval/list_eval_partition.txt"
_FIX_DOWNLOAD = (
    'Fix: download DeepFashion "Fashion Landmark Detection" (FLD) and pass '
    "data.root=<folder containing Anno/, Eval/ and Img/> (or data=demo for the demo set)."
)


@dataclass(frozen=True, eq=False)
class FLDRecord:
    """One image's annotation.

    ``names`` (K,) landmark names of the clothes type; ``visibility`` int (K,) in {0, 1, 2}
    (0 visible, 1 occluded, 2 truncated); ``xy`` float (K, 2) pixel (x, y) in the image.
    Both arrays are read-only; records compare by identity (arrays make ``==`` ambiguous).
    """

    image: str
    clothes_type: int
    variation: int
    names: tuple[str, ...]
    visibility: np.ndarray = field(repr=False)
    xy: np.ndarray = field(repr=False)

    @property
    def visible(self) -> np.ndarray:
        """bool (K,): True where the landmark is visible (visibility 0)."""
        return self.visibility == VISIBLE


def _read_lines(path: Path, what: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"DeepFashion FLD {what} not found: {path}. {_FIX_DOWNLOAD}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(
            f"DeepFashion FLD {what} {path} cannot be read ({type(err).__name__}). "
            "Fix: replace it with the file from the FLD archive."
        ) from None


def _bad(path: Path, number: int, problem: str) -> DataError:
    return DataError(
        f"{path}, line {number}: {problem}. Fix: replace the file with the one from the "
        "DeepFashion FLD archive (line 1 count, line 2 header, then one row per image)."
    )


def _body(path: Path, lines: list[str], header_start: str) -> list[tuple[int, list[str]]]:
    """Check the count line and header; return (line number, tokens) of the non-blank rows."""
    if len(lines) < 2:
        raise _bad(path, len(lines) + 1, "the count and header lines are missing")
    count = lines[0].strip()
    if not count.isdigit():
        raise _bad(path, 1, f"expected the number of images, got {count[:40]!r}")
    if not lines[1].strip().startswith(header_start):
        raise _bad(path, 2, f"expected a header starting {header_start!r}")
    rows = [(n, line.split()) for n, line in enumerate(lines[2:], start=3) if line.strip()]
    if len(rows) != int(count):
        raise _bad(path, 1, f"says {int(count)} images but the file has {len(rows)} rows")
    return rows


def parse_landmarks(path: Path) -> list[FLDRecord]:
    """Parse ``Anno/list_landmarks.txt`` (see the module docstring), in file order.

    Each row needs the image name, clothes type (1..3), variation type and at least as many
    (visibility, x, y) triples as the type has landmarks; further tokens must all be 0.
    Anything else raises a one-line DataError naming the file and line.
    """
    path = Path(path)
    records: list[FLDRecord] = []
    for number, tokens in _body(path, _read_lines(path, "landmark list"), "image_name"):
        if len(tokens) < 3:
            raise _bad(path, number, "expected 'image_name clothes_type variation_type ...'")
        try:
            values = [int(float(t)) for t in tokens[1:]]
        except ValueError:
            raise _bad(path, number, f"non-numeric value in the row for {tokens[0]!r}") from None
        clothes_type, variation, rest = values[0], values[1], values[2:]
        if clothes_type not in LANDMARK_NAMES:
            raise _bad(path, number, f"clothes_type {clothes_type} is not 1, 2 or 3")
        names = LANDMARK_NAMES[clothes_type]
        k = len(names)
        if len(rest) < 3 * k:
            raise _bad(path, number, f"clothes_type {clothes_type} needs {k} landmark triples")
        if any(rest[3 * k :]):
            raise _bad(path, number, f"more than {k} landmarks for clothes_type {clothes_type}")
        triples = np.asarray(rest[: 3 * k], dtype=np.int64).reshape(k, 3)
        visibility = triples[:, 0].copy()
        if not np.isin(visibility, (VISIBLE, OCCLUDED, TRUNCATED)).all():
            raise _bad(path, number, "a landmark visibility is not 0, 1 or 2")
        visibility.flags.writeable = False
        xy = triples[:, 1:].astype(np.float64)
        xy.flags.writeable = False
        records.append(FLDRecord(tokens[0], clothes_type, variation, names, visibility, xy))
    return records


Box = tuple[int, int, int, int]
"""A clothes box (x_1, y_1, x_2, y_2): upper-left and lower-right corners, pixels."""


def parse_bboxes(path: Path) -> dict[str, Box]:
    """Parse ``Anno/list_bbox.txt`` (see the module docstring): image name -> box.

    Each row needs the image name and four integers with x_2 > x_1 and y_2 > y_1; a name
    may appear once. Anything else raises a one-line DataError naming the file and line.
    """
    path = Path(path)
    lines = _read_lines(path, "box list")
    rows = _body(path, lines, "image_name")
    if tuple(lines[1].split()) != BBOX_HEADER:
        raise _bad(path, 2, f"expected the header {' '.join(BBOX_HEADER)!r}")
    out: dict[str, Box] = {}
    for number, tokens in rows:
        if len(tokens) != 5:
            raise _bad(path, number, "expected 'image_name x_1 y_1 x_2 y_2'")
        try:
            x1, y1, x2, y2 = (int(t) for t in tokens[1:])
        except ValueError:
            raise _bad(path, number, f"non-integer corner in the row for {tokens[0]!r}") from None
        if x2 <= x1 or y2 <= y1:
            raise _bad(
                path, number, f"empty box ({x1}, {y1}, {x2}, {y2}): needs x_2 > x_1, y_2 > y_1"
            )
        if tokens[0] in out:
            raise _bad(path, number, f"second box for {tokens[0]!r}")
        out[tokens[0]] = (x1, y1, x2, y2)
    return out


def parse_partition(path: Path) -> dict[str, str]:
    """Parse ``Eval/list_eval_partition.txt``: image name -> 'train' | 'val' | 'test'."""
    path = Path(path)
    out: dict[str, str] = {}
    for number, tokens in _body(path, _read_lines(path, "partition list"), "image_name"):
        if len(tokens) != 2 or tokens[1] not in SPLITS:
            raise _bad(path, number, "expected 'image_name train|val|test'")
        out[tokens[0]] = tokens[1]
    return out


class FLDDataset:
    """Read-only access to a DeepFashion FLD root.

    The annotation files are parsed on first use and kept; images are read on demand. Every
    missing or unreadable file raises a one-line DataError naming the file and the fix.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        missing = [
            rel
            for rel, ok in (
                (LANDMARKS_FILE, (self.root / LANDMARKS_FILE).is_file()),
                (PARTITION_FILE, (self.root / PARTITION_FILE).is_file()),
                ("Img/", (self.root / "Img").is_dir()),
            )
            if not ok
        ]
        if missing:
            raise DataError(
                f"DeepFashion FLD root {self.root} lacks {', '.join(missing)}. {_FIX_DOWNLOAD}"
            )
        self._records: list[FLDRecord] | None = None
        self._partition: dict[str, str] | None = None
        self._boxes: dict[str, Box] | None = None

    def all_records(self) -> list[FLDRecord]:
        """Every row of ``Anno/list_landmarks.txt``, in file order."""
        if self._records is None:
            self._records = parse_landmarks(self.root / LANDMARKS_FILE)
        return self._records

    def partition(self) -> dict[str, str]:
        """Image name -> split, from ``Eval/list_eval_partition.txt``."""
        if self._partition is None:
            self._partition = parse_partition(self.root / PARTITION_FILE)
        return self._partition

    def boxes(self) -> dict[str, Box]:
        """Image name -> clothes box, from ``Anno/list_bbox.txt`` (read on first use)."""
        if self._boxes is None:
            self._boxes = parse_bboxes(self.root / BBOX_FILE)
        return self._boxes

    def records(self, split: str) -> list[FLDRecord]:
        """Records of one split ('train' | 'val' | 'test'), in landmark-file order."""
        if split not in SPLITS:
            raise ConfigError(
                f"DeepFashion FLD split {split!r} does not exist. Fix: use train, val or test."
            )
        part = self.partition()
        return [r for r in self.all_records() if part.get(r.image) == split]

    def image_path(self, record: FLDRecord | str) -> Path:
        name = record.image if isinstance(record, FLDRecord) else record
        return self.root / "Img" / name

    def image(self, record: FLDRecord | str) -> Image.Image:
        """The photograph as an RGB PIL image of size (W, H)."""
        fix = "Fix: restore Img/ from the DeepFashion FLD archive (img.zip)."
        return read_rgb(self.image_path(record), "DeepFashion FLD image", fix)


# --------------------------------------------------------------------------------------
# Demo data

DEMO_VERSION = 3
"""Bump when the generator's output changes, so old demo folders are rewritten."""
MIN_DEMO_IMAGES = 16
"""With fewer images the test split would hold under 2 images of some clothes type."""

# Garment outlines and landmarks in a unit box (x right, y down); "left" is image-left.
_OUTLINES: dict[int, list[tuple[float, float]]] = {
    1: [  # T-shirt
        (0.40, 0.12), (0.60, 0.12), (0.74, 0.18), (0.92, 0.38), (0.82, 0.46), (0.71, 0.36),
        (0.71, 0.88), (0.29, 0.88), (0.29, 0.36), (0.18, 0.46), (0.08, 0.38), (0.26, 0.18),
    ],
    2: [  # trousers
        (0.30, 0.10), (0.70, 0.10), (0.76, 0.90), (0.55, 0.90), (0.50, 0.42), (0.45, 0.90),
        (0.24, 0.90),
    ],
    3: [  # dress
        (0.42, 0.06), (0.58, 0.06), (0.70, 0.11), (0.84, 0.28), (0.76, 0.34), (0.67, 0.26),
        (0.63, 0.46), (0.82, 0.93), (0.18, 0.93), (0.37, 0.46), (0.33, 0.26), (0.24, 0.34),
        (0.16, 0.28), (0.30, 0.11),
    ],
}  # fmt: skip
_LANDMARKS_UNIT: dict[int, list[tuple[float, float]]] = {
    1: [(0.40, 0.12), (0.60, 0.12), (0.13, 0.42), (0.87, 0.42), (0.29, 0.88), (0.71, 0.88)],
    2: [(0.30, 0.10), (0.70, 0.10), (0.345, 0.90), (0.655, 0.90)],
    3: [
        (0.42, 0.06), (0.58, 0.06), (0.20, 0.31), (0.80, 0.31), (0.37, 0.46), (0.63, 0.46),
        (0.18, 0.93), (0.82, 0.93),
    ],
}  # fmt: skip


@one_writer_at_a_time
def make_demo_fld(
    root: Path, *, seed: int = 0, num_images: int = 24, size: tuple[int, int] = (96, 96)
) -> Path:
    """Write a demo FLD set under ``root`` in the real layout and return ``root``.

    Images ``Img/img/demo_000001.jpg``... show one garment (T-shirt, trousers or dress, the
    clothes types 1, 2, 3) on a textured background, with its landmarks at the garment's
    collar, sleeve ends, waistline and hem corners. Image ``i`` (0-based) is in 'val' when
    ``i % 8 == 7``, else 'train' (even ``i``) or 'test' (odd ``i``); clothes types are dealt
    round-robin within each split, so train and test hold several of every type. Visibility:
    mostly 0, landmark ``i % K`` of image ``i`` gets ``i % 3`` and others are occluded or
    truncated at random, every image keeps at least 2 visible; truncated landmarks are
    written at (0, 0). Each image's box in ``Anno/list_bbox.txt`` is the garment's: its
    outline's extent, rounded outwards. ``size`` is (W, H), at least (48, 48).

    Deterministic (same arguments, same bytes) and idempotent: when ``root/.demo_complete``
    records the same parameters nothing is rewritten; otherwise the marker is removed, the
    demo files are (re)written and the marker is written last.
    """
    root = Path(root)
    width, height = int(size[0]), int(size[1])
    params = {
        "generator": "fld",
        "version": DEMO_VERSION,
        "seed": int(seed),
        "num_images": int(num_images),
        "size": [width, height],
    }
    marker = DemoMarker(root, params)
    if marker.current():
        return root
    if num_images < MIN_DEMO_IMAGES:
        raise ConfigError(
            f"demo num_images={num_images} is too small for several images of every clothes "
            f"type per split. Fix: use num_images >= {MIN_DEMO_IMAGES}."
        )
    check_demo_size(size, (48, 48))

    marker.clear()
    img_dir = root / "Img" / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(img_dir.glob("demo_*")):
        old.unlink()
    seeds = np.random.SeedSequence(int(seed)).spawn(num_images)
    dealt = {split: 0 for split in SPLITS}
    landmark_rows: list[str] = []
    partition_rows: list[str] = []
    box_rows: list[str] = []
    for i, image_seed in enumerate(seeds):
        rng = np.random.default_rng(image_seed)
        split = "val" if i % 8 == 7 else ("train" if i % 2 == 0 else "test")
        clothes_type = dealt[split] % 3 + 1
        dealt[split] += 1
        name = f"img/demo_{i + 1:06d}.jpg"
        picture, xy, box = _render_garment(clothes_type, rng, width, height)
        visibility = _demo_visibility(i, len(xy), rng)
        xy[visibility == TRUNCATED] = 0
        Image.fromarray(picture, mode="RGB").save(root / "Img" / name, quality=92)
        triples = "".join(
            f" {v} {x:4d} {y:4d}" for v, (x, y) in zip(visibility, xy.tolist(), strict=True)
        )
        variation = int(rng.integers(1, 3))
        landmark_rows.append(f"{name:<40}{clothes_type:<3}{variation:<3}{triples}")
        partition_rows.append(f"{name:<40}{split}")
        box_rows.append(f"{name:<40}" + " ".join(f"{v:4d}" for v in box))

    header = " ".join(
        ["image_name", "clothes_type", "variation_type"]
        + [
            f"landmark_{part}_{k}"
            for k in range(1, 9)
            for part in ("visibility", "location_x", "location_y")
        ]
    )
    _write(root / LANDMARKS_FILE, [str(num_images), header, *landmark_rows])
    _write(
        root / PARTITION_FILE, [str(num_images), "image_name evaluation_status", *partition_rows]
    )
    _write(root / BBOX_FILE, [str(num_images), " ".join(BBOX_HEADER), *box_rows])
    marker.write()
    return root


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _demo_visibility(i: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """int (K,): mostly visible; landmark i % K gets i % 3; at least 2 stay visible."""
    visibility = rng.choice([VISIBLE, OCCLUDED, TRUNCATED], size=k, p=[0.8, 0.12, 0.08])
    visibility[i % k] = i % 3
    for j in range(k):
        if np.count_nonzero(visibility == VISIBLE) >= 2:
            break
        if j != i % k:
            visibility[j] = VISIBLE
    return visibility.astype(np.int64)


def _render_garment(
    clothes_type: int, rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, Box]:
    """uint8 (H, W, 3) picture of one garment, its landmarks int (K, 2) pixel (x, y), and its
    box (x_1, y_1, x_2, y_2): the outline's extent rounded outwards (so it holds every
    landmark, each a rounded point of the outline), within the image."""
    # Textured background: a muted colour, a gradient and smooth noise.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = rng.uniform(60, 190, size=3)
    slope = rng.uniform(-40, 40, size=3)
    image = base + slope * (xx / width - 0.5)[:, :, None]
    noise = ndimage.gaussian_filter(rng.normal(size=(height, width)), rng.uniform(0.8, 2.0))
    image += noise[:, :, None] * (rng.uniform(8, 18) / max(noise.std(), 1e-6))

    # Garment box: half to most of the short side, anywhere inside the image with a margin
    # (so the prompt's landmarks are not the query's: copying B is no answer).
    side = rng.uniform(0.5, 0.85) * min(width, height)
    box_w, box_h = side * rng.uniform(0.9, 1.05), side
    x0 = rng.uniform(2, max(2.0, width - box_w - 2))
    y0 = rng.uniform(2, max(2.0, height - box_h - 2))

    def place(points: list[tuple[float, float]]) -> np.ndarray:
        unit = np.asarray(points, dtype=np.float64)
        return np.stack([x0 + unit[:, 0] * box_w, y0 + unit[:, 1] * box_h], axis=1)

    outline = place(_OUTLINES[clothes_type])
    rr, cc = draw.polygon(outline[:, 1], outline[:, 0], shape=(height, width))
    hue_colour = rng.uniform(20, 235, size=3)
    stripes = 18.0 * np.sin(yy[rr, cc] * rng.uniform(0.4, 1.2))
    image[rr, cc] = hue_colour + stripes[:, None]
    # Two-tone: the garment's right half is darker, so a left landmark and its right twin
    # differ in their surroundings, not only in where they sit.
    right = cc >= x0 + 0.5 * box_w
    image[rr[right], cc[right]] *= 0.55
    landmarks = np.clip(np.rint(place(_LANDMARKS_UNIT[clothes_type])), 0, [width - 1, height - 1])
    low = np.clip(np.floor(outline.min(axis=0)), 0, [width - 1, height - 1]).astype(int)
    high = np.clip(np.ceil(outline.max(axis=0)), 0, [width - 1, height - 1]).astype(int)
    box = (int(low[0]), int(low[1]), int(high[0]), int(high[1]))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), landmarks.astype(np.int64), box
