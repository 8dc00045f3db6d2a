"""Reading image files (sdvicl_bench/data/images.py) in every loader: RGB out, and a missing
or corrupt file is one DataError naming the file and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdvicl_bench.data.bsds import BSDSDataset, make_demo_bsds
from sdvicl_bench.data.cityscapes import CityscapesDataset
from sdvicl_bench.data.deepfashion import FLDDataset, make_demo_fld
from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.data.demo_cityscapes import make_demo_cityscapes
from sdvicl_bench.data.imagenet import ImageFolderDataset, make_demo_imagenet
from sdvicl_bench.data.images import open_image, read_rgb
from sdvicl_bench.data.pascal import VOCDataset
from sdvicl_bench.errors import DataError


def _bsds(root: Path) -> tuple[Path, Callable[[], Image.Image], str]:
    ds = BSDSDataset(make_demo_bsds(root))
    image_id = ds.ids("val")[0]
    return ds.image_path(image_id, "val"), lambda: ds.image(image_id, "val"), "BSDS500"


def _cityscapes(root: Path) -> tuple[Path, Callable[[], Image.Image], str]:
    ds = CityscapesDataset(make_demo_cityscapes(root))
    image_id = ds.ids("val")[0]
    return ds.image_path(image_id, "val"), lambda: ds.image(image_id, "val"), "leftImg8bit"


def _fld(root: Path) -> tuple[Path, Callable[[], Image.Image], str]:
    ds = FLDDataset(make_demo_fld(root))
    record = ds.records("test")[0]
    return ds.image_path(record), lambda: ds.image(record), "Img/"


def _imagenet(root: Path) -> tuple[Path, Callable[[], Image.Image], str]:
    ds = ImageFolderDataset(make_demo_imagenet(root))
    image_id = ds.ids()[0]
    return ds.image_path(image_id), lambda: ds.image(image_id), "Fix:"


def _voc(root: Path) -> tuple[Path, Callable[[], Image.Image], str]:
    ds = VOCDataset(make_demo_voc(root, num_images=80))
    image_id = sorted(p.stem for p in (root / "JPEGImages").glob("*.jpg"))[0]
    return ds.image_path(image_id), lambda: ds.image(image_id), "JPEGImages/"


@pytest.mark.parametrize("loader", [_bsds, _cityscapes, _fld, _imagenet, _voc])
def test_loader_reads_rgb_and_names_a_corrupt_or_missing_file(tmp_path, loader):
    path, read, fix_word = loader(tmp_path)
    image = read()
    assert image.mode == "RGB" and image.size == Image.open(path).size

    path.write_bytes(path.read_bytes()[:200])  # truncated: the header opens, decoding fails
    with pytest.raises(DataError) as info:
        read()
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "not a readable image" in msg
    assert fix_word in msg

    path.unlink()
    with pytest.raises(DataError, match="not found") as info:
        read()
    assert str(path) in str(info.value) and fix_word in str(info.value)


def test_open_image_without_decoding_reads_only_the_header(tmp_path):
    path = tmp_path / "a.png"
    noise = np.random.default_rng(0).integers(0, 256, (70, 50), dtype=np.uint8)
    Image.fromarray(noise).save(path)  # grey, large enough that half the file holds the header
    grey = read_rgb(path, "test image", "Fix: none.")
    assert grey.mode == "RGB" and grey.size == (50, 70)
    assert np.array_equal(np.asarray(grey)[..., 1], noise)

    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with open_image(path, "test image", "Fix: none.", load=False) as im:
        assert im.size == (50, 70)  # the size is in the header, still readable
    with pytest.raises(DataError, match="not a readable image"):
        read_rgb(path, "test image", "Fix: none.")

    path.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"a\.png is not a readable image \(UnidentifiedImageError"):
        read_rgb(path, "test image", "Fix: none.")
    with pytest.raises(DataError, match=r"^test image not found: .*missing\.png\. Fix: none\.$"):
        read_rgb(tmp_path / "missing.png", "test image", "Fix: none.")
