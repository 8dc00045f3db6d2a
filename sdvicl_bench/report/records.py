"""Run folders (ARCHITECTURE.md rule 5): samples.jsonl, results.json, episodes.jsonl.

samples.jsonl is appended and flushed line by line, so a crash or Ctrl-C loses no finished
sample; a torn last line is dropped on reading and its episode redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from sdvicl_bench.types import EpisodeSpec


def run_key(payload: dict[str, Any]) -> str:
    """12 hex chars of sha256 over the canonical JSON of what changes a number."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def find_or_create_run_dir(base: Path, task: str, key: str) -> tuple[Path, bool]:
    """The run folder `<base>/<task>/<timestamp>-<key>/`: the existing one with this key, or new.

    Returns (folder, resumed).
    """
    task_dir = base / task
    existing = sorted(task_dir.glob(f"*-{key}")) if task_dir.exists() else []
    if existing:
        return existing[-1], True
    folder = task_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{key}"
    folder.mkdir(parents=True)
    return folder, False


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def write_episodes(path: Path, episodes: list[EpisodeSpec]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for ep in episodes:
            f.write(json.dumps(ep.to_json()) + "\n")
    os.replace(tmp, path)


def read_episodes(path: Path) -> list[EpisodeSpec]:
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
            out.append(EpisodeSpec.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(
                f"{path}:{n} is not an episode record ({err}). "
                "Fix: pass an episodes.jsonl written by sdvicl-bench run."
            ) from None
    return out


def read_samples(path: Path, *, mend: bool = True) -> list[dict[str, Any]]:
    """Finished samples; a torn (unparseable) last line is dropped and, with `mend`, cut off
    the file (only the process that appends to a file may mend it)."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    samples, good = [], 0
    for line in raw.splitlines(keepends=True):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("torn line")
            samples.append(json.loads(line))
        except ValueError:
            break
        good += len(line)
    if mend and good != len(raw):
        with path.open("r+b") as f:
            f.truncate(good)
    return samples


def read_run_samples(run_dir: Path, own: str | None = None) -> list[dict[str, Any]]:
    """Samples from samples.jsonl and every shard file of a run folder.

    Only `own` (this process's sample file) is mended; other shards' files may be in the
    middle of an append by another process.
    """
    out = []
    for path in sorted(run_dir.glob("samples*.jsonl")):
        out += read_samples(path, mend=path.name == own)
    return out


class SampleWriter:
    """Appends one JSON line per finished episode, flushed and fsynced."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
