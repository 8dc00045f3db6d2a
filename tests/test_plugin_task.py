"""A task from outside the package (examples/plugin_task): its own dataset family, decoder,
metric and YAML, registered by a module listed in `plugins=[...]`, runs end to end; its
registered option is checked like a packaged task's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin_task"
COMMON = ["task=shapes", "plugins=[plugin_shapes]", "model=tiny", "data=demo"]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`sdvicl-bench <args>` in `cwd`, the example's conf/ on $SDVICL_CONFIG_PATH and its
    folder on PYTHONPATH (as a user would run it)."""
    env = {
        **os.environ,
        "SDVICL_CONFIG_PATH": str(EXAMPLE / "conf"),
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "sdvicl_bench", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def dice_of(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice written here from its definition, independently of plugin_shapes.metric."""
    both = np.logical_and(prediction, truth).sum()
    return (
        1.0 if prediction.sum() + truth.sum() == 0 else 2 * both / (prediction.sum() + truth.sum())
    )


def test_the_plugin_task_runs_end_to_end_and_scores_its_pictures(tmp_path):
    done = cli(tmp_path, "run", *COMMON, "limit=2", "sampler.steps=2")
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = next((tmp_path / "results" / "runs" / "shapes").iterdir())
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2
    assert (tmp_path / "data" / "demo" / "shapes" / ".complete").is_file()  # written on use
    for s in samples:
        gt = np.asarray(Image.open(run_dir / s["gt"]).convert("L")) > 127  # white on black
        mask_file = tmp_path / "data" / "demo" / "shapes" / "masks" / f"{s['query']}.png"
        assert np.array_equal(gt, np.asarray(Image.open(mask_file)) > 127)
        picture = Image.open(run_dir / s["pred"]).convert("RGB")
        rgb = np.asarray(picture.resize(gt.shape[::-1], Image.Resampling.NEAREST))
        prediction = rgb.mean(axis=2) > 127  # the decoder's rule at its default threshold
        assert s["scores"]["dice"] == pytest.approx(dice_of(prediction, gt), abs=1e-12)
        assert s["baselines"]["oracle"]["dice"] == pytest.approx(1.0)
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["metrics"]) == ["dice"]
    assert results["config"]["plugins"] == ["plugin_shapes"]


def test_a_registered_option_is_checked(tmp_path):
    done = cli(tmp_path, "validate", *COMMON, "task.options.threshold=300")
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "task.options.threshold=300 is out of range" in lines[0] and "[0, 254]" in lines[0]
    done = cli(tmp_path, "validate", *COMMON, "task.options.treshold=3")
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "Did you mean 'task.options.threshold'?" in lines[0]


def test_an_unimportable_plugin_is_one_line(tmp_path):
    done = cli(tmp_path, "validate", "task=shapes", "plugins=[no_such_plugin]", "data=demo")
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "plugin 'no_such_plugin' cannot be imported" in lines[0]
