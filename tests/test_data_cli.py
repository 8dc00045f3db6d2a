"""`sdvicl-bench data check` / `data prepare` through the CLI, and `run` refusing missing data
with the same line before it loads a model."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from sdvicl_bench.cli import app
from tests.cli_helpers import error_line

runner = CliRunner()


def test_data_check_says_ready_then_names_the_missing_folder_and_its_fix(workdir):
    ok = runner.invoke(app, ["data", "check", "task=fgseg", "data=demo"])
    assert ok.exit_code == 0, ok.output
    assert "ready: fgseg" in ok.output
    shutil.rmtree(workdir / "data/demo/VOC2012/SegmentationClassAug")
    bad = runner.invoke(app, ["data", "check", "task=fgseg", "data=demo"])
    assert bad.exit_code == 2, bad.output
    assert "SegmentationClassAug" in bad.output and "data prepare sbd" in bad.output
    assert "Traceback" not in bad.output
    # run says the same in one line, before any model is loaded (model=sd15: no weights here)
    line = error_line(runner.invoke(app, ["run", "task=fgseg", "data=demo", "limit=1"]))
    assert "SegmentationClassAug" in line and "Fix" in line


def test_data_prepare_unknown_dataset_is_one_line(workdir):
    line = error_line(runner.invoke(app, ["data", "prepare", "coco", str(workdir)]))
    assert "coco" in line


def test_ctrl_c_during_data_prepare_says_how_data_prepare_resumes(workdir, monkeypatch):
    from sdvicl_bench.workflows import data_prepare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data_prepare, "prepare", interrupted)
    result = runner.invoke(app, ["data", "prepare", "sbd", str(workdir)])
    assert result.exit_code == 130, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert lines == [
        "interrupted: data prepare keeps the files it finished; run the same command again "
        "to convert the rest (finished files are skipped)."
    ]
    assert "samples" not in result.output  # the line meant for an interrupted `run`
