"""Runs that never lose or double work: damaged sample lines, two processes on one folder,
stale locks, results of the whole folder, merged grids, the resume line, SIGTERM, and
one-line errors for empty prompt lists and empty run folders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.report.lock import SampleLock, lock_path
from sdvicl_bench.report.records import DAMAGED_NAME, mend_samples, read_samples

runner = CliRunner()
SMOKE = ["task=fgseg", "debug=smoke"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
RUN = [sys.executable, "-m", "sdvicl_bench", "run", *SMOKE]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def run_dir_of(result) -> Path:
    return Path(result.output.strip().splitlines()[-1])


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def by_id(run_dir: Path) -> dict[str, dict]:
    return {s["id"]: s for s in map(json.loads, lines_of(run_dir / "samples.jsonl"))}


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def nonblank(text: str) -> list[str]:
    return [x for x in text.strip().splitlines() if x.strip()]


def wait_for_samples(path: Path, proc: subprocess.Popen, n: int = 1, limit: float = 120) -> int:
    """Lines in the sample file once it has `n` (or the process ended, or time ran out)."""
    deadline, done = time.time() + limit, 0
    while time.time() < deadline and proc.poll() is None:
        files = list(path.glob("results/runs/fgseg/*/samples.jsonl"))
        done = len(lines_of(files[0])) if files else 0
        if done >= n:
            break
        time.sleep(0.05)
    return done


# ------------------------------------------------------------------ damaged lines


def test_mend_sets_a_torn_last_line_aside(tmp_path):
    path = tmp_path / "samples.jsonl"
    good = {"id": "a", "query": "q", "prompts": ["p"], "seed": 0, "scores": {}, "baselines": {}}
    path.write_text(json.dumps(good) + "\n" + '{"id": "b", "quer')
    assert read_samples(path) == [good] and path.read_text().endswith("quer")  # read-only
    assert mend_samples(path) == 1
    assert read_samples(path) == [good] and path.read_text() == json.dumps(good) + "\n"
    (aside,) = map(json.loads, lines_of(tmp_path / DAMAGED_NAME))
    assert aside["file"] == "samples.jsonl" and aside["line"] == 2
    assert aside["text"] == '{"id": "b", "quer'
    assert mend_samples(path) == 0


@pytest.mark.slow
def test_damaged_lines_in_the_middle_are_set_aside_and_redone(workdir):
    first = invoke("run", *SMOKE, "limit=6", "--quiet")
    assert first.exit_code == 0, first.output
    run_dir = run_dir_of(first)
    clean = by_id(run_dir)
    lines = lines_of(run_dir / "samples.jsonl")
    damaged = {1: "garbage{", 2: "{}", 4: "42"}  # lines 2, 3 and 5 of 6
    kept = [x for i, x in enumerate(lines) if i not in damaged]
    mixed = [damaged.get(i, x) for i, x in enumerate(lines)]
    (run_dir / "samples.jsonl").write_text("\n".join(mixed) + "\n" + '{"torn')
    drawn = invoke("grid", run_dir)  # a reader skips the damaged lines
    assert drawn.exit_code == 0, drawn.output

    again = invoke("run", *SMOKE, "limit=6", "--quiet")
    assert again.exit_code == 0, again.output
    notes = [x for x in nonblank(again.output) if "damaged" in x]
    assert len(notes) == 1 and "4 damaged lines" in notes[0] and DAMAGED_NAME in notes[0]
    after = lines_of(run_dir / "samples.jsonl")
    assert after[:3] == kept  # every valid record kept as it was
    assert len(after) == 6 and by_id(run_dir).keys() == clean.keys()
    for i, sample in by_id(run_dir).items():
        assert sample["scores"] == clean[i]["scores"], i
    aside = [json.loads(x) for x in lines_of(run_dir / DAMAGED_NAME)]
    assert [a["text"] for a in aside] == ["garbage{", "{}", "42", '{"torn']
    assert {a["file"] for a in aside} == {"samples.jsonl"}
    results = results_of(run_dir)
    assert results["n"] == 6 and results["timing"]["new_samples"] == 3


# ------------------------------------------------------------------ locks


@pytest.mark.slow
def test_the_same_command_twice_at_once_samples_each_episode_once(tmp_path):
    cmd = [*RUN, "limit=60", "--quiet"]
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], [o[1][-2000:] for o in outs]
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    message = nonblank(outs[loser][1].decode())
    assert len(message) == 1 and message[0].startswith("error:"), message
    assert f"process {procs[winner].pid} on {socket.gethostname()}" in message[0]
    assert "shard=i/K" in message[0]
    (run_dir,) = (tmp_path / "results" / "runs" / "fgseg").iterdir()  # one folder
    ids = [json.loads(x)["id"] for x in lines_of(run_dir / "samples.jsonl")]
    assert len(ids) == 60 == len(set(ids))
    assert not lock_path(run_dir / "samples.jsonl").exists()  # released


@pytest.mark.slow
def test_a_held_sample_file_stops_a_second_run_in_one_line(workdir):
    first = invoke("run", *SMOKE, "limit=1", "--quiet")
    run_dir = run_dir_of(first)
    with SampleLock(run_dir / "samples.jsonl"):
        busy = invoke("run", *SMOKE, "limit=2", "--quiet")
    assert busy.exit_code == 2
    (line,) = nonblank(busy.output)
    assert line.startswith("error:") and f"process {os.getpid()}" in line
    assert len(lines_of(run_dir / "samples.jsonl")) == 1  # nothing sampled
    sharded = invoke("run", *SMOKE, "limit=2", "shard=1/2", "--quiet")  # another sample file
    assert sharded.exit_code == 0, sharded.output


@pytest.mark.slow
def test_a_stale_lock_of_a_killed_process_does_not_block(workdir):
    first = invoke("run", *SMOKE, "limit=1", "--quiet")
    samples = run_dir_of(first) / "samples.jsonl"
    holder = (
        "import sys, time; from pathlib import Path; from sdvicl_bench.report.lock import "
        "SampleLock; SampleLock(Path(sys.argv[1])).acquire(); print('held', flush=True); "
        "time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(samples)], env=ENV, stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"held"
    proc.send_signal(signal.SIGKILL)  # no cleanup at all: the lock file stays
    proc.wait()
    assert str(proc.pid) in lock_path(samples).read_text()
    again = invoke("run", *SMOKE, "limit=2", "--quiet")
    assert again.exit_code == 0, again.output
    assert len(lines_of(samples)) == 2 and not lock_path(samples).exists()


# ------------------------------------------------------------------ results of the folder


@pytest.mark.slow
def test_smaller_limit_rerun_still_describes_every_sample(workdir):
    first = invoke("run", *SMOKE, "limit=3", "--quiet")
    run_dir = run_dir_of(first)
    whole = results_of(run_dir)
    records = lines_of(run_dir / "samples.jsonl")
    old = json.loads(records[0])
    del old["device"]  # a record from before the field
    (run_dir / "samples.jsonl").write_text("\n".join([json.dumps(old), *records[1:]]) + "\n")
    again = invoke("run", *SMOKE, "limit=2")
    assert again.exit_code == 0, again.output
    assert f"Resuming {run_dir}: 2 episodes done, 0 to do." in again.output
    results = results_of(run_dir)
    assert results["n"] == 3 and results["metrics"] == whole["metrics"]
    assert results["device"] != "n/a" and sum(results["devices"].values()) == 3
    assert results["devices"]["unknown"] == 1
    quiet = invoke("run", *SMOKE, "limit=2", "--quiet")
    assert "Resuming" not in quiet.output


@pytest.mark.slow
def test_resumed_run_says_so(workdir):
    first = invoke("run", *SMOKE, "--quiet")
    extended = invoke("run", *SMOKE, "limit=3")
    assert extended.exit_code == 0, extended.output
    expected = f"Resuming {run_dir_of(first)}: 2 episodes done, 1 to do."
    assert [x for x in nonblank(extended.output) if x.startswith("Resuming")] == [expected]


@pytest.mark.slow
def test_merge_redraws_the_grid_and_clears_the_shard(workdir):
    folders = []
    for i in (0, 1):
        result = invoke("run", *SMOKE, "limit=4", f"shard={i}/2", f"output_dir=node{i}", "-q")
        assert result.exit_code == 0, result.output
        folders.append(run_dir_of(result))
    assert Image.open(folders[0] / "grid.png").size[1] == 16 + 2 * (16 + 128) + 2  # 2 rows
    with SampleLock(folders[1] / "samples.shard1of2.jsonl"):  # shard 1 still running
        busy = invoke("merge", *folders, "--quiet")
    assert busy.exit_code == 2 and len(nonblank(busy.output)) == 1
    merged = invoke("merge", *folders, "--quiet")
    assert merged.exit_code == 0, merged.output
    assert Image.open(folders[0] / "grid.png").size[1] == 16 + 4 * (16 + 128) + 3 * 2
    results = results_of(folders[0])
    assert results["config"]["shard"] is None and results["n"] == 4
    assert sum(results["devices"].values()) == 4
    assert [p.name for p in folders[0].glob("samples*.jsonl")] == ["samples.jsonl"]


# ------------------------------------------------------------------ missing pictures


@pytest.mark.slow
def test_missing_pictures_are_named_by_grid_and_rerun(workdir):
    first = invoke("run", *SMOKE, "--quiet")
    run_dir = run_dir_of(first)
    sample = json.loads(lines_of(run_dir / "samples.jsonl")[0])
    (run_dir / sample["pred"]).unlink()
    drawn = invoke("grid", run_dir)
    assert drawn.exit_code == 0, drawn.output
    (warning,) = [x for x in nonblank(drawn.output) if x.startswith("warning:")]
    assert "1 picture" in warning and sample["pred"] in warning
    again = invoke("run", *SMOKE, "--quiet")
    assert again.exit_code == 0, again.output
    (warning,) = [x for x in nonblank(again.output) if x.startswith("warning:")]
    assert "1 finished sample" in warning and sample["id"] in warning


# ------------------------------------------------------------------ SIGTERM


@pytest.mark.slow
def test_sigterm_keeps_samples_and_exits_in_one_line(tmp_path):
    proc = subprocess.Popen(
        [*RUN, "limit=200", "--quiet"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done = wait_for_samples(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert done >= 1, err[-2000:]
    assert proc.returncode not in (0, -signal.SIGTERM), err[-2000:]
    assert proc.returncode == 143  # 128 + SIGTERM, as a shell reports it
    assert "Traceback" not in err
    assert nonblank(err)[-1].startswith(("interrupted", "terminated")), err[-2000:]
    (samples,) = tmp_path.glob("results/runs/fgseg/*/samples.jsonl")
    assert len(read_samples(samples)) >= done and not lock_path(samples).exists()


# ------------------------------------------------------------------ one-line errors


def test_empty_prompts_in_an_episodes_file_is_one_line_exit_2(workdir):
    frozen = workdir / "episodes.jsonl"
    episode = {"id": "a", "query": "demo_000002__02", "prompts": ["demo_000150__02"], "seed": 0}
    frozen.write_text(json.dumps(episode) + "\n" + json.dumps({**episode, "prompts": []}) + "\n")
    result = invoke("run", *SMOKE, f"episodes={frozen}")
    assert result.exit_code == 2
    (line,) = nonblank(result.output)
    assert line.startswith("error:") and f"{frozen}:2" in line and "prompts" in line


@pytest.mark.slow
def test_grid_of_a_run_folder_without_samples_is_one_line_exit_2(workdir):
    first = invoke("run", *SMOKE, "limit=1", "--quiet")
    empty = workdir / "empty-run"
    empty.mkdir()
    (empty / "run.json").write_bytes((run_dir_of(first) / "run.json").read_bytes())
    result = invoke("grid", empty)
    assert result.exit_code == 2
    (line,) = nonblank(result.output)
    assert line.startswith("error:") and "nothing to draw" in line


def test_a_run_failing_before_its_first_sample_leaves_no_folder(workdir, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = invoke("run", "task=fgseg", "data=demo", "limit=1", "model.hub_id=no-org/no-model")
    assert result.exit_code == 2
    assert not list((workdir / "results" / "runs" / "fgseg").glob("*-*"))
    assert not (workdir / "results" / "runs" / "fgseg").exists()  # nor an empty <task>/
