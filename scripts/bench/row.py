"""`Row`: one (variant, n) measurement, the record `measure` fills and `report` writes.

A module of its own so that `report` can name it without importing `measure` (which imports
`report`): the two would otherwise import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One (variant, n) measurement. Times in seconds; memory in bytes."""

    variant: str
    kind: str
    dtype: str
    n: int
    steps: int
    resolution: int
    latency_s: float | None = None
    latency_runs: list[float] = field(default_factory=list)
    ms_per_step: float | None = None
    batch: int | None = None
    batch_s_per_episode: float | None = None
    peak_mem_latency: int | None = None
    peak_mem_batch: int | None = None
    mem_how: str = "n/a"
    passes_per_step: float | None = None
    expected_passes_per_step: int | None = None
    unet_calls_per_step: float | None = None
    finite: bool | None = None
    warmup_s: float = 0.0  # warm-up runs (WARMUP_STEPS steps each), compilation included
    note: str = ""
