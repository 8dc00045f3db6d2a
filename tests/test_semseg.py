"""Cityscapes loader, semantic-segmentation rendering/decoding, confusion-matrix metrics, demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdvicl_bench.data.cityscapes import (
    LABEL_TO_TRAIN,
    NUM_CLASSES,
    TRAIN_CLASSES,
    CityscapesDataset,
)
from sdvicl_bench.data.demo_cityscapes import DEMO_TRAIN_IDS, make_demo_cityscapes
from sdvicl_bench.errors import ConfigError, DataError
from sdvicl_bench.metrics.confusion import (
    confusion_matrix,
    miou,
    per_class_iou,
    pixel_accuracy,
)
from sdvicl_bench.tasks.semseg import PALETTES, classify, decode, render_gt

# --- hand-written fixture in the real Cityscapes format -------------------------------------

ID = "frankfurt/frankfurt_000000_000294"


def _write_fixture(root: Path) -> np.ndarray:
    """One val image + labelIds PNG ('L', like cityscapesScripts writes); returns label ids."""
    labels = np.array(
        [
            [7, 7, 26, 26, 33, 0],
            [1, 2, 3, 4, 5, 6],
            [7, 26, 33, 23, 11, 24],
        ],
        dtype=np.uint8,
    )
    (root / "leftImg8bit" / "val" / "frankfurt").mkdir(parents=True)
    (root / "gtFine" / "val" / "frankfurt").mkdir(parents=True)
    rgb = np.arange(labels.size * 3, dtype=np.uint8).reshape(*labels.shape, 3)
    Image.fromarray(rgb, mode="RGB").save(root / "leftImg8bit" / "val" / f"{ID}_leftImg8bit.png")
    Image.fromarray(labels, mode="L").save(root / "gtFine" / "val" / f"{ID}_gtFine_labelIds.png")
    return labels


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    assert "Fix:" in text
    return text


def test_label_to_train_official_map() -> None:
    assert LABEL_TO_TRAIN.dtype == np.uint8 and LABEL_TO_TRAIN.shape == (256,)
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10}
    expected |= {24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for label_id in range(256):
        assert LABEL_TO_TRAIN[label_id] == expected.get(label_id, 255), label_id
    assert len(TRAIN_CLASSES) == NUM_CLASSES == 19
    assert TRAIN_CLASSES[13] == "car" and TRAIN_CLASSES[18] == "bicycle"


def test_loader_reads_real_format(tmp_path: Path) -> None:
    labels = _write_fixture(tmp_path)
    ds = CityscapesDataset(tmp_path)
    assert ds.ids("val") == [ID]
    image = ds.image(ID, "val")
    assert image.mode == "RGB" and image.size == (6, 3)
    np.testing.assert_array_equal(ds.label_ids(ID, "val"), labels)
    train = ds.train_ids(ID, "val")
    assert train.dtype == np.uint8 and train.shape == (3, 6)
    np.testing.assert_array_equal(
        train,
        [
            [0, 0, 13, 13, 18, 255],
            [255, 255, 255, 255, 255, 255],
            [0, 13, 18, 10, 2, 11],
        ],
    )


def test_ids_sorted_across_cities(tmp_path: Path) -> None:
    for name in ("lindau/lindau_000001_000019", "frankfurt/frankfurt_000001_000019", ID):
        path = tmp_path / "leftImg8bit" / "val" / f"{name}_leftImg8bit.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 2)).save(path)
    (tmp_path / "gtFine").mkdir()
    (tmp_path / "leftImg8bit" / "val" / "lindau" / "notes.txt").write_text("x")
    ids = CityscapesDataset(tmp_path).ids("val")
    assert ids == [ID, "frankfurt/frankfurt_000001_000019", "lindau/lindau_000001_000019"]


def test_missing_root_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        CityscapesDataset(tmp_path / "nope")
    text = _one_line(err)
    assert "nope" in text and "leftImg8bit_trainvaltest.zip" in text and "data.root=" in text
    (tmp_path / "leftImg8bit").mkdir()
    with pytest.raises(DataError) as err:
        CityscapesDataset(tmp_path)
    assert "gtFine/" in _one_line(err)


def test_missing_split_and_files_are_one_line(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    ds = CityscapesDataset(tmp_path)
    with pytest.raises(DataError) as err:
        ds.ids("train")
    assert "train" in _one_line(err)
    (tmp_path / "gtFine" / "val" / f"{ID}_gtFine_labelIds.png").unlink()
    with pytest.raises(DataError) as err:
        ds.train_ids(ID, "val")
    assert "gtFine_labelIds.png" in _one_line(err)
    with pytest.raises(DataError) as err:
        ds.image("frankfurt/frankfurt_999999_000000", "val")
    assert "frankfurt_999999_000000_leftImg8bit.png" in _one_line(err)


def test_corrupt_files_are_one_line(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    ds = CityscapesDataset(tmp_path)
    image_path = tmp_path / "leftImg8bit" / "val" / f"{ID}_leftImg8bit.png"
    image_path.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(DataError) as err:
        ds.image(ID, "val")
    assert str(image_path) in _one_line(err)
    label_path = tmp_path / "gtFine" / "val" / f"{ID}_gtFine_labelIds.png"
    label_path.write_bytes(label_path.read_bytes()[:40])  # truncated
    with pytest.raises(DataError) as err:
        ds.train_ids(ID, "val")
    assert str(label_path) in _one_line(err)
    Image.new("RGB", (6, 3)).save(label_path)  # e.g. the _gtFine_color.png by mistake
    with pytest.raises(DataError) as err:
        ds.train_ids(ID, "val")
    assert "labelIds" in _one_line(err)


# --- palettes, rendering and decoding --------------------------------------------------------


def _random_map(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    values = np.append(np.arange(NUM_CLASSES), 255).astype(np.uint8)
    return rng.choice(values, size=shape)


def _min_distance(colours: np.ndarray) -> float:
    c = np.vstack([colours, [0, 0, 0]]).astype(np.float64)
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def test_palettes() -> None:
    for name, colours in PALETTES.items():
        assert colours.shape == (19, 3) and colours.dtype == np.uint8, name
        assert len({tuple(c) for c in colours.tolist()}) == 19, name
        assert (colours.astype(int).sum(axis=1) > 0).all(), name  # none is black
    official = PALETTES["official"]
    assert official[0].tolist() == [128, 64, 128] and official[13].tolist() == [0, 0, 142]
    # Why "spread" exists: official bus/train are 20 apart; spread keeps >= 127 (incl. black).
    assert _min_distance(official) == pytest.approx(20.0)
    assert _min_distance(PALETTES["spread"]) >= 127


@pytest.mark.parametrize("palette", sorted(PALETTES))
def test_render_decode_roundtrip_exact(palette: str) -> None:
    rng = np.random.default_rng(1)
    ids = _random_map(rng, (37, 53))
    picture = render_gt(ids, palette)
    assert picture.mode == "RGB" and picture.size == (53, 37)
    assert (np.asarray(picture)[ids == 255] == 0).all()  # ignore is black
    decoded = decode(picture, (53, 37), palette)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, ids)
    # Decoded at the picture's resolution, then resized NEAREST (here 2x down, exactly).
    big = picture.resize((106, 74), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(decode(big, (53, 37), palette), ids)
    np.testing.assert_array_equal(decode(np.asarray(picture), (53, 37), palette), ids)


@pytest.mark.parametrize(("palette", "sigma"), [("official", 8.0), ("spread", 25.0)])
def test_decode_tolerates_noise(palette: str, sigma: float) -> None:
    """Official colours only tolerate small noise: bus (0,60,100) and train (0,80,100) are 20
    apart, so sigma 8 already flips ~10% of their pixels; spread colours are >= 127 apart."""
    rng = np.random.default_rng(2)
    ids = _random_map(rng, (120, 160))
    clean = np.asarray(render_gt(ids, palette)).astype(np.float64)
    noisy = np.clip(np.rint(clean + rng.normal(0.0, sigma, clean.shape)), 0, 255)
    decoded = decode(noisy.astype(np.uint8), (160, 120), palette)
    assert (decoded == ids).mean() > 0.97
    per_class = [(decoded[ids == c] == c).mean() for c in [*range(NUM_CLASSES), 255]]
    assert min(per_class) > 0.8
    if palette == "official":
        bus_train = np.isin(ids, [15, 16])
        assert (decoded[bus_train] == ids[bus_train]).mean() > 0.8
        others = ~bus_train
        assert (decoded[others] == ids[others]).mean() > 0.98


def test_spread_survives_noise_that_breaks_official() -> None:
    rng = np.random.default_rng(3)
    ids = _random_map(rng, (100, 100))
    accuracy = {}
    for palette in ("official", "spread"):
        clean = np.asarray(render_gt(ids, palette)).astype(np.float64)
        noisy = np.clip(np.rint(clean + rng.normal(0.0, 25.0, clean.shape)), 0, 255)
        accuracy[palette] = (classify(noisy.astype(np.uint8), palette) == ids).mean()
    assert accuracy["spread"] > 0.97 > 0.85 > accuracy["official"]


def test_render_and_decode_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        render_gt(np.array([[0, 19]], dtype=np.uint8))
    with pytest.raises(ConfigError):
        render_gt(np.zeros((2, 2), dtype=np.uint8), "rainbow")
    with pytest.raises(ValueError):
        decode(np.zeros((2, 2), dtype=np.float32), (2, 2))


# --- confusion matrix and its scores ---------------------------------------------------------


def _reference(
    preds: list[np.ndarray], gts: list[np.ndarray], num_classes: int
) -> tuple[float, float]:
    """Plain-numpy mIoU and accuracy over pooled pixels, one class at a time."""
    pred = np.concatenate([p.ravel() for p in preds]).astype(int)
    gt = np.concatenate([g.ravel() for g in gts]).astype(int)
    valid = gt != 255
    ious = []
    for c in range(num_classes):
        in_gt = valid & (gt == c)
        in_pred = valid & (pred == c)  # predicted black (255) is never c: a false negative
        union = np.count_nonzero(in_gt | in_pred)
        if union == 0:
            continue  # absent from GT and prediction: skipped
        ious.append(np.count_nonzero(in_gt & in_pred) / union)
    accuracy = np.count_nonzero(valid & (pred == gt)) / np.count_nonzero(valid)
    return float(np.mean(ious)), float(accuracy)


def test_confusion_hand_computed_2x3() -> None:
    gt = np.array([[0, 0, 1], [1, 2, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [255, 2, 0]], dtype=np.uint8)
    conf = confusion_matrix(pred, gt, num_classes=3)
    assert conf.dtype == np.int64
    # rows = GT 0..2; columns = pred 0..2 + "predicted black"; the GT-255 pixel is skipped.
    np.testing.assert_array_equal(conf, [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]])
    # IoU0 = 1/(1+1+0); IoU1 = 1/(1+1 black+1 FP); IoU2 = 1.
    np.testing.assert_allclose(per_class_iou(conf), [1 / 2, 1 / 3, 1.0])
    assert miou(conf) == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert pixel_accuracy(conf) == pytest.approx(3 / 5)
    # Default 19 classes: absent classes are NaN and do not count.
    conf19 = confusion_matrix(pred, gt)
    assert conf19.shape == (19, 20)
    assert np.isnan(per_class_iou(conf19)[3:]).all()
    assert miou(conf19) == pytest.approx(miou(conf))


def test_confusion_matches_reference_accumulated() -> None:
    rng = np.random.default_rng(4)
    preds, gts = [], []
    conf = np.zeros((19, 20), dtype=np.int64)
    for shape in [(20, 30), (17, 11), (32, 32)]:
        gt = rng.choice(np.array([*range(12), 255], dtype=np.uint8), size=shape)  # 12..18 absent
        pred = np.where(rng.random(shape) < 0.6, gt, _random_map(rng, shape)).astype(np.uint8)
        pred[rng.random(shape) < 0.05] = 255  # some predicted black
        preds.append(pred)
        gts.append(gt)
        conf += confusion_matrix(pred, gt)
    ref_miou, ref_accuracy = _reference(preds, gts, 19)
    assert miou(conf) == pytest.approx(ref_miou, abs=1e-12)
    assert pixel_accuracy(conf) == pytest.approx(ref_accuracy, abs=1e-12)
    assert conf[:, 19].sum() > 0
    # Classes only predicted (absent from GT) still count, with IoU 0.
    iou = per_class_iou(conf)
    assert not np.isnan(iou[12:]).any() and (iou[12:] == 0).all()


def test_confusion_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        confusion_matrix(np.full((2, 2), 19), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), 40))
    empty = confusion_matrix(np.zeros((1, 1)), np.full((1, 1), 255))
    assert empty.sum() == 0 and np.isnan(miou(empty)) and np.isnan(pixel_accuracy(empty))


# --- demo writer -----------------------------------------------------------------------------


def test_demo_roundtrips_through_loader(tmp_path: Path) -> None:
    root = make_demo_cityscapes(tmp_path / "cs", num_train=4, num_val=3)
    ds = CityscapesDataset(root)
    train, val = ds.ids("train"), ds.ids("val")
    assert len(train) == 4 and len(val) == 3
    assert {i.split("/")[0] for i in train} == {"aachen", "bochum"}
    assert {i.split("/")[0] for i in val} == {"frankfurt", "lindau"}
    seen = set()
    for image_id in val:
        image = ds.image(image_id, "val")
        label_ids = ds.label_ids(image_id, "val")
        assert image.size == (128, 64) and label_ids.shape == (64, 128)
        assert np.isin(label_ids, [0, 1, 3, 4, 6]).any()  # real void ids present
        train_ids = ds.train_ids(image_id, "val")
        seen |= set(np.unique(train_ids).tolist())
        for palette in PALETTES:
            np.testing.assert_array_equal(
                decode(render_gt(train_ids, palette), (128, 64), palette), train_ids
            )
    assert {0, 1, 2, 10, 11, 13, 255} <= seen  # road, sidewalk, building, sky, person, car


def test_demo_deterministic_and_idempotent(tmp_path: Path) -> None:
    a = make_demo_cityscapes(tmp_path / "a", seed=3, num_train=2, num_val=2)
    b = make_demo_cityscapes(tmp_path / "b", seed=3, num_train=2, num_val=2)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert len(files_a) == 8
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    # Same parameters: nothing rewritten.
    before = {rel: (a / rel).stat().st_mtime_ns for rel in files_a}
    make_demo_cityscapes(a, seed=3, num_train=2, num_val=2)
    assert {rel: (a / rel).stat().st_mtime_ns for rel in files_a} == before
    # Other parameters: rewritten, stale files gone.
    make_demo_cityscapes(a, seed=4, num_train=1, num_val=1)
    assert len(list(a.rglob("*.png"))) == 4
    assert (a / files_a[0]).exists()
    assert (a / files_a[0]).read_bytes() != (b / files_a[0]).read_bytes()


def test_declared_classes_decode_only_into_themselves():
    """A pixel painted in an undeclared class's colour goes to the nearest declared colour
    (or black), never to the undeclared class; all 19 declared: the plain rule."""
    spread = PALETTES["spread"]
    picture = np.stack([spread[[0, 5, 10]]] * 2).astype(np.uint8)  # (2, 3, 3): classes 0, 5, 10
    got = classify(picture, "spread", classes=[0, 10])
    colours = np.vstack([spread[[0, 10]], np.zeros(3)]).astype(np.int64)  # the naive rule
    nearest = ((spread[5].astype(np.int64) - colours) ** 2).sum(axis=1).argmin()
    assert got[0].tolist() == [0, [0, 10, 255][nearest], 10]
    np.testing.assert_array_equal(classify(picture, "spread", classes=range(19)), [[0, 5, 10]] * 2)
    with pytest.raises(ValueError):
        classify(picture, "spread", classes=[19])


def test_demo_city_draws_exactly_the_classes_data_demo_declares(tmp_path: Path) -> None:
    from sdvicl_bench.cli import load_config

    declared = load_config(["task=semseg", "data=demo"]).task.options["classes"]
    assert tuple(declared) == DEMO_TRAIN_IDS
    ds = CityscapesDataset(make_demo_cityscapes(tmp_path / "cs", num_train=6, num_val=6))
    seen = set()
    for split in ("train", "val"):
        for image_id in ds.ids(split):
            seen |= set(np.unique(ds.train_ids(image_id, split)).tolist())
    assert seen - {255} == set(DEMO_TRAIN_IDS)
