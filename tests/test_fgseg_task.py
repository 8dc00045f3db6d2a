"""Foreground-segmentation rendering and decoding, against hand cases and exact NEAREST."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdvicl_bench.tasks.fgseg import decode, render_gt


def _random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.random((h, w)) < rng.uniform(0.1, 0.9)


def test_render_gt_is_white_on_black() -> None:
    mask = np.array([[True, False, False], [False, True, True]])
    picture = render_gt(mask)
    assert picture.mode == "RGB" and picture.size == (3, 2)
    arr = np.asarray(picture)
    assert arr.dtype == np.uint8 and arr.shape == (2, 3, 3)
    np.testing.assert_array_equal(arr[mask], np.full((3, 3), 255))
    np.testing.assert_array_equal(arr[~mask], np.zeros((3, 3)))


@pytest.mark.parametrize("seed", range(5))
def test_roundtrip_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(5, 70)), int(rng.integers(5, 70))
    mask = _random_mask(rng, h, w)
    out = decode(render_gt(mask), (w, h))
    assert out.dtype == bool and out.shape == (h, w)
    np.testing.assert_array_equal(out, mask)
    np.testing.assert_array_equal(decode(np.asarray(render_gt(mask)), (w, h)), mask)


def test_roundtrip_with_gaussian_noise() -> None:
    rng = np.random.default_rng(0)
    mask = _random_mask(rng, 128, 160)
    noisy = np.asarray(render_gt(mask)).astype(float) + rng.normal(0, 30, size=(128, 160, 3))
    picture = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    out = decode(picture, (160, 128))
    # mean of 3 channels: sigma 30/sqrt(3) ~ 17 grey levels against a margin of 127.5
    assert np.mean(out != mask) < 1e-3


def test_threshold_hand_cases() -> None:
    # mean RGB > 127.5 <=> R + G + B >= 383
    picture = np.array(
        [[[128, 128, 127], [127, 128, 127], [255, 0, 128], [255, 0, 127], [0, 0, 0]]],
        dtype=np.uint8,
    )
    expected = [[True, False, True, False, False]]
    np.testing.assert_array_equal(decode(picture, (5, 1)), expected)
    np.testing.assert_array_equal(decode(Image.fromarray(picture), (5, 1)), expected)


def test_grey_and_rgba_pil_inputs() -> None:
    mask = np.array([[True, False], [False, True]])
    grey = Image.fromarray(mask.astype(np.uint8) * 200, mode="L")
    np.testing.assert_array_equal(decode(grey, (2, 2)), mask)
    np.testing.assert_array_equal(decode(render_gt(mask).convert("RGBA"), (2, 2)), mask)


def test_integer_upsampling_matches_block_repeat() -> None:
    rng = np.random.default_rng(1)
    small = _random_mask(rng, 16, 20)
    out = decode(render_gt(small), (60, 48))  # x3 each way
    np.testing.assert_array_equal(out, np.kron(small, np.ones((3, 3), dtype=bool)))


@pytest.mark.parametrize(("small", "size"), [((23, 17), (96, 80)), ((64, 64), (50, 37))])
def test_resize_is_nearest_on_the_binary_map(small: tuple[int, int], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    w, h = small
    mask = _random_mask(rng, h, w)
    grey = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    binary = grey.sum(axis=2) > 382.5
    out = decode(grey, size)
    # nearest by pixel centres in exact arithmetic: destination j samples source
    # floor((j + 1/2) * n / N) (PIL's fixed-point NEAREST differs at exact ties: 64 -> 50
    # samples column 15 for 16 at j = 12)
    rows = (2 * np.arange(size[1]) + 1) * h // (2 * size[1])
    cols = (2 * np.arange(size[0]) + 1) * w // (2 * size[0])
    np.testing.assert_array_equal(out, binary[np.ix_(rows, cols)])
    ref = Image.fromarray(binary.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
    assert np.mean(out != (np.asarray(ref) > 0)) < 0.02  # PIL's NEAREST but for its ties
    # and the rendered mask survives the same path
    np.testing.assert_array_equal(decode(render_gt(mask), size), mask[np.ix_(rows, cols)])


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        render_gt(np.zeros((2, 2, 3), dtype=bool))
    with pytest.raises(ValueError):
        decode(np.zeros((4, 4), dtype=np.uint8), (4, 4))
    with pytest.raises(ValueError):
        decode(np.zeros((4, 4, 3), dtype=np.float32), (4, 4))
