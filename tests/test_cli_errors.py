"""Issue 14: errors that are one line, exit with code 2 and name the real cause and the fix.

A full disk or read-only output folder (run, tables --out, grid), a device torch cannot use,
a bad `grid --limit`, a missing model folder, an unreachable hub, a non-ASCII data root,
unknown task options, and `validate` rejecting what `run` rejects.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.errors import disk_error_line
from sdvicl_bench.report import records
from sdvicl_bench.tasks import semseg
from tests.cli_helpers import error_line

runner = CliRunner()
SMOKE = ["task=fgseg", "debug=smoke"]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished smoke run (2 episodes), its demo data and run folder under one tmp folder."""
    base = tmp_path_factory.mktemp("finished")
    result = runner.invoke(
        app,
        ["run", *SMOKE, f"data.root={base / 'data'}", f"output_dir={base / 'runs'}", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def fail_writes(monkeypatch, folder: Path, code: int) -> None:
    """Make every folder creation and write-mode open under `folder` raise OSError(code)."""
    folder = str(folder)
    real_open, real_mkdir = builtins.open, os.mkdir

    def under(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(folder)

    def fake_open(file, mode="r", *args, **kwargs):
        if under(file) and any(c in mode for c in "wax+"):
            raise OSError(code, os.strerror(code), os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if under(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


# ----------------------------------------------------------------------------- disk (item 4)

DISK = [(errno.EROFS, "Read-only file system"), (errno.ENOSPC, "No space left on device")]


@pytest.mark.parametrize("code,cause", DISK)
def test_run_into_an_unwritable_output_dir(workdir, monkeypatch, code, cause):
    out = workdir / "out"
    fail_writes(monkeypatch, out, code)
    line = error_line(runner.invoke(app, ["run", *SMOKE, f"output_dir={out}"]))
    assert cause in line and str(out) in line and "output_dir=<writable folder>" in line


@pytest.mark.parametrize("code,cause", DISK)
def test_tables_into_an_unwritable_out(finished_run, tmp_path, monkeypatch, code, cause):
    out = tmp_path / "tables"
    fail_writes(monkeypatch, out, code)
    line = error_line(runner.invoke(app, ["tables", str(finished_run), "--out", str(out)]))
    assert cause in line and str(out) in line and "--out <writable folder>" in line


@pytest.mark.parametrize("code,cause", DISK)
def test_grid_of_an_unwritable_run_folder(finished_run, monkeypatch, code, cause):
    fail_writes(monkeypatch, finished_run, code)
    line = error_line(runner.invoke(app, ["grid", str(finished_run)]))
    assert cause in line and "grid.png" in line and "copy the run folder" in line


@pytest.mark.slow
def test_disk_full_mid_run_keeps_finished_samples(workdir, monkeypatch):
    real_write = records.SampleWriter.write
    calls = []

    def write_once(self, record):
        calls.append(record["id"])
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", self._f.name)
        real_write(self, record)

    monkeypatch.setattr(records.SampleWriter, "write", write_once)
    line = error_line(runner.invoke(app, ["run", *SMOKE, "--quiet"]))
    assert "No space left on device" in line and "samples.jsonl" in line
    samples = list((workdir / "results" / "runs" / "fgseg").glob("*/samples.jsonl"))
    assert len(samples) == 1 and len(samples[0].read_text().splitlines()) == 1
    monkeypatch.setattr(records.SampleWriter, "write", real_write)
    again = runner.invoke(app, ["run", *SMOKE, "--quiet"])  # space freed: resumes
    assert again.exit_code == 0, again.output
    assert len(samples[0].read_text().splitlines()) == 2


def test_read_only_folder_for_real(workdir):
    out = workdir / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("chmod does not stop this user (root) from writing")
        line = error_line(runner.invoke(app, ["run", *SMOKE, f"output_dir={out}"]))
        assert "Permission denied" in line and str(out) in line
    finally:
        out.chmod(0o755)


def test_other_os_errors_are_not_disk_errors():
    assert disk_error_line(FileNotFoundError(errno.ENOENT, "No such file", "x"), "fix") is None
    line = disk_error_line(OSError(errno.ENOSPC, "No space left on device"), "choose y")
    assert (
        line == "No space left on device while writing. Fix: free space on that disk, or choose y."
    )


# ----------------------------------------------------------------------------- device, limit (5)


@pytest.mark.parametrize("device", ["tpu", "cuda:99", "nonsense:x"])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_device_torch_cannot_use(workdir, command, device):
    line = error_line(runner.invoke(app, [command, *SMOKE, f"model.device={device}"]))
    assert f"model.device={device}" in line and "Fix: model.device=auto" in line and "cpu" in line


def test_device_checked_against_this_machine(monkeypatch):
    import torch

    from sdvicl_bench.errors import ModelError
    from sdvicl_bench.sampler.backbones.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ModelError, match="cuda:7: this machine has 2 CUDA devices") as err:
        resolve_device("cuda:7")
    assert "cpu, cuda, cuda:0, cuda:1" in str(err.value)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ModelError, match=r"model\.device=mps: MPS"):
        resolve_device("mps")


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_grid_limit_below_one(finished_run, limit):
    line = error_line(runner.invoke(app, ["grid", str(finished_run), "--limit", limit]))
    assert f"--limit {limit}" in line


# ----------------------------------------------------------------------------- model (6)


@pytest.mark.parametrize("command", ["run", "validate"])
def test_missing_model_path_is_a_missing_folder(workdir, command):
    args = [command, *SMOKE, "model=sd15", "model.path=/nonexistent/sd15"]
    line = error_line(runner.invoke(app, args))
    assert "Model folder not found: /nonexistent/sd15" in line and "hub id '" not in line
    assert "model.path=<folder" in line


def test_load_of_a_missing_path_is_a_missing_folder():
    from sdvicl_bench.errors import ModelError
    from sdvicl_bench.sampler.backbones.sd15 import load_sd15

    with pytest.raises(ModelError, match="Model folder not found: /nonexistent/sd15"):
        load_sd15("/nonexistent/sd15", None)


def cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m sdvicl_bench <args>` in its own process, with `env` added to os.environ."""
    full = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    full.update(env, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "sdvicl_bench", *args]
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


NO_HUB = "http://127.0.0.1:9"  # nothing listens: the hub cannot be reached, at once
RUN_SD15 = ["run", "task=fgseg", "data=demo", "limit=1", "sampler.steps=2", "sampler.resolution=64"]


@pytest.mark.slow
def test_hub_unreachable_and_nothing_cached(tmp_path):
    done = cli(RUN_SD15, tmp_path, HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=NO_HUB)
    assert done.returncode == 2, done.stderr
    lines = [x for x in (done.stdout + done.stderr).splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert f"hub ({NO_HUB}) cannot be reached" in lines[0]
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in lines[0]
    for way_out in ("huggingface-cli download", "model.path=<folder>", "HF_HUB_OFFLINE=1"):
        assert way_out in lines[0]


@pytest.mark.slow
def test_hub_unreachable_but_cached_still_loads(tmp_path):
    from tests.test_models import save_tiny_pipeline

    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hf" / "hub" / "models--some-org--tiny-sd" / "snapshots" / revision
    save_tiny_pipeline(snapshot)
    model = ["model.hub_id=some-org/tiny-sd", f"model.revision={revision}", "--quiet"]
    done = cli([*RUN_SD15, *model], tmp_path, HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=NO_HUB)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / done.stdout.strip().splitlines()[-1]
    assert json.loads((run_dir / "results.json").read_text())["n"] == 1


def test_hf_hub_offline_names_it(monkeypatch):
    import huggingface_hub.constants

    from sdvicl_bench.config import ModelConfig
    from sdvicl_bench.errors import ModelError
    from sdvicl_bench.sampler.backbones.registry import load_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError) as err:
        load_model(ModelConfig(name="sd15", hub_id="no-such-org/no-such-model-xyz"))
    assert "HF_HUB_OFFLINE is set" in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- data root (7)


def test_non_ascii_data_root_is_accepted(workdir):
    root = workdir / "dätä"
    result = runner.invoke(app, ["validate", *SMOKE, f"data.root={root}"])
    assert result.exit_code == 0, result.output
    assert f"root: {root}" in result.output and (root / "VOC2012").is_dir()


@pytest.mark.parametrize("value", ["/tmp/dätä", "/tmp/d'ä\"x", "C:\\dä\\", "/tmp/dä\\'x"])
def test_non_ascii_values_reach_the_config_unchanged(value):
    from sdvicl_bench.cli import compose

    assert compose([f"data.root={value}"])["data"]["root"] == value


# ----------------------------------------------------------------------------- validate (8)

REJECTED = [
    (["shard=abc"], "shard='abc'"),
    (["shard=3/2"], "shard=3/2"),
    (["task=semseg", "task.options.palette=bogus"], "official, spread"),
    (["episodes=/nope.jsonl"], "/nope.jsonl"),
    (["model.device=tpu"], "model.device=tpu"),
]


@pytest.mark.parametrize("args,needle", REJECTED)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_validate_rejects_what_run_rejects(workdir, command, args, needle):
    line = error_line(runner.invoke(app, [command, *SMOKE, *args]))
    assert needle in line


def test_validate_builds_the_protocol_without_the_model(workdir, monkeypatch):
    import sdvicl_bench.sampler.backbones.sd15 as sd15

    monkeypatch.setattr(sd15, "build_tiny", lambda *a, **k: pytest.fail("model built"))
    result = runner.invoke(app, ["validate", "task=semseg", "debug=smoke"])
    assert result.exit_code == 0, result.output
    assert (workdir / "data" / "demo" / "cityscapes").is_dir()  # the protocol wrote demo data


def test_validate_notes_a_missing_real_dataset(workdir):
    result = runner.invoke(app, ["validate", "task=fgseg", "model=tiny"])
    assert result.exit_code == 0, result.output
    assert "note: data/VOC2012 not found" in result.output


# ----------------------------------------------------------------------------- options (9)


def test_unknown_palette_names_the_palettes(workdir):
    line = error_line(runner.invoke(app, ["validate", "task=semseg", "task.options.palette=bgus"]))
    assert "Unknown palette 'bgus' for task=semseg" in line and "official, spread" in line


def test_option_of_another_task_names_that_task(workdir):
    line = error_line(runner.invoke(app, ["validate", "task=fgseg", "task.options.palette=x"]))
    assert "task=fgseg has no option 'palette' (task=semseg has palette=official|spread)" in line
    assert "score_size=<integer>|null" in line  # fgseg's own option (issue 15)


def test_unknown_option_names_the_known_ones(workdir):
    line = error_line(runner.invoke(app, ["validate", "task=colorization", "task.options.fdi=1"]))
    assert "has no option 'fdi'" in line and "fid=true|false" in line and "queries" in line
    assert "Did you mean 'task.options.fid'" in line


def test_option_of_the_wrong_type(workdir):
    line = error_line(
        runner.invoke(app, ["validate", "task=colorization", "task.options.queries=x"])
    )
    assert "task.options.queries" in line and "integer" in line


def test_palette_choices_are_the_palettes():
    from typing import get_args

    assert set(get_args(semseg.OPTIONS["palette"])) == set(semseg.PALETTES)


# ----------------------------------------------------------------------------- real file systems


@pytest.fixture()
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of that size under tmp_path (root only: else skipped)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sdvicl_bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


def _scores(run_dir: Path) -> dict[str, dict]:
    return {s["id"]: s["scores"] for s in records.read_samples(run_dir / "samples.jsonl")}


def _remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


@pytest.mark.slow
def test_full_and_read_only_tmpfs_for_real(tmp_path, tmpfs):
    """A real ENOSPC and a real EROFS mid-run: one line, exit 2, finished samples kept, and a
    rerun after the disk is fixed completes to the records of an uninterrupted run."""
    data = f"data.root={tmp_path / 'data'}"
    common = ["run", *SMOKE, data, "limit=6", "--quiet"]
    reference = _cli(*common, f"output_dir={tmp_path / 'reference'}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    expected = _scores(Path(reference.stdout.strip().splitlines()[-1]))

    full = tmpfs("96k")  # room for the folder and a few pictures, not for six episodes
    first = _cli(*common, f"output_dir={full}", cwd=tmp_path)
    lines = [x for x in first.stderr.splitlines() if x.strip()]
    assert first.returncode == 2 and "Traceback" not in first.stderr, first.stderr[-2000:]
    assert len(lines) == 1 and "No space left" in lines[0] and "Fix:" in lines[0]
    (run_dir,) = (full / "fgseg").iterdir()
    kept = _scores(run_dir)
    assert all(expected[i] == s for i, s in kept.items())  # what was kept is whole

    _remount(full, "size=16m")
    _remount(full, "ro")
    again = _cli(*common, f"output_dir={full}", cwd=tmp_path)
    lines = [x for x in again.stderr.splitlines() if x.strip()]
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert len(lines) == 1 and "Read-only" in lines[0]
    assert _scores(run_dir) == kept

    _remount(full, "rw")
    last = _cli(*common, f"output_dir={full}", cwd=tmp_path)
    assert last.returncode == 0, last.stderr[-2000:]
    assert _scores(run_dir) == expected


@pytest.mark.parametrize(
    "task,option",
    [
        ("semseg", "task.options.classes=[0,99]"),
        ("edges", "task.options.edge_width=0"),
        ("edges", "task.options.canny_thresholds=[0.2,7]"),
        ("keypoints", "task.options.marker_radius=-1"),
        ("keypoints", "task.options.marker_radius=nan"),
    ],
)
def test_a_task_option_out_of_its_range_is_one_line_before_any_work(workdir, task, option):
    line = error_line(runner.invoke(app, ["validate", f"task={task}", "data=demo", option]))
    assert option.split("=")[0] in line and "out of range" in line and "Fix:" in line
    assert not (workdir / "data").exists()  # refused before the demo data is written
