"""`data check`: per task, the folders, lists, counts and a sample of files, each problem one
line with its fix; ok / warning / missing and the exit code; `require_data` for `run`."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image
from rich.console import Console

from sdvicl_bench.config import RunConfig, from_dict
from sdvicl_bench.data.pascal import read_split_list
from sdvicl_bench.errors import DataError
from sdvicl_bench.protocols import task_names
from sdvicl_bench.protocols.registry import TASK_CONF
from sdvicl_bench.workflows import data_check as dc
from sdvicl_bench.workflows import data_prepare as dp


def config(task: str, root, data: str = "demo", **options) -> RunConfig:
    """The task's packaged YAML with `data` (demo|real) under `root`; no Hydra, no model."""
    spec = yaml.safe_load((TASK_CONF / f"{task}.yaml").read_text())
    spec["options"] = {**(spec.get("options") or {}), **options}
    return from_dict(RunConfig, {"task": spec, "data": {"name": data, "root": str(root)}})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo root every task's demo set is written into (by the first check)."""
    root = tmp_path_factory.mktemp("demo-data")
    for task in task_names():
        dc.check_task(config(task, root))
    return root


@pytest.fixture()
def voc_copy(demo, tmp_path):
    """A private copy of the demo's VOC2012 folder (its marker included) to break."""
    shutil.copytree(demo / "VOC2012", tmp_path / "VOC2012")
    return tmp_path


def missing_lines(report: dc.TaskReport) -> list[str]:
    return [c.line(report.task) for c in report.checks if c.status == dc.MISSING]


def test_every_task_on_the_demo_root_is_ok(demo):
    reports = [dc.check_task(config(task, demo)) for task in task_names()]
    for report in reports:
        assert report.status == dc.OK, report.lines()
        assert report.seconds < 5
    assert dc.exit_code(reports) == 0
    fgseg = reports[task_names().index("fgseg")]
    rows = {c.what: c for c in fgseg.checks}
    assert rows["SegmentationClassAug/"].expected == "400 (demo)"  # the demo's own count
    assert rows["SegmentationClassAug/"].found == "400"
    assert any(c.what == "sample" for c in fgseg.checks)


def test_missing_sbd_masks_name_sbd_and_data_prepare(voc_copy):
    shutil.rmtree(voc_copy / "VOC2012" / "SegmentationClassAug")
    report = dc.check_task(config("fgseg", voc_copy))
    assert report.status == dc.MISSING and dc.exit_code([report]) == 2
    (line,) = missing_lines(report)
    assert line.startswith("task=fgseg: SBD SegmentationClassAug/: not found.")
    assert "SBD (benchmark.tgz" in line and "sdvicl-bench data prepare sbd" in line
    with pytest.raises(DataError) as err:
        dc.require_data(config("fgseg", voc_copy))
    assert str(err.value) == line and "\n" not in line
    assert dc.check_task(config("det", voc_copy)).status == dc.OK  # det needs no masks


def test_sbd_prepared_from_mat_files_makes_fgseg_ok_again(voc_copy):
    aug = voc_copy / "VOC2012" / "SegmentationClassAug"
    cls = voc_copy / "sbd" / "dataset" / "cls"
    cls.mkdir(parents=True)
    for path in sorted(aug.glob("*.png")):  # the demo's masks, as SBD would ship them
        labels = np.asarray(Image.open(path))
        scipy.io.savemat(cls / f"{path.stem}.mat", {"GTcls": {"Segmentation": labels}})
    shutil.rmtree(aug)
    result = dp.prepare("sbd", voc_copy / "sbd", voc_copy, quiet=True)
    assert result.written == 400
    assert dc.check_task(config("fgseg", voc_copy)).status == dc.OK


def test_a_corrupt_sampled_photo_and_a_foreign_mask_are_reported(voc_copy):
    voc = voc_copy / "VOC2012"
    everything = [
        e.image_id
        for split in ("trn", "val")
        for fold in range(4)
        for e in read_split_list(voc / "splits" / "pascal5i" / split / f"fold{fold}.txt")
    ]
    first, second = dc.sample(everything)[:2]
    (voc / "JPEGImages" / f"{first}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    mask = Image.fromarray(np.full((80, 96), 99, np.uint8), mode="L")
    mask.save(voc / "SegmentationClassAug" / f"{second}.png")
    report = dc.check_task(config("fgseg", voc_copy))
    assert report.status == dc.MISSING
    lines = report.lines()
    assert any(f"{first}.jpg" in line and "not a readable image" in line for line in lines)
    assert any(f"{second}.png" in line and "values [99]" in line for line in lines)
    assert [c.status for c in report.problems()] == [dc.MISSING, dc.WARNING]


def test_cityscapes_label_ids_out_of_range_warn(demo, tmp_path):
    shutil.copytree(demo / "cityscapes", tmp_path / "cityscapes")
    labels = sorted((tmp_path / "cityscapes" / "gtFine").rglob("*_labelIds.png"))
    for path in labels:  # trainIds (255 ignore) saved under the labelIds name
        Image.fromarray(np.full((64, 128), 255, np.uint8), mode="L").save(path)
    report = dc.check_task(config("semseg", tmp_path))
    assert report.status == dc.WARNING and dc.exit_code([report]) == 0
    assert "not labelIds" in report.lines()[0]


def test_a_flat_imagenet_folder_points_at_data_prepare(tmp_path):
    val = tmp_path / "imagenet" / "val"
    val.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(val / "ILSVRC2012_val_00000001.JPEG")
    report = dc.check_task(config("colorization", tmp_path, data="real"))
    (line,) = missing_lines(report)
    assert "1 images directly" in line and "data prepare imagenet-val" in line


def test_real_data_absent_is_missing_with_the_archive_to_get(tmp_path):
    reports = [dc.check_task(config(t, tmp_path, data="real")) for t in task_names()]
    assert dc.exit_code(reports) == 2
    archives = {
        "fgseg": "VOCtrainval_11-May-2012.tar",
        "semseg": "gtFine_trainvaltest.zip",
        "keypoints": "Fashion Landmark Detection",
        "colorization": "ILSVRC2012_img_val.tar",
    }
    for report in reports:
        assert report.status == dc.MISSING
        if report.task in archives:
            assert archives[report.task] in missing_lines(report)[0]


def test_the_demo_set_read_as_real_data_warns_of_its_size(demo):
    report = dc.check_task(config("det", demo, data="real"))
    assert report.status == dc.WARNING and dc.exit_code([report]) == 0
    jpeg = next(c for c in report.checks if c.what == "JPEGImages/")
    assert (jpeg.found, jpeg.expected) == ("400", "17,125")
    assert "not comparable" in jpeg.line("det")
    fgseg = dc.check_task(config("fgseg", demo, data="real"))  # the demo lists are not VP's
    assert any("sha256" in line for line in missing_lines(fgseg))


def test_absent_split_lists_of_real_data_are_a_warning(voc_copy):
    shutil.rmtree(voc_copy / "VOC2012" / "splits")
    report = dc.check_task(config("fgseg", voc_copy, data="real"))
    row = next(c for c in report.checks if c.dataset == "Pascal-5i")
    assert row.status == dc.WARNING and "fetches them" in row.line("fgseg")


def test_keypoints_with_box_normalization_needs_list_bbox(demo, tmp_path):
    shutil.copytree(demo / "deepfashion", tmp_path / "deepfashion")
    (tmp_path / "deepfashion" / "Anno" / "list_bbox.txt").unlink()
    assert dc.check_task(config("keypoints", tmp_path)).status == dc.OK
    report = dc.check_task(config("keypoints", tmp_path, normalize="box"))
    (line,) = missing_lines(report)
    assert "list_bbox.txt" in line and "normalize=box" in line


def test_render_prints_the_table_the_lines_and_the_verdict(voc_copy, demo):
    shutil.rmtree(voc_copy / "VOC2012" / "SegmentationClassAug")
    reports = [dc.check_task(config("fgseg", voc_copy)), dc.check_task(config("det", demo))]
    out = io.StringIO()
    dc.render(reports, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    for word in ("task", "expected", "status", "fgseg", "det", "missing", "ok"):
        assert word in text
    assert reports[0].lines()[0] in text.splitlines()
    assert "cannot run: fgseg" in text


def test_sample_is_deterministic_and_spread():
    assert dc.sample(range(100), 8) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert dc.sample(["b", "a", "a"], 8) == ["a", "b"]
    assert dc.sample(range(5), 0) == []


def test_task_overrides_are_split_and_composed_without_model_checks(demo):
    tasks, rest = dc.split_task_overrides(["task=fgseg,det", "data=demo"])
    assert (tasks, rest) == (["fgseg", "det"], ["data=demo"])
    assert dc.split_task_overrides(["data=demo"])[0] == task_names()
    from sdvicl_bench.cli import compose

    # model.path names no folder: load_config's check_setup would refuse it, a data check not
    overrides = ["task=det", "data=demo", f"data.root={demo}", "model.path=/nonexistent"]
    (report,) = dc.check_tasks(overrides, compose)
    assert (report.task, report.status) == ("det", dc.OK)


def test_edges_from_bsds500_checks_the_bsds_tree(demo, tmp_path):
    assert dc.check_task(config("edges", demo, source="bsds500")).status == dc.OK
    report = dc.check_task(config("edges", tmp_path, data="real", source="bsds500"))
    (line,) = missing_lines(report)
    assert "BSR_bsds500.tgz" in line


def test_require_data_passes_a_complete_demo_and_is_quick(demo):
    for task in task_names():
        dc.require_data(config(task, demo))  # raises nothing
    report = dc.check_task(config("colorization", demo), sample=2, quick=True)
    assert [c.what for c in report.checks] == ["<wnid>/ folders", "sample"]  # no full count
