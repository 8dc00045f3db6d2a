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
