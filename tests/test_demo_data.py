"""Demo VOC generator: deterministic, idempotent, and readable by the real loader."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.data.pascal import (
    VOC_CLASSES,
    VOCDataset,
    fold_classes,
    read_split_list,
    split_list_path,
)
from sdvicl_bench.errors import ConfigError

SIZE = (96, 80)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_voc(tmp_path_factory.mktemp("demo") / "voc", seed=0)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _objects(root: Path, image_id: str) -> list[dict]:
    tree = ET.parse(root / "Annotations" / f"{image_id}.xml").getroot()
    out = []
    for obj in tree.findall("object"):
        box = obj.find("bndbox")
        out.append(
            {
                "name": obj.findtext("name"),
                "difficult": int(obj.findtext("difficult")),
                "box": [int(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")],
            }
        )
    return out


def _split_ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets/Main" / f"{split}.txt").read_text().split()


@pytest.mark.slow
def test_same_seed_same_bytes(demo_root: Path, tmp_path: Path) -> None:
    again = make_demo_voc(tmp_path / "voc", seed=0)
    a, b = _files(demo_root), _files(again)
    assert a.keys() == b.keys() and len(a) == 3 * 400 + 2 + 8 + 2  # + ImageSets, lists, 2 dots
    assert all(a[k] == b[k] for k in a)


@pytest.mark.slow
def test_other_seed_other_images(demo_root: Path, tmp_path: Path) -> None:
    other = make_demo_voc(tmp_path / "voc", seed=1)
    name = "JPEGImages/demo_000001.jpg"
    assert (other / name).read_bytes() != (demo_root / name).read_bytes()


def test_idempotent_and_rewrites_on_new_parameters(tmp_path: Path) -> None:
    root = make_demo_voc(tmp_path / "voc", seed=3, num_images=84)
    marker = json.loads((root / ".demo_complete").read_text())
    assert marker["seed"] == 3 and marker["num_images"] == 84
    victim = root / "JPEGImages/demo_000005.jpg"
    victim.unlink()
    make_demo_voc(root, seed=3, num_images=84)
    assert not victim.exists()  # marker matched: nothing rewritten
    make_demo_voc(root, seed=4, num_images=80)
    assert victim.exists()
    assert len(list((root / "JPEGImages").glob("*.jpg"))) == 80  # stale files removed
    assert json.loads((root / ".demo_complete").read_text())["seed"] == 4


def test_too_few_images_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        make_demo_voc(tmp_path / "voc", num_images=10)
    assert "\n" not in str(err.value) and "num_images" in str(err.value)
    assert not (tmp_path / "voc" / ".demo_complete").exists()


def test_layout(demo_root: Path) -> None:
    train, val = _split_ids(demo_root, "train"), _split_ids(demo_root, "val")
    assert len(train) == len(val) == 200 and not set(train) & set(val)
    for image_id in train + val:
        assert image_id.startswith("demo_") and len(image_id) == len("demo_000001")
        for sub, ext in (
            ("JPEGImages", "jpg"),
            ("SegmentationClassAug", "png"),
            ("Annotations", "xml"),
        ):
            assert (demo_root / sub / f"{image_id}.{ext}").is_file()


@pytest.mark.parametrize("fold", [0, 1, 2, 3])
def test_every_fold_class_in_val_and_trn(demo_root: Path, fold: int) -> None:
    splits = demo_root / "splits/pascal5i"
    for split, voc_split in (("val", "val"), ("trn", "train")):
        entries = read_split_list(split_list_path(splits, split, fold))
        counts = {
            c: sum(e.class_id == c for e in entries) for c in range(5 * fold + 1, 5 * fold + 6)
        }
        assert min(counts.values()) >= 3, (split, counts)
        assert {e.class_id for e in entries} <= set(fold_classes(fold))
        assert {e.image_id for e in entries} <= set(_split_ids(demo_root, voc_split))


def test_lists_match_masks_and_xml(demo_root: Path) -> None:
    """Each two-object image is listed once per class it holds (in that class's fold), as
    HSNet does; one-object images (det's, with clutter) are not listed."""
    ds = VOCDataset(demo_root)
    listed: set[str] = set()
    for split in ("trn", "val"):
        for fold in range(4):
            listed |= {
                e.key
                for e in read_split_list(
                    split_list_path(demo_root / "splits/pascal5i", split, fold)
                )
            }
    expected = set()
    for image_id in _split_ids(demo_root, "train") + _split_ids(demo_root, "val"):
        classes = {int(c) for c in np.unique(ds.label_map(image_id))} - {0, 255}
        names = {VOC_CLASSES[c - 1] for c in classes}
        assert names == {o["name"] for o in _objects(demo_root, image_id)}
        if len(classes) == 2:
            expected |= {f"{image_id}__{c:02d}" for c in classes}
    assert listed == expected


def test_loader_reads_generated_files(demo_root: Path) -> None:
    ds = VOCDataset(demo_root)
    entries = read_split_list(split_list_path(demo_root / "splits/pascal5i", "val", 0))
    for entry in entries:
        image = ds.image(entry.image_id)
        assert image.mode == "RGB" and image.size == SIZE
        assert ds.image_size(entry.image_id) == SIZE
        mask = ds.class_mask(entry.image_id, entry.class_id)
        assert mask.shape == (SIZE[1], SIZE[0]) and mask.sum() >= 20
        labels = ds.label_map(entry.image_id)
        assert (labels == 255).any()  # the void band exists
        # the object is visibly there: its pixels differ in colour from the rest
        pixels = np.asarray(image).astype(float)
        inside, outside = pixels[mask].mean(axis=0), pixels[labels == 0].mean(axis=0)
        assert np.abs(inside - outside).max() > 30


def test_void_band_surrounds_objects(demo_root: Path) -> None:
    from scipy import ndimage

    ds = VOCDataset(demo_root)
    for image_id in _split_ids(demo_root, "val")[:10]:
        labels = ds.label_map(image_id)
        objects = (labels > 0) & (labels < 255)
        ring = ndimage.binary_dilation(objects, iterations=1) & ~objects
        assert (labels[ring] == 255).all()  # no object pixel touches background directly
        assert not objects[[0, -1], :].any() and not objects[:, [0, -1]].any()


def test_mask_boxes_match_xml(demo_root: Path) -> None:
    ds = VOCDataset(demo_root)
    n_objects = 0
    for image_id in _split_ids(demo_root, "train") + _split_ids(demo_root, "val"):
        root = ET.parse(demo_root / "Annotations" / f"{image_id}.xml").getroot()
        assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) == SIZE
        for obj in _objects(demo_root, image_id):
            mask = ds.class_mask(image_id, VOC_CLASSES.index(obj["name"]) + 1)
            rows, cols = np.nonzero(mask)
            mask_box = [cols.min() + 1, rows.min() + 1, cols.max() + 1, rows.max() + 1]  # 1-based
            assert np.abs(np.array(mask_box) - obj["box"]).max() <= 1, (image_id, obj)
            n_objects += 1
    assert n_objects > 80


def test_detection_candidates_in_both_splits(demo_root: Path) -> None:
    """VP's filter: exactly one object (difficult counted), box under 20% of the image."""
    w, h = SIZE
    for split in ("train", "val"):
        kept = []
        for image_id in _split_ids(demo_root, split):
            objects = _objects(demo_root, image_id)
            if len(objects) != 1:
                continue
            x0, y0, x1, y1 = objects[0]["box"]
            if (x1 - x0 + 1) * (y1 - y0 + 1) < 0.2 * w * h:
                kept.append(image_id)
        assert len(kept) == 100, split
        classes = [_objects(demo_root, i)[0]["name"] for i in kept]
        assert {classes.count(name) for name in VOC_CLASSES} == {5}  # 5 per class per split
        two = [i for i in _split_ids(demo_root, split) if len(_objects(demo_root, i)) == 2]
        assert len(two) == 100
        for image_id in two:
            names = [o["name"] for o in _objects(demo_root, image_id)]
            assert names[0] != names[1]


def test_one_object_images_hold_unlabelled_clutter(demo_root: Path) -> None:
    """A one-object image shows a striped grey blob that no label or box mentions, so "box
    whatever stands out" is not the answer: the prompt has to say what to box."""
    ds = VOCDataset(demo_root)
    singles = [i for i in _split_ids(demo_root, "val") if len(_objects(demo_root, i)) == 1]
    for image_id in singles[:12]:
        labels = ds.label_map(image_id)
        grey = np.asarray(ds.image(image_id).convert("L"), dtype=float)
        background = labels == 0
        # the stripes: strong local contrast on unlabelled pixels, far above the background's
        edges = np.abs(np.diff(grey, axis=1))
        strong = (edges > 60) & background[:, 1:] & background[:, :-1]
        assert strong.sum() >= 20, image_id
        assert (labels[labels > 0] != 0).all() and len(np.unique(labels)) == 3  # 0, class, 255


def test_two_writers_of_one_demo_folder_take_turns(tmp_path: Path) -> None:
    """The same command started twice: the second writer waits for the first and finds the
    folder complete (before the lock it deleted and rewrote the files under the first
    one's readers: `data check` and `run` saw files missing)."""
    import threading
    import time

    from PIL import Image

    root, events = tmp_path / "voc", []
    original, save = Path.unlink, Image.Image.save

    def unlink(self, *args, **kwargs):  # a rewrite deletes the old demo files first
        events.append(self.name)
        return original(self, *args, **kwargs)

    def slow_save(self, *args, **kwargs):  # the second writer starts mid-write
        time.sleep(0.002)
        return save(self, *args, **kwargs)

    threads = [
        threading.Thread(target=make_demo_voc, args=(root,), kwargs={"num_images": 80})
        for _ in range(2)
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "unlink", unlink)
        mp.setattr(Image.Image, "save", slow_save)
        threads[0].start()
        deadline = time.time() + 60
        while len(list(root.glob("JPEGImages/*.jpg"))) < 5 and time.time() < deadline:
            time.sleep(0.005)  # the first writer is under way ...
        threads[1].start()  # ... when the second starts
        for thread in threads:
            thread.join()
    assert not [e for e in events if e.startswith("demo_")], events[
        :5
    ]  # nobody rewrote the other's files
    assert len(list((root / "JPEGImages").glob("*.jpg"))) == 80
