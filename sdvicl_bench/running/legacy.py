"""Run folders keyed before the compute dtype entered SD-VICL's run key (2026-12-04).

Until then `model.dtype` was left out of the key, so a bfloat16 and a float16 run of one
config shared a folder and mixed their samples. The key now holds the resolved dtype, left
out for float32 so every float32 key (every CPU run) is unchanged. A run at another dtype that
finds no folder of its key takes over the folders of its old key whose every record was made
at its dtype (run.json's `model.dtype` resolved on each record's device), renamed to the new
key, so no finished sample is computed again. A folder with records of another dtype, or of an
unknown device, or one a running process (the older code) still claims, stays where it is.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from sdvicl_bench.report.lock import held
from sdvicl_bench.report.records import MERGED_NAME, read_run_samples, write_json
from sdvicl_bench.sampler.backbones.device import dtype_name, resolve_dtype


def adopt_legacy_folders(base: Path, task: str, old_key: str, key: str, dtype: str) -> list[Path]:
    """Rename the folders of `old_key` under `<base>/<task>/` made at `dtype` to `key`; the
    new paths (none when no folder qualifies). Call it under the task's creation lock."""
    task_dir = base / task
    old = sorted(task_dir.glob(f"*-{old_key}")) if task_dir.is_dir() else []
    renamed = {
        f.name: f.name.removesuffix(old_key) + key
        for f in old
        if _made_at(f, dtype) and not any(held(p) for p in f.glob("*.lock"))
    }
    for name, new in renamed.items():
        (task_dir / name).rename(task_dir / new)
        for file in ("run.json", "results.json"):
            _set_key(task_dir / new / file, key)
    for marker in task_dir.glob(f"*/{MERGED_NAME}") if renamed else ():  # markers follow
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(marker.read_text())
            if data["into"] in renamed:
                write_json(marker, {**data, "into": renamed[data["into"]]})
    return [task_dir / new for new in renamed.values()]


def _made_at(folder: Path, dtype: str) -> bool:
    """Whether every finished record of `folder` was computed at `dtype` (False: no record,
    an unreadable run.json, or a record without a known device)."""
    try:
        spec = json.loads((folder / "run.json").read_text())["config"]["model"]["dtype"]
        records = read_run_samples(folder)
        types = {str(r.get("device") or "").split(":")[0].strip() for r in records}
        made = {dtype_name(resolve_dtype(spec, torch.device(t))) for t in types}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return False
    return bool(records) and made == {dtype}


def _set_key(path: Path, key: str) -> None:
    with contextlib.suppress(OSError, ValueError, TypeError):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "key" in data:
            write_json(path, {**data, "key": key})
