"""Every command's happy path, every conf/ file composes, every experiment smoke-runs, and a
really killed run resumes to the same scores without redoing finished episodes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from sdvicl_bench.cli import app, choices, load_config
from sdvicl_bench.workflows.reproduce import experiments

runner = CliRunner()


@pytest.mark.parametrize(
    "group", ["task", "model", "data", "retrieval", "sampler", "debug", "experiment"]
)
def test_every_conf_file_composes(group):
    names = choices(group)
    assert names
    for name in names:
        cfg = load_config([f"{group}={name}"])
        if group in ("task", "model", "retrieval"):
            assert getattr(cfg, group).name == name


@pytest.mark.slow
def test_every_experiment_smoke_runs(workdir):
    result = runner.invoke(app, ["reproduce", "--smoke", "--quiet"])
    assert result.exit_code == 0, result.output
    for name in experiments():
        table = (workdir / "results" / "tables" / f"{name}.md").read_text()
        assert table.startswith("# ") and "|" in table


@pytest.mark.slow
def test_ablate_runs_variants_on_the_same_episodes(workdir):
    result = runner.invoke(app, ["ablate", "component=qkv", "debug=smoke", "--quiet"])
    assert result.exit_code == 0, result.output
    table = (workdir / result.stdout.strip().splitlines()[-1]).read_text()
    for label in ("CAB", "DAB", "CBB", "DBB"):
        assert label in table
    runs = sorted((workdir / "results" / "runs" / "fgseg").iterdir())
    assert len(runs) == 4
    frozen = {(r / "episodes.jsonl").read_text() for r in runs}
    assert len(frozen) == 1  # the very same episodes for every variant


@pytest.mark.slow
def test_ablate_after_a_larger_run_compares_the_same_episodes(workdir):
    """The full method's folder may hold more samples (an earlier, longer run); the table
    compares every variant on the episodes they all finished."""
    assert runner.invoke(app, ["run", "debug=smoke", "limit=3", "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["ablate", "component=adain", "debug=smoke", "--quiet"])
    assert result.exit_code == 0, result.output
    table = (workdir / result.stdout.strip().splitlines()[-1]).read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| full", "| without"))]
    assert len(rows) == 2 and all(row.rstrip(" |").endswith("| 2") for row in rows), table


def test_ablate_unknown_component(workdir):
    result = runner.invoke(app, ["ablate", "component=adainn", "debug=smoke"])
    assert result.exit_code == 2 and "Did you mean 'component=adain'" in result.output


def test_help_has_examples():
    for command in ("run", "ablate", "tables", "ls", "validate", "reproduce"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, command


RUN = [
    sys.executable,
    "-m",
    "sdvicl_bench",
    "run",
    "task=fgseg",
    "debug=smoke",
    "limit=10",
    "sampler.steps=6",
    "--quiet",
]


def samples(run_dir):
    return [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_scores(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    for d in (killed_dir, clean_dir):
        d.mkdir()
    proc = subprocess.Popen(
        RUN, cwd=killed_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and proc.poll() is None:
        files = list(killed_dir.glob("results/runs/fgseg/*/samples.jsonl"))
        done = len(files[0].read_text().splitlines()) if files else 0
        if done >= 3:
            proc.send_signal(signal.SIGKILL)  # a real crash: no cleanup at all
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    assert 3 <= done < 10, "the run finished before it could be killed"
    again = subprocess.run(RUN, cwd=killed_dir, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    run_dir = killed_dir / again.stdout.strip().splitlines()[-1]
    resumed = json.loads((run_dir / "results.json").read_text())
    finished_before = done
    assert resumed["timing"]["new_samples"] <= 10 - finished_before  # not sampled again
    clean = subprocess.run(RUN, cwd=clean_dir, env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    clean_dir_run = clean_dir / clean.stdout.strip().splitlines()[-1]
    a = {s["id"]: s["scores"] for s in samples(run_dir)}
    b = {s["id"]: s["scores"] for s in samples(clean_dir_run)}
    assert len(samples(run_dir)) == 10 == len(a)  # no duplicates
    assert a == b


def test_validate_says_which_prompt_count_wins():
    result = runner.invoke(app, ["validate", "task=fgseg", "prompts=5", "debug=smoke"])
    assert result.exit_code == 0, result.output
    assert "# n = 5 prompts: prompts=5 overrides task.prompts (the task's default, 1)." in (
        result.output
    )


def test_table_labels_name_defaults_and_frozen_episodes():
    from sdvicl_bench.report.formatting import shown

    assert shown("episodes", None) == "default"
    assert shown("episodes", "results/runs/fgseg/2026-abc/episodes.jsonl") == (
        "frozen from 2026-abc"
    )
    assert shown("sampler.steps", 20) == "20"
