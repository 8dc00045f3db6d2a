"""The data check's entry points: a composed config as a RunConfig, the tasks an override
list names, `check_task` / `check_tasks` (each task's dataset family -> its check) and
`require_data`, the cheap check `run` makes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sdvicl_bench.config import RunConfig, from_dict
from sdvicl_bench.errors import DataError, UserError
from sdvicl_bench.workflows.data_check.context import SAMPLE_SIZE, _context, _Ctx
from sdvicl_bench.workflows.data_check.others import (
    _check_cityscapes,
    _check_fld,
    _check_imagenet,
)
from sdvicl_bench.workflows.data_check.report import MISSING, WARNING, Check, TaskReport
from sdvicl_bench.workflows.data_check.voc import _check_edges, _check_pascal5i, _check_voc_det

# ----------------------------------------------------------------------------- entry points


def config_from_composed(composed: dict[str, Any]) -> RunConfig:
    """A composed config dict (the CLI's `compose`) as a checked RunConfig, without
    `preflight.check_setup`: a data check needs no model folder, device or shard."""
    from sdvicl_bench.protocols.registry import check_task_options
    from sdvicl_bench.settings import check_values

    check_values(composed)
    cfg = from_dict(RunConfig, composed)
    check_task_options(cfg.task, cfg.task.options)
    return cfg


def split_task_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(tasks, other overrides): the tasks `task=a` or `task=a,b` names (every packaged task
    when none does), and the rest, which every task's config gets."""
    from sdvicl_bench.protocols import task_names

    tasks: list[str] = []
    rest: list[str] = []
    for item in overrides:
        key, eq, value = item.partition("=")
        if eq and key.strip().lstrip("+") == "task":
            tasks += [t.strip() for t in value.split(",") if t.strip()]
        else:
            rest.append(item)
    return (tasks or task_names()), rest


def check_tasks(
    overrides: Sequence[str],
    compose: Callable[[list[str]], dict[str, Any]],
    *,
    sample: int = SAMPLE_SIZE,
) -> list[TaskReport]:
    """One report per task `overrides` names (`split_task_overrides`; all tasks when none),
    each config composed by `compose` (the CLI's) with `task=<t>` and the other overrides."""
    tasks, rest = split_task_overrides(overrides)
    reports = []
    for task in tasks:
        cfg = config_from_composed(compose([f"task={task}", *rest]))
        reports.append(check_task(cfg, sample=sample))
    return reports


def check_task(cfg: RunConfig, *, sample: int = SAMPLE_SIZE, quick: bool = False) -> TaskReport:
    """Check the data `cfg.task` needs under `cfg.data.root` (see the module docstring).

    ``sample`` files per dataset are opened; ``quick`` skips what only tells warnings apart
    from ok (counting every file against the official numbers) where that means listing a
    big tree. Loads no model; for data=demo runs the demo writer first, as `run` does.
    """
    start = time.perf_counter()
    ctx = _context(cfg, sample, quick)
    checker = CHECKERS.get(cfg.task.dataset)
    if checker is None:
        checks = [
            Check(
                cfg.task.dataset,
                "data",
                "not checked",
                "-",
                WARNING,
                problem=f"dataset family {cfg.task.dataset!r} has no data check",
                fix="Fix: check its files by hand (`sdvicl-bench validate` opens them)",
            )
        ]
    else:
        try:
            checks = checker(ctx)
        except UserError as err:  # a demo writer or a loader refusing the folder
            checks = [Check(cfg.task.dataset, "data", "error", "-", MISSING, problem=str(err))]
    seconds = time.perf_counter() - start
    return TaskReport(cfg.task.name, cfg.data.name, ctx.root, tuple(checks), seconds)


def require_data(cfg: RunConfig) -> None:
    """Raise one DataError line for the first "missing" problem of `cfg.task`'s data.

    The cheap check `run` makes before it loads a model: folders, list files and the files
    the lists name, two sampled files opened; no counting against the official numbers.
    """
    report = check_task(cfg, sample=2, quick=True)
    for check in report.problems():
        if check.status == MISSING:
            raise DataError(check.line(report.task))


# ----------------------------------------------------------------------------- registry


CHECKERS: dict[str, Callable[[_Ctx], list[Check]]] = {
    "pascal5i": _check_pascal5i,
    "voc2012-det": _check_voc_det,
    "voc2012-canny": _check_edges,
    "cityscapes": _check_cityscapes,
    "deepfashion-fld": _check_fld,
    "imagenet-val": _check_imagenet,
}
"""The data check of each dataset family a task YAML can name."""
