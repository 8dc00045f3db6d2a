"""End to end through the CLI: run folder contents, scores recomputed from saved pictures,
resume and extend, and bad input as one line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.metrics.iou import foreground_iou
from sdvicl_bench.tasks import fgseg

runner = CliRunner()
SMOKE = ["task=fgseg", "debug=smoke"]


def invoke(*args):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def run_dir_of(result) -> str:
    return result.output.strip().splitlines()[-1]


@pytest.mark.slow
def test_run_writes_a_run_folder_whose_scores_recompute(workdir):
    result = invoke("run", *SMOKE, "--quiet")
    assert result.exit_code == 0, result.output
    run_dir = workdir / run_dir_of(result)
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    results = json.loads((run_dir / "results.json").read_text())
    episodes = (run_dir / "episodes.jsonl").read_text().splitlines()
    assert len(samples) == 2 and len(episodes) > 2
    assert {"id", "query", "prompts", "seed", "scores", "pred", "gt", "seconds"} <= set(samples[0])
    for s in samples:
        gt = fgseg.binarize(Image.open(run_dir / s["gt"]))
        pred = fgseg.decode(Image.open(run_dir / s["pred"]), (gt.shape[1], gt.shape[0]))
        assert s["scores"]["iou"] == pytest.approx(foreground_iou(pred, gt), abs=1e-12)
        assert s["baselines"]["black"]["iou"] == (1.0 if not gt.any() else 0.0)
    mean = np.mean([s["scores"]["iou"] for s in samples])
    assert results["metrics"]["iou"]["overall"]["mean"] == pytest.approx(mean)
    assert results["n"] == 2 and "random weights" in results["note"]
    assert results["key"] in run_dir.name


@pytest.mark.slow
def test_resume_extend_and_torn_line(workdir):
    first = invoke("run", *SMOKE, "--quiet")
    run_dir = workdir / run_dir_of(first)
    again = invoke("run", *SMOKE, "--quiet")
    assert run_dir_of(again) == run_dir_of(first)  # same key -> same folder
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 2  # nothing redone
    with (run_dir / "samples.jsonl").open("a") as f:
        f.write('{"id": "torn')  # a crash mid-write
    extended = invoke("run", *SMOKE, "limit=3", "--quiet")
    assert run_dir_of(extended) == run_dir_of(first)  # limit is not part of the key
    ids = [json.loads(x)["id"] for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(ids) == 3 and len(set(ids)) == 3
    other = invoke("run", *SMOKE, "seed=1", "--quiet")
    assert run_dir_of(other) != run_dir_of(first)  # a changed config gets a new folder


@pytest.mark.slow
def test_frozen_episodes_are_reused(workdir):
    first = workdir / run_dir_of(invoke("run", *SMOKE, "--quiet"))
    frozen = first / "episodes.jsonl"
    second = invoke(
        "run", *SMOKE, f"episodes={frozen}", "sampler.attention.contrast=1.0", "--quiet"
    )
    a = [json.loads(x) for x in (first / "samples.jsonl").read_text().splitlines()]
    b_dir = workdir / run_dir_of(second)
    b = [json.loads(x) for x in (b_dir / "samples.jsonl").read_text().splitlines()]
    assert [(s["query"], s["prompts"], s["seed"]) for s in a] == [
        (s["query"], s["prompts"], s["seed"]) for s in b
    ]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "task=fgsegg"], "Did you mean 'task=fgseg'"),
        (["run", "model=tiniy"], "Did you mean 'model=tiny'"),
        (["run", "sampler.attention.contrastt=1.0"], "Did you mean 'sampler.attention.contrast'"),
        (["run", "prompts=abc"], "prompts"),
        (["run", "sampler.attention.qkv=XYZ"], "CAB"),
        (["run", "prompts=="], "Malformed override"),
        (["run", "data.root=/no/such/folder", "model=tiny"], "Dataset root not found"),
        (["validate", "sampler.steps=1.5"], "sampler.steps"),
    ],
)
def test_bad_input_is_one_line_exit_2(workdir, args, needle):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert needle in lines[0]


def test_unreachable_model_is_one_line_exit_2(workdir, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = invoke("run", "task=fgseg", "data=demo", "limit=1", "model.hub_id=no-org/no-model")
    assert result.exit_code == 2
    assert "no-org/no-model" in result.output and "model.path" in result.output


@pytest.mark.slow
def test_corrupt_image_is_one_line_exit_2(workdir):
    from sdvicl_bench.data.demo import make_demo_voc

    root = make_demo_voc(workdir / "data" / "demo" / "VOC2012")
    for jpg in (root / "JPEGImages").glob("*.jpg"):
        jpg.write_bytes(b"not a jpeg")
    result = invoke("run", *SMOKE)
    assert result.exit_code == 2 and "not a readable image" in result.output


@pytest.mark.slow
def test_validate_and_ls(workdir):
    result = invoke("validate", "task=fgseg", "prompts=5", "model=tiny")
    assert result.exit_code == 0 and "prompts: 5" in result.output and "name: tiny" in result.output
    listing = invoke("ls")
    assert listing.exit_code == 0 and "fgseg" in listing.output and "sd15-random" in listing.output


@pytest.mark.slow
def test_missing_mask_file_is_one_line_exit_2(workdir):
    from sdvicl_bench.data.demo import make_demo_voc

    root = make_demo_voc(workdir / "data" / "demo" / "VOC2012")
    for png in (root / "SegmentationClassAug").glob("*.png"):
        png.unlink()
    result = invoke("run", *SMOKE)
    lines = [x for x in result.output.strip().splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "SegmentationClassAug" in lines[0]
