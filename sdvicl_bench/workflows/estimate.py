"""GPU-hour estimates of the paper's experiments, from U-Net image passes.

Nearly all of an episode's time is U-Net image passes (rows through the U-Net); the
attention's extra cost at n = 5 is inside the measured per-pass time. So

    hours = sum over sampling passes of  queries x T x rows per episode x PASS_SECONDS / 3600

where T = steps - skip, rows per episode = 2n + 1 + sum_v (2 if variant v uses swap
guidance else 1) for the variants sharing the pass (`sampler.variants.rows_per_call`), plus
one C row per step under inversion=separate.
"""

from __future__ import annotations

from collections.abc import Sequence

from sdvicl_bench.config import RunConfig
from sdvicl_bench.sampler.variants import rows_per_call

PASS_SECONDS = 3.43 / 910
"""Seconds per U-Net image pass on an H100 80GB: SD1.5 at 512 px, bf16 eager, fused attention
kernel, batch_episodes=4, n = 5: 3.43 s per episode for 70 steps x 13 passes
(docs/PERFORMANCE.md, Run 3). About 3.8 ms."""


def passes_per_query(cfgs: Sequence[RunConfig]) -> int:
    """U-Net image passes for one query when `cfgs` (variants that share rows) run together."""
    sampler = cfgs[0].sampler
    steps = sampler.steps - sampler.skip
    rows = rows_per_call(cfgs[0].num_prompts, [c.sampler for c in cfgs], 1)
    inversion = 1 if sampler.inversion == "separate" else 0
    return steps * (rows + inversion)


def hours(groups: Sequence[tuple[int, Sequence[RunConfig]]]) -> float:
    """H100-hours of passes: groups of (queries, configs that share one pass)."""
    return sum(q * passes_per_query(cfgs) for q, cfgs in groups) * PASS_SECONDS / 3600
