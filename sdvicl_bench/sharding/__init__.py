"""Splitting a run's episodes across processes: `shard=i/K`, torchrun, SLURM arrays.

Shard i of K takes episodes i, i+K, i+2K ... of the frozen list (disjoint, and the same
split whatever machine runs it) and writes `samples.shard<i>of<K>.jsonl` in the run folder.
Under torchrun (WORLD_SIZE > 1) the shard is the process's rank; rank 0 creates the run
folder, the others wait for it, and rank 0 merges the shard files at the end. Separate
jobs (a SLURM array) merge with `sdvicl-bench merge <run folders>`.

Each process claims its own sample file while it runs (`report.lock.SampleLock`), so shards
work in parallel while a second process started on the same shard stops in one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from sdvicl_bench.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    distributed: bool = False  # launched by torchrun: collectives are available

    @property
    def samples_name(self) -> str:
        """This shard's sample file in the run folder."""
        return (
            "samples.jsonl" if self.count == 1 else f"samples.shard{self.index}of{self.count}.jsonl"
        )

    def take(self, position: int) -> bool:
        """Whether the episode at `position` of the frozen list is this shard's."""
        return position % self.count == self.index

    @property
    def leader(self) -> bool:
        return self.index == 0


def resolve_shard(spec: str | None) -> Shard:
    """`shard=i/K` from the config, else torchrun's RANK/WORLD_SIZE, else the whole run."""
    if spec:
        try:
            index, count = (int(x) for x in spec.split("/"))
        except ValueError:
            raise ConfigError(f"shard={spec!r}: write shard=i/K, e.g. shard=0/4.") from None
        if not 0 <= index < count:
            raise ConfigError(f"shard={spec}: need 0 <= i < K.")
        return Shard(index, count)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        return Shard(int(os.environ.get("RANK", "0")), world, distributed=True)
    return Shard()


def start(shard: Shard) -> None:
    """Join the torchrun process group (gloo on CPU, nccl on GPU); pin this rank's GPU."""
    if not shard.distributed or torch.distributed.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend=backend)


def barrier(shard: Shard) -> None:
    if shard.distributed and torch.distributed.is_initialized():
        torch.distributed.barrier()


def finish(shard: Shard) -> None:
    if shard.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
