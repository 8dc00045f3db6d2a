"""One run folder: its files, opening it by key, its finished samples, results.json.

`<output_dir>/<task>/<timestamp>-<key>/` holds run.json (key and config), episodes.jsonl
(the frozen episodes), the sample files (samples.jsonl, or one per shard), pictures/,
results.json and grid.png. The record format, the creation lock and the sample-file claims
are `report.records` and `report.lock`; this module is what a run does with them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdvicl_bench.config import RunConfig, from_dict, to_dict
from sdvicl_bench.errors import DataError
from sdvicl_bench.protocols import TaskProtocol, make_protocol
from sdvicl_bench.report import lock
from sdvicl_bench.report.lock import SampleLock
from sdvicl_bench.report.records import (
    DAMAGED_NAME,
    all_samples,
    creation_lock_path,
    find_or_create_run_dir,
    mend_samples,
    merge_samples,
    missing_pictures,
    read_episodes,
    read_run_samples,
    runs_of_key,
    sample_files,
    write_episodes,
    write_json,
)
from sdvicl_bench.running.legacy import adopt_legacy_folders
from sdvicl_bench.sharding import Shard
from sdvicl_bench.types import EpisodeSpec


@dataclass
class RunOutcome:
    """What `run`, `merge` and `rescore` hand back: the folder, its results, whether it
    existed before and how many samples this call added."""

    run_dir: Path
    results: dict[str, Any]
    resumed: bool
    new_samples: int


@dataclass(frozen=True)
class RunFolder:
    """The run folder at `path` (`<output_dir>/<task>/<timestamp>-<key>`)."""

    path: Path

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def episodes_path(self) -> Path:
        return self.path / "episodes.jsonl"

    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    @property
    def pictures(self) -> Path:
        return self.path / "pictures"

    def sample_file(self, shard: Shard) -> Path:
        """The sample file `shard` writes (samples.jsonl for a whole run)."""
        return self.path / shard.samples_name

    @property
    def creation_lock(self) -> Path:
        """The lock held while a folder of this task is found, created or removed."""
        return creation_lock_path(self.path.parent.parent, self.path.parent.name)

    @classmethod
    def open(
        cls,
        cfg: RunConfig,
        key: str,
        episodes: list[EpisodeSpec],
        shard: Shard,
        legacy: tuple[str, str] | None = None,
    ) -> tuple[RunFolder, bool, SampleLock]:
        """(run folder, resumed, this process's claim on its sample file).

        Finding or creating the folder and claiming the sample file are one step under the
        task's creation lock, so two processes started at once share one folder and the
        second one on the same sample file stops with a one-line DataError. `legacy`: (the key
        this run had before the compute dtype entered the key, that dtype); with no folder of
        `key` yet, the old key's folders made at that dtype are taken over (`running.legacy`).
        """
        base = Path(cfg.output_dir)
        with lock.exclusive(creation_lock_path(base, cfg.task.name)):
            if legacy and not runs_of_key(base, cfg.task.name, key):
                adopt_legacy_folders(base, cfg.task.name, legacy[0], key, legacy[1])
            path, resumed = find_or_create_run_dir(base, cfg.task.name, key)
            folder = cls(path)
            if not folder.episodes_path.exists():
                write_episodes(folder.episodes_path, episodes)
                write_json(folder.run_json, {"key": key, "config": to_dict(cfg)})
            folder.pictures.mkdir(exist_ok=True)
            claim = SampleLock(folder.sample_file(shard)).acquire()
        return folder, resumed, claim

    def remove_if_empty(self) -> None:
        """Remove the folder when it holds no sample and no other process claims it (a run
        that failed before its first sample, e.g. at model loading, leaves nothing behind)."""
        with lock.exclusive(self.creation_lock):
            claimed = any(self.path.glob("*.lock"))
            kept = (self.path / DAMAGED_NAME).exists() or any(
                p.stat().st_size for p in sample_files(self.path)
            )
            if not claimed and not kept:
                shutil.rmtree(self.path, ignore_errors=True)
                with contextlib.suppress(OSError):  # the <task>/ folder too, if now empty
                    self.path.parent.rmdir()

    def key(self) -> str:
        """The run key, from run.json."""
        return json.loads(self.run_json.read_text())["key"]

    def episodes(self) -> list[EpisodeSpec]:
        """The frozen episodes, from episodes.jsonl."""
        return read_episodes(self.episodes_path)

    def finished(self) -> list[dict[str, Any]]:
        """Every finished sample of every sample file, read-only (damaged lines skipped)."""
        return read_run_samples(self.path)

    def samples(self, episodes: list[EpisodeSpec]) -> list[dict]:
        """Every finished sample, one per id, in frozen episode order (`records.all_samples`)."""
        return all_samples(self.path, episodes)

    def set_aside_damaged(self, shard: Shard) -> int:
        """Mend `shard`'s own sample file (`records.mend_samples`); how many lines went."""
        return mend_samples(self.sample_file(shard))

    def merge_shards(self, episodes: list[EpisodeSpec]) -> int:
        """Fold the shard files into samples.jsonl (`records.merge_samples`); how many
        damaged lines were set aside."""
        return merge_samples(self.path, episodes)

    def without_pictures(self, samples: list[dict]) -> list[str]:
        """Ids of the finished samples whose picture files are gone."""
        return [s["id"] for s in samples if missing_pictures(self.path, [s])]

    def siblings(self) -> list[Path]:
        """Other folders of this run's key beside this one, not merged into another (shards
        copied from a cluster's nodes): their finished episodes are not sampled again."""
        base, task = self.path.parent.parent, self.path.parent.name
        me = self.path.resolve()
        return [f for f in runs_of_key(base, task, self.key()) if f.resolve() != me]

    def pending(
        self,
        episodes: list[EpisodeSpec],
        limit: int | None,
        shard: Shard,
        finished: list[dict],
    ) -> tuple[list[EpisodeSpec], list[EpisodeSpec]]:
        """(this shard's episodes within `limit`, those of them with no finished sample;
        `finished` may hold sibling folders' samples too)."""
        selected = episodes[:limit] if limit else episodes
        done = {s["id"] for s in finished}
        mine = [e for i, e in enumerate(selected) if shard.take(i)]
        return mine, [e for e in mine if e.id not in done]

    def write_results(self, results: dict[str, Any]) -> None:
        """results.json, written atomically."""
        write_json(self.results_path, results)


def protocol_of(run_dir: Path) -> tuple[RunConfig, TaskProtocol]:
    """The config and protocol a run folder was made with (from its run.json)."""
    run_json = RunFolder(Path(run_dir)).run_json
    if not Path(run_dir).is_dir():
        raise DataError(
            f"No such folder: {run_dir}. Fix: pass a run folder "
            "(results/runs/<task>/<timestamp>-<key>; `sdvicl-bench ls` lists them)."
        )
    if not run_json.is_file():
        raise DataError(
            f"{run_dir} is not a run folder (no run.json). "
            "Fix: pass a folder under results/runs/<task>/."
        )
    cfg = from_dict(RunConfig, json.loads(run_json.read_text())["config"])
    return cfg, make_protocol(cfg)
