"""Many sampler variants for the price of one: which settings may differ, and the row count.

Every setting an ablation switches (AdaIN, contrast, temperature, swap guidance, IWPE vs
mean, layers, qkv, the attention step window, D's initialisation, last_z_zero) changes only
what happens to D. The rows A_i, B_i and C see plain attention and their own sampled
latents, which depend only on (seed, image id, role). So V variants of one episode share one
set of A, B, C rows (`Sampler.run_variants`), one U-Net call per step over

    [A_1..A_n, B_1..B_n, C, D_mod^1, D_def^1, ..., D_mod^V, D_def^V]   (per episode)

where D_def^v exists only if variant v uses swap guidance (`attention.StreamLayout`):

    rows per episode  = 2n + 1 + sum_v (2 if variant v uses swap guidance else 1)
                      = 2n + 1 + 2V when every variant uses swap guidance
    rows per U-Net call = batch_episodes x rows per episode

against V (2n + 3) image passes per step when each variant runs on its own.

Settings that change the shared rows or the schedule (steps, skip, resolution, inversion)
must agree (`non_shareable_differences`). "How" settings (batch_episodes, row_budget,
attention.kernel) come from the sampler's own config; attention.chunk_size is per variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sdvicl_bench.config import SamplerConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.sampler.attention import StreamLayout

PER_VARIANT = ("init", "last_z_zero", "attention", "swap", "adain")
"""SamplerConfig fields (with everything under them) that act on D's rows only."""

HOW = ("batch_episodes", "row_budget")
"""SamplerConfig fields that change how, not what; one value for the whole run."""


def non_shareable_differences(a: SamplerConfig, b: SamplerConfig) -> list[str]:
    """The dotted names (`sampler.steps`, ...) of settings where a and b differ and that
    prevent them sharing A, B, C rows in one U-Net batch.

    Every field not listed in PER_VARIANT or HOW counts (today steps, skip, resolution,
    inversion), so a new SamplerConfig field is non-shareable until someone says otherwise.
    """
    diffs = []
    for f in dataclasses.fields(SamplerConfig):
        if f.name in PER_VARIANT or f.name in HOW:
            continue
        diffs += _leaf_differences(getattr(a, f.name), getattr(b, f.name), f"sampler.{f.name}")
    return diffs


def _leaf_differences(x: Any, y: Any, name: str) -> list[str]:
    """Dotted names of the leaves where x and y differ (dataclasses are walked into)."""
    if dataclasses.is_dataclass(x) and dataclasses.is_dataclass(y):
        out = []
        for f in dataclasses.fields(x):
            out += _leaf_differences(getattr(x, f.name), getattr(y, f.name), f"{name}.{f.name}")
        return out
    return [] if x == y else [name]


def check_shareable(base: SamplerConfig, variants: Sequence[SamplerConfig]) -> None:
    """One-line ConfigError unless every variant can share rows with `base` (the sampler's)."""
    if not variants:
        raise ConfigError("run_variants needs at least one sampler config.")
    for v, variant in enumerate(variants):
        diffs = non_shareable_differences(base, variant)
        if diffs:
            raise ConfigError(
                f"Variant {v} differs from the sampler's config in {', '.join(diffs)}, which "
                "change the shared A/B/C rows or the schedule. Fix: give every variant the "
                "same value, or run it separately."
            )


def variant_layout(num_prompts: int, variants: Sequence[SamplerConfig]) -> StreamLayout:
    """The group layout of one episode with these variants' D rows (see module docstring)."""
    return StreamLayout(num_prompts, tuple(v.swap.enabled for v in variants))


def rows_per_call(num_prompts: int, variants: Sequence[SamplerConfig], batch_episodes: int) -> int:
    """Rows of one U-Net call: batch_episodes x (2n + 1 + sum_v (2 if swap else 1))."""
    return batch_episodes * variant_layout(num_prompts, variants).size


def check_row_budget(
    budget: int | None, num_prompts: int, variants: Sequence[SamplerConfig], batch_episodes: int
) -> None:
    """One-line ConfigError, naming a fix, when a U-Net call would exceed `budget` rows."""
    rows = rows_per_call(num_prompts, variants, batch_episodes)
    if budget is None or rows <= budget:
        return
    group = variant_layout(num_prompts, variants).size
    if budget >= group:
        fix = f"sampler.batch_episodes={budget // group} fits"
    elif len(variants) > 1:
        fits = _variants_that_fit(budget, num_prompts, variants)
        fix = f"at most {fits} of these variants fit with one episode per call"
    else:
        fix = f"one episode needs sampler.row_budget={group} or more"
    raise ConfigError(
        f"sampler.row_budget={budget}: one U-Net call would hold {rows} rows "
        f"(batch_episodes={batch_episodes} x {group} rows per episode at n={num_prompts} "
        f"with {len(variants)} variant(s)). Fix: {fix}."
    )


def _variants_that_fit(budget: int, num_prompts: int, variants: Sequence[SamplerConfig]) -> int:
    """How many of the first variants fit in `budget` rows with one episode."""
    count = 0
    while count < len(variants) and rows_per_call(num_prompts, variants[: count + 1], 1) <= budget:
        count += 1
    return count
