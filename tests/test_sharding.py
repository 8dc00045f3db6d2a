"""Scale-out: torchrun with 2 CPU processes (gloo), shard=i/K + merge, episode batching."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sdvicl_bench.cli import app

pytestmark = pytest.mark.slow  # every test here runs the CLI end to end
runner = CliRunner()
ARGS = ["task=fgseg", "debug=smoke", "limit=6", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def scores(run_dir):
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return [(s["id"], s["scores"]) for s in map(json.loads, lines)]


def single_run(workdir):
    out = subprocess.run(
        [sys.executable, "-m", "sdvicl_bench", "run", *ARGS],
        cwd=workdir,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return workdir / out.stdout.strip().splitlines()[-1]


def test_torchrun_two_ranks_merge_to_the_single_process_run(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    reference = single_run(tmp_path / "one")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "sdvicl_bench",
        "run",
        *ARGS,
    ]
    out = subprocess.run(cmd, cwd=tmp_path / "two", env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "two" / "results" / "runs" / "fgseg").iterdir()
    shard_ids = []
    for rank in (0, 1):
        lines = (run_dir / "shards" / f"samples.shard{rank}of2.jsonl").read_text().splitlines()
        shard_ids.append({json.loads(x)["id"] for x in lines})
    assert shard_ids[0] and shard_ids[1] and not shard_ids[0] & shard_ids[1]
    assert len(shard_ids[0] | shard_ids[1]) == 6
    assert scores(run_dir) == scores(reference)  # same order, same numbers
    merged = json.loads((run_dir / "results.json").read_text())
    single = json.loads((reference / "results.json").read_text())
    assert merged["metrics"] == single["metrics"] and merged["key"] == single["key"]


def test_shards_in_separate_folders_merge(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reference = single_run(tmp_path)
    folders = []
    for i in (0, 1):  # as a SLURM array on machines that do not share a disk would
        out = tmp_path / f"node{i}"
        result = runner.invoke(app, ["run", *ARGS, f"shard={i}/2", f"output_dir={out}"])
        assert result.exit_code == 0, result.output
        folders.append(tmp_path / result.stdout.strip().splitlines()[-1])
    merged = runner.invoke(app, ["merge", *map(str, folders), "--quiet"])
    assert merged.exit_code == 0, merged.output
    assert scores(folders[0]) == scores(reference)
    assert len(list((folders[0] / "pictures").glob("*.pred.png"))) == 6
    shutil.rmtree(folders[1])


def test_batching_in_runs_same_scores_fewer_calls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outs = []
    for k, out in ((1, "a"), (3, "b")):
        result = runner.invoke(
            app, ["run", *ARGS, f"sampler.batch_episodes={k}", f"output_dir={out}"]
        )
        assert result.exit_code == 0, result.output
        outs.append(tmp_path / result.stdout.strip().splitlines()[-1])
    assert scores(outs[0]) == scores(outs[1])  # equal within float error: same decoded masks
    calls = [
        json.loads((o / "results.json").read_text())["timing"]["unet_calls_this_session"]
        for o in outs
    ]
    assert calls == [6 * 3, 2 * 3]  # 6 episodes x 3 steps, in batches of 1 and of 3
