"""The compute dtype in SD-VICL's run key, and the take-over of folders keyed before it.

Until 2026-12-04 `model.dtype` was not in the key: a bfloat16 and a float16 run of one config
shared a folder. The key now holds the resolved dtype (left out for float32, so float32 keys
are unchanged), and a run at another dtype takes over its old key's folders whose records
were all made at its dtype (`running.legacy`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdvicl_bench import evaluate
from sdvicl_bench.cli import app, load_config
from sdvicl_bench.protocols import make_protocol
from sdvicl_bench.running.legacy import adopt_legacy_folders

runner = CliRunner()
SMOKE = ["task=fgseg", "debug=smoke", "limit=2"]


def keys(*overrides: str) -> tuple[str, tuple[str, str] | None]:
    cfg = load_config([*SMOKE, *overrides])
    protocol = make_protocol(cfg)
    return evaluate._key_of(cfg, protocol, protocol.episodes())


def test_the_key_holds_the_resolved_dtype_and_float32_keys_do_not_move(workdir):
    auto, auto_legacy = keys("model.device=cpu")  # auto on a CPU: float32
    assert auto_legacy is None
    assert keys("model.device=cpu", "model.dtype=float32") == (auto, None)
    bf16, bf16_legacy = keys("model.device=cpu", "model.dtype=bfloat16")
    fp16, fp16_legacy = keys("model.device=cpu", "model.dtype=float16")
    assert len({auto, bf16, fp16}) == 3  # one folder per precision
    assert bf16_legacy == (auto, "bfloat16") and fp16_legacy == (auto, "float16")


def run(*overrides: str):
    result = runner.invoke(app, ["run", *SMOKE, "model.dtype=bfloat16", *overrides])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return result


def old_folder(monkeypatch) -> Path:
    """A bfloat16 run folder as the code before the change keyed it."""
    with monkeypatch.context() as patch:
        patch.setattr(evaluate, "key_dtype", lambda model: None)
        return Path(run("--quiet").output.strip().splitlines()[-1])


def test_a_bfloat16_run_takes_over_its_old_folder_and_samples_nothing_again(workdir, monkeypatch):
    old = old_folder(monkeypatch)
    records = (old / "samples.jsonl").read_text()
    key, (legacy, dtype) = keys("model.dtype=bfloat16")
    assert old.name.endswith(legacy) and dtype == "bfloat16"
    again = run()
    new = old.with_name(old.name.removesuffix(legacy) + key)
    assert f"Resuming {new}: 2 episodes done, 0 to do." in again.output
    assert not old.exists() and (new / "samples.jsonl").read_text() == records
    assert json.loads((new / "run.json").read_text())["key"] == key
    assert json.loads((new / "results.json").read_text())["key"] == key


def test_a_folder_with_records_of_another_dtype_is_left_alone(workdir, monkeypatch):
    old = old_folder(monkeypatch)
    run_json = json.loads((old / "run.json").read_text())
    run_json["config"]["model"]["dtype"] = "float16"  # its records were float16 ones
    (old / "run.json").write_text(json.dumps(run_json))
    again = run()
    assert "Resuming" not in again.output and old.is_dir()
    (new,) = set(old.parent.iterdir()) - {old}
    assert len((new / "samples.jsonl").read_text().splitlines()) == 2


def fake_folder(task_dir: Path, name: str, spec: str, devices: list[str | None]) -> Path:
    folder = task_dir / name
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(
        json.dumps({"key": name.split("-")[-1], "config": {"model": {"dtype": spec}}})
    )
    records = [
        {"id": f"e{i}", "query": "q", "prompts": [], "seed": 0, "scores": {}, "baselines": {}}
        | ({"device": d} if d else {})
        for i, d in enumerate(devices)
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.mark.parametrize(
    ("spec", "devices", "taken"),
    [
        ("auto", ["cuda: NVIDIA H200", "cuda: NVIDIA H100"], True),  # auto on CUDA: bf16
        ("bfloat16", ["cpu: x86_64"], True),
        ("auto", ["cuda: NVIDIA H200", "cpu: x86_64"], False),  # a float32 record among them
        ("float16", ["cuda: NVIDIA H200"], False),
        ("auto", ["cuda: NVIDIA H200", None], False),  # a record of an unknown device
        ("auto", [], False),  # nothing to take over
    ],
)
def test_which_old_folders_are_taken_over(tmp_path, spec, devices, taken):
    fake_folder(tmp_path / "fgseg", "20261201-000000-aaaaaaaaaaaa", spec, devices)
    moved = adopt_legacy_folders(tmp_path, "fgseg", "aaaaaaaaaaaa", "bbbbbbbbbbbb", "bfloat16")
    names = sorted(p.name for p in (tmp_path / "fgseg").iterdir())
    expected = "20261201-000000-" + ("bbbbbbbbbbbb" if taken else "aaaaaaaaaaaa")
    assert names == [expected] and len(moved) == int(taken)


def test_merge_markers_follow_the_renamed_folder(tmp_path):
    task_dir = tmp_path / "fgseg"
    cuda = ["cuda: NVIDIA H200"]
    fake_folder(task_dir, "20261201-000000-aaaaaaaaaaaa", "auto", cuda)
    shard = fake_folder(task_dir, "20261201-000001-aaaaaaaaaaaa", "auto", cuda)
    (shard / "merged.json").write_text(json.dumps({"into": "20261201-000000-aaaaaaaaaaaa"}))
    adopt_legacy_folders(tmp_path, "fgseg", "aaaaaaaaaaaa", "bbbbbbbbbbbb", "bfloat16")
    marker = task_dir / "20261201-000001-bbbbbbbbbbbb" / "merged.json"
    assert json.loads(marker.read_text())["into"] == "20261201-000000-bbbbbbbbbbbb"


def test_a_folder_a_running_process_claims_is_not_renamed_under_it(tmp_path):
    from sdvicl_bench.report.lock import SampleLock

    folder = fake_folder(tmp_path / "fgseg", "20261201-000000-aaaaaaaaaaaa", "auto", ["cuda: X"])
    with SampleLock(folder / "samples.jsonl"):  # an older-code run still appending to it
        assert (
            adopt_legacy_folders(tmp_path, "fgseg", "aaaaaaaaaaaa", "bbbbbbbbbbbb", "bfloat16")
            == []
        )
        assert folder.is_dir()
    # its lock file left behind by a process that died claims nothing
    (folder / "samples.jsonl.lock").write_text("{}")
    moved = adopt_legacy_folders(tmp_path, "fgseg", "aaaaaaaaaaaa", "bbbbbbbbbbbb", "bfloat16")
    assert [p.name for p in moved] == ["20261201-000000-bbbbbbbbbbbb"]
