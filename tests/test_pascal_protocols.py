"""fgseg and det end to end on demo data: scores from saved pictures, baselines, clip_knn
retrieval against a brute-force cosine reference, episode cycling, reference numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.metrics.iou import foreground_iou
from sdvicl_bench.report.reference import reference_numbers, references_for
from sdvicl_bench.tasks import det, fgseg

runner = CliRunner()


def run(*args) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args, "--quiet"])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout.strip().splitlines()[-1]


def samples_of(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_det_run_scores_recompute_from_pictures(workdir):
    code, out = run("task=det", "debug=smoke", "limit=3")
    assert code == 0, out
    run_dir = workdir / out
    samples = samples_of(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert len(samples) == 3 and set(results["baselines"]) == {"black", "copy_b", "oracle"}
    for s in samples:
        gt = fgseg.binarize(Image.open(run_dir / s["gt"]))
        ys, xs = np.nonzero(gt)  # the GT picture is one filled box
        assert gt[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
        pred = det.decode(Image.open(run_dir / s["pred"]), (gt.shape[1], gt.shape[0]))
        assert s["scores"]["iou"] == pytest.approx(foreground_iou(pred, gt), abs=1e-12)
        assert s["baselines"]["black"]["iou"] == 0.0
        assert s["group"] in {"0", "1", "2", "3"}
    per_fold = results["metrics"]["iou"]["per_fold"]
    assert sum(v["n"] for v in per_fold.values()) == 3


def save_tiny_clip(folder):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=224,
        patch_size=32,
    )
    model = CLIPVisionModel(cfg).eval()
    model.save_pretrained(folder)
    return model


@pytest.mark.slow
def test_clip_knn_run_matches_brute_force(workdir):
    from sdvicl_bench.data.clip_retrieval import clip_preprocess
    from sdvicl_bench.data.pascal import VOCDataset, read_split_list

    model = save_tiny_clip(workdir / "clip")
    code, out = run(
        "task=fgseg",
        "debug=smoke",
        "retrieval=clip_knn",
        "task.folds=[1]",
        f"retrieval.model_path={workdir / 'clip'}",
        f"retrieval.cache_dir={workdir / 'c'}",
    )
    assert code == 0, out
    episodes = [json.loads(x) for x in (workdir / out / "episodes.jsonl").read_text().splitlines()]
    root = workdir / "data" / "demo" / "VOC2012"
    voc = VOCDataset(root)
    pool = [e.key for e in read_split_list(root / "splits/pascal5i/trn/fold1.txt")]

    def feat(key):
        with torch.no_grad():
            x = clip_preprocess(voc.image(key.rpartition("__")[0]))[None]
            f = model(pixel_values=x).pooler_output[0].double().numpy()
        return f / np.linalg.norm(f)

    pool_feats = {k: feat(k) for k in pool}
    for ep in episodes[:3]:
        q = feat(ep["query"])
        qid = ep["query"].rpartition("__")[0]
        best = max(
            (k for k in pool if k.rpartition("__")[0] != qid),
            key=lambda k: (float(pool_feats[k] @ q), [-ord(c) for c in k]),
        )
        assert ep["prompts"][0].rpartition("__")[0] == best.rpartition("__")[0]


@pytest.mark.slow
def test_episode_count_cycles_with_new_draws(workdir):
    code, out = run("task=fgseg", "debug=smoke", "task.folds=[0]", "episodes=200", "prompts=2")
    assert code == 0, out
    episodes = [json.loads(x) for x in (workdir / out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 200 and len({e["id"] for e in episodes}) == 200
    first = {e["query"]: e["prompts"] for e in episodes if "-c" not in e["id"]}
    again = [e for e in episodes if e["id"].endswith("-c1")]
    assert again and any(first[e["query"]] != e["prompts"] for e in again)
    assert all(len(e["prompts"]) == 2 for e in episodes)


def test_episode_count_needs_a_random_retriever(workdir):
    result = runner.invoke(
        app, ["run", "task=fgseg", "debug=smoke", "retrieval=clip_knn", "episodes=10"]
    )
    assert result.exit_code == 2 and "retrieval=random" in result.output


def test_reference_numbers_are_consistent():
    refs = reference_numbers()
    assert {"fgseg", "det", "semseg", "keypoints", "edges", "colorization"} <= set(refs)
    for row in references_for("fgseg"):
        if "folds" in row:  # the stated mean is the mean of the stated folds
            assert np.mean(row["folds"]) == pytest.approx(row["value"], abs=0.006)
    assert {r["value"] for r in references_for("det")} == {25.45, 26.84, 28.22}
    assert all(r["protocol_differs"] for r in references_for("colorization"))
