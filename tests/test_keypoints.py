"""DeepFashion FLD loader (hand-written fixtures of the real format), the keypoint GT
picture and its decoder, PCK / normalised MSE, and the FLD demo writer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdvicl_bench.data.deepfashion import (
    LANDMARK_NAMES,
    FLDDataset,
    FLDRecord,
    make_demo_fld,
    parse_landmarks,
    parse_partition,
)
from sdvicl_bench.errors import ConfigError, DataError
from sdvicl_bench.metrics.keypoints import normalized_mse, pck
from sdvicl_bench.tasks.keypoints import (
    COLOUR_RADIUS,
    LANDMARK_COLOURS,
    disc_radius,
    locate,
    render_gt,
)

HEADER = "image_name clothes_type variation_type " + " ".join(
    f"landmark_visibility_{k} landmark_location_x_{k} landmark_location_y_{k}" for k in range(1, 9)
)
# One row per clothes type, every visibility value, the real file's ragged spacing; the
# lower-body row is padded with zero triples (tolerated).
LANDMARK_ROWS = [
    "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg                        1  2  "
    "0 146 102  0 173 095  1 094 242  0 205 232  2 000 000  0 186 309",
    "img/Classic_Skinny_Jeans/img_00000007.jpg  2  1  0 080 030  1 150 032  0 060 280  "
    "2 000 000  0 0 0  0 0 0  0 0 0  0 0 0",
    "img/Floral_Maxi_Dress/img_00000012.jpg 3 3 0 100 40 0 140 41 1 50 120 1 190 118 "
    "0 95 160 0 145 161 2 0 0 0 170 290",
]
PARTITION_ROWS = [
    "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg  train",
    "img/Classic_Skinny_Jeans/img_00000007.jpg        test",
    "img/Floral_Maxi_Dress/img_00000012.jpg           val",
]


def _write(path: Path, rows: list[str], header: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([f"{len(rows)}", header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fld_root(tmp_path: Path) -> Path:
    _write(tmp_path / "Anno/list_landmarks.txt", LANDMARK_ROWS, HEADER)
    _write(
        tmp_path / "Eval/list_eval_partition.txt",
        PARTITION_ROWS,
        "image_name evaluation_status",
    )
    for i, row in enumerate(LANDMARK_ROWS):
        path = tmp_path / "Img" / row.split()[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (200 + i, 300), (10 * i, 50, 90)).save(path)
    return tmp_path


# ----------------------------------------------------------------------------- loader


def test_parse_landmarks_each_clothes_type(fld_root: Path) -> None:
    upper, lower, full = parse_landmarks(fld_root / "Anno/list_landmarks.txt")

    assert upper.image == "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg"
    assert (upper.clothes_type, upper.variation) == (1, 2)
    assert (
        upper.names
        == LANDMARK_NAMES[1]
        == (
            "left_collar",
            "right_collar",
            "left_sleeve",
            "right_sleeve",
            "left_hem",
            "right_hem",
        )
    )
    assert upper.visibility.tolist() == [0, 0, 1, 0, 2, 0]
    assert upper.xy.dtype == np.float64 and upper.xy.shape == (6, 2)
    assert upper.xy.tolist() == [[146, 102], [173, 95], [94, 242], [205, 232], [0, 0], [186, 309]]
    assert upper.visible.tolist() == [True, True, False, True, False, True]

    assert (lower.clothes_type, lower.variation) == (2, 1)
    assert lower.names == ("left_waistline", "right_waistline", "left_hem", "right_hem")
    assert lower.visibility.tolist() == [0, 1, 0, 2]
    assert lower.xy.tolist() == [[80, 30], [150, 32], [60, 280], [0, 0]]

    assert (full.clothes_type, full.variation) == (3, 3)
    assert len(full.names) == 8 and full.names[4:6] == ("left_waistline", "right_waistline")
    assert full.visibility.tolist() == [0, 0, 1, 1, 0, 0, 2, 0]
    assert full.xy[7].tolist() == [170, 290]


def test_parse_partition(fld_root: Path) -> None:
    part = parse_partition(fld_root / "Eval/list_eval_partition.txt")
    assert list(part.values()) == ["train", "test", "val"]
    assert part["img/Classic_Skinny_Jeans/img_00000007.jpg"] == "test"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("img/a.jpg 4 1 0 1 1", "clothes_type"),
        ("img/a.jpg 2 1 0 1 1 0 2 2 0 3 3", "needs 4"),
        ("img/a.jpg 2 1 0 1 1 0 2 2 0 3 3 3 4 4", "visibility"),
        ("img/a.jpg 2 1 0 1 1 0 2 2 0 3 3 0 4 4 0 9 9", "more than 4"),
        ("img/a.jpg 2 1 0 x 1 0 2 2 0 3 3 0 4 4", "non-numeric"),
    ],
)
def test_bad_landmark_rows(tmp_path: Path, row: str, problem: str) -> None:
    path = _write(tmp_path / "list_landmarks.txt", [row], HEADER)
    with pytest.raises(DataError, match=problem) as info:
        parse_landmarks(path)
    assert "\n" not in str(info.value) and "line 3" in str(info.value)


def test_count_mismatch_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "list_landmarks.txt"
    path.write_text("5\n" + HEADER + "\n" + LANDMARK_ROWS[0] + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="5 images"):
        parse_landmarks(path)


def test_dataset_splits_and_images(fld_root: Path) -> None:
    ds = FLDDataset(fld_root)
    assert [r.clothes_type for r in ds.records("train")] == [1]
    assert [r.clothes_type for r in ds.records("test")] == [2]
    assert [r.clothes_type for r in ds.records("val")] == [3]
    image = ds.image(ds.records("val")[0])
    assert image.mode == "RGB" and image.size == (202, 300)
    with pytest.raises(ConfigError):
        ds.records("trn")


def _one_line(err: pytest.ExceptionInfo[DataError]) -> str:
    text = str(err.value)
    assert "\n" not in text and "Fix:" in text
    return text


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        FLDDataset(tmp_path / "nowhere")
    text = _one_line(info)
    assert "Anno/list_landmarks.txt" in text and "Fashion Landmark Detection" in text
    assert "data.root=" in text


def test_missing_files(fld_root: Path) -> None:
    (fld_root / "Eval/list_eval_partition.txt").unlink()
    with pytest.raises(DataError) as info:
        FLDDataset(fld_root)
    text = _one_line(info)
    assert text.split(" lacks ")[1].split(". Fix:")[0] == "Eval/list_eval_partition.txt"


def test_missing_and_corrupt_image(fld_root: Path) -> None:
    ds = FLDDataset(fld_root)
    upper, lower, _ = ds.all_records()
    (fld_root / "Img" / upper.image).unlink()
    with pytest.raises(DataError, match="not found") as info:
        ds.image(upper)
    _one_line(info)
    (fld_root / "Img" / lower.image).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="not a readable image") as info:
        ds.image(lower)
    _one_line(info)


# ---------------------------------------------------------------------- picture / decode


def _record(clothes_type: int, xy: list[tuple[float, float]], vis: list[int]) -> FLDRecord:
    return FLDRecord(
        "img/x.jpg",
        clothes_type,
        1,
        LANDMARK_NAMES[clothes_type],
        np.asarray(vis, dtype=np.int64),
        np.asarray(xy, dtype=np.float64),
    )


FULL = _record(
    3,
    [(60, 30), (100, 31.5), (20.4, 80), (140, 79), (65, 120), (95, 121), (40, 200), (120, 190)],
    [0, 0, 0, 0, 0, 0, 0, 0],
)


def test_colours_and_radius() -> None:
    colours = list(LANDMARK_COLOURS.values())
    assert len(LANDMARK_COLOURS) == 8 and len(set(colours)) == 8
    names = {n for names in LANDMARK_NAMES.values() for n in names}
    assert names == set(LANDMARK_COLOURS)
    assert all(math.dist(c, (0, 0, 0)) > 2 * COLOUR_RADIUS for c in colours)
    assert COLOUR_RADIUS > 100
    assert disc_radius(100, 100) == 3 and disc_radius(1000, 400) == 6
    # A world's marker_radius: a fraction of the short side (the demo's 0.06 of 96 px: 6 px).
    assert disc_radius(96, 96, 0.06) == 6 and disc_radius(10, 200, 0.01) == 1


def test_marker_radius_draws_discs_of_that_radius() -> None:
    picture = np.asarray(render_gt({"left_hem": (48.0, 48.0)}, (96, 96), marker_radius=0.06))
    yy, xx = np.mgrid[0:96, 0:96]
    inside = (xx - 48) ** 2 + (yy - 48) ** 2 <= 36  # hand count: centres within 6 px
    np.testing.assert_array_equal(picture.any(axis=2), inside)


def test_render_gt_draws_visible_discs_only() -> None:
    rec = _record(2, [(30, 30), (70, 30), (30, 90), (70, 90)], [0, 1, 2, 0])
    picture = render_gt(rec, (100, 120))
    rgb = np.asarray(picture)
    assert picture.mode == "RGB" and picture.size == (100, 120)
    assert tuple(rgb[30, 30]) == LANDMARK_COLOURS["left_waistline"]
    assert tuple(rgb[90, 70]) == LANDMARK_COLOURS["right_hem"]
    assert not rgb[30, 70].any() and not rgb[90, 30].any()  # occluded, truncated: not drawn
    # a disc of radius 3: pixels with centres within 3 px (29 of them)
    assert np.count_nonzero(rgb.any(axis=2)) == 2 * 29
    pred = locate(picture, rec.names, (100, 120))
    np.testing.assert_allclose(pred[[0, 3]], [[30, 30], [70, 90]], atol=1e-9)
    assert np.isnan(pred[[1, 2]]).all()


def test_round_trip_same_size() -> None:
    picture = render_gt(FULL, (160, 240))
    pred = locate(picture, FULL.names, (160, 240))
    assert np.abs(pred - FULL.xy).max() <= 1.0


@pytest.mark.parametrize("canvas", [(224, 224), (80, 120), (333, 111)])
def test_round_trip_other_picture_size(canvas: tuple[int, int]) -> None:
    # picture rendered at the model's size, decoded back to the image's (160, 240)
    picture = render_gt(FULL, canvas, image_size=(160, 240))
    pred = locate(picture, FULL.names, (160, 240))
    scale = max(160 / canvas[0], 240 / canvas[1])
    assert np.abs(pred - FULL.xy).max() <= max(1.0, scale)


def test_round_trip_resized_picture() -> None:
    picture = render_gt(FULL, (160, 240)).resize((256, 256), Image.Resampling.NEAREST)
    pred = locate(picture, FULL.names, (160, 240))
    assert np.abs(pred - FULL.xy).max() <= 1.5


def test_round_trip_under_noise() -> None:
    rgb = np.asarray(render_gt(FULL, (160, 240)), dtype=np.float64)
    rng = np.random.default_rng(0)
    noisy = np.clip(np.rint(rgb + rng.normal(0, 15, rgb.shape)), 0, 255).astype(np.uint8)
    pred = locate(noisy, FULL.names, (160, 240))
    assert np.abs(pred - FULL.xy).max() <= 1.0


def test_decode_picks_largest_blob_and_missing() -> None:
    rgb = np.zeros((50, 50, 3), dtype=np.uint8)
    rgb[10:13, 10:13] = (250, 10, 5)  # small left_collar blob
    rgb[30:36, 20:26] = (240, 20, 20)  # larger one
    rgb[0, 49] = (255, 0, 0)
    pred = locate(rgb, ("left_collar", "right_collar"), (50, 50))
    np.testing.assert_allclose(pred[0], [22.5, 32.5])
    assert np.isnan(pred[1]).all()
    # the map to a 100x100 image goes by pixel centres
    np.testing.assert_allclose(locate(rgb, ("left_collar",), (100, 100))[0], [45.5, 65.5])


# ------------------------------------------------------------------------------ metrics


def test_pck_hand_computed() -> None:
    gt = np.array([[10, 10], [50, 50], [90, 20], [0, 0]], dtype=float)
    pred = np.array([[15, 10], [50, 61], [np.nan, np.nan], [3, 4]], dtype=float)
    visible = np.array([True, True, True, False])
    # threshold 0.1 * max(100, 80) = 10: hit (5), miss (11), missing -> wrong; invisible out
    assert pck(pred, gt, visible, (100, 80)) == pytest.approx(1 / 3)
    assert pck(pred, gt, visible, (100, 80), alpha=0.11) == pytest.approx(2 / 3)
    assert pck(pred, gt, np.array([True, False, False, True]), (100, 80)) == 1.0
    assert math.isnan(pck(pred, gt, np.zeros(4, bool), (100, 80)))


def test_normalized_mse_hand_computed() -> None:
    gt = np.array([[10, 20], [50, 50], [0, 0]], dtype=float)
    pred = np.array([[20, 20], [np.nan, np.nan], [99, 99]], dtype=float)
    visible = np.array([True, True, False])
    size = (100, 50)
    # landmark 0: dx = 10/100, dy = 0; landmark 1 missing -> centre (49.5, 24.5):
    # dx = -0.5/100, dy = -25.5/50. Mean over the 4 squared coordinates.
    expected = (0.1**2 + 0 + 0.005**2 + 0.51**2) / 4
    assert normalized_mse(pred, gt, visible, size) == pytest.approx(expected)
    assert normalized_mse(gt, gt, visible, size) == 0.0
    assert math.isnan(normalized_mse(pred, gt, np.zeros(3, bool), size))


def test_metrics_on_decoded_ground_truth() -> None:
    pred = locate(render_gt(FULL, (64, 64), image_size=(160, 240)), FULL.names, (160, 240))
    assert pck(pred, FULL.xy, FULL.visible, (160, 240)) == 1.0
    assert normalized_mse(pred, FULL.xy, FULL.visible, (160, 240)) < 1e-4


# --------------------------------------------------------------------------------- demo


def test_demo_round_trips_through_loader(tmp_path: Path) -> None:
    root = make_demo_fld(tmp_path / "fld")
    ds = FLDDataset(root)
    assert len(ds.all_records()) == 24
    for split in ("train", "test"):
        types = [r.clothes_type for r in ds.records(split)]
        assert all(types.count(t) >= 3 for t in (1, 2, 3))
    values = np.concatenate([r.visibility for r in ds.all_records()])
    assert set(values.tolist()) == {0, 1, 2}
    for rec in ds.records("test"):
        image = ds.image(rec)
        assert image.size == (96, 96)
        assert rec.visible.sum() >= 2
        inside = rec.xy[rec.visible]
        assert ((inside >= 0) & (inside < 96)).all()
        pred = locate(render_gt(rec, image.size), rec.names, image.size)
        assert pck(pred, rec.xy, rec.visible, image.size) == 1.0


def test_demo_deterministic_and_idempotent(tmp_path: Path) -> None:
    a, b = make_demo_fld(tmp_path / "a"), make_demo_fld(tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    stamp = (a / "Anno/list_landmarks.txt").stat().st_mtime_ns
    make_demo_fld(a)
    assert (a / "Anno/list_landmarks.txt").stat().st_mtime_ns == stamp
    make_demo_fld(a, seed=1)
    assert (a / "Anno/list_landmarks.txt").read_bytes() != (
        b / "Anno/list_landmarks.txt"
    ).read_bytes()
    with pytest.raises(ConfigError):
        make_demo_fld(tmp_path / "c", num_images=8)
