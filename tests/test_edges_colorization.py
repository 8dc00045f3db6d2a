"""Edges and colorization tasks, MSE metrics, the ImageFolder loader and its demo writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import feature

from sdvicl_bench.data.demo import MARKER
from sdvicl_bench.data.imagenet import (
    ImageFolderDataset,
    grey,
    make_demo_imagenet,
    sample_queries,
)
from sdvicl_bench.errors import DataError
from sdvicl_bench.metrics.mse import mse, mse_vp
from sdvicl_bench.tasks import colorization, edges


def _square_image() -> Image.Image:
    """A 40x40 black picture with a bright square at rows/cols 12..27."""
    a = np.zeros((40, 40, 3), dtype=np.uint8)
    a[12:28, 12:28] = (200, 180, 160)
    return Image.fromarray(a, mode="RGB")


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and "Fix:" in text
    return text


# --- edges ------------------------------------------------------------------------------


def test_canny_square_edges_on_border_only() -> None:
    e = edges.canny_edges(_square_image())
    assert e.dtype == bool and e.shape == (40, 40)
    assert e.any()
    # Flat regions: the square's interior and the far background hold no edges.
    assert not e[17:23, 17:23].any()
    assert not e[:5].any() and not e[-5:].any()
    # Every edge pixel lies within 2 px of the square's border (rows/cols 11.5 and 27.5).
    rows, cols = np.nonzero(e)
    near_row = (np.abs(rows - 11.5) <= 2) | (np.abs(rows - 27.5) <= 2)
    near_col = (np.abs(cols - 11.5) <= 2) | (np.abs(cols - 27.5) <= 2)
    assert np.all(near_row | near_col)
    # Each side of the square is found.
    assert e[18:22, 9:15].any() and e[18:22, 25:31].any()
    assert e[9:15, 18:22].any() and e[25:31, 18:22].any()


def test_canny_equals_skimage_sigma2() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(30, 36, 3), dtype=np.uint8)
    image = Image.fromarray(a, mode="RGB")
    grey_f = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    np.testing.assert_array_equal(edges.canny_edges(image), feature.canny(grey_f, sigma=2))
    np.testing.assert_array_equal(
        edges.canny_edges(_square_image()),
        feature.canny(np.asarray(_square_image().convert("L")) / 255.0, sigma=2.0),
    )


def test_canny_thresholds_are_skimage_hysteresis_and_thicken_is_a_square_dilation() -> None:
    rng = np.random.default_rng(5)
    image = Image.fromarray(rng.integers(0, 256, size=(30, 36, 3), dtype=np.uint8), mode="RGB")
    grey_f = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    want = feature.canny(grey_f, sigma=2, low_threshold=0.2, high_threshold=0.4)
    np.testing.assert_array_equal(edges.canny_edges(image, (0.2, 0.4)), want)
    assert edges.canny_edges(image, (0.2, 0.4)).sum() < edges.canny_edges(image).sum()
    # Hand case: one pixel widened to 3 covers its 3 x 3 neighbourhood; width 1 is the identity.
    dot = np.zeros((6, 7), dtype=bool)
    dot[2, 3] = True
    expected = np.zeros((6, 7), dtype=bool)
    expected[1:4, 2:5] = True
    np.testing.assert_array_equal(edges.thicken(dot, 3), expected)
    np.testing.assert_array_equal(edges.thicken(dot, 1), dot)
    with pytest.raises(ValueError):
        edges.thicken(dot, 0)


def test_edges_decode_roundtrip_and_resize() -> None:
    e = edges.canny_edges(_square_image())
    picture = edges.render_gt(e)
    assert picture.mode == "RGB" and picture.size == (40, 40)
    decoded = edges.decode(picture, picture.size)
    assert decoded.dtype == np.float32 and decoded.shape == (40, 40)
    np.testing.assert_array_equal(decoded, e.astype(np.float32))
    # A different picture size: resized to the image size, still in [0, 1].
    big = picture.resize((80, 60), Image.Resampling.NEAREST)
    out = edges.decode(big, (40, 40))
    assert out.shape == (40, 40) and out.min() >= 0.0 and out.max() <= 1.0
    grey_pic = Image.fromarray(np.full((10, 10, 3), (30, 60, 90), dtype=np.uint8))
    np.testing.assert_allclose(edges.decode(grey_pic, (7, 5)), np.full((5, 7), 60 / 255), 1e-6)


def test_black_prediction_mse_is_edge_density() -> None:
    e = edges.canny_edges(_square_image())
    black = Image.new("RGB", (40, 40))
    score = mse(edges.decode(black, (40, 40)), e.astype(np.float32))
    assert score == pytest.approx(np.count_nonzero(e) / e.size, abs=1e-12)


# --- metrics ----------------------------------------------------------------------------


def test_mse_hand_cases() -> None:
    assert mse(np.zeros((2, 2)), np.ones((2, 2))) == 1.0
    assert mse(np.array([0.0, 0.5, 1.0, 1.0]), np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(
        (0.25 + 1.0) / 4
    )
    assert mse(np.full((3, 4, 3), 0.2), np.full((3, 4, 3), 0.2)) == 0.0
    with pytest.raises(ValueError):
        mse(np.zeros((2, 2)), np.zeros((2, 3)))


def test_mse_vp_hand_cases() -> None:
    std = np.array([0.229, 0.224, 0.225])
    # A constant difference d per channel: ((d / std)^2) averaged over the 3 channels.
    pred = np.zeros((2, 3, 3))
    gt = np.zeros((2, 3, 3))
    gt[..., 0] = 0.5
    assert mse_vp(pred, gt) == pytest.approx((0.5 / 0.229) ** 2 / 3)

    rng = np.random.default_rng(0)
    p = rng.random((5, 7, 3))
    g = rng.random((5, 7, 3))
    per_channel = [np.mean(((p[..., c] - g[..., c]) / std[c]) ** 2) for c in range(3)]
    assert mse_vp(p, g) == pytest.approx(np.mean(per_channel), rel=1e-12)
    # Equal images: 0 whatever the normalisation.
    assert mse_vp(p, p) == 0.0
    with pytest.raises(ValueError):
        mse_vp(np.zeros((4, 4)), np.zeros((4, 4)))


# --- colorization -----------------------------------------------------------------------


def test_colorization_pictures_and_decode() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    image = Image.fromarray(a, mode="RGB")
    np.testing.assert_array_equal(np.asarray(colorization.render_gt(image)), a)
    q = np.asarray(colorization.query_picture(image))
    assert q.shape == (12, 16, 3)
    assert np.array_equal(q[..., 0], q[..., 1]) and np.array_equal(q[..., 1], q[..., 2])
    np.testing.assert_array_equal(q[..., 0], np.asarray(image.convert("L")))

    same = colorization.decode(image, image.size)
    assert same.dtype == np.float32 and same.shape == (12, 16, 3)
    np.testing.assert_array_equal(same, a.astype(np.float32) / 255)
    resized = colorization.decode(image, (9, 7))
    assert resized.shape == (7, 9, 3) and resized.min() >= 0.0 and resized.max() <= 1.0
    # A constant colour stays that colour after a bicubic resize.
    flat = Image.new("RGB", (20, 20), (51, 102, 204))
    np.testing.assert_allclose(
        colorization.decode(flat, (13, 11)), np.broadcast_to([0.2, 0.4, 0.8], (11, 13, 3)), 1e-5
    )


def test_grey_has_equal_channels() -> None:
    image = Image.new("RGB", (5, 4), (255, 0, 0))
    g = np.asarray(grey(image))
    assert g.shape == (4, 5, 3)
    assert np.all(g == 76)  # ITU-R 601: 0.299 * 255 = 76.2


# --- ImageFolder ------------------------------------------------------------------------


def _write_fixture(root: Path) -> None:
    for wnid, names in (("n02", ["b.JPEG", "a.png"]), ("n01", ["z.jpg", "y.JPEG"])):
        (root / wnid).mkdir(parents=True)
        for i, name in enumerate(names):
            fmt = "PNG" if name.endswith(".png") else "JPEG"
            Image.new("RGB", (8 + i, 6), (10 * i, 20, 30)).save(root / wnid / name, format=fmt)
    (root / "n01" / "notes.txt").write_text("not an image")
    (root / "n01" / ".hidden.jpg").write_bytes(b"")
    (root / "README.txt").write_text("top-level file")


def test_imagefolder_ids_and_images(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    ds = ImageFolderDataset(tmp_path)
    assert ds.ids() == ["n01/y.JPEG", "n01/z.jpg", "n02/a.png", "n02/b.JPEG"]
    assert ds.classes() == ["n01", "n02"]
    assert ds.label("n02/a.png") == "n02"
    im = ds.image("n02/a.png")
    assert im.mode == "RGB" and im.size == (9, 6)


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        ImageFolderDataset(tmp_path / "missing")
    assert "data.root" in _one_line(err)
    with pytest.raises(DataError) as err:
        ImageFolderDataset(tmp_path)  # exists but empty
    _one_line(err)

    _write_fixture(tmp_path / "val")
    ds = ImageFolderDataset(tmp_path / "val")
    with pytest.raises(DataError) as err:
        ds.image("n01/missing.JPEG")
    assert "missing.JPEG" in _one_line(err)
    (tmp_path / "val" / "n02" / "b.JPEG").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError) as err:
        ds.image("n02/b.JPEG")
    _one_line(err)
    with pytest.raises(DataError) as err:
        ds.image("../n01/y.JPEG")
    _one_line(err)


def test_sample_queries() -> None:
    ids = [f"n{k:08d}/img_{i}.JPEG" for k in range(5) for i in range(40)]
    a = sample_queries(ids, count=50, seed=0)
    assert a == sample_queries(list(reversed(ids)), count=50, seed=0)
    assert len(a) == 50 and len(set(a)) == 50 and set(a) <= set(ids)
    assert a != sample_queries(ids, count=50, seed=1)
    assert sorted(sample_queries(ids, count=1000)) == sorted(ids)
    assert sample_queries(ids, count=0) == []


# --- demo -------------------------------------------------------------------------------


def test_demo_imagenet_roundtrip_and_determinism(tmp_path: Path) -> None:
    root = make_demo_imagenet(tmp_path / "a", seed=0, classes=3, per_class=2, size=(32, 24))
    ds = ImageFolderDataset(root)
    assert ds.classes() == ["n00000000", "n00000001", "n00000002"]
    assert len(ds.ids()) == 6
    im = ds.image(ds.ids()[0])
    assert im.size == (32, 24)
    rgb = np.asarray(im).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).mean() > 5  # coloured, not grey
    assert (root / MARKER).is_file()

    files = sorted(p for p in root.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    make_demo_imagenet(root, seed=0, classes=3, per_class=2, size=(32, 24))
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before

    other = make_demo_imagenet(tmp_path / "b", seed=0, classes=3, per_class=2, size=(32, 24))
    for p in files:
        assert (other / p.relative_to(root)).read_bytes() == p.read_bytes()

    # New parameters rewrite the tree: fewer classes leave no stale folders behind.
    make_demo_imagenet(root, seed=1, classes=2, per_class=3, size=(32, 24))
    ds2 = ImageFolderDataset(root)
    assert ds2.classes() == ["n00000000", "n00000001"] and len(ds2.ids()) == 6
