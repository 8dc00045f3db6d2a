"""`sdvicl-bench data check | prepare`: is the data in place (`workflows.data_check`), and
convert the layouts datasets are published in (`workflows.data_prepare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdvicl_bench.commands.common import (
    PASS_OVERRIDES,
    Overrides,
    console,
    examples,
    user_errors,
)
from sdvicl_bench.commands.hydra_config import compose

app = typer.Typer(
    no_args_is_help=True,
    help="Is the data in place (`data check`), and convert other layouts (`data prepare`).",
)


@app.command(
    name="check",
    context_settings=PASS_OVERRIDES,
    epilog=examples(
        "sdvicl-bench data check",
        "sdvicl-bench data check task=fgseg",
        "sdvicl-bench data check task=fgseg data=demo",
    ),
)
@user_errors
def data_check(overrides: Overrides = None) -> None:
    """Whether each task's data is in place under data.root, without loading a model: folders,
    lists, counts against the official ones, a sample of files opened; one line per problem
    with its fix. Exit 0 when every checked task can run, 2 otherwise."""
    from sdvicl_bench.workflows import data_check as checks

    reports = checks.check_tasks(list(overrides or []), compose)
    checks.render(reports, console)
    raise typer.Exit(checks.exit_code(reports))


@app.command(
    name="prepare",
    epilog=examples(
        "sdvicl-bench data prepare sbd ~/Downloads/benchmark_RELEASE",
        "sdvicl-bench data prepare imagenet-val ~/Downloads/ILSVRC2012_img_val "
        "--labels LOC_val_solution.csv",
    ),
)
@user_errors
def data_prepare(
    dataset: Annotated[str, typer.Argument(help="sbd or imagenet-val")],
    source: Annotated[Path, typer.Argument(help="the downloaded, unpacked source folder")],
    labels: Annotated[
        Path | None, typer.Option(help="imagenet-val: the labels file (found if left out)")
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(help="data.root to write into (default: $SDVICL_DATA_ROOT or data)"),
    ] = None,
) -> None:
    """Convert a dataset from the layout it is published in to the one the loaders read
    (SBD's .mat masks -> VOC2012/SegmentationClassAug; a flat ImageNet val folder -> class
    folders). Resumable: finished files are skipped."""
    import os

    from sdvicl_bench.workflows.data_prepare import prepare

    root = root or Path(os.environ.get("SDVICL_DATA_ROOT", "data"))
    result = prepare(dataset, source, root, labels=labels, console=console)
    typer.echo(result.summary())
    for note in result.notes:
        typer.echo(note)
