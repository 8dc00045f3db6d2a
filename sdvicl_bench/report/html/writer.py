"""The entry point: `write_report` loads the runs, makes the thumbnails (with a progress
bar), names the runs as the table does and writes `out/index.html`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import Progress

from sdvicl_bench.errors import DataError
from sdvicl_bench.report import tables
from sdvicl_bench.report.console import make_console
from sdvicl_bench.report.html.common import IMG_DIR
from sdvicl_bench.report.html.episodes import ProtocolOf, collect_task
from sdvicl_bench.report.html.page import render_page
from sdvicl_bench.report.html.thumbs import Thumbs
from sdvicl_bench.report.progress import progress_bar
from sdvicl_bench.report.runs import load_runs, run_sort_key, task_rank

TILE = 160
"""Longest side of a thumbnail, in pixels."""


def write_report(
    run_dirs: list[Path],
    out: Path,
    *,
    quiet: bool = False,
    protocol_of: ProtocolOf | None = None,
    console: Console | None = None,
    tile: int = TILE,
) -> Path:
    """Write the report of `run_dirs` (run folders or folders of them) into `out`.

    Returns `out/index.html`. Raises DataError (one line) where a path is not a run folder
    nor holds any. `protocol_of` gives a run's protocol for the A, B, C and decoded
    thumbnails and the episode classes (None: those are left out). Prints a progress bar
    while it makes thumbnails and one warning line per run whose data set cannot be read
    (none when `quiet`).
    """
    console = console or make_console()
    runs = load_runs([Path(p) for p in run_dirs])
    df = tables.build_table(runs)
    out = Path(out)
    _check_out(out)
    labels = run_labels(runs, df)
    thumbs = Thumbs(out, tile)
    if protocol_of is None and not quiet:
        console.print(
            "note: no protocol given: the A, B, C and decoded columns stay empty "
            "(sdvicl-bench report fills them from the data set).",
            markup=False,
            highlight=False,
        )
    tasks = []
    try:
        with _progress(console, quiet) as progress:
            for task in _tasks_of(runs):
                task_runs = [r for r in runs if r["task"] == task]
                tasks.append(
                    collect_task(
                        task, task_runs, labels, thumbs, protocol_of, progress, console, quiet
                    )
                )
    finally:
        thumbs.save()  # also after Ctrl-C: the thumbnails made so far are kept for next time
    page = render_page(runs, df, labels, tasks)
    index = out / "index.html"
    tmp = index.with_name(f"index.html.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index


def _check_out(out: Path) -> None:
    """Create `out`; a one-line DataError where it is a file or cannot be made."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file. Fix: pass a folder for the report.")
    try:
        (out / IMG_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"Cannot create the report folder {out}: {err.strerror or err}. "
            "Fix: pass a writable folder with --out."
        ) from err


def _tasks_of(runs: list[dict[str, Any]]) -> list[str]:
    """The tasks of `runs` in the tables' order."""
    return sorted({r["task"] for r in runs}, key=task_rank)


# ---------------------------------------------------------------------------------------
# Run labels


def run_labels(runs: list[dict[str, Any]], df: pd.DataFrame) -> dict[str, str]:
    """{run_dir: the method label its rows carry in `df`} ("SD-VICL (tiny, n=1, ...;
    sampler.adain.enabled=False)"), so the page names a run as the table does.

    `build_table` writes each task's runs in `run_sort_key` order, one row per metric
    of results.json, so the k-th block of a task's "ours"/"method" rows is its k-th run."""
    labels: dict[str, str] = {}
    for task in _tasks_of(runs):
        task_runs = sorted((r for r in runs if r["task"] == task), key=run_sort_key)
        own = df[(df["task"] == task) & df["source"].isin(["ours", "method"])]
        methods = list(own["method"])
        if len(methods) != sum(len(r["metrics"]) for r in task_runs):
            methods = []  # a table laid out otherwise: the runs are named by their folders
        start = 0
        for run in task_runs:
            count = len(run["metrics"])
            found = methods[start] if count and methods else Path(run["run_dir"]).name
            labels[run["run_dir"]] = found
            start += count
    return labels


@contextmanager
def _progress(console: Console, quiet: bool) -> Iterator[Progress]:
    """The rich progress bar of the thumbnail copying (disabled when quiet or in a log)."""
    bar = progress_bar(console=console, disable=quiet or not console.is_terminal)
    with bar:
        yield bar
