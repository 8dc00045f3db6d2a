"""Pascal VOC / Pascal-5i loader, on hand-written fixtures of the real formats and the real
published split lists (skipped when ../shared/data/pascal5i is absent)."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdvicl_bench.data.pascal import (
    SPLIT_SHA256,
    VOC_CLASSES,
    PascalEntry,
    VOCDataset,
    fold_classes,
    read_split_list,
    split_list_path,
)
from sdvicl_bench.errors import ConfigError, DataError

SHARED_SPLITS = Path(__file__).resolve().parents[2] / "shared/data/pascal5i"
EXPECTED_LINES = {"val": [346, 451, 725, 346], "trn": [2286, 3425, 5883, 2086]}

# A VOC2012 annotation as shipped (2008_000008-like), with a difficult object.
VOC_XML = """<annotation>
\t<folder>VOC2012</folder>
\t<filename>2008_000008.jpg</filename>
\t<source>
\t\t<database>The VOC2008 Database</database>
\t\t<annotation>PASCAL VOC2008</annotation>
\t\t<image>flickr</image>
\t</source>
\t<size>
\t\t<width>500</width>
\t\t<height>442</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>horse</name>
\t\t<pose>Left</pose>
\t\t<truncated>0</truncated>
\t\t<occluded>1</occluded>
\t\t<bndbox>
\t\t\t<xmin>53</xmin>
\t\t\t<ymin>87</ymin>
\t\t\t<xmax>471</xmax>
\t\t\t<ymax>420</ymax>
\t\t</bndbox>
\t\t<difficult>0</difficult>
\t</object>
\t<object>
\t\t<name>person</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>1</truncated>
\t\t<occluded>0</occluded>
\t\t<bndbox>
\t\t\t<xmin>158</xmin>
\t\t\t<ymin>44</ymin>
\t\t\t<xmax>289</xmax>
\t\t\t<ymax>167</ymax>
\t\t</bndbox>
\t\t<difficult>1</difficult>
\t</object>
</annotation>
"""


def _voc_palette() -> list[int]:
    """VOC colour map, written independently of the demo generator (bit interleaving)."""
    out = []
    for i in range(256):
        rgb = [0, 0, 0]
        for bit in range(8):
            for ch in range(3):
                rgb[ch] |= ((i >> (3 * bit + ch)) & 1) << (7 - bit)
        out += rgb
    return out


@pytest.fixture()
def voc_root(tmp_path: Path) -> Path:
    """A tiny VOC root: one JPEG, one 'P' class PNG with a 255 border, one 'L' PNG, one XML."""
    for sub in ("JPEGImages", "SegmentationClassAug", "Annotations", "ImageSets/Main"):
        (tmp_path / sub).mkdir(parents=True)
    # 7 wide x 6 high; a 3x2 cat (8) block ringed by void, a dog (12) pixel in a corner.
    labels = np.array(
        [
            [0, 0, 0, 0, 0, 0, 12],
            [0, 255, 255, 255, 255, 255, 0],
            [0, 255, 8, 8, 8, 255, 0],
            [0, 255, 8, 8, 8, 255, 0],
            [0, 255, 255, 255, 255, 255, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    png = Image.fromarray(labels, mode="P")
    png.putpalette(_voc_palette())
    png.save(tmp_path / "SegmentationClassAug/2008_000008.png")
    Image.fromarray(labels, mode="L").save(tmp_path / "SegmentationClassAug/2008_000009.png")
    Image.fromarray(np.stack([labels] * 3, axis=2), mode="RGB").save(
        tmp_path / "SegmentationClassAug/2008_000010.png"
    )
    rgb = np.zeros((6, 7, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    for image_id in ("2008_000008", "2008_000009", "2008_000010"):
        Image.fromarray(rgb).save(tmp_path / f"JPEGImages/{image_id}.jpg", quality=95)
    (tmp_path / "Annotations/2008_000008.xml").write_text(VOC_XML)
    (tmp_path / "ImageSets/Main/val.txt").write_text("2008_000008\n")
    return tmp_path


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg and "Fix:" in msg
    return msg


# --- classes and folds ---------------------------------------------------------------------


def test_classes_and_folds() -> None:
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person"
    assert VOC_CLASSES[19] == "tvmonitor" and VOC_CLASSES[10] == "diningtable"
    assert fold_classes(0) == [1, 2, 3, 4, 5]
    assert fold_classes(3) == [16, 17, 18, 19, 20]
    assert sorted(c for f in range(4) for c in fold_classes(f)) == list(range(1, 21))
    with pytest.raises(ConfigError):
        fold_classes(4)


def test_entry_key() -> None:
    assert PascalEntry("2007_000033", 1).key == "2007_000033__01"
    assert PascalEntry("2011_003271", 15).key == "2011_003271__15"


def test_split_list_path(tmp_path: Path) -> None:
    assert split_list_path(tmp_path, "val", 2) == tmp_path / "val" / "fold2.txt"
    assert split_list_path(tmp_path, "trn", 0) == tmp_path / "trn" / "fold0.txt"
    with pytest.raises(ConfigError):
        split_list_path(tmp_path, "train", 0)
    with pytest.raises(ConfigError):
        split_list_path(tmp_path, "val", 5)


# --- split lists ---------------------------------------------------------------------------


def test_read_split_list_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "fold0.txt"
    path.write_bytes(b"2007_000033__01\r\n\r\n2007_000061__04\r\n  \n2011_003271__05")
    assert read_split_list(path) == [
        PascalEntry("2007_000033", 1),
        PascalEntry("2007_000061", 4),
        PascalEntry("2011_003271", 5),
    ]


@pytest.mark.parametrize(
    "bad", ["2007_000033_01", "2007_000033__1", "2007_000033__21", "2007_000033__00", "__03"]
)
def test_read_split_list_malformed_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "fold1.txt"
    path.write_text(f"2007_000033__06\n\n{bad}\n")
    with pytest.raises(DataError) as err:
        read_split_list(path)
    msg = _one_line(err)
    assert str(path) in msg and "line 3" in msg


def test_read_split_list_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_split_list(tmp_path / "nope.txt")
    assert "nope.txt" in _one_line(err)


needs_shared = pytest.mark.skipif(
    not SHARED_SPLITS.is_dir(), reason=f"published split lists not at {SHARED_SPLITS}"
)


@needs_shared
@pytest.mark.parametrize("split", ["val", "trn"])
@pytest.mark.parametrize("fold", [0, 1, 2, 3])
def test_real_split_lists(split: str, fold: int) -> None:
    path = split_list_path(SHARED_SPLITS, split, fold)
    entries = read_split_list(path)
    assert len(entries) == EXPECTED_LINES[split][fold]
    classes = set(range(5 * fold + 1, 5 * fold + 6))  # independent of fold_classes
    assert {e.class_id for e in entries} == classes
    assert len(set(entries)) == len(entries)
    # the key round-trips to the line as written
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    assert [e.key for e in entries] == lines


@needs_shared
def test_real_split_sha256_pins() -> None:
    assert sorted(SPLIT_SHA256) == [f"{s}{f}" for s in ("trn", "val") for f in range(4)]
    for name, pin in SPLIT_SHA256.items():
        path = SHARED_SPLITS / name[:3] / f"fold{name[3]}.txt"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pin, name


@needs_shared
def test_real_val_and_trn_images_disjoint() -> None:
    for fold in range(4):
        val = {e.image_id for e in read_split_list(split_list_path(SHARED_SPLITS, "val", fold))}
        trn = {e.image_id for e in read_split_list(split_list_path(SHARED_SPLITS, "trn", fold))}
        assert not val & trn


# --- VOC root --------------------------------------------------------------------------------


def test_label_map_and_class_mask_void_is_background(voc_root: Path) -> None:
    ds = VOCDataset(voc_root)
    labels = ds.label_map("2008_000008")
    assert labels.dtype == np.uint8 and labels.shape == (6, 7)
    assert set(np.unique(labels).tolist()) == {0, 8, 12, 255}
    cat = ds.class_mask("2008_000008", 8)
    assert cat.dtype == bool and cat.shape == (6, 7)
    expected = np.zeros((6, 7), dtype=bool)
    expected[2:4, 2:5] = True
    np.testing.assert_array_equal(cat, expected)  # the 255 ring is not cat
    dog = ds.class_mask("2008_000008", 12)
    assert dog.sum() == 1 and dog[0, 6]
    assert not ds.class_mask("2008_000008", 1).any()
    # an 'L' PNG holding the ids reads the same
    np.testing.assert_array_equal(ds.label_map("2008_000009"), labels)


def test_rgb_label_png_is_rejected(voc_root: Path) -> None:
    with pytest.raises(DataError) as err:
        VOCDataset(voc_root).label_map("2008_000010")
    assert "2008_000010.png" in _one_line(err)


def test_image_and_size(voc_root: Path) -> None:
    ds = VOCDataset(voc_root)
    im = ds.image("2008_000008")
    assert im.mode == "RGB" and im.size == (7, 6)
    assert ds.image_size("2008_000008") == (7, 6)
    assert abs(int(np.asarray(im)[..., 0].mean()) - 200) <= 3


def test_voc_xml_with_difficult_object_parses(voc_root: Path) -> None:
    tree = ET.parse(voc_root / "Annotations/2008_000008.xml").getroot()
    assert int(tree.findtext("size/width")) == 500 and int(tree.findtext("size/height")) == 442
    objects = tree.findall("object")
    assert [o.findtext("name") for o in objects] == ["horse", "person"]
    assert [int(o.findtext("difficult")) for o in objects] == [0, 1]
    box = objects[1].find("bndbox")
    assert [int(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")] == [158, 44, 289, 167]
    assert all(o.findtext("name") in VOC_CLASSES for o in objects)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        VOCDataset(tmp_path / "VOC2012")
    msg = _one_line(err)
    assert "Pascal VOC root not found" in msg and str(tmp_path / "VOC2012") in msg
    assert "data.root=" in msg


def test_root_without_jpegimages(tmp_path: Path) -> None:
    (tmp_path / "SegmentationClassAug").mkdir()
    with pytest.raises(DataError) as err:
        VOCDataset(tmp_path)
    assert "JPEGImages" in _one_line(err)


def test_missing_image_and_mask(voc_root: Path) -> None:
    ds = VOCDataset(voc_root)
    with pytest.raises(DataError) as err:
        ds.image("2012_999999")
    assert "2012_999999.jpg" in _one_line(err)
    with pytest.raises(DataError) as err:
        ds.image_size("2012_999999")
    assert "2012_999999.jpg" in _one_line(err)
    with pytest.raises(DataError) as err:
        ds.class_mask("2012_999999", 3)
    assert "2012_999999.png" in _one_line(err)


def test_corrupt_image(voc_root: Path) -> None:
    (voc_root / "JPEGImages/2008_000666.jpg").write_bytes(b"\x00garbage, not a JPEG" * 20)
    ds = VOCDataset(voc_root)
    for call in (ds.image, ds.image_size):
        with pytest.raises(DataError) as err:
            call("2008_000666")
        msg = _one_line(err)
        assert "2008_000666.jpg" in msg and "is not a readable image" in msg


def test_truncated_jpeg(voc_root: Path) -> None:
    buf = (voc_root / "JPEGImages/2008_000008.jpg").read_bytes()
    (voc_root / "JPEGImages/2008_000667.jpg").write_bytes(buf[: len(buf) // 2])
    with pytest.raises(DataError) as err:
        VOCDataset(voc_root).image("2008_000667")
    assert "is not a readable image" in _one_line(err)


def test_bad_class_id(voc_root: Path) -> None:
    with pytest.raises(ConfigError):
        VOCDataset(voc_root).class_mask("2008_000008", 21)
