"""`data prepare`: SBD .mat masks (+ VOC's own palette PNGs) -> SegmentationClassAug, and a flat
ImageNet val folder + labels -> <wnid>/ folders; resumable, atomic, one-line source errors."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

from sdvicl_bench.data.demo import voc_palette
from sdvicl_bench.errors import ConfigError, DataError
from sdvicl_bench.workflows import data_prepare as dp

# ----------------------------------------------------------------------------- helpers


def labels_of(seed: int, shape=(6, 8), void: bool = False) -> np.ndarray:
    """A small label map with class ids 0..20 (and a 255 border when `void`)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 21, size=shape).astype(np.uint8)
    if void:
        labels[0, :] = 255
    return labels


def write_sbd(source, masks: dict[str, np.ndarray]):
    """SBD's layout: <source>/benchmark_RELEASE/dataset/cls/<id>.mat with GTcls.Segmentation."""
    cls = source / "benchmark_RELEASE" / "dataset" / "cls"
    cls.mkdir(parents=True, exist_ok=True)
    for image_id, labels in masks.items():
        gt = {"Segmentation": labels, "Boundaries": np.zeros((1, 1)), "CategoriesPresent": 1}
        scipy.io.savemat(cls / f"{image_id}.mat", {"GTcls": gt})
    return source


def write_voc_masks(voc_root, masks: dict[str, np.ndarray], rgb: bool = False):
    """VOC2012's SegmentationClass/<id>.png: palette PNGs (or RGB copies of them)."""
    folder = voc_root / "SegmentationClass"
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, labels in masks.items():
        im = Image.fromarray(labels, mode="P")
        im.putpalette(voc_palette())
        (im.convert("RGB") if rgb else im).save(folder / f"{image_id}.png")


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.asarray(im)


def mtimes(folder) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.png"))}


SBD = {f"2008_{i:06d}": labels_of(i) for i in range(1, 6)}


# ----------------------------------------------------------------------------- SBD


def test_sbd_mats_become_label_pngs(tmp_path):
    source = write_sbd(tmp_path / "sbd", SBD)
    result = dp.prepare("sbd", source, tmp_path / "data", quiet=True)
    out = tmp_path / "data" / "VOC2012" / "SegmentationClassAug"
    assert result.out_dir == out and (result.written, result.skipped) == (5, 0)
    for image_id, labels in SBD.items():
        np.testing.assert_array_equal(read_png(out / f"{image_id}.png"), labels)
    assert any("SegmentationClass" in note for note in result.notes)  # VOC's own masks absent
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in SBD]  # no temp files


def test_voc_masks_are_converted_and_win_where_both_exist(tmp_path):
    source = write_sbd(tmp_path / "sbd", SBD)
    voc_root = tmp_path / "VOC2012"
    first, second = list(SBD)[:2]
    voc = {first: labels_of(100, void=True), "2007_000032": labels_of(101, void=True)}
    write_voc_masks(voc_root, {first: voc[first]})
    write_voc_masks(voc_root, {"2007_000032": voc["2007_000032"]}, rgb=True)  # colours back
    result = dp.prepare_sbd(source, voc_root, quiet=True)
    out = voc_root / "SegmentationClassAug"
    assert result.written == 6 and not result.notes
    np.testing.assert_array_equal(read_png(out / f"{first}.png"), voc[first])  # VOC wins
    np.testing.assert_array_equal(read_png(out / "2007_000032.png"), voc["2007_000032"])
    np.testing.assert_array_equal(read_png(out / f"{second}.png"), SBD[second])


def test_a_second_run_redoes_nothing(tmp_path):
    source = write_sbd(tmp_path / "sbd", SBD)
    voc_root = tmp_path / "VOC2012"
    write_voc_masks(voc_root, {"2007_000032": labels_of(7, void=True)})
    dp.prepare_sbd(source, voc_root, quiet=True)
    before = mtimes(voc_root / "SegmentationClassAug")
    again = dp.prepare_sbd(source, voc_root, quiet=True)
    assert (again.written, again.skipped) == (0, 6)
    assert mtimes(voc_root / "SegmentationClassAug") == before


def test_an_sbd_mask_is_redone_from_voc_once_voc_masks_arrive(tmp_path):
    source = write_sbd(tmp_path / "sbd", SBD)
    voc_root = tmp_path / "VOC2012"
    dp.prepare_sbd(source, voc_root, quiet=True)
    image_id = list(SBD)[3]
    write_voc_masks(voc_root, {image_id: labels_of(55, void=True)})
    result = dp.prepare_sbd(source, voc_root, quiet=True)
    assert (result.written, result.skipped) == (1, 4)
    out = voc_root / "SegmentationClassAug" / f"{image_id}.png"
    np.testing.assert_array_equal(read_png(out), labels_of(55, void=True))
    assert dp.prepare_sbd(source, voc_root, quiet=True).written == 0


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    source = write_sbd(tmp_path / "sbd", SBD)
    voc_root = tmp_path / "VOC2012"
    out = voc_root / "SegmentationClassAug"
    real_save = dp.save_label_png
    calls = []

    def flaky(labels, tmp):
        calls.append(tmp)
        if len(calls) == 3:  # dies half-way through writing the third file
            tmp.write_bytes(b"half a png")
            raise KeyboardInterrupt
        real_save(labels, tmp)

    monkeypatch.setattr(dp, "save_label_png", flaky)
    with pytest.raises(KeyboardInterrupt):
        dp.prepare_sbd(source, voc_root, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in list(SBD)[:2]]
    (out / f"{dp.TMP_PREFIX}{list(SBD)[2]}.png.999.tmp").write_bytes(b"killed run")  # kill -9
    monkeypatch.setattr(dp, "save_label_png", real_save)
    result = dp.prepare_sbd(source, voc_root, quiet=True)
    assert (result.written, result.skipped) == (3, 2)
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in SBD]
    for image_id, labels in SBD.items():
        np.testing.assert_array_equal(read_png(out / f"{image_id}.png"), labels)


def test_a_source_that_is_not_sbd_is_one_line(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="dataset/cls") as err:
        dp.prepare_sbd(tmp_path / "nothing", tmp_path / "VOC2012", quiet=True)
    assert "\n" not in str(err.value)


def test_a_mat_without_gtcls_or_with_foreign_values_is_refused(tmp_path):
    cls = tmp_path / "sbd" / "dataset" / "cls"
    cls.mkdir(parents=True)
    scipy.io.savemat(cls / "a.mat", {"GTinst": {"Segmentation": labels_of(1)}})
    with pytest.raises(DataError, match=r"GTcls\.Segmentation"):
        dp.prepare_sbd(tmp_path / "sbd", tmp_path / "VOC2012", quiet=True)
    scipy.io.savemat(cls / "a.mat", {"GTcls": {"Segmentation": np.full((4, 4), 77, np.uint8)}})
    with pytest.raises(DataError, match=r"values \[77\]"):
        dp.prepare_sbd(tmp_path / "sbd", tmp_path / "VOC2012", quiet=True)
    assert not any((tmp_path / "VOC2012" / "SegmentationClassAug").glob("*.png"))


def test_unknown_dataset_names_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="sbd, imagenet-val"):
        dp.prepare("coco", tmp_path, tmp_path)


# ----------------------------------------------------------------------------- ImageNet val

WNIDS = ["n01440764", "n01443537", "n01484850"]


def flat_val(folder, count: int = 6):
    """A flat ILSVRC2012 val folder of tiny JPEGs; image i is class WNIDS[i % 3]."""
    folder.mkdir(parents=True)
    for i in range(1, count + 1):
        colour = (40 * i, 20, 200 - 20 * i)
        Image.new("RGB", (8, 6), colour).save(folder / f"ILSVRC2012_val_{i:08d}.JPEG")
    return {f"ILSVRC2012_val_{i:08d}": WNIDS[i % 3] for i in range(1, count + 1)}


def expect_sorted(out, truth):
    for stem, wnid in truth.items():
        assert (out / wnid / f"{stem}.JPEG").is_file()
    assert sum(1 for _ in out.rglob("*.JPEG")) == len(truth)


def test_plain_labels_sort_the_images_into_hard_linked_class_folders(tmp_path):
    truth = flat_val(tmp_path / "val")
    labels = tmp_path / "val_labels.txt"
    labels.write_text("".join(f"{s}.JPEG {w}\n" for s, w in truth.items()))
    result = dp.prepare("imagenet-val", tmp_path / "val", tmp_path / "data", labels=labels)
    out = tmp_path / "data" / "imagenet" / "val"
    expect_sorted(out, truth)
    stem, wnid = next(iter(truth.items()))
    src, dst = tmp_path / "val" / f"{stem}.JPEG", out / wnid / f"{stem}.JPEG"
    assert os.path.samefile(src, dst)  # a hard link, not a copy
    assert (result.written, result.copied) == (6, 0)


def test_kaggle_csv_is_found_beside_the_images(tmp_path):
    truth = flat_val(tmp_path / "val")
    rows = "".join(f"{s},{w} 1 2 30 40 {w} 5 6 7 8\n" for s, w in truth.items())
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + rows)
    result = dp.prepare_imagenet_val(tmp_path / "val", tmp_path / "out", quiet=True)
    expect_sorted(tmp_path / "out", truth)
    assert result.written == 6


def test_devkit_ground_truth_maps_ids_through_meta_mat(tmp_path):
    truth = flat_val(tmp_path / "val")
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    ids = {w: k for k, w in enumerate(["n09999999", *WNIDS], start=1)}  # 1-based ILSVRC ids
    synsets = np.array(
        [(k, w) for w, k in ids.items()], dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O")]
    )
    scipy.io.savemat(data / "meta.mat", {"synsets": synsets})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "".join(f"{ids[w]}\n" for w in truth.values())
    )
    dp.prepare_imagenet_val(tmp_path / "val", tmp_path / "out", quiet=True)  # found in parent
    expect_sorted(tmp_path / "out", truth)


def test_imagenet_copies_when_links_fail_and_resumes(tmp_path, monkeypatch):
    truth = flat_val(tmp_path / "val")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{s} {w}\n" for s, w in truth.items()))
    copies = []
    real_copy = dp.shutil.copy2

    def refuse(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def copy_then_die(src, dst):
        copies.append(dst)
        if len(copies) == 4:
            raise KeyboardInterrupt
        real_copy(src, dst)

    def prepare():
        return dp.prepare_imagenet_val(
            tmp_path / "val", tmp_path / "out", labels=labels, quiet=True
        )

    monkeypatch.setattr(dp.os, "link", refuse)  # another file system
    monkeypatch.setattr(dp.shutil, "copy2", copy_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare()
    assert len(list((tmp_path / "out").rglob("*.JPEG"))) == 3
    assert not list((tmp_path / "out").rglob(f"{dp.TMP_PREFIX}*"))
    monkeypatch.setattr(dp.shutil, "copy2", real_copy)
    result = prepare()
    assert (result.written, result.skipped, result.copied) == (3, 3, 3)
    expect_sorted(tmp_path / "out", truth)
    stem, wnid = next(iter(truth.items()))
    assert not os.path.samefile(
        tmp_path / "val" / f"{stem}.JPEG", tmp_path / "out" / wnid / f"{stem}.JPEG"
    )
    monkeypatch.undo()
    again = prepare()
    assert (again.written, again.skipped) == (0, 6)


def test_imagenet_source_and_label_errors_are_one_line(tmp_path):
    truth = flat_val(tmp_path / "val")
    with pytest.raises(DataError, match="ILSVRC2012_val_") as err:
        dp.prepare_imagenet_val(tmp_path, tmp_path / "out", quiet=True)  # not the flat folder
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"LOC_val_solution\.csv"):
        dp.prepare_imagenet_val(tmp_path / "val", tmp_path / "out", quiet=True)  # no labels
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{s} {w}\n" for s, w in list(truth.items())[:-1]))
    with pytest.raises(DataError, match="1 of the 6 images have no label"):
        dp.prepare_imagenet_val(tmp_path / "val", tmp_path / "out", labels=labels, quiet=True)
    labels.write_text("ILSVRC2012_val_00000001 n01440764\nILSVRC2012_val_00000002 cat\n")
    with pytest.raises(DataError, match="line 2"):
        dp.prepare_imagenet_val(tmp_path / "val", tmp_path / "out", labels=labels, quiet=True)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.JPEG"))
