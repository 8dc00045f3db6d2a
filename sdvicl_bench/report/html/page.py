"""The page: the template with the task sections and the episode JSON filled in."""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import pandas as pd

from sdvicl_bench.report.html.common import _attr, _esc
from sdvicl_bench.report.html.plots import render_plots
from sdvicl_bench.report.html.results import (
    render_breakdowns,
    render_long_table,
    render_runs,
    render_wide_table,
)
from sdvicl_bench.report.runs import run_sort_key

TEMPLATE = "report_template.html"
"""The page's HTML, CSS and JavaScript (package data in sdvicl_bench/report/, beside this
package)."""
PAGE_SIZE = 50
"""Episodes per page of the browser."""


def render_page(
    runs: list[dict[str, Any]],
    df: pd.DataFrame,
    labels: dict[str, str],
    tasks: list[dict[str, Any]],
) -> str:
    """The whole page: the template with the task sections and the episode JSON filled in."""
    template = resources.files("sdvicl_bench.report").joinpath(TEMPLATE).read_text("utf-8")
    sections = "\n".join(
        render_task([r for r in runs if r["task"] == t["task"]], df, t) for t in tasks
    )
    nav = " ".join(f'<a href="#task-{_attr(t["task"])}">{_esc(t["task"])}</a>' for t in tasks)
    data = {"pageSize": PAGE_SIZE, "tasks": tasks}
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    stamp = time.strftime("%Y-%m-%d %H:%M")
    count = sum(len(t["episodes"]) for t in tasks)
    subtitle = f"{len(runs)} run{'s' if len(runs) != 1 else ''}, {count} episodes, made {stamp}"
    return (
        template.replace("<!--NAV-->", nav)
        .replace("<!--SUBTITLE-->", _esc(subtitle))
        .replace("<!--SECTIONS-->", sections)
        .replace("__REPORT_DATA__", blob)
    )


def render_task(task_runs: list[dict[str, Any]], df: pd.DataFrame, data: dict[str, Any]) -> str:
    """One task's section (`data`: `collect_task`'s): runs, tables, plots and breakdowns
    (the episode browser is one for all tasks)."""
    task = data["task"]
    rows = df[df["task"] == task].reset_index(drop=True)
    runs = sorted(task_runs, key=run_sort_key)
    parts = [
        f'<section class="task" id="task-{_attr(task)}"><h2>{_esc(task)}</h2>',
        render_runs(runs, data["runs"]),
        *(f'<p class="warn">{_esc(line)}</p>' for line in data.get("missing") or []),
        "<h3>Results</h3>",
        render_wide_table(rows),
        render_plots(rows, runs, data),
        render_breakdowns(runs, data["runs"]),
        "<details><summary>Every column (as tables.md)</summary>",
        render_long_table(rows),
        "</details>",
        f'<p><a href="#browser" data-task="{_attr(task)}" class="to-browser">'
        f"Browse the {len(data['episodes'])} episodes of {_esc(task)}</a></p>",
        "</section>",
    ]
    return "\n".join(parts)
