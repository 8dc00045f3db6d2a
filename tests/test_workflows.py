"""Workflows over many runs: sweeps and ablations share rows and resume per variant;
`reproduce` runs identical configs once and groups D-side variants; estimates follow the
U-Net pass counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdvicl_bench import evaluate
from sdvicl_bench.cli import app, load_config, split_sweeps
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.protocols.registry import CONFIG_PATH_ENV
from sdvicl_bench.sampler.pipeline import Sampler
from sdvicl_bench.workflows import estimate as est
from sdvicl_bench.workflows.reproduce import check_names, estimate, experiments, jobs_of, plan
from sdvicl_bench.workflows.sweep import grid

runner = CliRunner()
SMOKE = ["task=fgseg", "debug=smoke"]


def samples_of(run_dir: Path) -> dict[str, dict]:
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def complete_records(run_dir: Path) -> dict[str, dict]:
    """The records of whole lines (a SIGKILL may leave the last one torn)."""
    out = {}
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        out[record["id"]] = record
    return out


def test_split_sweeps_and_grid_order():
    base, sweeps = split_sweeps(
        ["task=fgseg", "sampler.attention.temperature=0.2,0.8", "sampler.swap.gamma=1,3.5"]
    )
    assert base == ["task=fgseg"]
    labels = [label for label, _ in grid(sweeps)]
    assert labels == [
        "attention.temperature=0.2, swap.gamma=1",
        "attention.temperature=0.2, swap.gamma=3.5",
        "attention.temperature=0.8, swap.gamma=1",
        "attention.temperature=0.8, swap.gamma=3.5",
    ]


def test_sweep_without_a_swept_setting_is_one_line(workdir):
    result = runner.invoke(app, ["sweep", *SMOKE, "sampler.swap.gamma=2"])
    assert result.exit_code == 2
    assert "sweep needs at least one setting with several values" in result.output


def test_sharing_groups_split_on_rows_settings():
    full = load_config(SMOKE)
    cfgs = [
        full,
        load_config([*SMOKE, "sampler.attention.qkv=DAB"]),
        load_config([*SMOKE, "sampler.steps=4"]),
        load_config([*SMOKE, "sampler.adain.enabled=false", "sampler.batch_episodes=2"]),
        load_config([*SMOKE, "prompts=2"]),
    ]
    assert evaluate.sharing_groups(cfgs) == [[0, 1, 3], [2], [4]]
    assert evaluate.shared_rows_differences(full, cfgs[2]) == ["sampler.steps"]
    assert evaluate.shared_rows_differences(full, cfgs[4]) == ["prompts"]


@pytest.mark.slow
def test_sweep_scores_equal_separate_runs_and_resume_per_variant(workdir, monkeypatch):
    """Two temperatures in one shared pass: each folder's records equal a separate `run`
    of that variant; a sweep killed after its first batch resumes without sampling any
    finished (episode, variant) again."""
    sweep = ["sweep", *SMOKE, "limit=3", "sampler.attention.temperature=0.2,0.8", "--quiet"]
    calls: list[tuple[int, int]] = []  # (episodes, variants) per run_variants call
    original = Sampler.run_variants

    def killed_after_first(self, episodes, variants, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append((len(episodes), len(variants)))
        return original(self, episodes, variants, **kw)

    monkeypatch.setattr(Sampler, "run_variants", killed_after_first)
    assert runner.invoke(app, sweep).exit_code == 130  # interrupted: finished samples kept
    runs = sorted((workdir / "results" / "runs" / "fgseg").iterdir())
    assert len(runs) == 2
    before = [samples_of(r) for r in runs]
    assert [len(b) for b in before] == [1, 1]  # batch_episodes=1: one episode, both variants

    calls.clear()

    def counting(self, episodes, variants, **kw):
        calls.append((len(episodes), len(variants)))
        return original(self, episodes, variants, **kw)

    monkeypatch.setattr(Sampler, "run_variants", counting)
    result = runner.invoke(app, sweep)
    assert result.exit_code == 0, result.output
    assert calls == [(1, 2), (1, 2)]  # the two episodes left, both variants, nothing redone
    after = [samples_of(r) for r in runs]
    for b, a in zip(before, after, strict=True):
        assert len(a) == 3 and all(a[i] == b[i] for i in b)  # finished records untouched
    table = Path(result.output.strip().splitlines()[-1]).read_text()
    assert "attention.temperature=0.2" in table and "attention.temperature=0.8" in table

    monkeypatch.setattr(Sampler, "run_variants", original)
    for run_dir, temperature in zip(runs, ("0.2", "0.8"), strict=False):
        cfg = json.loads((run_dir / "run.json").read_text())["config"]
        t = cfg["sampler"]["attention"]["temperature"]
        alone = runner.invoke(
            app,
            [
                "run",
                *SMOKE,
                "limit=3",
                f"sampler.attention.temperature={t}",
                "output_dir=alone",
                "--quiet",
            ],
        )
        assert alone.exit_code == 0, alone.output
        separate = samples_of(workdir / alone.output.strip().splitlines()[-1])
        joint = samples_of(run_dir)
        assert separate.keys() == joint.keys()
        for i in joint:
            assert joint[i]["scores"] == pytest.approx(separate[i]["scores"], abs=1e-6), temperature


@pytest.mark.slow
def test_sweep_over_steps_runs_variants_one_after_another(workdir, monkeypatch):
    result = runner.invoke(app, ["sweep", *SMOKE, "limit=1", "sampler.steps=2,3"])
    assert result.exit_code == 0, result.output
    assert "sampler.steps changes the A, B and C rows: the 2 variants run one after another." in (
        result.output
    )
    assert len(list((workdir / "results" / "runs" / "fgseg").iterdir())) == 2


@pytest.mark.slow
def test_ablate_samples_all_variants_in_one_pass(workdir, monkeypatch):
    seen = []
    original = Sampler.run_variants

    def counting(self, episodes, variants, **kw):
        seen.append(len(variants))
        return original(self, episodes, variants, **kw)

    monkeypatch.setattr(Sampler, "run_variants", counting)
    result = runner.invoke(app, ["ablate", "component=qkv", *SMOKE, "--quiet"])
    assert result.exit_code == 0, result.output
    assert seen == [4, 4]  # two episodes, the four triplets together each time
    runs = sorted((workdir / "results" / "runs" / "fgseg").iterdir())
    calls = {
        json.loads((r / "results.json").read_text())["timing"]["unet_calls_this_session"]
        for r in runs
    }
    assert calls == {2 * 3}  # one U-Net call per step for all four variants


def test_reproduce_runs_identical_configs_once_and_groups_d_side_variants():
    known = experiments()
    jobs = [
        j
        for name in ("fgseg_main", "ablation_adain", "ablation_layers")
        for j in jobs_of(name, known[name])
    ]
    assert len(jobs) == 6
    cfgs, index = plan(jobs, load_config)
    assert len(cfgs) == 4  # the full method at n = 5 is in all three tables
    assert index == [0, 1, 1, 2, 1, 3]
    groups = evaluate.sharing_groups(cfgs)
    assert sorted(len(g) for g in groups) == [1, 3]  # n = 1 alone; n = 5: full, no AdaIN, up only


def user_experiment(folder: Path, name: str, title: str) -> Path:
    """A config folder holding experiment/<name>.yaml (one fgseg job), as a user writes it."""
    (folder / "experiment").mkdir(parents=True)
    (folder / "experiment" / f"{name}.yaml").write_text(
        "# @package _global_\n"
        "experiment:\n"
        f"  name: {name}\n"
        f'  title: "{title}"\n'
        "  jobs:\n"
        "    - {run: mine, queries: 2, overrides: [task=fgseg, prompts=1]}\n"
    )
    return folder


def test_experiments_are_found_on_the_config_path(tmp_path, monkeypatch):
    """An experiment in <dir>/experiment/ of a `$SDVICL_CONFIG_PATH` folder is known next to
    the packaged ones; a packaged name stays the packaged one (conf/ is searched first, as
    Hydra does); without the folder the name is a one-line error naming the variable."""
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)
    packaged = experiments()
    with pytest.raises(ConfigError, match=r"mine.*\$SDVICL_CONFIG_PATH"):
        check_names(["mine"])
    first = user_experiment(tmp_path / "first", "mine", "My table")
    second = user_experiment(tmp_path / "second", "fgseg_main", "not the paper's")
    monkeypatch.setenv(CONFIG_PATH_ENV, os.pathsep.join([str(first), str(second)]))
    known = experiments()
    assert set(known) == {*packaged, "mine"}
    assert known["mine"]["title"] == "My table"
    assert known["fgseg_main"] == packaged["fgseg_main"]
    check_names(["mine"])
    assert [(j.experiment, j.label) for j in jobs_of("mine", known["mine"])] == [("mine", "mine")]


@pytest.mark.slow
def test_reproduce_runs_an_experiment_from_the_config_path(workdir, monkeypatch):
    monkeypatch.setenv(CONFIG_PATH_ENV, str(user_experiment(workdir / "conf", "mine", "Mine")))
    result = runner.invoke(app, ["reproduce", "mine", "--smoke", "--quiet", "--out", "tables"])
    assert result.exit_code == 0, result.output
    table = (workdir / "tables" / "mine.md").read_text()
    assert table.startswith("# Mine\n")
    assert len(list((workdir / "results" / "runs" / "fgseg").iterdir())) == 1


def test_estimates_follow_the_pass_counts():
    """ablation_adain at n = 5, 70 steps, 1868 queries: together 2n+1+2V = 15 rows per step,
    alone 2 x 13."""
    jobs = jobs_of("ablation_adain", experiments()["ablation_adain"])
    hours = estimate(jobs, load_config)
    per_row = 1868 * 70 * est.PASS_SECONDS / 3600
    assert hours["shared"] == pytest.approx(15 * per_row)
    assert hours["separate"] == pytest.approx(2 * 13 * per_row)
    qkv = estimate(jobs_of("ablation_qkv", experiments()["ablation_qkv"]), load_config)
    assert qkv["shared"] / qkv["separate"] == pytest.approx(11 / 20)  # the 11 vs 20


@pytest.mark.slow
def test_a_really_killed_sweep_resumes_without_redoing_any_variant(tmp_path):
    """SIGKILL mid-sweep (no cleanup at all); the rerun finishes every variant's folder, each
    episode recorded once, and the records written before the kill are kept as they were."""
    command = [
        sys.executable, "-m", "sdvicl_bench", "sweep", *SMOKE, "limit=10",
        "sampler.attention.temperature=0.2,0.8", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline, done = time.time() + 240, []
    while time.time() < deadline and proc.poll() is None:
        files = sorted(tmp_path.glob("results/runs/fgseg/*/samples.jsonl"))
        done = [len(f.read_text().splitlines()) for f in files]
        if len(done) == 2 and min(done) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    assert len(done) == 2 and min(done) >= 3 and max(done) < 10, "finished before the kill"
    runs = sorted((tmp_path / "results" / "runs" / "fgseg").iterdir())
    before = [complete_records(r) for r in runs]  # a line torn by the kill is not one
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    for run_dir, old in zip(runs, before, strict=True):
        lines = (run_dir / "samples.jsonl").read_text().splitlines()
        records = samples_of(run_dir)
        assert len(lines) == len(records) == 10  # every episode once
        assert all(records[i] == old[i] for i in old)  # finished records untouched
        results = json.loads((run_dir / "results.json").read_text())
        assert results["n"] == 10 and results["timing"]["new_samples"] == 10 - len(old)


def test_a_shared_pass_that_fails_before_any_sample_leaves_no_folders(workdir, monkeypatch):
    """Like `run`: a model that cannot load stops ablate in one line, and the variants'
    folders it had just created are removed again (their claims released first)."""
    from sdvicl_bench.errors import ModelError

    def cannot_load(cfg):
        raise ModelError("Cannot load tiny: test. Fix: none.")

    monkeypatch.setattr(evaluate, "load_model", cannot_load)
    result = runner.invoke(app, ["ablate", "component=adain", *SMOKE, "--quiet"])
    assert result.exit_code == 2 and "Cannot load tiny: test" in result.output
    task_dir = workdir / "results" / "runs" / "fgseg"
    assert not task_dir.exists() or list(task_dir.iterdir()) == []  # nor an empty <task>/
