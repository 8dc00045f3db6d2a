"""Output a person reads in a log or a pipe is not cut at 80 columns (issue 25 item 7)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from rich.table import Table

from sdvicl_bench.report import console as console_module


def test_console_is_full_width_when_not_a_terminal(monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = console_module.make_console()  # pytest captures stderr: not a terminal
    assert console.width == console_module.PIPE_WIDTH
    table = Table("method", "a long header that would not fit", "another long header")
    table.add_row("SD-VICL (sd15, n=5, clip_knn; sampler.adain.enabled=False)", "12.3", "45.6")
    with console.capture() as captured:
        console.print(table)
    text = captured.get()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) > 80
    # a user's COLUMNS still wins (rich's own rule)
    monkeypatch.setenv("COLUMNS", "60")
    assert console_module.make_console().width == 60


@pytest.mark.slow
def test_run_summary_through_a_pipe_is_not_cut(workdir) -> None:
    """The real CLI in a subprocess, stderr a pipe: before, the summary was cut with '…'."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    out = subprocess.run(
        [sys.executable, "-m", "sdvicl_bench", "run", "task=fgseg", "debug=smoke"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "baseline: all_objects" in out.stderr or "baseline: copy_b" in out.stderr
    assert "…" not in out.stderr


def test_log_lines_carry_an_eta() -> None:
    """In a log (not a terminal) each batch line says done/total, rate and ETA (issue 25
    item 6); the ETA is the episodes left times the rate."""
    from sdvicl_bench.running.reporter import Reporter, eta_text

    assert [eta_text(s) for s in (0, 44.6, 65, 3600 + 1200 + 5)] == [
        "0 s",
        "45 s",
        "1 min 5 s",
        "1 h 20 min",
    ]
    console = console_module.make_console()
    reporter = Reporter(console, quiet=False)
    with console.capture() as captured, reporter.progress("fgseg", 10) as tick:
        tick(4, 4, 1.5)
    assert "fgseg: 4/10 episodes, 1.50 s/episode, ETA 9 s" in captured.get()


@pytest.mark.slow
def test_rescore_shows_progress_in_a_log(workdir) -> None:
    from typer.testing import CliRunner

    from sdvicl_bench.cli import app

    runner = CliRunner()
    made = runner.invoke(app, ["run", "task=fgseg", "debug=smoke", "--quiet"])
    run_dir = made.output.strip().splitlines()[-1]
    result = runner.invoke(app, ["rescore", run_dir])
    assert result.exit_code == 0, result.output
    assert "rescore fgseg: 2/2 episodes" in result.output and "ETA" in result.output
