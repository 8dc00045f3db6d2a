"""Single object detection: VOC XML boxes, VP's filter, box masks and box decoding.

Loader tests use hand-written VOC XML (the real format), then the demo set as a second check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.data.pascal import VOCDataset
from sdvicl_bench.data.voc_det import (
    VOCAnnotation,
    VOCObject,
    box_mask,
    parse_annotation,
    passes_vp_filter,
    read_image_set,
    single_object_entries,
)
from sdvicl_bench.errors import ConfigError, DataError
from sdvicl_bench.metrics.iou import foreground_iou
from sdvicl_bench.tasks import fgseg
from sdvicl_bench.tasks.det import decode, decode_box, render_gt, scale_box

# --- hand-written VOC XML fixtures ------------------------------------------------------------


def _object(name: str, box: tuple[int, int, int, int], difficult: int = 0) -> str:
    xmin, ymin, xmax, ymax = box
    return f"""
	<object>
		<name>{name}</name>
		<pose>Left</pose>
		<truncated>0</truncated>
		<difficult>{difficult}</difficult>
		<bndbox>
			<xmin>{xmin}</xmin>
			<ymin>{ymin}</ymin>
			<xmax>{xmax}</xmax>
			<ymax>{ymax}</ymax>
		</bndbox>
	</object>"""


def _xml(image_id: str, width: int, height: int, objects: str) -> str:
    return f"""<annotation>
	<folder>VOC2012</folder>
	<filename>{image_id}.jpg</filename>
	<source>
		<database>The VOC2007 Database</database>
		<annotation>PASCAL VOC2007</annotation>
		<image>flickr</image>
	</source>
	<size>
		<width>{width}</width>
		<height>{height}</height>
		<depth>3</depth>
	</size>
	<segmented>0</segmented>{objects}
</annotation>
"""


# 500 x 375 = 187500 px; 20% = 37500 px.
SMALL = ("2007_000001", _xml("2007_000001", 500, 375, _object("dog", (101, 51, 250, 200))))
TWO = (
    "2007_000002",
    _xml(
        "2007_000002",
        500,
        375,
        _object("person", (10, 20, 40, 90), difficult=1) + _object("cat", (200, 100, 260, 150)),
    ),
)
# 194 x 194 = 37636 px >= 37500: fails by a hair.
LARGE = ("2007_000003", _xml("2007_000003", 500, 375, _object("boat", (1, 1, 194, 194))))
# 193 x 194 = 37442 px < 37500: passes by a hair.
EDGE = ("2007_000004", _xml("2007_000004", 500, 375, _object("bottle", (1, 1, 193, 194))))


@pytest.fixture()
def voc_root(tmp_path: Path) -> Path:
    root = tmp_path / "VOC2012"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, text in (SMALL, TWO, LARGE, EDGE):
        (root / "Annotations" / f"{image_id}.xml").write_text(text, encoding="utf-8")
    # CRLF line ends and a blank line, as some copies of the lists have.
    (root / "ImageSets" / "Main" / "val.txt").write_bytes(
        b"2007_000004\r\n2007_000003\r\n2007_000002\r\n\r\n2007_000001\r\n"
    )
    (root / "ImageSets" / "Main" / "train.txt").write_text("2007_000002\n", encoding="utf-8")
    return root


def test_parse_single_small_object(voc_root: Path) -> None:
    ann = parse_annotation(voc_root / "Annotations" / "2007_000001.xml")
    assert ann == VOCAnnotation(
        "2007_000001", 500, 375, (VOCObject("dog", 12, False, (101, 51, 250, 200)),)
    )
    assert ann.objects[0].area == 150 * 150
    assert passes_vp_filter(ann)


def test_difficult_object_is_counted(voc_root: Path) -> None:
    ann = parse_annotation(voc_root / "Annotations" / "2007_000002.xml")
    assert [(o.name, o.class_id, o.difficult) for o in ann.objects] == [
        ("person", 15, True),
        ("cat", 8, False),
    ]
    assert not passes_vp_filter(ann)
    # Dropping the difficult object would make it pass: the filter must not do that.
    assert passes_vp_filter(VOCAnnotation(ann.image_id, 500, 375, ann.objects[1:]))


def test_area_threshold_is_strict_and_inclusive_pixels(voc_root: Path) -> None:
    assert not passes_vp_filter(parse_annotation(voc_root / "Annotations" / "2007_000003.xml"))
    assert passes_vp_filter(parse_annotation(voc_root / "Annotations" / "2007_000004.xml"))
    assert not passes_vp_filter(VOCAnnotation("x", 10, 10, ()))


def test_image_sets_and_filtered_entries(voc_root: Path) -> None:
    assert read_image_set(voc_root, "val") == [
        "2007_000004",
        "2007_000003",
        "2007_000002",
        "2007_000001",
    ]
    assert single_object_entries(voc_root, "val") == ["2007_000001", "2007_000004"]
    assert single_object_entries(voc_root, "train") == []
    with pytest.raises(ConfigError):
        read_image_set(voc_root, "trainval_typo")


def _assert_one_line(err: pytest.ExceptionInfo[DataError], *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message and "Fix:" in message
    for needle in needles:
        assert needle in message


def test_malformed_xml_is_one_line_data_error(voc_root: Path) -> None:
    path = voc_root / "Annotations" / "broken.xml"
    path.write_text("<annotation>\n<size><width>5</width>\n</annotation>\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        parse_annotation(path)
    _assert_one_line(err, str(path), "XML")


def test_bad_fields_are_one_line_data_errors(voc_root: Path) -> None:
    cases = {
        "nosize": "<annotation>" + _object("dog", (1, 1, 5, 5)) + "</annotation>",
        "badclass": _xml("badclass", 50, 40, _object("unicorn", (1, 1, 5, 5))),
        "badbox": _xml("badbox", 50, 40, _object("dog", (9, 1, 5, 5))),
        "nonnum": _xml("nonnum", 50, 40, _object("dog", (1, 1, 5, 5))).replace(
            "<xmax>5</xmax>", "<xmax>five</xmax>"
        ),
    }
    for name, text in cases.items():
        path = voc_root / "Annotations" / f"{name}.xml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError) as err:
            parse_annotation(path)
        _assert_one_line(err, str(path))


def test_missing_annotation_is_one_line_data_error(voc_root: Path) -> None:
    path = voc_root / "Annotations" / "2099_000000.xml"
    with pytest.raises(DataError) as err:
        parse_annotation(path)
    _assert_one_line(err, str(path), "not found")
    # ... also when reached through a listed id.
    (voc_root / "ImageSets" / "Main" / "train.txt").write_text("2099_000000\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        single_object_entries(voc_root, "train")
    _assert_one_line(err, "2099_000000.xml")


def test_missing_image_set_is_one_line_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_image_set(tmp_path, "val")
    _assert_one_line(err, str(tmp_path / "ImageSets" / "Main" / "val.txt"))


def test_decimal_coordinates_are_rounded(voc_root: Path) -> None:
    path = voc_root / "Annotations" / "decimal.xml"
    text = _xml("decimal", 50, 40, _object("dog", (1, 1, 5, 5))).replace(
        "<xmax>5</xmax>", "<xmax>5.0</xmax>"
    )
    path.write_text(text, encoding="utf-8")
    assert parse_annotation(path).objects[0].box == (1, 1, 5, 5)


# --- box masks --------------------------------------------------------------------------------


def test_box_mask_by_hand() -> None:
    # VOC box x 2..4, y 3..4 (1-based inclusive) -> columns 1..3, rows 2..3 (0-based).
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(box_mask((2, 3, 4, 4), 6, 5), expected)
    obj = VOCObject("dog", 12, False, (2, 3, 4, 4))
    np.testing.assert_array_equal(box_mask(obj, 6, 5), expected)
    np.testing.assert_array_equal(box_mask(VOCAnnotation("x", 6, 5, (obj,)), None, None), expected)
    # The full image: 1..W, 1..H.
    assert box_mask((1, 1, 6, 5), 6, 5).all()
    # Clipped to the mask.
    np.testing.assert_array_equal(box_mask((5, 4, 9, 9), 6, 5), box_mask((5, 4, 6, 5), 6, 5))
    assert box_mask((1, 1, 1, 1), 6, 5).sum() == 1 and box_mask((1, 1, 1, 1), 6, 5)[0, 0]


# --- decoding ---------------------------------------------------------------------------------


def _random_voc_box(rng: np.random.Generator, w: int, h: int) -> tuple[int, int, int, int]:
    x0, x1 = sorted(int(v) for v in rng.integers(1, w + 1, size=2))
    y0, y1 = sorted(int(v) for v in rng.integers(1, h + 1, size=2))
    return x0, y0, x1, y1


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


@pytest.mark.parametrize("seed", range(8))
def test_roundtrip_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(8, 90)), int(rng.integers(8, 90))
    gt = box_mask(_random_voc_box(rng, w, h), w, h)
    picture = render_gt(gt)
    assert picture.mode == "RGB" and picture.size == (w, h)
    out = decode(picture, (w, h))
    assert out.dtype == bool and out.shape == (h, w)
    np.testing.assert_array_equal(out, gt)
    np.testing.assert_array_equal(decode(np.asarray(picture), (w, h)), gt)


@pytest.mark.parametrize("seed", range(4))
def test_noise_and_speckles_keep_the_box(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    w, h = 120, 100
    box = (41, 31, 41 + int(rng.integers(15, 40)), 31 + int(rng.integers(15, 40)))
    gt = box_mask(box, w, h)
    noisy = np.asarray(render_gt(gt)).astype(float) + rng.normal(0, 30, size=(h, w, 3))
    picture = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    # Isolated white speckles (single pixels and a 2x2 blob) in the corners, far from the box.
    for y, x in ((2, 3), (5, 110), (95, 4), (90, 115), (50, 2)):
        picture[y, x] = 255
    picture[3:5, 60:62] = 255
    out = decode(picture, (w, h))
    assert np.abs(np.subtract(_bbox(out), _bbox(gt))).max() <= 1
    assert foreground_iou(out, gt) > 0.9


def test_all_black_is_empty() -> None:
    black = np.zeros((40, 50, 3), dtype=np.uint8)
    assert decode_box(black) is None
    out = decode(black, (70, 60))
    assert out.shape == (60, 70) and not out.any()
    gt = box_mask((10, 10, 30, 20), 70, 60)
    assert foreground_iou(out, gt) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_rescaled_box_64_to_96x80(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    small = box_mask(_random_voc_box(rng, 64, 64), 64, 64)
    x0, y0, x1, y1 = _bbox(small)
    out = decode(render_gt(small), (96, 80))
    assert out.shape == (80, 96)
    # The box's pixel edges scale by 96/64 in x and 80/64 in y.
    expected = (x0 * 1.5, y0 * 1.25, (x1 + 1) * 1.5 - 1, (y1 + 1) * 1.25 - 1)
    assert np.abs(np.subtract(_bbox(out), expected)).max() <= 1
    np.testing.assert_array_equal(out, box_mask(tuple(v + 1 for v in _bbox(out)), 96, 80))
    # Same pixels as NEAREST resizing in exact arithmetic: destination pixel j samples source
    # pixel floor((j + 1/2) * w / W). (PIL's NEAREST agrees except at exact ties, where its
    # float coefficients may round either way.)
    cols = (2 * np.arange(96) + 1) * 64 // (2 * 96)
    rows = (2 * np.arange(80) + 1) * 64 // (2 * 80)
    np.testing.assert_array_equal(out, small[np.ix_(rows, cols)])
    assert np.mean(out != fgseg.resize_mask(small, (96, 80))) < 0.01


def test_scale_box_hand_cases() -> None:
    assert scale_box((3, 4, 10, 20), (64, 64), (64, 64)) == (3, 4, 10, 20)
    # x2: pixel i covers [2i, 2i + 2).
    assert scale_box((3, 4, 10, 20), (64, 64), (128, 128)) == (6, 8, 21, 41)
    # /2: source [4, 12) -> [2, 6): pixels 2..5.
    assert scale_box((4, 4, 11, 11), (64, 64), (32, 32)) == (2, 2, 5, 5)
    # A 1-px box at /8 holds no destination centre: the pixel holding its centre is kept.
    assert scale_box((9, 9, 9, 9), (64, 64), (8, 8)) == (1, 1, 1, 1)
    assert scale_box((63, 0, 63, 0), (64, 64), (8, 8)) == (7, 0, 7, 0)


def test_scale_box_equals_exact_nearest_on_random_sizes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        w, big_w = (int(v) for v in rng.integers(1, 200, size=2))
        lo, hi = sorted(int(v) for v in rng.integers(0, w, size=2))
        src = (2 * np.arange(big_w) + 1) * w // (2 * big_w)
        inside = np.nonzero((src >= lo) & (src <= hi))[0]
        x0, _, x1, _ = scale_box((lo, 0, hi, 0), (w, 1), (big_w, 1))
        assert 0 <= x0 <= x1 < big_w
        if inside.size:
            assert (x0, x1) == (int(inside[0]), int(inside[-1]))
        else:  # thinner than a destination pixel: the pixel holding its centre
            assert x0 == x1 == int((lo + hi + 1) * big_w // (2 * w))


def test_largest_component_wins() -> None:
    mask = np.zeros((40, 50), dtype=bool)
    mask[2:8, 2:6] = True  # 24 px
    mask[20:35, 25:45] = True  # 300 px
    out = decode(render_gt(mask), (50, 40))
    expected = np.zeros_like(mask)
    expected[20:35, 25:45] = True
    np.testing.assert_array_equal(out, expected)


def test_eight_connectivity_joins_corner_touching_squares() -> None:
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:10, 5:10] = True
    mask[10:14, 10:14] = True  # touches only at the corner (9, 9)-(10, 10)
    mask[20:22, 25:27] = True  # a separate small blob
    assert decode_box(render_gt(mask)) == (5, 5, 13, 13)
    out = decode(Image.fromarray(np.asarray(render_gt(mask))), (30, 30))
    assert _bbox(out) == (5, 5, 13, 13) and out.sum() == 81


# --- demo data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_voc(tmp_path_factory.mktemp("det") / "VOC2012")


def test_demo_has_filtered_entries_whose_boxes_match_the_masks(demo_root: Path) -> None:
    dataset = VOCDataset(demo_root)
    for split in ("train", "val"):
        ids = single_object_entries(demo_root, split)
        assert len(ids) >= 3, split
        assert set(ids) <= set(read_image_set(demo_root, split))
        for image_id in ids:
            ann = parse_annotation(dataset.annotation_path(image_id))
            (obj,) = ann.objects
            assert (ann.width, ann.height) == dataset.image_size(image_id)
            mask = dataset.class_mask(image_id, obj.class_id)
            from_xml = box_mask(ann)
            assert from_xml.shape == mask.shape
            assert np.abs(np.subtract(_bbox(from_xml), _bbox(mask))).max() <= 1
            # The rendered GT decodes back to the same box.
            np.testing.assert_array_equal(
                decode(render_gt(from_xml), (ann.width, ann.height)), from_xml
            )
