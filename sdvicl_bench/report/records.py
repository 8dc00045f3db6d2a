"""Run folders (ARCHITECTURE.md rule 5): samples.jsonl, results.json, episodes.jsonl.

samples.jsonl is appended and flushed line by line, so a crash or Ctrl-C loses no finished
sample. A line that is not a record (a torn last line, garbage, JSON that is not a sample) is
skipped on reading; the process that owns the file (`mend_samples`) sets it aside in
samples.damaged.jsonl and rewrites the file with the valid records, so its episode is redone
and no good record after it is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from sdvicl_bench.types import EpisodeSpec

RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "query": str,
    "prompts": list,
    "seed": int,
    "scores": dict,
    "baselines": dict,
}
"""What a samples.jsonl line must hold (with these types) to count as a finished sample."""
DAMAGED_NAME = "samples.damaged.jsonl"
"""Where the owner of a sample file sets its damaged lines aside, with the file they left."""


def run_key(payload: dict[str, Any]) -> str:
    """12 hex chars of sha256 over the canonical JSON of what changes a number."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


MERGED_NAME = "merged.json"
"""Written by `merge` into each folder it folded into another: {"into": that folder's name}.
Such a folder is part of its merged run: tables skip it and runs do not resume it."""


def merged_into(folder: Path) -> Path | None:
    """The folder `folder` was merged into, where that folder (a sibling) still exists."""
    marker = folder / MERGED_NAME
    if not marker.is_file():
        return None
    try:
        target = folder.parent / str(json.loads(marker.read_text())["into"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return target if target.is_dir() and target.resolve() != folder.resolve() else None


def runs_of_key(base: Path, task: str, key: str) -> list[Path]:
    """The folders of `key` under `<base>/<task>/` that are not merged into another one."""
    task_dir = base / task
    found = sorted(task_dir.glob(f"*-{key}")) if task_dir.exists() else []
    return [f for f in found if merged_into(f) is None]


def find_or_create_run_dir(base: Path, task: str, key: str) -> tuple[Path, bool]:
    """The run folder `<base>/<task>/<timestamp>-<key>/`: of the existing folders with this
    key (several after shards were copied from a cluster's nodes), the one holding the most
    finished samples, the newest on a tie, never one merged into another; or a new one.

    Returns (folder, resumed). Callers that may race hold the lock at `creation_lock_path`.
    """
    existing = runs_of_key(base, task, key)
    if existing:
        return max(existing, key=lambda f: (len(read_run_samples(f)), f.name)), True
    folder = base / task / f"{time.strftime('%Y%m%d-%H%M%S')}-{key}"
    folder.mkdir(parents=True)
    return folder, False


def creation_lock_path(base: Path, task: str) -> Path:
    """The lock file held while a run folder of `task` is found or created: `<base>/.<task>.lock`
    (beside the task folder, so that folder holds run folders only)."""
    return base / f".{task}.lock"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename; the temp name is per process)."""
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def write_episodes(path: Path, episodes: list[EpisodeSpec]) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("w") as f:
        for ep in episodes:
            f.write(json.dumps(ep.to_json()) + "\n")
    os.replace(tmp, path)


def read_episodes(path: Path) -> list[EpisodeSpec]:
    """The frozen episodes of an episodes.jsonl; `DataError` (one line, file:line) on a bad one."""
    from sdvicl_bench.errors import DataError

    if not path.is_file():
        raise DataError(
            f"Frozen episodes file not found: {path}. "
            "Fix: pass episodes=<run folder>/episodes.jsonl."
        )
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(episode_of(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(
                f"{path}:{n} is not an episode record ({err}). Fix: give each line an id, "
                "a query, a non-empty prompts list and a seed, as an episodes.jsonl written "
                "by sdvicl-bench run does."
            ) from None
    return out


def episode_of(obj: Any) -> EpisodeSpec:
    """One episodes.jsonl record as an EpisodeSpec; ValueError where it cannot be one."""
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON {type(obj).__name__}, not an object")
    prompts = obj.get("prompts")
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a list of dataset keys")
    if not prompts:
        raise ValueError("its prompts list is empty: an episode needs at least one prompt pair")
    return EpisodeSpec.from_json(obj)


def is_record(obj: Any, fields: dict = RECORD_FIELDS) -> bool:
    """Whether a parsed samples.jsonl line is a sample record: a dict with `fields` typed."""
    return isinstance(obj, dict) and all(isinstance(obj.get(k), t) for k, t in fields.items())


def parse_samples(raw: bytes, fields: dict = RECORD_FIELDS) -> tuple[list[dict], list[int]]:
    """(records, numbers of the damaged lines) of a sample file's bytes.

    A line is damaged when it is not JSON, not a record (`is_record`), or the last one and
    torn (no newline). Blank lines are neither.
    """
    records, damaged = [], []
    for n, line in enumerate(raw.splitlines(keepends=True), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line) if line.endswith(b"\n") else None
        except (ValueError, RecursionError):
            obj = None
        if is_record(obj, fields):
            records.append(obj)
        else:
            damaged.append(n)
    return records, damaged


def read_samples(path: Path, *, fields: dict = RECORD_FIELDS) -> list[dict[str, Any]]:
    """Finished samples of one sample file, read-only: damaged lines are skipped."""
    if not path.exists():
        return []
    return parse_samples(path.read_bytes(), fields)[0]


def mend_samples(path: Path) -> int:
    """Set the damaged lines of a sample file aside; returns how many.

    Each damaged line is appended (with its file and line number) to samples.damaged.jsonl
    beside it, then the file is rewritten atomically with only its valid lines, so their
    episodes are redone and every good record is kept. Only the process that appends to
    `path` (and holds its lock) may mend it.
    """
    if not path.exists():
        return 0
    raw = path.read_bytes()
    _, damaged = parse_samples(raw)
    if not damaged:
        return 0
    lines = raw.splitlines(keepends=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    aside = [
        {
            "file": path.name,
            "line": n,
            "text": lines[n - 1].decode("utf-8", "replace").rstrip("\n"),
            "set_aside": stamp,
        }
        for n in damaged
    ]
    with (path.parent / DAMAGED_NAME).open("a") as f:
        f.write("".join(json.dumps(a) + "\n" for a in aside))
        f.flush()
        os.fsync(f.fileno())
    bad = set(damaged)
    kept = [line for n, line in enumerate(lines, 1) if n not in bad and line.strip()]
    _replace_bytes(path, b"".join(kept))
    return len(damaged)


def write_samples(path: Path, samples: list[dict[str, Any]]) -> None:
    """Write a sample file atomically (temp file + fsync + rename), one record a line."""
    _replace_bytes(path, "".join(json.dumps(s) + "\n" for s in samples).encode())


def _replace_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sample_files(run_dir: Path) -> list[Path]:
    """samples.jsonl and every shard (or merged-in) sample file of a run folder, sorted."""
    return sorted(p for p in Path(run_dir).glob("samples*.jsonl") if p.name != DAMAGED_NAME)


def read_run_samples(run_dir: Path, *, fields: dict = RECORD_FIELDS) -> list[dict[str, Any]]:
    """Samples from samples.jsonl and every shard file of a run folder, read-only.

    Damaged lines are skipped, never mended here: other shards' files may be in the middle of
    an append by another process (the owner mends its own with `mend_samples`).
    """
    out = []
    for path in sample_files(run_dir):
        out += read_samples(path, fields=fields)
    return out


def missing_pictures(run_dir: Path, samples: list[dict[str, Any]]) -> list[str]:
    """The `pred` and `gt` picture paths the samples name that are not in the run folder."""
    names = [s.get(k) for s in samples for k in ("pred", "gt")]
    return [n for n in names if isinstance(n, str) and not (Path(run_dir) / n).is_file()]


class SampleWriter:
    """Appends one JSON line per finished episode, flushed and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._f.write(json.dumps(record) + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as err:  # a full disk on write/flush names no file: name ours
            if err.filename is None:
                raise OSError(err.errno, err.strerror, str(self.path)) from err
            raise

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def all_samples(run_dir: Path, episodes: list[EpisodeSpec]) -> list[dict]:
    """Every finished sample of the folder, one per id: in frozen episode order, then any
    others (ids not in `episodes`) sorted."""
    by_id = {s["id"]: s for s in read_run_samples(run_dir)}
    order = [e.id for e in episodes if e.id in by_id]
    order += sorted(set(by_id) - set(order))
    return [by_id[i] for i in order]


def merge_samples(run_dir: Path, episodes: list[EpisodeSpec]) -> int:
    """Fold the shard files (and any copies from other folders) into samples.jsonl, in
    episode order, one record per episode id; then move the shard files to shards/.

    Damaged lines of the folded files are set aside first (`records.mend_samples`); returns
    how many. The caller owns every sample file of the folder (its locks, or the barrier
    after which no rank writes).
    """
    damaged = sum(mend_samples(path) for path in sample_files(run_dir))
    write_samples(run_dir / "samples.jsonl", all_samples(run_dir, episodes))
    shards = run_dir / "shards"  # kept for the record: which process ran which episode
    for path in run_dir.glob("samples.shard*.jsonl"):
        shards.mkdir(exist_ok=True)
        path.replace(shards / path.name)
    return damaged
