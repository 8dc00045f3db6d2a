"""`sdvicl-bench sweep`: a grid of settings on the same episodes, one run folder per variant.

    sdvicl-bench sweep task=fgseg sampler.attention.temperature=0.2,0.4,0.8 sampler.swap.gamma=1,3.5

The grid is the product of the swept values (the first setting varies slowest). Variants
that differ only in what happens to D share each episode's A, B and C rows in one U-Net
batch per step; a swept setting that changes those rows (steps, skip, resolution, seed,
model, prompts, inversion=separate ...) splits the grid into groups that run one after
another, and the sweep says so in one line. Each variant's folder is an ordinary run folder
(resumable, read by `tables`); the comparison table and grid go to results/sweeps/.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

from rich.console import Console

from sdvicl_bench import evaluate
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.report.console import make_console
from sdvicl_bench.workflows.ablate import Comparison, Load, write_comparison

SWEEPS_DIR = Path("results/sweeps")


def grid(sweeps: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """[(key, values)] -> [(label, overrides)] for every combination, first key slowest.

    >>> grid([("sampler.swap.gamma", ["1", "3.5"])])
    [('swap.gamma=1', ['sampler.swap.gamma=1']), ('swap.gamma=3.5', ['sampler.swap.gamma=3.5'])]
    """
    if not sweeps:
        raise ConfigError(
            "sweep needs at least one setting with several values. Fix: list them with "
            "commas, e.g. sampler.attention.temperature=0.2,0.4,0.8."
        )
    keys = [key for key, _ in sweeps]
    out = []
    for values in itertools.product(*(vals for _, vals in sweeps)):
        overrides = [f"{k}={v}" for k, v in zip(keys, values, strict=True)]
        label = ", ".join(
            f"{k.removeprefix('sampler.')}={v}" for k, v in zip(keys, values, strict=True)
        )
        out.append((label, overrides))
    return out


def sharing_line(cfgs, groups: list[list[int]]) -> str | None:
    """The one line a sweep prints when its variants cannot all share rows, or None."""
    if len(groups) == 1:
        return None
    first = [cfgs[g[0]] for g in groups]
    names = sorted({n for c in first[1:] for n in evaluate.shared_rows_differences(first[0], c)})
    how = (
        "run one after another"
        if all(len(g) == 1 for g in groups)
        else f"run in {len(groups)} groups one after another (variants within a group share rows)"
    )
    return (
        f"{', '.join(names)} change{'s' if len(names) == 1 else ''} the A, B and C rows: "
        f"the {len(cfgs)} variants {how}."
    )


def run_sweep(
    base: list[str],
    sweeps: list[tuple[str, list[str]]],
    load: Load,
    *,
    quiet: bool = False,
    console: Console | None = None,
) -> Comparison:
    """Run every variant of the grid on the same episodes; write the comparison."""
    console = console or make_console()
    variants = grid(sweeps)
    cfgs = [load([*base, *overrides]) for _, overrides in variants]
    line = sharing_line(cfgs, evaluate.sharing_groups(cfgs))
    if line:
        console.print(line)
    outcomes = evaluate.run_many(cfgs, quiet=quiet, console=console)
    dirs = [o.run_dir for o in outcomes]
    digest = hashlib.sha256(json.dumps([base, sweeps]).encode()).hexdigest()[:12]
    path = SWEEPS_DIR / f"{cfgs[0].task.name}-{digest}.md"
    title = " x ".join(key.removeprefix("sampler.") for key, _ in sweeps)
    write_comparison(title, [label for label, _ in variants], dirs, path, kind="Sweep")
    return Comparison(path, dirs)
