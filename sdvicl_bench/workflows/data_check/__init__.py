"""`sdvicl-bench data check`: is each task's data there, complete and readable? No model loads.

Per task (its YAML's `dataset`), the folders and list files its loader reads are looked for,
the files counted against the official release (against the demo writer's own counts for
data=demo, shown as "(demo)"), the files the task's lists name looked up, and a small
deterministic sample (`sample`, up to 8) opened and checked: readable, mode, size, label
values in the range the loader and the metrics expect. Each row of a `TaskReport` is a
`Check` with a status:

    ok       what the task needs is there
    warning  the task runs, but its numbers are not comparable with published ones (fewer
             files than the official release, odd label values, a list still to fetch)
    missing  the task cannot run (a folder, list or listed file absent, a file unreadable)

and every row that is not ok carries ONE line: what is wrong and the fix (the archive to
download and where to unpack it, or the `sdvicl-bench data prepare` command).

Entry points: `config_from_composed` (a composed config -> RunConfig without the model and
device checks of `preflight.check_setup`), `check_task` / `check_tasks`, `render` (a rich
table and the problem lines), `exit_code` (0 or 2) and `require_data`, the cheap variant
`run` calls before it loads a model (one DataError line for the first missing problem).
For data=demo the demo writer runs first, as `run` would (nothing is rewritten when the
demo folder's `.demo_complete` marker is current).
"""

from __future__ import annotations

from sdvicl_bench.workflows.data_check.context import (
    BSDS_IMAGES,
    CITYSCAPES_IMAGES,
    CITYSCAPES_MAX_LABEL,
    DEMO_WRITERS,
    FIX_BSDS,
    FIX_CITYSCAPES,
    FIX_FLD,
    FIX_IMAGENET,
    FIX_SBD,
    FIX_SPLITS,
    FIX_VOC,
    IMAGENET_CLASSES,
    IMAGENET_VAL_IMAGES,
    SAMPLE_SIZE,
    SBD_AUG_MASKS,
    VOC_JPEG_IMAGES,
    VOC_MAIN,
    sample,
)
from sdvicl_bench.workflows.data_check.entry import (
    CHECKERS,
    check_task,
    check_tasks,
    config_from_composed,
    require_data,
    split_task_overrides,
)
from sdvicl_bench.workflows.data_check.report import (
    MISSING,
    OK,
    WARNING,
    Check,
    TaskReport,
    exit_code,
    render,
)

__all__ = [
    "BSDS_IMAGES",
    "CHECKERS",
    "CITYSCAPES_IMAGES",
    "CITYSCAPES_MAX_LABEL",
    "DEMO_WRITERS",
    "FIX_BSDS",
    "FIX_CITYSCAPES",
    "FIX_FLD",
    "FIX_IMAGENET",
    "FIX_SBD",
    "FIX_SPLITS",
    "FIX_VOC",
    "IMAGENET_CLASSES",
    "IMAGENET_VAL_IMAGES",
    "MISSING",
    "OK",
    "SAMPLE_SIZE",
    "SBD_AUG_MASKS",
    "VOC_JPEG_IMAGES",
    "VOC_MAIN",
    "WARNING",
    "Check",
    "TaskReport",
    "check_task",
    "check_tasks",
    "config_from_composed",
    "exit_code",
    "render",
    "require_data",
    "sample",
    "split_task_overrides",
]
