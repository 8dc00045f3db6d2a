"""The metrics added for issue 15 item 5, each against a reference (hand cases, torchmetrics or
a naive formula), and end to end: fgseg class mIoU / FB-IoU, semseg per-class and per-image
mIoU, keypoints NE and PCK@alpha, BSDS500 ODS / OIS; results.json carries them and `tables`
lists them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from torchmetrics.classification import BinaryJaccardIndex, MulticlassJaccardIndex
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.metrics import boundaries, confusion, fewshot
from sdvicl_bench.metrics.keypoints import normalized_error, pck, pck_name
from sdvicl_bench.protocols import aggregations
from sdvicl_bench.protocols.pascal import VOC_CLASSES, class_of_key
from sdvicl_bench.report import tables
from sdvicl_bench.tasks import edges, fgseg, keypoints

runner = CliRunner()


def random_masks(n: int, seed: int, shape=(12, 15)) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.random(shape) < 0.4, rng.random(shape) < 0.3) for _ in range(n)]


# ----------------------------------------------------------------------------- fgseg


def test_binary_counts_hand_case():
    pred = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)
    gt = np.array([[1, 0, 0], [1, 0, 0]], dtype=bool)
    # fg: inter 1, union 3; bg (both False): inter 3 (cells 0,2 1,1 1,2), union 5
    assert fewshot.binary_counts(pred, gt) == (1, 3, 3, 5)
    with pytest.raises(ValueError, match="differs"):
        fewshot.binary_counts(pred, gt[:, :2])


def test_pooled_iou_is_torchmetrics_binary_jaccard_accumulated():
    pairs = random_masks(6, seed=1)
    metric = BinaryJaccardIndex()
    for pred, gt in pairs:
        metric.update(torch.from_numpy(pred).int(), torch.from_numpy(gt).int())
    counts = np.array([fewshot.binary_counts(p, g) for p, g in pairs])
    assert fewshot.pooled_iou(counts[:, 0], counts[:, 1]) == pytest.approx(
        float(metric.compute()), abs=1e-6
    )
    assert fewshot.pooled_iou([0, 0], [0, 0]) == 1.0  # nothing to find, nothing found
    assert math.isnan(fewshot.pooled_iou([], []))


def test_class_miou_is_the_mean_of_per_class_torchmetrics_jaccard():
    pairs = random_masks(9, seed=2)
    classes = [3, 1, 3, 2, 1, 3, 2, 2, 1]
    counts = np.array([fewshot.binary_counts(p, g) for p, g in pairs])
    want = {}
    for c in sorted(set(classes)):
        metric = BinaryJaccardIndex()
        for (pred, gt), k in zip(pairs, classes, strict=True):
            if k == c:
                metric.update(torch.from_numpy(pred).int(), torch.from_numpy(gt).int())
        want[c] = float(metric.compute())
    got = fewshot.class_iou(counts, classes)
    assert list(got) == [1, 2, 3]
    assert got == pytest.approx(want, abs=1e-6)
    assert fewshot.class_miou(counts, classes) == pytest.approx(np.mean(list(want.values())))
    # pooling is not the mean of per-episode IoUs
    per_episode = np.mean([fewshot.pooled_iou([c[0]], [c[1]]) for c in counts])
    assert fewshot.class_miou(counts, classes) != pytest.approx(per_episode, abs=1e-9)


def test_fb_iou_is_torchmetrics_macro_jaccard_over_background_and_foreground():
    pairs = random_masks(5, seed=3)
    metric = MulticlassJaccardIndex(num_classes=2, average="macro")
    for pred, gt in pairs:
        metric.update(torch.from_numpy(pred).long(), torch.from_numpy(gt).long())
    counts = np.array([fewshot.binary_counts(p, g) for p, g in pairs])
    assert fewshot.fb_iou(counts) == pytest.approx(float(metric.compute()), abs=1e-6)
    assert math.isnan(fewshot.fb_iou(np.zeros((0, 4))))


def pooled_block(name: str, samples: list[dict], baseline: str | None) -> dict:
    """`aggregations.pooled_block` of fgseg records, as `Context` hands it a Pascal-5i run:
    classes from the `<image>__<class>` query keys, named by VOC_CLASSES."""
    return aggregations.pooled_block(name, samples, baseline, class_of_key, VOC_CLASSES)


def test_pooled_block_per_fold_mean_of_folds_and_class_names():
    def rec(query, group, counts):
        return {"id": query, "query": query, "group": group, "counts": {"None": counts}}

    samples = [
        rec("a__01", "0", [1, 2, 5, 6]),  # aeroplane
        rec("b__01", "0", [3, 4, 1, 2]),  # aeroplane
        rec("c__02", "0", [0, 4, 0, 1]),  # bicycle
        rec("d__06", "1", [2, 2, 8, 8]),  # bus
    ]
    block = pooled_block("class_miou", samples, None)
    fold0 = np.mean([(1 + 3) / (2 + 4), 0 / 4])
    assert block["per_fold"]["0"] == {"mean": pytest.approx(fold0), "n": 3}
    assert block["per_fold"]["1"] == {"mean": 1.0, "n": 1}
    assert block["mean_of_folds"] == pytest.approx((fold0 + 1.0) / 2)
    assert block["overall"]["mean"] == pytest.approx(np.mean([4 / 6, 0.0, 1.0]))
    assert block["per_class"] == pytest.approx({"aeroplane": 4 / 6, "bicycle": 0.0, "bus": 1.0})
    fb = pooled_block("fb_iou", samples, None)
    assert fb["per_fold"]["0"]["mean"] == pytest.approx((4 / 10 + 6 / 9) / 2)
    # a record from before the counts were kept: NaN, not an error
    del samples[1]["counts"]
    assert math.isnan(pooled_block("class_miou", samples, None)["overall"]["mean"])
    assert math.isnan(pooled_block("fb_iou", samples, "black")["mean_of_folds"])


# ----------------------------------------------------------------------------- semseg


def naive_image_miou(pred: np.ndarray, gt: np.ndarray, classes: int = 19) -> float:
    valid = gt != 255
    ious = []
    for c in range(classes):
        p, g = (pred == c) & valid, (gt == c) & valid
        union = np.count_nonzero(p | g)
        if union:
            ious.append(np.count_nonzero(p & g) / union)
    return float(np.mean(ious)) if ious else float("nan")


def test_per_image_miou_against_a_naive_formula():
    rng = np.random.default_rng(4)
    maps = []
    for _ in range(4):
        gt = rng.integers(0, 5, (10, 12))
        gt[rng.random(gt.shape) < 0.2] = 255
        pred = np.where(rng.random(gt.shape) < 0.5, gt, rng.integers(0, 6, gt.shape))
        pred[rng.random(gt.shape) < 0.1] = 255  # predicted black
        maps.append((pred, gt))
    confs = [confusion.confusion_matrix(p, g) for p, g in maps]
    got = confusion.per_image_miou(confs)
    assert got == pytest.approx([naive_image_miou(p, g) for p, g in maps])


def test_per_image_class_iou_hand_case():
    gt1, pred1 = np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]])  # IoU 0: 1/2, 1: 2/3
    gt2, pred2 = np.array([[0, 0, 0, 0]]), np.array([[0, 0, 0, 0]])  # IoU 0: 1, 1 absent
    confs = [confusion.confusion_matrix(pred1, gt1), confusion.confusion_matrix(pred2, gt2)]
    per_class = confusion.per_image_class_iou(confs)
    assert per_class[0] == pytest.approx((0.5 + 1.0) / 2)
    assert per_class[1] == pytest.approx(2 / 3)  # only the image where class 1 is present
    assert np.isnan(per_class[2:]).all()


# ----------------------------------------------------------------------------- keypoints


def test_normalized_error_hand_case():
    gt = np.array([[10.0, 10.0], [50.0, 20.0], [5.0, 5.0]])
    pred = np.array([[13.0, 14.0], [np.nan, np.nan], [90.0, 40.0]])
    visible = np.array([True, True, False])
    size = (100, 50)  # W, H
    first = math.hypot(3 / 100, 4 / 50)
    second = math.hypot((49.5 - 50) / 100, (24.5 - 20) / 50)  # missing -> image centre
    assert normalized_error(pred, gt, visible, size) == pytest.approx((first + second) / 2)
    assert math.isnan(normalized_error(pred, gt, np.zeros(3, bool), size))


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2])
def test_pck_thresholds_against_a_naive_loop(alpha):
    rng = np.random.default_rng(5)
    gt = rng.uniform(0, 80, (8, 2))
    pred = gt + rng.normal(0, 8, (8, 2))
    pred[2] = np.nan
    visible = rng.random(8) < 0.8
    size = (80, 60)
    right = [
        np.isfinite(pred[k]).all() and math.dist(pred[k], gt[k]) <= alpha * 80
        for k in range(8)
        if visible[k]
    ]
    assert pck(pred, gt, visible, size, alpha) == pytest.approx(np.mean(right))
    assert pck_name(alpha) == {0.05: "pck@0.05", 0.1: "pck@0.1", 0.2: "pck@0.2"}[alpha]


def test_bad_pck_threshold_is_one_line_exit_2(workdir):
    result = runner.invoke(
        app, ["validate", "task=keypoints", "data=demo", "task.options.pck_thresholds=[0,0.1]"]
    )
    assert result.exit_code == 2
    lines = [x for x in result.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "pck_thresholds" in lines[0] and "Fix:" in lines[0]


# ----------------------------------------------------------------------------- BSDS


def line_image(rows: list[int], shape=(100, 100), cols=slice(20, 40)) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for r in rows:
        out[r, cols] = True
    return out


def f_at(counts: np.ndarray, k: int = 0) -> float:
    return float(boundaries.rpf(counts[k])[2])


def test_boundary_f_hand_cases():
    gt = line_image([50])
    assert boundaries.max_dist_px(gt.shape) == pytest.approx(0.0075 * math.hypot(100, 100))
    perfect = boundaries.boundary_counts(gt.astype(float), gt)
    assert (perfect == [20, 20, 20, 20]).all() and f_at(perfect) == 1.0
    shifted = boundaries.boundary_counts(line_image([51]).astype(float), gt)  # 1 px < 1.06
    assert f_at(shifted) == 1.0
    far = boundaries.boundary_counts(line_image([53]).astype(float), gt)  # 3 px > 1.06
    assert f_at(far) == 0.0
    empty = boundaries.boundary_counts(np.zeros(gt.shape), gt)
    assert (empty == [0, 20, 0, 0]).all() and f_at(empty) == 0.0
    # partial: half the line found, plus 10 false pixels far away -> R = P = F = 1/2
    half = line_image([50], cols=slice(20, 30)) | line_image([80], cols=slice(60, 70))
    counts = boundaries.boundary_counts(half.astype(float), gt)
    assert (counts[0] == [10, 20, 10, 20]).all() and f_at(counts) == pytest.approx(0.5)
    # two annotators, the prediction is one of them: R = 20 / 40, P = 1, F = 2/3
    two = np.stack([gt, line_image([10])])
    counts = boundaries.boundary_counts(gt.astype(float), two)
    assert (counts[0] == [20, 40, 20, 20]).all() and f_at(counts) == pytest.approx(2 / 3)


def test_matching_is_one_to_one():
    gt = line_image([50])
    double = line_image([50, 51])  # both rows within tolerance of the one GT row
    counts = boundaries.boundary_counts(double.astype(float), gt, thin=False)
    assert (counts[0] == [20, 20, 20, 40]).all()  # P = 1/2: each GT pixel matches once


def test_thresholds_grade_the_map():
    gt = line_image([50])
    faint = gt * 0.3  # found below 0.3, gone above
    counts = boundaries.boundary_counts(faint, gt)
    t = boundaries.thresholds()
    assert len(t) == 99 and t[0] == pytest.approx(0.01) and t[-1] == pytest.approx(0.99)
    f = boundaries.rpf(counts)[2]
    assert (f[t <= 0.3] == 1.0).all() and (f[t > 0.3] == 0.0).all()


def test_match_count_is_the_maximum_matching():
    rng = np.random.default_rng(6)
    for _ in range(5):
        pred, gt = rng.random((14, 14)) < 0.15, rng.random((14, 14)) < 0.15
        tol = 1.5
        matched_pred, matched_gt = boundaries.match_boundaries(pred, gt, tol)
        p, g = np.argwhere(pred), np.argwhere(gt)
        dist = np.linalg.norm(p[:, None, :] - g[None, :, :], axis=2)
        cost = np.where(dist <= tol, 0.0, 1.0)
        rows, cols = linear_sum_assignment(cost)
        best = int((cost[rows, cols] == 0).sum())
        assert matched_pred.sum() == matched_gt.sum() == best
        assert not (matched_pred & ~pred).any() and not (matched_gt & ~gt).any()


def test_ods_and_ois_hand_case():
    image1 = np.array([[10, 10, 10, 20], [5, 10, 5, 5]])  # F 2/3 at both thresholds
    image2 = np.array([[0, 10, 0, 10], [8, 10, 8, 10]])  # F 0, then 0.8
    # ODS: summed counts per threshold, interpolated between the two (findBestRPF)
    one = boundaries.ods(image1[None])
    assert one == pytest.approx(0.75, abs=1e-4) and one < 0.75  # R = P = 0.75 halfway
    # OIS: image 1 at its first best threshold, image 2 at its second, counts summed
    r, p = 18 / 20, 18 / 30
    assert boundaries.ois(np.stack([image1, image2])) == pytest.approx(2 * r * p / (r + p))
    assert math.isnan(boundaries.ods(np.zeros((0, 99, 4))))


# ----------------------------------------------------------------------------- end to end


def run_task(*args) -> tuple:
    result = runner.invoke(app, ["run", *args, "debug=smoke", "limit=3", "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    results = json.loads((run_dir / "results.json").read_text())
    return run_dir, samples, results


def table_metrics(run_dir) -> set[str]:
    df = tables.build_table(tables.load_runs([run_dir]))
    return set(df[df["source"] == "ours"]["metric"])


def test_fgseg_class_miou_and_fb_iou_from_saved_pictures(workdir):
    run_dir, samples, results = run_task("task=fgseg")
    root = Path(results["config"]["data"]["root"]) / "VOC2012" / "SegmentationClassAug"
    counts = []
    for s in samples:
        gt = fgseg.binarize(Image.open(run_dir / s["gt"]))
        pred = fgseg.decode(Image.open(run_dir / s["pred"]), (gt.shape[1], gt.shape[0]))
        # HSNet's rule (the default): the label's void (255) pixels leave both masks
        void = np.asarray(Image.open(root / f"{s['query'].partition('__')[0]}.png")) == 255
        assert void.shape == gt.shape
        counts.append(fewshot.binary_counts(pred, gt, void))
        assert s["counts"]["None"] == list(counts[-1])
        assert set(s["counts"]) == {"None", "black", "copy_b", "all_objects", "oracle"}
    classes = [int(s["query"].rpartition("__")[2]) for s in samples]
    block = results["metrics"]["class_miou"]
    assert block["overall"]["mean"] == pytest.approx(fewshot.class_miou(np.array(counts), classes))
    assert set(block["per_class"]) <= {"aeroplane", "bicycle", "bird", "boat", "bottle"}
    fb = results["metrics"]["fb_iou"]["mean_of_folds"]
    assert fb == pytest.approx(fewshot.fb_iou(np.array(counts)))  # one fold in the smoke run
    assert results["metrics"]["iou"]["overall"]["n"] == 3  # the per-episode IoU stays
    assert {"class_miou", "fb_iou"} <= set(results["baselines"]["copy_b"])
    assert {"iou", "class_miou", "fb_iou"} <= table_metrics(run_dir)
    # shown x100 like iou, though the task YAML does not list them (the run key is unchanged)
    assert results["config"]["task"]["metrics"]["class_miou"]["scale"] == 100
    df = tables.build_table(tables.load_runs([run_dir]))
    row = df[(df["source"] == "ours") & (df["metric"] == "class_miou")].iloc[0]
    assert row["value"] == pytest.approx(100 * block["overall"]["mean"])


def test_semseg_per_class_and_per_image_miou(workdir):
    run_dir, samples, results = run_task("task=semseg", "task.options.miou=per_image")
    from sdvicl_bench.tasks import semseg

    opts = results["config"]["task"]["options"]  # data=demo: spread palette, its 7 classes
    palette, classes = opts["palette"], opts.get("classes")
    values = []
    for s in samples:
        gt_pic = Image.open(run_dir / s["gt"])
        gt = semseg.decode(gt_pic, gt_pic.size, palette, classes)
        pred = semseg.decode(Image.open(run_dir / s["pred"]), gt_pic.size, palette, classes)
        values.append(naive_image_miou(pred, gt))
    block = results["metrics"]["miou"]
    assert block["overall"]["mean"] == pytest.approx(np.nanmean(values))
    assert "low" in block["overall"]  # a per-image mean has a bootstrap interval
    assert len(block["per_class"]) == 19 and "road" in block["per_class"]
    assert {"miou", "accuracy"} <= table_metrics(run_dir)


def test_keypoints_ne_and_pck_thresholds_from_saved_pictures(workdir):
    from sdvicl_bench.data.deepfashion import FLDDataset

    run_dir, samples, results = run_task("task=keypoints", "task.options.pck_thresholds=[0.1,0.3]")
    fld = FLDDataset(workdir / "data" / "demo" / "deepfashion")
    records = {r.image: r for r in fld.all_records()}
    for s in samples:
        rec = records[s["query"]]
        size = fld.image(rec).size
        pred = keypoints.locate(Image.open(run_dir / s["pred"]), rec.names, size)
        want = normalized_error(pred, rec.xy, rec.visible, size)
        assert s["scores"]["ne"] == pytest.approx(want, nan_ok=True)
        assert s["scores"]["pck@0.3"] == pytest.approx(
            pck(pred, rec.xy, rec.visible, size, 0.3), nan_ok=True
        )
        assert s["scores"]["pck@0.1"] == s["scores"]["pck"]
    assert list(results["metrics"]) == ["pck", "mse", "ne", "pck@0.1", "pck@0.3"]
    specs = results["config"]["task"]["metrics"]
    assert specs["ne"] == {"higher_is_better": False} and specs["pck@0.3"]["scale"] == 100
    assert specs["mse"] == {"function": "keypoint_mse", "higher_is_better": False}  # YAML kept
    assert {"ne", "pck@0.1", "pck@0.3"} <= table_metrics(run_dir)


def test_bsds_ods_ois_from_saved_pictures(workdir):
    from sdvicl_bench.data.bsds import BSDSDataset

    run_dir, samples, results = run_task("task=edges", "task.options.source=bsds500")
    bsds = BSDSDataset(workdir / "data" / "demo" / "bsds")
    counts = []
    for s in samples:
        split, _, image_id = s["query"].partition("/")
        maps = bsds.annotator_boundaries(image_id, split)
        assert maps.dtype == bool and maps.shape[0] >= 2
        np.testing.assert_allclose(maps.mean(axis=0), bsds.boundaries(image_id, split))
        pred = edges.decode(Image.open(run_dir / s["pred"]), (maps.shape[2], maps.shape[1]))
        counts.append(boundaries.boundary_counts(pred, maps))
        assert s["boundary_counts"]["None"] == counts[-1].tolist()
    counts = np.stack(counts)
    assert results["metrics"]["ods"]["overall"]["mean"] == pytest.approx(boundaries.ods(counts))
    assert results["metrics"]["ois"]["overall"]["mean"] == pytest.approx(boundaries.ois(counts))
    assert results["baselines"]["black"]["ods"]["overall"]["mean"] == 0.0
    assert {"mse", "ods", "ois"} <= table_metrics(run_dir)


def test_edges_on_voc_keep_mse_only(workdir):
    _, samples, results = run_task("task=edges")
    assert list(results["metrics"]) == ["mse"] and "boundary_counts" not in samples[0]
