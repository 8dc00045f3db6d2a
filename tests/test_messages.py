"""Messages a person reads say what is wrong and how to fix it (issue 25 item 8)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdvicl_bench.ablations import comparison_markdown
from sdvicl_bench.cli import app
from tests.cli_helpers import error_line

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def _error_line(*args: str) -> str:
    return error_line(runner.invoke(app, list(args)))


def test_several_values_for_run_point_to_sweep(workdir) -> None:
    line = _error_line("validate", "task=fgseg", "sampler.attention.temperature=0.2,0.4")
    assert "sampler.attention.temperature=0.2,0.4" in line
    assert "sdvicl-bench sweep" in line and "Fix:" in line
    assert "Ambiguous" not in line


def test_wrong_type_names_the_fix(workdir) -> None:
    line = _error_line("validate", "task=fgseg", 'prompts=[""]')
    assert "expected an integer" in line
    assert "Fix: pass prompts=<an integer>" in line


def test_merge_quiet_has_help_text() -> None:
    result = runner.invoke(app, ["merge", "--help"], terminal_width=200)
    quiet = next(line for line in result.output.splitlines() if "--quiet" in line)
    assert "summary" in quiet.lower()


def _results(iou: float, miou: float) -> dict:
    specs = {"iou": {"scale": 100}, "class_miou": {"scale": 100}}
    return {
        "task": "fgseg",
        "n": 4,
        "note": None,
        "config": {"prompts": 1, "task": {"prompts": 1, "metrics": specs}},
        "metrics": {"iou": {"overall": {"mean": iou}}, "class_miou": {"overall": {"mean": miou}}},
    }


def test_ablation_deltas_are_labelled_per_metric() -> None:
    table = comparison_markdown(
        "adain", [("full", _results(0.5, 0.4)), ("w/o", _results(0.45, 0.42))]
    )
    header = next(line for line in table.splitlines() if line.startswith("| variant"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == [
        "variant",
        "iou (↑)",
        "Δ iou vs full",
        "class_miou (↑)",
        "Δ class_miou vs full",
        "n",
    ]
    row = next(line for line in table.splitlines() if line.startswith("| w/o"))
    assert [c.strip() for c in row.strip("|").split("|")] == ["w/o", "45", "-5", "42", "+2", "4"]


def test_pyproject_uses_an_spdx_license_string() -> None:
    """setuptools >= 77 warns at every install of a `license = {text = ...}` table."""
    text = (ROOT / "pyproject.toml").read_text()  # tomllib is 3.11+; the suite supports 3.10
    assert re.search(r'^license = "MIT"$', text, re.MULTILINE)
    assert re.search(r'^requires = \["setuptools>=77"\]', text, re.MULTILINE)


@pytest.mark.slow
def test_rescore_names_the_folder_once(workdir) -> None:
    made = runner.invoke(app, ["run", "task=fgseg", "debug=smoke", "--quiet"])
    assert made.exit_code == 0, made.output
    run_dir = made.output.strip().splitlines()[-1]
    result = runner.invoke(app, ["rescore", run_dir], terminal_width=400)
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines.count(f"Run folder: {run_dir}") == 1, result.output
    assert run_dir not in lines  # before: the bare path again after the summary


# ---------------------------------------------------------------------------------------
# A user's task YAML and paths: one line, exit 2 (issue 25 items 3 and 4)


@pytest.fixture
def user_tasks(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "conf"
    (folder / "task").mkdir(parents=True)
    files = {
        "nodecoder": "name: nodecoder\ndataset: pascal5i\nmetrics:\n  iou: {}\n",
        "notyaml": "name: notyaml\ndataset: [pascal5i\n",
        "intmetric": "name: intmetric\ndataset: pascal5i\ndecoder: fgseg\nmetrics:\n  iou: 5\n",
    }
    for name, text in files.items():
        (folder / "task" / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("SDVICL_CONFIG_PATH", str(folder))
    return folder


def test_a_task_without_decoder_names_the_decoders(workdir, user_tasks) -> None:
    line = _error_line("validate", "task=nodecoder", "model=tiny", "data=demo")
    assert str(user_tasks / "task" / "nodecoder.yaml") in line
    assert "has no decoder" in line and "fgseg, det, semseg" in line  # before: ran as fgseg


def test_a_task_file_that_is_not_yaml_is_one_line(workdir, user_tasks) -> None:
    line = _error_line("validate", "task=notyaml", "model=tiny", "data=demo")
    assert "notyaml.yaml, line 3" in line and "not valid YAML" in line  # before: 357 lines


def test_a_metric_entry_of_the_wrong_type_is_one_line(workdir, user_tasks) -> None:
    line = _error_line("validate", "task=intmetric", "model=tiny", "data=demo")
    assert "metric 'iou' is 5, not a mapping" in line  # before: TypeError


@pytest.mark.parametrize("long_path", ["a" * 300, "/".join(["a"] * 2100)])
def test_an_output_dir_too_long_is_one_line(workdir, long_path) -> None:
    line = _error_line("run", "task=fgseg", "debug=smoke", f"output_dir={workdir / long_path}")
    assert "File name too long" in line and "Fix:" in line  # before: Errno 36 traceback
    assert len(line) < 400


@pytest.mark.parametrize("command", ["grid", "rescore"])
def test_a_missing_run_folder_says_no_such_folder(workdir, command) -> None:
    line = _error_line(command, str(workdir / "results" / "runs" / "fgseg" / "nope"))
    assert "No such folder" in line and "run.json" not in line


def test_a_missing_toy_folder_does_not_suggest_the_hub(workdir) -> None:
    line = _error_line("validate", "task=fgseg", "model=toy", f"model.path={workdir / 'nope'}")
    assert "Model folder not found" in line
    assert "hub_id" not in line and "shipped weights" in line


def test_rescore_does_not_promise_to_redo_episodes() -> None:
    from sdvicl_bench.report.console import make_console
    from sdvicl_bench.running.reporter import Reporter

    console = make_console()
    with console.capture() as captured:
        Reporter(console).damaged(2, Path("run"), redone=False)
    assert "will be redone" not in captured.get() and "rerun" in captured.get()


def test_a_full_disk_while_writing_a_sample_names_the_file(tmp_path, monkeypatch) -> None:
    import errno
    import os

    from sdvicl_bench.errors import disk_error_line
    from sdvicl_bench.report.records import SampleWriter

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")  # as fsync says it: no file

    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as writer:
        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(OSError) as caught:
            writer.write({"id": "a"})
    line = disk_error_line(caught.value, "choose output_dir=<writable folder>")
    assert str(path) in line and "No space left" in line
