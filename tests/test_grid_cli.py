"""Grids from real runs: automatic grid.png, `grid` command, the ablation comparison grid."""

from __future__ import annotations

import pytest
from PIL import Image
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.report.grids import GAP

pytestmark = pytest.mark.slow  # every test here runs the CLI end to end
runner = CliRunner()


def test_run_grid_layout_follows_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["run", "task=fgseg", "debug=smoke", "limit=3", "prompts=2", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / result.stdout.strip().splitlines()[-1]
    grid = Image.open(run_dir / "grid.png")
    cols = 2 + 2 + 1 + 3  # A_1 A_2 | B_1 B_2 | C | prediction decoded GT
    # titles strip, then per row a caption strip and a tile, rows and columns GAP apart
    assert grid.size == (cols * 128 + (cols - 1) * GAP, 16 + 3 * (16 + 128) + 2 * GAP)
    again = runner.invoke(app, ["grid", str(run_dir), "--limit", "1"])
    assert again.exit_code == 0, again.output
    assert Image.open(run_dir / "grid.png").size[1] == 16 + 16 + 128


def test_ablate_writes_a_comparison_grid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["ablate", "component=adain", "debug=smoke", "--quiet"])
    assert result.exit_code == 0, result.output
    table = tmp_path / result.stdout.strip().splitlines()[-1]
    grid = Image.open(table.with_suffix(".png"))
    assert grid.size[0] == 4 * 128 + 3 * GAP  # C | GT | full | without AdaIN
