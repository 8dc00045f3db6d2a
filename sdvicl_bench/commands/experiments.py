"""Commands that run the model: `run`, `validate`, `ablate`, `sweep`, `reproduce`.

They hand the typed config (`hydra_config.load_config`) to `evaluate` (one run) or to
`workflows/` (ablate, sweep, reproduce)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdvicl_bench.commands.common import (
    PASS_OVERRIDES,
    Overrides,
    Quiet,
    console,
    examples,
    user_errors,
)
from sdvicl_bench.commands.hydra_config import load_config, split_sweeps
from sdvicl_bench.config import RunConfig, to_dict
from sdvicl_bench.errors import ConfigError

app = typer.Typer()
"""Nameless: `cli.app` adds these commands at its top level."""


@app.command(
    context_settings=PASS_OVERRIDES,
    epilog=examples(
        "sdvicl-bench run task=fgseg prompts=5",
        "sdvicl-bench run task=fgseg data=demo model=tiny limit=8",
        "sdvicl-bench run task=fgseg sampler.attention.contrast=1.0 seed=1",
    ),
)
@user_errors
def run(
    overrides: Overrides = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Run (or resume) a task: episodes -> SD-VICL (or method=) -> decoded predictions -> scores."""
    from sdvicl_bench import evaluate

    cfg = load_config(overrides or [])
    outcome = evaluate.run(cfg, quiet=quiet, console=console)
    if quiet:
        typer.echo(str(outcome.run_dir))


def _effect_notes(cfg: RunConfig) -> list[str]:
    """YAML comments naming the settings that change no number (`settings.py`): speed only,
    which episodes run, where output goes, how scores are shown."""
    from sdvicl_bench.settings import EFFECTS, declaration, flatten

    found: dict[str, set[str]] = {}
    for name in flatten(to_dict(cfg)):
        setting = declaration(name)
        if setting is not None and setting.effect != "result":
            found.setdefault(setting.effect, set()).add(setting.name.removesuffix(".*"))
    return [
        f"# {effect}: {', '.join(sorted(found[effect]))} ({EFFECTS[effect]})"
        for effect in ("speed", "scope", "output", "scoring")
        if effect in found
    ]


@app.command(epilog=examples("sdvicl-bench validate task=fgseg prompts=5 model=tiny"))
@user_errors
def validate(overrides: Overrides = None) -> None:
    """Check a config as `run` would, short of sampling; print it resolved. Runs nothing."""
    import yaml

    from sdvicl_bench import preflight

    cfg = load_config(overrides or [])
    note = preflight.check_inputs(cfg)
    typer.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True).rstrip())
    for line in _effect_notes(cfg):
        typer.echo(line)
    if cfg.prompts is not None and cfg.prompts != cfg.task.prompts:
        typer.echo(
            f"# n = {cfg.num_prompts} prompts: prompts={cfg.prompts} overrides task.prompts "
            f"(the task's default, {cfg.task.prompts})."
        )
    if note:
        typer.echo(f"note: {note}", err=True)


@app.command(
    context_settings=PASS_OVERRIDES,
    epilog=examples(
        "sdvicl-bench ablate component=adain",
        "sdvicl-bench ablate component=qkv task=fgseg prompts=5",
        "sdvicl-bench ablate component=layers data=demo model=tiny limit=4",
    ),
)
@user_errors
def ablate(
    overrides: Overrides = None,
    quiet: Quiet = False,
) -> None:
    """Full method vs the ablated variant(s) on the same frozen episodes; a comparison table.

    component: adain, contrast, swap_guidance, temperature, iwpe, layers, qkv, inversion.
    """
    from sdvicl_bench import ablations
    from sdvicl_bench.workflows.ablate import run_ablation

    args = list(overrides or [])
    chosen = [a.split("=", 1)[1] for a in args if a.startswith("component=")]
    if not chosen:
        raise ConfigError(
            f"ablate needs component=<name>. Choose one of: {', '.join(ablations.COMPONENTS)}."
        )
    rest = [a for a in args if not a.startswith("component=")]
    comparison = run_ablation(chosen[-1], rest, load_config, quiet=quiet, console=console)
    if not quiet:
        console.print(comparison.table.read_text())
    typer.echo(str(comparison.table))


@app.command(
    context_settings=PASS_OVERRIDES,
    epilog=examples(
        "sdvicl-bench sweep task=fgseg sampler.attention.temperature=0.2,0.4,0.8 "
        "sampler.swap.gamma=1,3.5",
        "sdvicl-bench sweep data=demo model=toy limit=16 sampler.attention.contrast=1,1.67,2.5",
    ),
)
@user_errors
def sweep(
    overrides: Overrides = None,
    quiet: Quiet = False,
) -> None:
    """A grid of settings (k=a,b,c) on the same episodes: one run folder per variant, and a
    comparison table and grid. D-side settings share one U-Net batch per step."""
    from sdvicl_bench.workflows.sweep import run_sweep

    base, sweeps = split_sweeps(list(overrides or []))
    comparison = run_sweep(base, sweeps, load_config, quiet=quiet, console=console)
    if not quiet:
        console.print(comparison.table.read_text())
    typer.echo(str(comparison.table))


@app.command(
    epilog=examples(
        "sdvicl-bench reproduce                  # every paper table (CUDA, SD1.5)",
        "sdvicl-bench reproduce ablation_adain",
        "sdvicl-bench reproduce --smoke          # every experiment, tiny model, demo data",
    )
)
@user_errors
def reproduce(
    names: Annotated[list[str] | None, typer.Argument(help="experiments (default: all)")] = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="debug=smoke: tiny model, demo data, 2 episodes")
    ] = False,
    out: Annotated[Path, typer.Option(help="where the tables go")] = Path("results/tables"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run paper-table experiments (conf/experiment/) and write results/tables/<name>.md."""
    from sdvicl_bench.workflows.reproduce import reproduce as run_experiments

    extra = ["debug=smoke"] if smoke else []
    for path in run_experiments(
        names, load_config, extra=extra, out=out, quiet=quiet, console=console
    ):
        typer.echo(str(path))
