"""Commands on run folders and on what there is to run: `tables`, `merge`, `rescore`, `grid`,
`report` (`report/`, `sharding.merge`, `rescore`, `evaluate`) and `ls`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdvicl_bench.commands.common import Quiet, RunFolders, console, examples, user_errors
from sdvicl_bench.commands.hydra_config import choices, load_config
from sdvicl_bench.errors import ConfigError

app = typer.Typer()
"""Nameless: `cli.app` adds these commands at its top level."""


@app.command(
    epilog=examples(
        "sdvicl-bench tables results/runs",
        "sdvicl-bench tables results/runs/fgseg --out results/tables",
    )
)
@user_errors
def tables(
    paths: RunFolders = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("results/tables"),
) -> None:
    """Markdown, CSV and LaTeX tables rebuilt from run folders alone, references beside."""
    from sdvicl_bench.report import tables as report_tables

    written = report_tables.write_tables(paths or [Path("results/runs")], out)
    typer.echo(written[0].read_text())
    for path in written:
        typer.echo(str(path))


@app.command(
    epilog=examples(
        "sdvicl-bench merge results/runs/fgseg/*-3f2a9c1b7e44",
        "(after a SLURM array of: sdvicl-bench run task=fgseg shard=$SLURM_ARRAY_TASK_ID/8)",
    )
)
@user_errors
def merge(
    run_dirs: Annotated[list[Path], typer.Argument(help="run folders of one run (same key)")],
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No summary table: only the merged folder.")
    ] = False,
) -> None:
    """Merge the shards of one run (same key) into the first folder; results.json anew."""
    from sdvicl_bench.sharding.merge import merge as merge_runs

    outcome = merge_runs(list(run_dirs), quiet=quiet, console=console)
    typer.echo(str(outcome.run_dir))


@app.command(
    epilog=examples(
        "sdvicl-bench rescore results/runs/fgseg/20261126-101500-3f2a9c1b7e44",
        "sdvicl-bench rescore results/runs/keypoints/*   (every keypoints run)",
    )
)
@user_errors
def rescore(
    run_dirs: Annotated[list[Path], typer.Argument(help="run folders (finished or partial)")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Recompute every score, baseline, results.json and grid of runs from their saved
    pictures, without the model (after a task version or metric change). The old
    results.json is kept as results.<timestamp>.json."""
    from sdvicl_bench.rescore import rescore as rescore_run

    for run_dir in run_dirs:
        outcome = rescore_run(run_dir, quiet=quiet, console=console)
        if quiet:  # otherwise the summary has already named the folder
            typer.echo(str(outcome.run_dir))


@app.command(epilog=examples("sdvicl-bench grid results/runs/fgseg/20261126-101500-3f2a9c1b7e44"))
@user_errors
def grid(
    run_dir: Annotated[Path, typer.Argument(help="a run folder")],
    limit: Annotated[int, typer.Option(help="episodes (rows)")] = 8,
) -> None:
    """Picture grid of a run: A.. | B.. | C | prediction | decoded | GT, with scores."""
    from sdvicl_bench import evaluate

    if limit < 1:
        raise ConfigError(
            f"--limit {limit}: a grid needs at least one row. Fix: --limit 1 or more."
        )
    _, protocol = evaluate.protocol_of(run_dir)
    typer.echo(str(evaluate.write_grid(protocol, run_dir, limit=limit)))


@app.command(
    epilog=examples(
        "sdvicl-bench report results/runs --out results/report",
        "sdvicl-bench report results/runs/fgseg/<run> results/runs/fgseg/<other run>",
    )
)
@user_errors
def report(
    paths: RunFolders = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("results/report"),
    quiet: Quiet = False,
) -> None:
    """One self-contained HTML page (open it from disk): tables with intervals and
    references, plots, per-fold and per-class breakdowns, and an episode browser (A | B | C |
    prediction | decoded | GT, sortable by score and by the difference between two runs)."""
    from sdvicl_bench import evaluate
    from sdvicl_bench.report.html import write_report

    page = write_report(
        paths or [Path("results/runs")],
        out,
        quiet=quiet,
        protocol_of=evaluate.protocol_of,
        console=console,
    )
    typer.echo(str(page))


@app.command(name="ls", epilog=examples("sdvicl-bench ls"))
@user_errors
def list_things() -> None:
    """List tasks, methods, models, components, experiments (with GPU-hours) and past runs."""
    from sdvicl_bench.ablations import COMPONENTS
    from sdvicl_bench.sampler.backbones.registry import layer_table
    from sdvicl_bench.workflows.reproduce import estimate, experiments, jobs_of

    for group in ("task", "method", "model", "data", "retrieval", "sampler", "debug"):
        typer.echo(f"{group}: {', '.join(choices(group))}")
    typer.echo("models: default side, self-attention layers by <block>.<side> (count):")
    for line in layer_table():
        typer.echo(f"  {line}")
    typer.echo(f"components (ablate): {', '.join(COMPONENTS)}")
    typer.echo(
        "experiments (reproduce), H100-hours from U-Net passes (shared pass / each run alone):"
    )
    known = experiments()
    every = []
    for name, exp in known.items():
        jobs = jobs_of(name, exp)
        every += jobs
        hours = estimate(jobs, load_config)
        typer.echo(f"  {name:<16} ~{hours['shared']:.1f} / {hours['separate']:.1f}  {exp['title']}")
    hours = estimate(every, load_config)
    typer.echo(
        f"  {'all (reproduce)':<16} ~{hours['shared']:.1f} / {hours['separate']:.1f}  "
        "identical runs once, D-side variants in one pass"
    )
    for line in method_lines(queries_by_task(every)):
        typer.echo(line)
    runs = sorted(Path("results/runs").glob("*/*-*"))
    typer.echo(f"runs ({len(runs)}):")
    for r in runs[-20:]:
        typer.echo(f"  {r}")


def queries_by_task(jobs) -> dict[str, int]:
    """The most queries any experiment job runs per task (the size of a full run)."""
    out: dict[str, int] = {}
    for job in jobs:
        task = next((o.split("=", 1)[1] for o in job.overrides if o.startswith("task=")), None)
        if task and job.queries:
            out[task] = max(out.get(task, 0), job.queries)
    return out


def method_lines(queries: dict[str, int]) -> list[str]:
    """`ls`'s methods: licence, the tasks each was trained for, and GPU-hours of one full
    run of every task at n = 1 (its seconds per episode x the queries of `queries`)."""
    from sdvicl_bench import methods, registry

    total = sum(queries.values())
    lines = [f"methods (method=), GPU-hours of all six tasks at n = 1 ({total} queries):"]
    for name in registry.names("method"):
        info = methods.info(name)
        trained = ", ".join(info.trained_for) or (
            "none (training-free)" if name == methods.SDVICL else "none (random weights)"
        )
        if info.gpu_seconds_per_episode is None:
            cost = "no GPU estimate"
        else:
            hours = total * info.gpu_seconds_per_episode / 3600
            cost = f"~{hours:.1f} GPU-h ({info.gpu_seconds_per_episode:g} s/episode, "
            cost += f"{info.estimate_basis.split(':')[0]})"
        memory = f", ~{info.memory_gib:g} GiB" if info.memory_gib else ""
        lines.append(f"  {name:<16} {info.title}: {cost}{memory}; trained for: {trained}")
        lines.append(f"  {'':<16} licence: {info.licence}")
    return lines
