"""semseg, keypoints and edges end to end on demo data with the tiny model: recorded
scores recompute from the saved pictures, baselines appear, set-level mIoU is one matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.metrics import confusion
from sdvicl_bench.metrics.keypoints import normalized_mse, pck
from sdvicl_bench.metrics.mse import mse
from sdvicl_bench.tasks import edges, keypoints, semseg

runner = CliRunner()


def run_task(workdir, *args):
    result = runner.invoke(app, ["run", *args, "debug=smoke", "limit=3", "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = workdir / result.stdout.strip().splitlines()[-1]
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    results = json.loads((run_dir / "results.json").read_text())
    assert len(samples) == 3 and results["n"] == 3
    return run_dir, samples, results


@pytest.mark.slow
def test_semseg_dataset_miou_recomputes(workdir):
    run_dir, samples, results = run_task(workdir, "task=semseg", "task.options.palette=spread")
    conf = np.zeros((19, 20), dtype=np.int64)
    classes = results["config"]["task"]["options"]["classes"]  # data=demo declares its 7
    assert classes == [0, 1, 2, 8, 10, 11, 13]
    for s in samples:
        gt_pic = Image.open(run_dir / s["gt"])
        gt = semseg.decode(gt_pic, gt_pic.size, "spread", classes)
        pred = semseg.decode(Image.open(run_dir / s["pred"]), gt_pic.size, "spread", classes)
        assert set(np.unique(pred).tolist()) <= {*classes, 255}
        conf += confusion.confusion_matrix(pred, gt)
    assert results["metrics"]["miou"]["overall"]["mean"] == pytest.approx(confusion.miou(conf))
    acc = results["metrics"]["accuracy"]["overall"]["mean"]
    assert acc == pytest.approx(confusion.pixel_accuracy(conf))
    assert set(results["baselines"]) == {"black", "copy_b", "oracle"}
    assert results["baselines"]["black"]["accuracy"]["overall"]["mean"] == 0.0


@pytest.mark.slow
def test_keypoints_scores_recompute(workdir):
    from sdvicl_bench.data.deepfashion import FLDDataset

    run_dir, samples, results = run_task(workdir, "task=keypoints")
    fld = FLDDataset(workdir / "data" / "demo" / "deepfashion")
    records = {r.image: r for r in fld.all_records()}
    for s in samples:
        rec = records[s["query"]]
        size = fld.image(rec).size
        pred = keypoints.locate(Image.open(run_dir / s["pred"]), rec.names, size)
        assert s["scores"]["pck"] == pytest.approx(
            pck(pred, rec.xy, rec.visible, size), nan_ok=True
        )
        want = normalized_mse(pred, rec.xy, rec.visible, size)
        assert s["scores"]["mse"] == pytest.approx(want, nan_ok=True)
        assert s["baselines"]["black"]["pck"] in (0.0,) or np.isnan(s["baselines"]["black"]["pck"])
        assert s["group"] in {"upper", "lower", "full"}
    assert set(results["baselines"]) == {"black", "copy_b", "oracle"}


@pytest.mark.slow
def test_edges_scores_recompute(workdir):
    run_dir, samples, results = run_task(workdir, "task=edges")
    for s in samples:
        gt = edges.grey_level(Image.open(run_dir / s["gt"]))
        pred = edges.decode(Image.open(run_dir / s["pred"]), (gt.shape[1], gt.shape[0]))
        assert s["scores"]["mse"] == pytest.approx(mse(pred, gt), rel=1e-6)
        assert s["baselines"]["black"]["mse"] == pytest.approx(float(gt.mean()), rel=1e-6)
    assert set(results["baselines"]) == {"black", "copy_b", "oracle"}


@pytest.mark.parametrize("task", ["semseg", "keypoints", "edges"])
def test_missing_root_is_one_line_exit_2(workdir, task):
    result = runner.invoke(app, ["run", f"task={task}", "model=tiny", "data.root=/no/such"])
    assert result.exit_code == 2
    lines = [x for x in result.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "not found" in lines[0] and "Traceback" not in result.output


@pytest.mark.slow
def test_colorization_scores_and_baselines(workdir):
    from sdvicl_bench.metrics.fid import default_weights_path
    from sdvicl_bench.metrics.mse import mse_vp

    fid = default_weights_path() is not None
    run_dir, samples, results = run_task(workdir, "task=colorization", f"task.options.fid={fid}")
    for s in samples:
        gt = np.asarray(Image.open(run_dir / s["gt"]).convert("RGB"), dtype=np.float32) / 255
        pred = (
            np.asarray(
                Image.open(run_dir / s["pred"])
                .convert("RGB")
                .resize((gt.shape[1], gt.shape[0]), Image.Resampling.BICUBIC),
                dtype=np.float32,
            )
            / 255
        )
        assert s["scores"]["mse_vp"] == pytest.approx(mse_vp(pred, gt), rel=0.05)
        grey = gt @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        assert s["baselines"]["grey"]["mse"] == pytest.approx(
            float(((grey[..., None] - gt) ** 2).mean()), rel=0.05
        )
    assert set(results["baselines"]) == {"black", "copy_b", "grey", "oracle"}
    value = results["metrics"]["fid"]["overall"]["mean"]
    assert (value > 0) if fid else np.isnan(value)


@pytest.mark.slow
def test_colorization_from_a_hub_dataset(workdir, monkeypatch):
    datasets = pytest.importorskip("datasets")
    from sdvicl_bench.data import imagenet_hub

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(6)]
    table = datasets.Dataset.from_dict({"image": images, "label": [0, 0, 1, 1, 2, 2]})
    monkeypatch.setattr(
        imagenet_hub, "load_hub_imagenet", lambda *a, **k: imagenet_hub.HubImageDataset(table)
    )
    run_dir, samples, _ = run_task(
        workdir,
        "task=colorization",
        "task.options.source=hub",
        "task.options.fid=false",
        "data=real",
        "retrieval=random",
    )
    assert {s["query"].split("/")[0] for s in samples} <= {"0000", "0001", "0002"}
    assert Image.open(run_dir / samples[0]["gt"]).size == (48, 40)


@pytest.mark.slow
def test_edges_on_bsds500_scores_against_mean_boundaries(workdir):
    from sdvicl_bench.data.bsds import BSDSDataset

    run_dir, samples, _ = run_task(workdir, "task=edges", "task.options.source=bsds500")
    bsds = BSDSDataset(workdir / "data" / "demo" / "bsds")
    for s in samples:
        split, _, image_id = s["query"].partition("/")
        gt = bsds.boundaries(image_id, split)
        pred = edges.decode(Image.open(run_dir / s["pred"]), (gt.shape[1], gt.shape[0]))
        assert s["scores"]["mse"] == pytest.approx(mse(pred, gt), rel=1e-6)
        assert split == "test"
