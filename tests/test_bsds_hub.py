"""BSDS500 loader (mean boundary maps, errors, demo writer) and the hub ImageNet source."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from sdvicl_bench.data.bsds import (
    SPLITS,
    BSDSDataset,
    demo_data_dir,
    make_demo_bsds,
    mean_boundaries,
)
from sdvicl_bench.data.demo import MARKER
from sdvicl_bench.errors import ConfigError, DataError

FIX_BSDS = "Fix: download BSR_bsds500.tgz (Berkeley) and pass data.root="

# Two hand-written annotators (H, W) = (3, 4) and their hand-computed mean.
ANNOTATOR_1 = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
ANNOTATOR_2 = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=bool)
EXPECTED_MEAN = np.array(
    [[1.0, 0.5, 0.0, 0.5], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5]], dtype=np.float32
)


def _one_line_error(excinfo: pytest.ExceptionInfo[BaseException], *parts: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert "Fix:" in message
    for part in parts:
        assert part in message
    return message


def _write_gt(path: Path, maps: list[np.ndarray]) -> None:
    cell = np.empty((1, len(maps)), dtype=object)
    for k, boundaries in enumerate(maps):
        cell[0, k] = {
            "Segmentation": np.ones(boundaries.shape, dtype=np.uint16) * (k + 1),
            "Boundaries": boundaries,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"groundTruth": cell})


def _hand_set(data: Path, maps: list[np.ndarray], image_id: str = "100075") -> None:
    """A one-image BSDS data folder (``images/`` + ``groundTruth/``) with the given maps."""
    (data / "images" / "val").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), (10, 20, 30)).save(data / "images" / "val" / f"{image_id}.jpg")
    _write_gt(data / "groundTruth" / "val" / f"{image_id}.mat", maps)


# --- BSDS500 ------------------------------------------------------------------------------


def test_mean_of_two_annotators_from_mat(tmp_path: Path) -> None:
    _hand_set(tmp_path, [ANNOTATOR_1, ANNOTATOR_2])
    (tmp_path / "images" / "val" / "Thumbs.db").write_bytes(b"x")  # ignored, as in the archive
    ds = BSDSDataset(tmp_path)  # root = the BSDS500/data folder itself
    assert ds.ids("val") == ["100075"]
    gt = ds.boundaries("100075", "val")
    assert gt.dtype == np.float32 and gt.shape == (3, 4)
    np.testing.assert_array_equal(gt, EXPECTED_MEAN)
    image = ds.image("100075", "val")
    assert image.mode == "RGB" and image.size == (4, 3)


def test_single_annotator_is_squeezed_and_read(tmp_path: Path) -> None:
    _hand_set(tmp_path, [ANNOTATOR_1])
    gt = BSDSDataset(tmp_path).boundaries("100075", "val")
    np.testing.assert_array_equal(gt, ANNOTATOR_1.astype(np.float32))


def test_mean_boundaries_rejects_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="annotator 2"):
        mean_boundaries([{"Boundaries": ANNOTATOR_1}, {"Boundaries": np.zeros((2, 2))}])


def test_root_above_bsr_is_accepted(tmp_path: Path) -> None:
    _hand_set(tmp_path / "BSR" / "BSDS500" / "data", [ANNOTATOR_1, ANNOTATOR_2])
    for root in (tmp_path, tmp_path / "BSR", tmp_path / "BSR" / "BSDS500"):
        ds = BSDSDataset(root)
        assert ds.data_dir == tmp_path / "BSR" / "BSDS500" / "data"
        np.testing.assert_array_equal(ds.boundaries("100075", "val"), EXPECTED_MEAN)


def test_missing_root_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        BSDSDataset(tmp_path / "nope")
    _one_line_error(excinfo, FIX_BSDS, "not found")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as excinfo:
        BSDSDataset(tmp_path / "empty")
    _one_line_error(excinfo, FIX_BSDS)


def test_missing_or_unreadable_mat_is_one_line(tmp_path: Path) -> None:
    _hand_set(tmp_path, [ANNOTATOR_1])
    ds = BSDSDataset(tmp_path)
    mat = tmp_path / "groundTruth" / "val" / "100075.mat"
    mat.write_bytes(b"not a mat file\n" * 20)
    with pytest.raises(DataError) as excinfo:
        ds.boundaries("100075", "val")
    _one_line_error(excinfo, FIX_BSDS, "100075.mat")
    mat.unlink()
    with pytest.raises(DataError) as excinfo:
        ds.boundaries("100075", "val")
    _one_line_error(excinfo, FIX_BSDS, "not found")
    scipy.io.savemat(mat, {"other": np.zeros((2, 2))})
    with pytest.raises(DataError) as excinfo:
        ds.boundaries("100075", "val")
    _one_line_error(excinfo, FIX_BSDS, "groundTruth")


def test_corrupt_or_missing_image_is_one_line(tmp_path: Path) -> None:
    _hand_set(tmp_path, [ANNOTATOR_1])
    ds = BSDSDataset(tmp_path)
    (tmp_path / "images" / "val" / "100075.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    with pytest.raises(DataError) as excinfo:
        ds.image("100075", "val")
    _one_line_error(excinfo, FIX_BSDS, "100075.jpg")
    with pytest.raises(DataError) as excinfo:
        ds.image("999999", "val")
    _one_line_error(excinfo, FIX_BSDS, "not found")
    with pytest.raises(DataError) as excinfo:
        ds.ids("train")  # split folder absent
    _one_line_error(excinfo, FIX_BSDS)
    with pytest.raises(ConfigError):
        ds.ids("validation")


def test_demo_round_trip_and_determinism(tmp_path: Path) -> None:
    first = make_demo_bsds(tmp_path / "a", seed=3, per_split=2)
    second = make_demo_bsds(tmp_path / "b", seed=3, per_split=2)
    files_a = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 2 * 2 * len(SPLITS) + 2  # + marker, lock
    for rel in files_a:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel

    ds = BSDSDataset(first)
    assert ds.data_dir == demo_data_dir(first)
    seen: set[str] = set()
    for split in SPLITS:
        ids = ds.ids(split)
        assert len(ids) == 2 and ids == sorted(ids)
        seen.update(ids)
        for image_id in ids:
            image = ds.image(image_id, split)
            gt = ds.boundaries(image_id, split)
            assert image.size == (96, 64) and gt.shape == (64, 96) and gt.dtype == np.float32
            assert gt.min() >= 0.0 and gt.max() == 1.0
            # annotators differ: some pixels are marked by only part of them
            assert np.any((gt > 0) & (gt < 1))
    assert len(seen) == 2 * len(SPLITS)  # ids distinct across splits

    # idempotent: same parameters rewrite nothing; other parameters replace the demo files
    mat = demo_data_dir(first) / "groundTruth" / "train" / "demo_000001.mat"
    before = mat.stat().st_mtime_ns
    make_demo_bsds(first, seed=3, per_split=2)
    assert mat.stat().st_mtime_ns == before
    make_demo_bsds(first, seed=4, per_split=1)
    assert [len(BSDSDataset(first).ids(s)) for s in SPLITS] == [1, 1, 1]
    assert '"seed": 4' in (first / MARKER).read_text(encoding="utf-8")


# --- hub ImageNet -------------------------------------------------------------------------

datasets = pytest.importorskip("datasets")

from sdvicl_bench.data.imagenet_hub import HubImageDataset, load_hub_imagenet  # noqa: E402

COLOURS = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200)]
LABELS = [7, 2, 7, 0, 2]


def _small_dataset() -> object:
    images = [Image.new("RGB", (5 + i, 4), colour) for i, colour in enumerate(COLOURS)]
    images[3] = images[3].convert("L")  # a grey image comes back as RGB
    return datasets.Dataset.from_dict({"image": images, "label": LABELS})


def test_hub_dataset_ids_and_images() -> None:
    ds = HubImageDataset(_small_dataset(), name="tiny")
    expected = ["0000/000003", "0002/000001", "0002/000004", "0007/000000", "0007/000002"]
    assert ds.ids() == expected
    assert HubImageDataset(_small_dataset()).ids() == expected  # stable
    assert ds.classes() == ["0000", "0002", "0007"]
    assert HubImageDataset.label("0007/000002") == "0007"
    assert HubImageDataset.label_index("0007/000002") == 7
    for image_id in expected:
        row = int(image_id.split("/")[1])
        image = ds.image(image_id)
        assert image.mode == "RGB" and image.size == (5 + row, 4)
        if row != 3:
            assert image.getpixel((0, 0)) == COLOURS[row]
    grey_level = Image.new("RGB", (1, 1), (200, 200, 0)).convert("L").getpixel((0, 0))
    assert ds.image("0000/000003").getpixel((0, 0)) == (grey_level,) * 3

    for bad in ("0002/000000", "0002/000099", "x/1", "0002"):
        with pytest.raises(DataError) as excinfo:
            ds.image(bad)
        _one_line_error(excinfo, "HubImageDataset.ids()")


def test_hub_dataset_needs_image_and_label_columns() -> None:
    with pytest.raises(DataError) as excinfo:
        HubImageDataset(datasets.Dataset.from_dict({"label": [1]}), name="x")
    _one_line_error(excinfo, "'x'", "image")
    with pytest.raises(DataError) as excinfo:
        HubImageDataset(
            datasets.Dataset.from_dict({"image": [Image.new("RGB", (2, 2))], "label": [-1]})
        )
    _one_line_error(excinfo, "unlabelled")


def test_load_hub_imagenet_offline_is_one_line_and_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    import datasets.config as datasets_config
    import huggingface_hub.constants as hub_constants

    for module in (datasets_config, hub_constants):
        for attribute in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
            if hasattr(module, attribute):
                monkeypatch.setattr(module, attribute, True)

    start = time.monotonic()
    with pytest.raises(DataError) as excinfo:
        load_hub_imagenet(cache_dir=tmp_path / "cache")
    assert time.monotonic() - start < 30
    _one_line_error(excinfo, "'imagenet-1k'", "login", "data.root=")


def test_load_hub_imagenet_without_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DataError) as excinfo:
        load_hub_imagenet()
    _one_line_error(excinfo, "pip install datasets", "'imagenet-1k'")
