"""Keypoints scored in the clothes box (`task.options.normalize=box`): hand-computed cases,
mmfashion's normalised error reimplemented from its source, `Anno/list_bbox.txt` parsing,
the demo's box file, and a missing box file as one line with exit 2.

mmfashion (open-mmlab/mmfashion) scores FLD landmarks on box crops:
`mmfashion/datasets/Landmark_Detect.py` `get_basic_item` crops the image to the box (widened
by 10 px; `margin=0` here, our rule) and maps each landmark to `(l - x1) / bbox_w * 224`
(likewise y with bbox_h); `mmfashion/core/evaluation/landmark_detect_eval.py`
`compute_distance` divides both by 224 and takes the L2 norm per landmark, then the mean.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sdvicl_bench.cli import app, load_config
from sdvicl_bench.data.deepfashion import (
    BBOX_FILE,
    LANDMARKS_FILE,
    FLDDataset,
    make_demo_fld,
    parse_bboxes,
)
from sdvicl_bench.errors import DataError
from sdvicl_bench.protocols import make_protocol
from sdvicl_bench.protocols.registry import resolve_function
from sdvicl_bench.tasks.keypoints import BoxLandmarks, decode, in_box, in_image, render_gt
from sdvicl_bench.types import Landmarks

runner = CliRunner()
NAMES = ("left_waistline", "right_waistline", "left_hem", "right_hem")
IMAGE = (200, 100)
BOX = (20, 10, 120, 60)  # w 100, h 50: half the image's width, half its height
NE, MSE = resolve_function("ne"), resolve_function("keypoint_mse")
PCK10, PCK20 = resolve_function("pck@0.1"), resolve_function("pck@0.2")


def truth() -> Landmarks:
    xy = np.array([[30.0, 20.0], [100.0, 20.0], [40.0, 50.0], [90.0, 50.0]])
    return Landmarks(NAMES, xy, np.array([True, True, True, False]), IMAGE)


def prediction(xy: list[list[float]], like: Landmarks) -> Landmarks:
    """A prediction of `like`'s kind (in the image or in its box) at image pixels `xy`."""
    pred = Landmarks(NAMES, np.asarray(xy, dtype=np.float64), np.ones(4, bool), IMAGE)
    return in_box(pred, BOX) if isinstance(like, BoxLandmarks) else pred


# ----------------------------------------------------------------------------- hand-computed

# Predictions: the first landmark off by (10, 10) px, the second exact, the third missing
# (NaN), the fourth (not visible) anywhere.
PRED = [[40.0, 30.0], [100.0, 20.0], [math.nan, math.nan], [0.0, 0.0]]


def test_box_normalisation_by_hand() -> None:
    gt = in_box(truth(), BOX)
    pred = prediction(PRED, gt)
    assert gt.size == (100, 50) and gt.image_size == IMAGE and gt.origin == (20.0, 10.0)
    # box frame: (10, 10) px -> (0.1, 0.2); the missing one goes to the box centre (69.5,
    # 34.5) in the image, (49.5, 24.5) in the box; its truth (40, 50) is (20, 40) there:
    # offset (29.5, -15.5) px -> (0.295, -0.31)
    e1, e3 = math.hypot(0.1, 0.2), math.hypot(0.295, 0.31)
    assert NE(pred, gt) == pytest.approx((e1 + 0 + e3) / 3, abs=1e-12)
    squares = 0.1**2 + 0.2**2 + 0.295**2 + 0.31**2
    assert MSE(pred, gt) == pytest.approx(squares / 6, abs=1e-12)
    # PCK: thresholds 0.1 x max(100, 50) = 10 px and 20 px; 14.14 px is wrong, then right
    assert PCK10(pred, gt) == pytest.approx(1 / 3)
    assert PCK20(pred, gt) == pytest.approx(2 / 3)


def test_image_normalisation_by_hand_differs() -> None:
    gt = truth()
    pred = prediction(PRED, gt)
    # image frame: (10, 10) px -> (0.05, 0.1); missing -> image centre (99.5, 49.5), its
    # truth (40, 50): (59.5, -0.5) px -> (0.2975, -0.005)
    e1, e3 = math.hypot(0.05, 0.1), math.hypot(0.2975, 0.005)
    assert NE(pred, gt) == pytest.approx((e1 + e3) / 3, abs=1e-12)
    assert MSE(pred, gt) == pytest.approx((0.05**2 + 0.1**2 + 0.2975**2 + 0.005**2) / 6)
    assert PCK10(pred, gt) == pytest.approx(2 / 3)  # threshold 20 px: 14.14 px is right


def mmfashion_ne(pred: np.ndarray, gt: np.ndarray, box: tuple, margin: int = 0) -> float:
    """mmfashion's normalised error of one image's landmarks (image pixels), all visible."""
    x1, y1 = max(0, int(box[0]) - margin), max(0, int(box[1]) - margin)
    bbox_w, bbox_h = int(box[2]) + margin - x1, int(box[3]) + margin - y1
    img_w = img_h = 224

    def regression(points: np.ndarray) -> list[tuple[float, float]]:
        return [
            (max(0, x - x1) / bbox_w * img_w, max(0, y - y1) / bbox_h * img_h) for x, y in points
        ]

    errors = [
        np.linalg.norm(np.array([gx / img_w, gy / img_h]) - np.array([px / img_w, py / img_h]))
        for (px, py), (gx, gy) in zip(regression(pred), regression(gt), strict=True)
    ]
    return sum(errors) / len(errors)


def test_box_ne_is_mmfashions_on_box_crops() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        x1, y1 = rng.integers(0, 60, 2)
        box = (int(x1), int(y1), int(x1 + rng.integers(20, 140)), int(y1 + rng.integers(20, 40)))
        lo, hi = np.array(box[:2]), np.array(box[2:])
        gt_xy, pred_xy = rng.uniform(lo, hi, (2, 4, 2))
        gt = in_box(Landmarks(NAMES, gt_xy, np.ones(4, bool), IMAGE), box)
        pred = in_box(Landmarks(NAMES, pred_xy, np.ones(4, bool), IMAGE), box)
        want = mmfashion_ne(pred_xy, gt_xy, box)
        assert NE(pred, gt) == pytest.approx(want, rel=1e-12)
        image_ne = NE(in_image(pred), in_image(gt))
        assert abs(image_ne - want) > 1e-3  # the image's normaliser gives another number


# ----------------------------------------------------------------------------- pictures


def test_box_truth_draws_and_decodes_in_its_image() -> None:
    plain = truth()
    boxed = in_box(plain, BOX)
    picture = render_gt(plain, (64, 32), image_size=IMAGE)
    same = render_gt(boxed, (64, 32), image_size=IMAGE)
    assert np.array_equal(np.asarray(same), np.asarray(picture))
    decoded_plain, decoded_box = decode(picture, plain), decode(picture, boxed)
    assert isinstance(decoded_box, BoxLandmarks) and decoded_box.size == (100, 50)
    np.testing.assert_allclose(np.add(decoded_box.xy, (20, 10)), decoded_plain.xy)
    np.testing.assert_array_equal(decoded_box.visible, decoded_plain.visible)


# ----------------------------------------------------------------------------- list_bbox.txt

HEADER = "image_name  x_1  y_1  x_2  y_2"
ROWS = [
    "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg    072 079 232 273",
    "img/Classic_Skinny_Jeans/img_00000007.jpg  67 58 230 299",
]


def write_bbox(path: Path, rows: list[str], header: str = HEADER, count: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [str(len(rows) if count is None else count), header, *rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_parse_bboxes(tmp_path: Path) -> None:
    boxes = parse_bboxes(write_bbox(tmp_path / "list_bbox.txt", ROWS))
    assert boxes == {
        "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg": (72, 79, 232, 273),
        "img/Classic_Skinny_Jeans/img_00000007.jpg": (67, 58, 230, 299),
    }


@pytest.mark.parametrize(
    ("rows", "header", "count", "line", "says"),
    [
        (ROWS, HEADER, 3, 1, "says 3 images"),
        (ROWS, "image_name x1 y1 x2 y2", None, 2, "header"),
        ([ROWS[0], "img/a.jpg 1 2 3"], HEADER, None, 4, "x_1 y_1 x_2 y_2"),
        ([ROWS[0], "img/a.jpg 1 2 3.5 9"], HEADER, None, 4, "non-integer"),
        ([ROWS[0], "img/a.jpg 10 2 10 9"], HEADER, None, 4, "empty box"),
        ([ROWS[0], ROWS[0]], HEADER, None, 4, "second box"),
    ],
)
def test_malformed_bbox_file_is_one_line(tmp_path, rows, header, count, line, says) -> None:
    path = write_bbox(tmp_path / "list_bbox.txt", rows, header, count)
    with pytest.raises(DataError) as info:
        parse_bboxes(path)
    message = str(info.value)
    assert "\n" not in message and f"{path}, line {line}:" in message and says in message
    assert "Fix:" in message


# ----------------------------------------------------------------------------- demo


def test_demo_writes_the_garment_boxes(tmp_path: Path) -> None:
    root = make_demo_fld(tmp_path / "fld", num_images=16)
    fld = FLDDataset(root)
    boxes = fld.boxes()
    assert sorted(boxes) == sorted(r.image for r in fld.all_records())
    for record in fld.all_records():
        x1, y1, x2, y2 = boxes[record.image]
        w, h = fld.image(record).size
        assert 0 <= x1 < x2 < w and 0 <= y1 < y2 < h
        xy = record.xy[record.visible]  # the garment's landmarks lie on its outline
        assert (xy >= (x1, y1)).all() and (xy <= (x2, y2)).all()


def test_demo_folder_of_the_previous_version_gains_the_box_file(tmp_path: Path) -> None:
    root = make_demo_fld(tmp_path / "fld", num_images=16)
    images = {p: p.read_bytes() for p in sorted((root / "Img").rglob("*.jpg"))}
    (root / BBOX_FILE).unlink()
    marker = root / ".demo_complete"
    params = json.loads(marker.read_text())
    marker.write_text(json.dumps({**params, "version": 2}, sort_keys=True) + "\n")
    make_demo_fld(root, num_images=16)
    assert (root / BBOX_FILE).is_file()
    assert {p: p.read_bytes() for p in images} == images  # the images stay byte-identical


# ----------------------------------------------------------------------------- protocol and CLI


def demo_with(tmp_path: Path) -> Path:
    """A demo data root (data.root) whose FLD folder is written."""
    data = tmp_path / "data"
    make_demo_fld(data / "deepfashion")
    return data


def overrides(data: Path) -> list[str]:
    """A small keypoints run on the demo FLD set under `data`."""
    return ["task=keypoints", "debug=smoke", f"data.root={data}"]


def test_family_gives_box_truths(tmp_path: Path) -> None:
    data = demo_with(tmp_path)
    plain = make_protocol(load_config(overrides(data))).family
    boxed = make_protocol(load_config([*overrides(data), "task.options.normalize=box"])).family
    key = next(iter(boxed.by_image))
    box = boxed.boxes[key]
    truth_box, truth_image = boxed.target(key), plain.target(key)
    assert isinstance(truth_box, BoxLandmarks) and not isinstance(truth_image, BoxLandmarks)
    assert truth_box.size == (box[2] - box[0], box[3] - box[1])
    np.testing.assert_array_equal(np.add(truth_box.xy, box[:2]), truth_image.xy)
    # the B pictures the sampler sees do not depend on the option
    assert np.array_equal(np.asarray(render_gt(truth_box)), np.asarray(render_gt(truth_image)))


def test_box_file_without_a_query_image_is_one_line(tmp_path: Path) -> None:
    data = demo_with(tmp_path)
    path = data / "deepfashion" / BBOX_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join([str(len(lines) - 3), *lines[1:-1]]) + "\n")
    with pytest.raises(DataError, match=LANDMARKS_FILE) as info:
        make_protocol(load_config([*overrides(data), "task.options.normalize=box"]))
    assert "\n" not in str(info.value)
    make_protocol(load_config(overrides(data)))  # normalize=image does not read the boxes


def test_missing_box_file_exits_2_naming_it(tmp_path: Path, workdir: Path) -> None:
    data = demo_with(tmp_path)
    (data / "deepfashion" / BBOX_FILE).unlink()
    args = ["run", *overrides(data), "task.options.normalize=box", "--quiet"]
    result = runner.invoke(app, args)
    assert "Traceback" not in result.output
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert str(data / "deepfashion" / BBOX_FILE) in lines[0]
    assert "Fix:" in lines[0] and "normalize" in lines[0]
    ok = runner.invoke(app, ["validate", *overrides(data)])  # the default needs no boxes
    assert ok.exit_code == 0, ok.output


def test_picture_of_image_size_round_trips() -> None:
    """Decoding a GT picture drawn at the image's size gives the truth back, in either frame
    (the oracle of a lossless pipeline: NE 0, PCK 1)."""
    gt = in_box(truth(), BOX)
    pred = decode(render_gt(gt, marker_radius=0.05), gt)
    assert NE(pred, gt) == pytest.approx(0.0, abs=1e-9) and PCK10(pred, gt) == 1.0
