"""`sdvicl-bench ablate component=<name>`: the full method vs its ablated variants.

Every component switches only what happens to D, so the variants run in one pass that shares
each episode's A, B and C rows (`evaluate.run_many` -> `Sampler.run_variants`), each into its
own run folder. The comparison table and grid score them on the episodes they all finished
(`evaluate.results_on`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sdvicl_bench import ablations, evaluate
from sdvicl_bench.config import RunConfig
from sdvicl_bench.errors import ConfigError

Load = Callable[[list[str]], RunConfig]
"""The CLI's `load_config`: Hydra overrides -> a checked RunConfig."""

ABLATIONS_DIR = Path("results/ablations")


@dataclass
class Comparison:
    """A finished comparison: its markdown table, its run folders (the reference first)."""

    table: Path
    run_dirs: list[Path]


def ablation_configs(component: str, overrides: list[str], load: Load) -> list[RunConfig]:
    """The full method's config and each variant's, in `ablations.variants` order.
    Only SD-VICL has these components: another `method=` is a one-line ConfigError."""
    cfgs = [load([*overrides, *extra]) for _, extra in ablations.variants(component)]
    if cfgs[0].method.name != "sdvicl":
        raise ConfigError(
            f"ablate switches SD-VICL's components; method={cfgs[0].method.name} has none. "
            "Fix: drop method= (SD-VICL), or compare methods with `run` and `tables`."
        )
    return cfgs


def run_ablation(
    component: str,
    overrides: list[str],
    load: Load,
    *,
    quiet: bool = False,
    console: Console | None = None,
) -> Comparison:
    """Run the full method and every variant in one shared pass; write the table and grid."""
    labels = [label for label, _ in ablations.variants(component)]
    cfgs = ablation_configs(component, overrides, load)
    outcomes = evaluate.run_many(cfgs, quiet=quiet, console=console)
    dirs = [o.run_dir for o in outcomes]
    path = ABLATIONS_DIR / f"{component}-{outcomes[0].results['key']}.md"
    write_comparison(component, labels, dirs, path)
    return Comparison(path, dirs)


def write_comparison(
    title: str, labels: list[str], dirs: list[Path], path: Path, kind: str = "Ablation"
) -> None:
    """The markdown table (and, with samples, the picture grid) of runs on common episodes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    same = evaluate.results_on(dirs)  # every variant on the same finished episodes
    rows = list(zip(labels, same, strict=True))
    path.write_text(ablations.comparison_markdown(title, rows, kind=kind))
    if same[0]["n"]:
        from sdvicl_bench.report.grids import compare_grid

        _, protocol = evaluate.protocol_of(dirs[0])
        load_pictures, _ = evaluate.grid_loaders(protocol)
        compare_grid(dirs, labels, load_pictures, out=path.with_suffix(".png"))
