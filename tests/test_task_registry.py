"""A task is one YAML plus one decoder module: the registry resolves the YAML's names, and a
task added outside the package (tests/plugins: a YAML found through $SDVICL_CONFIG_PATH,
its decoder a dotted module path) runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdvicl_bench.cli import app, choices
from sdvicl_bench.config import TaskConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.metrics.iou import foreground_iou
from sdvicl_bench.protocols import registry, task_names
from tests.cli_helpers import error_line
from tests.plugins import inverted

runner = CliRunner()
PLUGIN_CONF = Path(__file__).resolve().parent / "plugins" / "conf"


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(registry.CONFIG_PATH_ENV, str(PLUGIN_CONF))
    return tmp_path


def one_line_error(*args: str) -> str:
    return error_line(runner.invoke(app, list(args)))


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("override", "wanted"),
    [
        ("task.decoder=fgsge", "Did you mean 'fgseg'?"),
        ("task.dataset=pascal5", "Did you mean 'pascal5i'?"),
        ("++task.metrics.iuo={higher_is_better:true}", "Did you mean 'iou'?"),
        ("++task.metrics.iou.aggregation=maen", "Did you mean 'mean'?"),
        ("++task.metrics.iou.higher_is_beter=true", "Did you mean 'higher_is_better'?"),
    ],
)
def test_unknown_names_are_one_line_with_did_you_mean(workdir, override, wanted):
    line = one_line_error("validate", "task=fgseg", "data=demo", override)
    assert line.startswith("error: ") and wanted in line and "Fix:" in line


def test_a_decoder_module_must_import_and_have_render_gt_and_decode():
    with pytest.raises(ConfigError, match="cannot be imported"):
        registry.resolve_decoder("tests.plugins.nowhere")
    with pytest.raises(ConfigError, match="has no render_gt or decode"):
        registry.resolve_decoder("tests.plugins")  # a package without the functions
    assert registry.resolve_decoder("tests.plugins.inverted") is inverted
    assert registry.resolve_decoder("tests.plugins:inverted") is inverted


def test_every_packaged_task_resolves_and_each_metric_once():
    """Each packaged YAML's names resolve; per-sample metrics have a function, set-level
    ones an aggregation; pck@* expands over the thresholds, `when` entries follow options."""
    import yaml

    assert task_names() == sorted(["colorization", "det", "edges", "fgseg", "keypoints", "semseg"])
    for name in task_names():
        raw = yaml.safe_load((registry.TASK_CONF / f"{name}.yaml").read_text())
        task = TaskConfig(**{k: v for k, v in raw.items() if k != "folds"})
        registry.resolve_dataset(task.dataset)
        registry.resolve_decoder(task.decoder)
        for metric in registry.resolve_metrics(task):
            assert (metric.function is None) != (metric.aggregation is None), metric.name
    kp = TaskConfig(name="keypoints", dataset="deepfashion-fld", decoder="keypoints")
    kp = TaskConfig(**{**kp.__dict__, "metrics": registry.current_metrics(kp)})
    names = [m.name for m in registry.resolve_metrics(kp)]
    assert names == ["pck", "mse", "ne", "pck@0.05", "pck@0.1", "pck@0.2"]
    edges = yaml.safe_load((registry.TASK_CONF / "edges.yaml").read_text())["metrics"]
    for source, wanted in (("voc", ["mse"]), ("bsds500", ["mse", "ods", "ois"])):
        task = TaskConfig(name="edges", metrics=edges, options={"source": source})
        assert [m.name for m in registry.resolve_metrics(task)] == wanted


def test_a_config_from_before_named_aggregations_gets_the_packaged_metrics():
    """run.json of an older run lists `miou` without its aggregation: it is scored as the
    task is now (the packaged YAML), not as a per-sample mean."""
    old = TaskConfig(
        name="semseg",
        dataset="cityscapes",
        decoder="semseg",
        metrics={"miou": {"higher_is_better": True, "scale": 100}},
        options={"palette": "official"},
    )
    resolved = {m.name: m for m in registry.resolve_metrics(old)}
    assert set(resolved) == {"miou", "accuracy"}
    assert resolved["miou"].aggregation is registry.AGGREGATIONS["confusion_miou"]


# ----------------------------------------------------------------------------- a new task


def test_a_task_yaml_in_the_config_path_is_a_choice(workdir):
    assert "fgseg_inverted" in choices("task")
    line = one_line_error("validate", "task=fgseg_invertd", "data=demo")
    assert "Did you mean 'task=fgseg_inverted'?" in line
    line = one_line_error("validate", "task=fgseg_inverted", "task.foldz=[0]", "data=demo")
    assert "Unknown config key 'task.foldz'" in line and "Did you mean 'task.folds'?" in line


@pytest.mark.slow
def test_a_task_added_as_one_yaml_and_one_decoder_runs_end_to_end(workdir):
    result = runner.invoke(
        app,
        ["run", "task=fgseg_inverted", "model=tiny", "data=demo", "limit=2", "sampler.steps=2"],
    )
    assert result.exit_code == 0, result.output
    run_dir = next((workdir / "results" / "runs" / "fgseg_inverted").iterdir())
    assert run_dir.parent.name == "fgseg_inverted"
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    results = json.loads((run_dir / "results.json").read_text())
    assert len(samples) == 2 and list(results["metrics"]) == ["iou"]
    assert list(results["baselines"]) == ["black", "copy_b", "all_objects", "oracle"]
    for s in samples:
        gt_picture = np.asarray(Image.open(run_dir / s["gt"]).convert("RGB"))
        assert gt_picture[0, 0].tolist() == [255, 255, 255]  # background drawn white
        gt = gt_picture.sum(axis=2) < 383  # the class mask, independently of the decoder
        pred = inverted.decode(Image.open(run_dir / s["pred"]), gt)
        assert s["scores"]["iou"] == pytest.approx(foreground_iou(pred, gt))
        assert s["baselines"]["black"]["iou"] == pytest.approx(gt.mean())  # all foreground
    assert (run_dir / "grid.png").is_file()
