"""`sdvicl-bench rescore`: scores, results.json and grid anew from a run's saved pictures,
without the model; the same numbers on an untouched run, the missing ones back on an old one,
one line and exit 2 where a picture is gone or the run is still writing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.report.lock import SampleLock

runner = CliRunner()


def run(*args) -> Path:
    result = runner.invoke(app, ["run", *args, "debug=smoke", "--quiet"])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def rescore(*run_dirs: Path):
    return runner.invoke(app, ["rescore", *map(str, run_dirs), "--quiet"])


def blocks(results: dict) -> str:
    """The metrics and baselines blocks as canonical JSON (NaN compares equal as text)."""
    return json.dumps({k: results[k] for k in ("metrics", "baselines")}, sort_keys=True)


def read(path: Path):
    return json.loads(path.read_text())


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "args",
    [
        ("task=fgseg", "limit=4"),
        ("task=keypoints", "limit=3"),
        ("task=semseg", "limit=3"),
        ("task=edges", "task.options.source=bsds500", "limit=3"),
    ],
    ids=["fgseg", "keypoints", "semseg", "edges-bsds500"],
)
@pytest.mark.slow
def test_rescore_reproduces_a_finished_run(workdir, args):
    run_dir = run(*args)
    before = read(run_dir / "results.json")
    samples_before = lines(run_dir / "samples.jsonl")
    result = rescore(run_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)
    after = read(run_dir / "results.json")
    assert blocks(after) == blocks(before)
    assert after["n"] == before["n"] and after["task_version"] == before["task_version"]
    assert lines(run_dir / "samples.jsonl") == samples_before
    kept = after["rescored"]["previous_results"]
    assert kept.startswith("results.") and read(run_dir / kept) == before
    assert (run_dir / "grid.png").is_file()


@pytest.mark.slow
def test_rescore_brings_back_what_an_older_version_lacked(workdir):
    run_dir = run("task=fgseg", "limit=4")
    want = read(run_dir / "results.json")
    # an older version: no pixel counts in the records, one score missing, no fb_iou block
    old = lines(run_dir / "samples.jsonl")
    for s in old:
        del s["counts"]
    del old[0]["scores"]["iou"]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in old))
    stale = read(run_dir / "results.json")
    del stale["metrics"]["fb_iou"]
    for block in stale["baselines"].values():
        del block["fb_iou"]
    (run_dir / "results.json").write_text(json.dumps(stale))

    again = runner.invoke(app, ["run", "task=fgseg", "limit=4", "debug=smoke"])
    assert again.exit_code == 0, again.output
    assert "sdvicl-bench rescore" in again.output  # the run says how to score old records
    partial = read(run_dir / "results.json")
    assert partial["metrics"]["iou"]["overall"]["n"] == 3  # the record without iou left out
    assert partial["metrics"]["fb_iou"]["overall"]["n"] == 0  # NaN, not an error

    result = rescore(run_dir)
    assert result.exit_code == 0, result.output
    assert blocks(read(run_dir / "results.json")) == blocks(want)
    assert all("counts" in s for s in lines(run_dir / "samples.jsonl"))


@pytest.mark.slow
def test_rescore_of_a_run_with_a_missing_picture_is_one_line_exit_2(workdir):
    run_dir = run("task=fgseg", "limit=4")
    samples = lines(run_dir / "samples.jsonl")
    (run_dir / samples[1]["pred"]).unlink()
    results_before = (run_dir / "results.json").read_text()
    samples_before = (run_dir / "samples.jsonl").read_text()
    result = rescore(run_dir)
    assert result.exit_code == 2
    out = [x for x in result.output.strip().splitlines() if x.strip()]
    assert len(out) == 1 and "Traceback" not in result.output
    assert "1 prediction picture" in out[0] and samples[1]["pred"] in out[0] and "Fix:" in out[0]
    assert (run_dir / "results.json").read_text() == results_before  # nothing written
    assert (run_dir / "samples.jsonl").read_text() == samples_before
    assert not list(run_dir.glob("results.*.json"))


@pytest.mark.slow
def test_rescore_waits_for_no_run_one_line_exit_2(workdir):
    run_dir = run("task=fgseg", "limit=2")
    with SampleLock(run_dir / "samples.jsonl"):
        result = rescore(run_dir)
    assert result.exit_code == 2
    out = [x for x in result.output.strip().splitlines() if x.strip()]
    assert len(out) == 1 and "Traceback" not in result.output


def test_rescore_of_a_folder_that_is_no_run_is_one_line_exit_2(workdir):
    (workdir / "empty").mkdir()
    result = rescore(workdir / "empty")
    assert result.exit_code == 2 and "not a run folder" in result.output


@pytest.mark.slow
def test_rescore_keeps_each_old_results_and_shard_files(workdir):
    run_dir = run("task=fgseg", "limit=4")
    # a shard file next to samples.jsonl (a partial torchrun or SLURM run, not merged)
    records = lines(run_dir / "samples.jsonl")
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in records[:2]))
    shard = run_dir / "samples.shard1of2.jsonl"
    shard.write_text("".join(json.dumps(s) + "\n" for s in records[2:]))
    for _ in range(2):
        assert rescore(run_dir).exit_code == 0
    assert len(list(run_dir.glob("results.*.json"))) == 2
    assert [s["id"] for s in lines(shard)] == [s["id"] for s in records[2:]]
    assert read(run_dir / "results.json")["n"] == 4


@pytest.mark.slow
def test_heavy_records_are_rescored_over_processes_with_the_same_numbers(workdir):
    from sdvicl_bench import evaluate
    from sdvicl_bench.report.records import read_episodes
    from sdvicl_bench.rescore import rescore_all, workers_for

    run_dir = run("task=edges", "task.options.source=bsds500", "limit=3")
    _, protocol = evaluate.protocol_of(run_dir)
    records = lines(run_dir / "samples.jsonl")
    specs = {e.id: e for e in read_episodes(run_dir / "episodes.jsonl")}
    assert workers_for(protocol, 1) == 1
    assert workers_for(protocol, 3) == min(os.cpu_count() or 1, 3)  # boundary matching: heavy
    here = list(rescore_all(protocol, specs, run_dir, records, workers=1))
    forked = list(rescore_all(protocol, specs, run_dir, records, workers=2))
    assert forked == here and [r["id"] for r in forked] == [r["id"] for r in records]
    assert all("boundary_counts" in r for r in forked)
    fgseg_dir = run("task=fgseg", "limit=2")
    assert workers_for(evaluate.protocol_of(fgseg_dir)[1], 2) == 1  # light: scored here
