"""The method axis: other in-context learners on the very same episodes, through the same
run, resume, merge, rescore and tables paths as SD-VICL (docs/METHODS.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdvicl_bench import methods, registry
from sdvicl_bench.cli import app, load_config
from sdvicl_bench.config import MethodConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.protocols import make_protocol
from sdvicl_bench.report.tables import build_table, load_runs
from tests.cli_helpers import error_line

runner = CliRunner()
DEMO = ["task=fgseg", "data=demo", "limit=3", "sampler.steps=3", "--quiet"]
TINY_METHODS = ("seggpt-tiny", "visualcloze-tiny")


def run(*args: str) -> Path:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return Path(result.stdout.strip().splitlines()[-1])


def records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_method_answers_the_very_same_episodes(workdir):
    sdvicl = run(*DEMO, "model=tiny")
    for name in TINY_METHODS:
        other = run(*DEMO, f"method={name}")
        assert other != sdvicl
        assert (other / "episodes.jsonl").read_bytes() == (sdvicl / "episodes.jsonl").read_bytes()
        mine, theirs = records(other), records(sdvicl)
        assert [r["id"] for r in mine] == [r["id"] for r in theirs]
        # same queries, prompts and truth: every baseline but the oracle scores the same
        for a, b in zip(mine, theirs, strict=True):
            assert {k: v for k, v in a["baselines"].items() if k != "oracle"} == {
                k: v for k, v in b["baselines"].items() if k != "oracle"
            }
        results = json.loads((other / "results.json").read_text())
        assert results["method"]["name"] == name and results["method"]["kind"] == "random"
        assert f"method={name} has random weights" in results["note"]
        assert results["config"]["method"]["name"] == name
    frozen = run(*DEMO, "method=seggpt-tiny", f"episodes={sdvicl / 'episodes.jsonl'}")
    assert [r["id"] for r in records(frozen)] == [r["id"] for r in records(sdvicl)]


@pytest.mark.slow
def test_a_method_run_resumes_merges_and_rescores(workdir):
    args = ["task=fgseg", "data=demo", "method=seggpt-tiny", "--quiet"]
    first = run(*args, "limit=2")
    again = run(*args, "limit=3")
    assert again == first and len(records(first)) == 3  # extended, nothing redone
    before = json.loads((first / "results.json").read_text())
    result = runner.invoke(app, ["rescore", str(first), "--quiet"])
    assert result.exit_code == 0, result.output
    after = json.loads((first / "results.json").read_text())
    assert after["metrics"] == before["metrics"] and after["baselines"] == before["baselines"]
    folders = [run(*args, "limit=4", f"shard={i}/2", f"output_dir=node{i}") for i in (0, 1)]
    merged = runner.invoke(app, ["merge", *map(str, folders), "--quiet"])
    assert merged.exit_code == 0, merged.output
    assert sorted(r["id"] for r in records(folders[0])) == sorted(
        json.loads(x)["id"] for x in (folders[0] / "episodes.jsonl").read_text().splitlines()[:4]
    )
    shutil.rmtree(folders[1])


@pytest.mark.slow
def test_tables_put_the_methods_side_by_side(workdir):
    sdvicl = run(*DEMO, "model=tiny")
    seggpt = run(*DEMO, "method=seggpt-tiny")
    table = build_table(load_runs([sdvicl, seggpt]))
    ours = table[(table.task == "fgseg") & (table.source.isin(["ours", "method"]))]
    labels = list(dict.fromkeys(ours.method))
    assert labels[0].startswith("SD-VICL (tiny, n=1, same_class)")
    assert any(label.startswith("SegGPT (seggpt-tiny, n=1, same_class)") for label in labels)
    assert set(ours[ours.method.str.startswith("SegGPT")].source) == {"method"}
    shown = runner.invoke(app, ["tables", str(workdir / "results" / "runs")])
    assert shown.exit_code == 0, shown.output
    assert "SegGPT (seggpt-tiny" in shown.output and "SD-VICL (tiny" in shown.output


def test_the_run_key_names_the_method_not_the_unused_sampler(workdir):
    from sdvicl_bench.evaluate import _key_of

    def key(*overrides: str) -> str:
        cfg = load_config(["task=fgseg", "data=demo", "limit=2", *overrides])
        protocol = make_protocol(cfg)
        return _key_of(cfg, protocol, protocol.episodes())[0]

    seggpt = key("method=seggpt-tiny")
    assert key("method=seggpt-tiny", "sampler.steps=7", "model=tiny") == seggpt
    assert key("method=seggpt-tiny", "method.seed=1") != seggpt
    assert key("method=visualcloze-tiny") != seggpt
    assert key("model=tiny") != seggpt


def test_the_oracle_goes_through_the_methods_own_side(workdir):
    from PIL import Image

    for name in TINY_METHODS:
        cfg = load_config(["task=fgseg", "data=demo", f"method={name}"])
        side = methods.output_side(cfg)
        picture = make_protocol(cfg).oracle_picture(Image.new("RGB", (96, 80), "white"))
        assert picture.size == (side, side)
    cfg = load_config(["task=fgseg", "data=demo", "model=tiny"])
    assert methods.output_side(cfg) == cfg.sampler.resolution


def test_unknown_method_and_option_are_one_line_errors(workdir):
    line = error_line(runner.invoke(app, ["run", "task=fgseg", "method=segpt"]))
    assert "method" in line and "seggpt" in line
    with pytest.raises(ConfigError, match="Did you mean"):
        MethodConfig(name="segpt")
    line = error_line(
        runner.invoke(app, ["run", "task=fgseg", "method=seggpt-tiny", "+method.options.nope=1"])
    )
    assert "method.options.nope" in line and "Fix" in line


def test_ablate_refuses_another_method_in_one_line(workdir):
    result = runner.invoke(app, ["ablate", "component=adain", "method=seggpt-tiny", "data=demo"])
    assert "method=seggpt-tiny" in error_line(result)


def test_ls_lists_each_method_with_tasks_licence_and_gpu_hours(workdir):
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 0, result.output
    for name in registry.names("method"):
        assert f"  {name} " in result.output
    assert "trained for: fgseg, semseg" in result.output  # SegGPT: segmentation
    assert "GPU-h" in result.output and "licence:" in result.output
