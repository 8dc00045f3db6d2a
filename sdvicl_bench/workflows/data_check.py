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

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from sdvicl_bench.config import RunConfig, from_dict
from sdvicl_bench.data.bsds import SPLITS as BSDS_SPLITS
from sdvicl_bench.data.bsds import BSDSDataset, make_demo_bsds
from sdvicl_bench.data.deepfashion import (
    BBOX_FILE,
    LANDMARKS_FILE,
    PARTITION_FILE,
    VISIBLE,
    make_demo_fld,
    parse_bboxes,
    parse_landmarks,
    parse_partition,
)
from sdvicl_bench.data.demo import MARKER, make_demo_voc
from sdvicl_bench.data.demo_cityscapes import make_demo_cityscapes
from sdvicl_bench.data.imagenet import IMAGE_SUFFIXES, make_demo_imagenet
from sdvicl_bench.data.images import UNREADABLE
from sdvicl_bench.data.pascal import (
    NUM_FOLDS,
    SPLIT_SHA256,
    SPLITS,
    VOC_CLASSES,
    VOID_LABEL,
    file_sha256,
    read_split_list,
    split_list_path,
)
from sdvicl_bench.data.splits import SPLITS_SOURCE
from sdvicl_bench.data.voc_det import parse_annotation, read_image_set
from sdvicl_bench.errors import DataError, UserError

OK, WARNING, MISSING = "ok", "warning", "missing"
_RANK = {OK: 0, WARNING: 1, MISSING: 2}
_STYLE = {OK: "green", WARNING: "yellow", MISSING: "bold red"}

SAMPLE_SIZE = 8
"""Files opened per dataset by `check_task` (evenly spaced over the sorted needed ones)."""

# Official counts of the releases the loaders read.
VOC_JPEG_IMAGES = 17_125  # VOCtrainval_11-May-2012: JPEGImages/ (and Annotations/)
VOC_MAIN = {"train": 5_717, "val": 5_823}  # ImageSets/Main/{train,val}.txt
SBD_AUG_MASKS = 12_031  # HSNet's SegmentationClassAug: SBD (11,355) + VOC (2,913), union
CITYSCAPES_IMAGES = {"train": 2_975, "val": 500, "test": 1_525}
IMAGENET_VAL_IMAGES = 50_000
IMAGENET_CLASSES = 1_000
BSDS_IMAGES = {"train": 200, "val": 100, "test": 200}
CITYSCAPES_MAX_LABEL = 33  # labelIds 0..33 (license plate, -1, is never stored)

# Fixes, one sentence each ({root}: the dataset root the task reads).
FIX_VOC = (
    "Fix: download VOCtrainval_11-May-2012.tar (host.robots.ox.ac.uk/pascal/VOC/voc2012/) and "
    "unpack its VOCdevkit/VOC2012/ folder as {root}"
)
FIX_SBD = (
    "Fix: download SBD (benchmark.tgz, Berkeley 'semantic contours') and run `sdvicl-bench data "
    "prepare sbd <folder holding benchmark_RELEASE/dataset/cls>` (writes "
    "{root}/SegmentationClassAug/, VOC's own masks included), or unpack HSNet's "
    "SegmentationClassAug.zip into {root}"
)
FIX_SPLITS = (
    "Fix: run any fgseg command online once (it fetches them from "
    + SPLITS_SOURCE.split("/{")[0]
    + "), or put the published lists there, or pass data.splits=<folder holding trn/ and val/>"
)
FIX_CITYSCAPES = (
    "Fix: download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip "
    "(cityscapes-dataset.com) and unpack both into {root}"
)
FIX_FLD = (
    'Fix: download DeepFashion "Fashion Landmark Detection" (Anno/, Eval/, Img/img.zip) and '
    "unpack it as {root} (Anno/, Eval/, Img/img/)"
)
FIX_IMAGENET = (
    "Fix: download ILSVRC2012_img_val.tar and its labels (devkit ILSVRC2012_devkit_t12.tar.gz, "
    "or Kaggle's LOC_val_solution.csv), unpack the images into one folder and run "
    "`sdvicl-bench data prepare imagenet-val <that folder>` (writes {root}/<wnid>/)"
)
FIX_BSDS = "Fix: download BSR_bsds500.tgz (Berkeley) and unpack it into {root} (BSR/BSDS500/data/)"


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Check:
    """One row of a report: what was looked at, what was found and expected, the status.

    `problem` (what is wrong, in words; default "found X, expected Y") and `fix` (the
    "Fix: ..." sentence) make the row's one line when the status is not ok.
    """

    dataset: str
    what: str
    found: str
    expected: str
    status: str = OK
    problem: str = ""
    fix: str = ""

    def line(self, task: str) -> str:
        """The problem in one line: ``task=<t>: <dataset> <what>: <problem>. <fix>.``"""
        problem = self.problem or f"found {self.found}, expected {self.expected}"
        text = f"task={task}: {self.dataset} {self.what}: {problem.rstrip('.')}."
        if self.fix:
            text += f" {self.fix.rstrip('.')}."
        return " ".join(text.split())


@dataclass(frozen=True)
class TaskReport:
    """The checks of one task's data (`check_task`), with the time the check took."""

    task: str
    data: str  # "real" | "demo"
    root: Path
    checks: tuple[Check, ...]
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """The worst status of the checks (ok when there are none)."""
        return max((c.status for c in self.checks), key=_RANK.__getitem__, default=OK)

    def problems(self) -> list[Check]:
        """The rows that are not ok, missing ones first (then in check order)."""
        bad = [c for c in self.checks if c.status != OK]
        return sorted(bad, key=lambda c: -_RANK[c.status])

    def lines(self) -> list[str]:
        """One line per problem (`Check.line`)."""
        return [c.line(self.task) for c in self.problems()]


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


def exit_code(reports: Iterable[TaskReport]) -> int:
    """0 when every checked task has what it needs (warnings allowed), else 2."""
    return 2 if any(r.status == MISSING for r in reports) else 0


def render(reports: Sequence[TaskReport], console: Console | None = None) -> None:
    """Print the reports as one rich table (task, dataset, what, found, expected, status),
    then one line per problem, then a one-line verdict."""
    console = console or Console()
    table = Table(title="Data check", title_justify="left")
    for name in ("task", "dataset", "what", "found", "expected", "status"):
        table.add_column(name, no_wrap=name in ("task", "status"), overflow="fold")
    for report in reports:
        for index, check in enumerate(report.checks):
            table.add_row(
                report.task if index == 0 else "",
                check.dataset,
                check.what,
                check.found,
                check.expected,
                f"[{_STYLE[check.status]}]{check.status}[/]",
                end_section=index == len(report.checks) - 1,
            )
    console.print(table)
    for report in reports:
        for line in report.lines():
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    blocked = [r.task for r in reports if r.status == MISSING]
    if blocked:
        console.print(f"cannot run: {', '.join(blocked)} (the lines above name the fixes)")
    else:
        console.print(f"ready: {', '.join(r.task for r in reports)}")


def sample(items: Iterable[Any], k: int = SAMPLE_SIZE) -> list[Any]:
    """Up to `k` items, evenly spaced over the sorted distinct items (first and last
    included): the same files on every machine."""
    pool = sorted(set(items))
    if k <= 0 or not pool:
        return []
    if len(pool) <= k:
        return pool
    if k == 1:
        return [pool[0]]
    return [pool[round(i * (len(pool) - 1) / (k - 1))] for i in range(k)]


# ----------------------------------------------------------------------------- context


@dataclass(frozen=True)
class _Ctx:
    """What every dataset check reads: the config, the dataset root, the demo writer's
    parameters (data=demo; {} when its marker is unreadable), the sample size, quick mode."""

    cfg: RunConfig
    root: Path
    demo: dict[str, Any] | None
    sample: int
    quick: bool

    def expected(self, official: int | None, demo: Callable[[dict], int] | None) -> int | None:
        """The count to expect: the demo writer's (data=demo) or the official one."""
        if self.demo is None:
            return official
        try:
            return int(demo(self.demo)) if demo is not None else None
        except (KeyError, TypeError, ValueError):
            return None

    def label(self, count: int | None) -> str:
        """A count as shown in the expected column: "17,125", "400 (demo)", "demo"."""
        if count is None:
            return "demo" if self.demo is not None else "-"
        return f"{count:,} (demo)" if self.demo is not None else f"{count:,}"

    def fix(self, text: str) -> str:
        """A fix sentence with {root} filled in; for demo data, how to rewrite it too."""
        line = text.format(root=self.root)
        if self.demo is not None:
            line += f" (demo data: delete {self.root / MARKER} and data=demo rewrites the set)"
        return line


def _demo_writer(cfg: RunConfig) -> Callable[[Path], Any] | None:
    """The demo writer of the task's dataset (None: none, or a hub source)."""
    dataset, options = cfg.task.dataset, cfg.task.options
    if dataset == "voc2012-canny" and options.get("source", "voc") == "bsds500":
        return make_demo_bsds
    if dataset == "imagenet-val" and options.get("source", "folder") == "hub":
        return None
    return DEMO_WRITERS.get(dataset)


def _root(cfg: RunConfig) -> Path:
    """The folder the task's loader reads (BSDS500: data.root, or data.root/bsds for demo)."""
    base = Path(cfg.data.root).expanduser()
    if cfg.task.dataset == "voc2012-canny" and cfg.task.options.get("source") == "bsds500":
        return base / "bsds" if cfg.data.name == "demo" else base
    return base / cfg.task.root_subdir


def _context(cfg: RunConfig, sample_size: int, quick: bool) -> _Ctx:
    """The check's context; for data=demo the demo is written first (as `run` would)."""
    root = _root(cfg)
    demo = None
    if cfg.data.name == "demo":
        writer = _demo_writer(cfg)
        if writer is not None:
            writer(root)
        demo = _marker_params(root)
    return _Ctx(cfg, root, demo, sample_size, quick)


def _marker_params(root: Path) -> dict[str, Any]:
    """The demo writer's parameters from `root/.demo_complete` ({} when unreadable)."""
    try:
        params = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return params if isinstance(params, dict) else {}


# ----------------------------------------------------------------------------- file helpers


def _names(folder: Path, suffix: str = "") -> set[str] | None:
    """Names of the non-hidden files in `folder` ending in `suffix` (case-insensitive);
    None when the folder is absent. One `os.scandir`, no stat per file."""
    try:
        with os.scandir(folder) as entries:
            return {
                e.name
                for e in entries
                if not e.name.startswith(".")
                and e.name.lower().endswith(suffix.lower())
                and e.is_file()
            }
    except (FileNotFoundError, NotADirectoryError):
        return None


def _subfolders(folder: Path) -> list[str] | None:
    """Sorted names of the non-hidden sub-folders of `folder`; None when it is absent."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return None


def _open(path: Path) -> tuple[Image.Image | None, str]:
    """(decoded image, "") or (None, why it cannot be read)."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy(), ""
    except FileNotFoundError:
        return None, "not found"
    except UNREADABLE as err:
        return None, f"not a readable image ({type(err).__name__})"


def _count(
    ctx: _Ctx,
    dataset: str,
    what: str,
    found: int | None,
    official: int | None,
    demo: Callable[[dict], int] | None,
    fix: str,
    noun: str = "files",
) -> Check:
    """A count row: missing when the folder is absent or empty, a warning when it holds
    fewer than expected (the task runs on fewer files: numbers not comparable), else ok."""
    expected = ctx.expected(official, demo)
    shown = ctx.label(expected)
    if not found:
        problem = "not found" if found is None else f"holds no {noun}"
        return Check(
            dataset,
            what,
            "absent" if found is None else "0",
            shown,
            MISSING,
            problem=problem,
            fix=ctx.fix(fix),
        )
    if expected is not None and found < expected:
        source = "the demo writer wrote" if ctx.demo is not None else "the official release has"
        problem = (
            f"{found:,} {noun}, fewer than the {expected:,} {source}: the task runs, but its "
            "numbers are not comparable with published ones"
        )
        return Check(dataset, what, f"{found:,}", shown, WARNING, problem=problem, fix=ctx.fix(fix))
    return Check(dataset, what, f"{found:,}", shown)


def _coverage(
    ctx: _Ctx,
    dataset: str,
    what: str,
    needed: Sequence[str],
    present: Callable[[str], bool],
    fix: str,
) -> Check:
    """Are the files the task's lists name there? Missing when any is absent (first named)."""
    absent = [name for name in needed if not present(name)]
    found = f"{len(needed) - len(absent):,} of {len(needed):,}"
    expected = f"all {len(needed):,}"
    if not needed:
        return Check(
            dataset, what, "0 listed", "some", MISSING, problem="no files listed", fix=ctx.fix(fix)
        )
    if absent:
        problem = f"{len(absent):,} of the {len(needed):,} listed are absent (first: {absent[0]})"
        return Check(dataset, what, found, expected, MISSING, problem=problem, fix=ctx.fix(fix))
    return Check(dataset, what, found, expected)


def _problem(
    dataset: str, what: str, found: str, expected: str, problem: str, fix: str, status=MISSING
) -> Check:
    """A row that is not ok (missing by default), with its problem and fix."""
    return Check(dataset, what, found, expected, status, problem=problem, fix=fix)


def _root_absent(ctx: _Ctx, dataset: str, fix: str) -> Check:
    """The dataset root itself is not there."""
    return _problem(dataset, "root", "absent", str(ctx.root), f"{ctx.root} not found", ctx.fix(fix))


def _sample_rows(dataset: str, opened: int, problems: list[Check]) -> list[Check]:
    """The sample's rows: its problems, or one ok row saying how many files were opened."""
    if problems:
        return problems
    if not opened:
        return []
    return [Check(dataset, "sample", f"{opened} files fine", "readable, valid")]


def _bad_file(dataset: str, path: Path, why: str, fix: str, status: str = MISSING) -> Check:
    """A sampled file that cannot be used: one row naming it."""
    return Check(dataset, f"file {path}", why, "readable", status, problem=why, fix=fix)


def _data_error(dataset: str, what: str, err: UserError) -> Check:
    """A loader's one-line DataError (it names the file and the fix) as a missing row."""
    return Check(dataset, what, "unreadable", "readable", MISSING, problem=str(err))


# ----------------------------------------------------------------------------- Pascal VOC


def _voc_base(ctx: _Ctx) -> tuple[list[Check], set[str] | None]:
    """The VOC root and JPEGImages/ (every VOC task reads the photos): the rows and the
    photo file names (None when the root is absent: nothing more to check)."""
    if not ctx.root.is_dir():
        row = _root_absent(ctx, "VOC2012", FIX_VOC)
        return [row], None
    photos = _names(ctx.root / "JPEGImages", ".jpg")
    row = _count(
        ctx,
        "VOC2012",
        "JPEGImages/",
        _len(photos),
        VOC_JPEG_IMAGES,
        lambda p: p["num_images"],
        FIX_VOC,
        "images",
    )
    return [row], photos or set()


def _len(names: set[str] | list[str] | None) -> int | None:
    return None if names is None else len(names)


def _check_pascal5i(ctx: _Ctx) -> list[Check]:
    """fgseg: JPEGImages/, SegmentationClassAug/ (SBD), the 8 Pascal-5i lists, the listed
    images' photos and masks, a sample of masks (mode, values 0..20 or 255, size)."""
    rows, photos = _voc_base(ctx)
    if photos is None:
        return rows
    masks = _names(ctx.root / "SegmentationClassAug", ".png")
    rows.append(
        _count(
            ctx,
            "SBD",
            "SegmentationClassAug/",
            _len(masks),
            SBD_AUG_MASKS,
            lambda p: p["num_images"],
            FIX_SBD,
            "masks",
        )
    )
    list_rows, entries = _split_list_rows(ctx, _splits_dir(ctx))
    rows += list_rows
    if not entries:
        return rows
    ids = sorted({e.image_id for e in entries})
    rows.append(
        _coverage(
            ctx,
            "VOC2012",
            "JPEGImages/ (listed ids)",
            ids,
            lambda i: f"{i}.jpg" in photos,
            FIX_VOC,
        )
    )
    if masks is not None:
        rows.append(
            _coverage(
                ctx,
                "SBD",
                "SegmentationClassAug/ (listed ids)",
                ids,
                lambda i: f"{i}.png" in masks,
                FIX_SBD,
            )
        )
    class_of = {}
    for entry in entries:
        class_of.setdefault(entry.image_id, entry.class_id)
    chosen = [i for i in sample(ids, ctx.sample) if f"{i}.jpg" in photos]
    with_masks = masks is not None
    return rows + _voc_sample(ctx, [(i, class_of[i] if with_masks else None) for i in chosen])


def _splits_dir(ctx: _Ctx) -> Path:
    """Where the Pascal-5i lists are: data.splits, else <root>/<task.splits_subdir>."""
    splits = ctx.cfg.data.splits
    return Path(splits).expanduser() if splits else ctx.root / ctx.cfg.task.splits_subdir


def _split_list_rows(ctx: _Ctx, splits_dir: Path) -> tuple[list[Check], list[Any]]:
    """One row for the 8 lists (present, sha256 pins for real data, parsed), and the
    entries of the task's folds in the lists that could be read."""
    real = ctx.demo is None
    absent, bad, entries = [], [], []
    folds = set(ctx.cfg.task.folds)
    for split in SPLITS:
        for fold in range(NUM_FOLDS):
            path = split_list_path(splits_dir, split, fold)
            if not path.is_file():
                absent.append(path)
                continue
            if real and file_sha256(path) != SPLIT_SHA256[f"{split}{fold}"]:
                bad.append(f"{path} has another sha256 than the published list")
                continue
            try:
                listed = read_split_list(path)
            except DataError as err:
                bad.append(str(err))
                continue
            if fold in folds:
                entries += listed
    total = len(SPLITS) * NUM_FOLDS
    found = f"{total - len(absent) - len(bad)} of {total}"
    what = "splits trn,val/fold0-3.txt"
    expected = f"{total}" + ("" if real else " (demo)")
    if bad:
        fix = "Fix: delete it to fetch it again, or replace it with the published file"
        return [
            Check("Pascal-5i", what, found, expected, MISSING, problem=bad[0], fix=ctx.fix(fix))
        ], entries
    if absent and real:
        problem = (
            f"{len(absent)} list(s) not here yet (first: {absent[0]}); `run` fetches them "
            "(needs the network)"
        )
        return [
            Check("Pascal-5i", what, found, expected, WARNING, problem=problem, fix=FIX_SPLITS)
        ], entries
    if absent:
        return [
            Check(
                "Pascal-5i",
                what,
                found,
                expected,
                MISSING,
                problem=f"{absent[0]} not found",
                fix=ctx.fix(FIX_SPLITS),
            )
        ], entries
    return [Check("Pascal-5i", what, found, expected)], entries


def _voc_sample(ctx: _Ctx, chosen: Sequence[tuple[str, int | None]]) -> list[Check]:
    """Open each chosen photo (and, with a class, its SegmentationClassAug mask)."""
    problems: list[Check] = []
    opened = 0
    for image_id, class_id in chosen:
        photo, why = _open(ctx.root / "JPEGImages" / f"{image_id}.jpg")
        opened += 1
        if photo is None:
            path = ctx.root / "JPEGImages" / f"{image_id}.jpg"
            problems.append(_bad_file("VOC2012", path, why, ctx.fix(FIX_VOC)))
            continue
        if class_id is not None:
            opened += 1
            problems += _mask_problems(ctx, image_id, class_id, photo.size)
    return _sample_rows("VOC2012", opened, problems)


def _mask_problems(ctx: _Ctx, image_id: str, class_id: int, size: tuple[int, int]) -> list[Check]:
    """A SegmentationClassAug mask: readable, 'P' or 'L', the photo's size, values 0..20 or
    255, the listed class present."""
    path = ctx.root / "SegmentationClassAug" / f"{image_id}.png"
    fix = ctx.fix(FIX_SBD.replace("Fix: ", "Fix: delete it, then "))
    mask, why = _open(path)
    if mask is None:
        return [_bad_file("SBD", path, why, fix)]
    if mask.mode not in ("P", "L"):
        return [_bad_file("SBD", path, f"a {mask.mode} PNG, not class ids ('P' or 'L')", fix)]
    if mask.size != size:
        return [_bad_file("SBD", path, f"size {mask.size} differs from the photo's {size}", fix)]
    values = np.unique(np.asarray(mask))
    odd = [int(v) for v in values if not (v <= len(VOC_CLASSES) or v == VOID_LABEL)]
    if odd:
        why = f"values {odd[:5]} outside 0..20 and 255 (a colour-mapped mask?)"
        return [_bad_file("SBD", path, why, fix, WARNING)]
    if class_id not in values:
        why = f"does not hold class {class_id} ({VOC_CLASSES[class_id - 1]}), which the list says"
        return [_bad_file("SBD", path, why, fix, WARNING)]
    return []


def _image_set_rows(ctx: _Ctx, splits: Sequence[str]) -> tuple[list[Check], dict[str, list[str]]]:
    """ImageSets/Main/<split>.txt rows (count against VOC's) and the ids they list."""
    rows, ids = [], {}
    for split in splits:
        what = f"ImageSets/Main/{split}.txt"
        try:
            ids[split] = read_image_set(ctx.root, split)
        except DataError:
            rows.append(_count(ctx, "VOC2012", what, None, None, None, FIX_VOC, "ids"))
            continue
        demo = (
            (lambda p: (p["num_images"] + 1) // 2)
            if split == "train"
            else (lambda p: p["num_images"] // 2)
        )
        rows.append(
            _count(ctx, "VOC2012", what, len(ids[split]), VOC_MAIN[split], demo, FIX_VOC, "ids")
        )
    return rows, ids


def _check_voc_det(ctx: _Ctx) -> list[Check]:
    """det: JPEGImages/, Annotations/, ImageSets/Main/{train,val}.txt, the listed ids' XML and
    photos, a sample of annotations parsed (size matching the photo)."""
    rows, photos = _voc_base(ctx)
    if photos is None:
        return rows
    xml = _names(ctx.root / "Annotations", ".xml")
    rows.append(
        _count(
            ctx,
            "VOC2012",
            "Annotations/",
            _len(xml),
            VOC_JPEG_IMAGES,
            lambda p: p["num_images"],
            FIX_VOC,
            "annotations",
        )
    )
    set_rows, ids = _image_set_rows(ctx, ("train", "val"))
    rows += set_rows
    listed = sorted({i for split_ids in ids.values() for i in split_ids})
    if not listed:
        return rows
    rows.append(
        _coverage(
            ctx,
            "VOC2012",
            "JPEGImages/ (listed ids)",
            listed,
            lambda i: f"{i}.jpg" in photos,
            FIX_VOC,
        )
    )
    if xml is not None:
        rows.append(
            _coverage(
                ctx,
                "VOC2012",
                "Annotations/ (listed ids)",
                listed,
                lambda i: f"{i}.xml" in xml,
                FIX_VOC,
            )
        )
    problems, opened = [], 0
    for image_id in sample([i for i in listed if f"{i}.jpg" in photos], ctx.sample):
        photo, why = _open(ctx.root / "JPEGImages" / f"{image_id}.jpg")
        opened += 1
        if photo is None:
            problems.append(
                _bad_file(
                    "VOC2012", ctx.root / "JPEGImages" / f"{image_id}.jpg", why, ctx.fix(FIX_VOC)
                )
            )
            continue
        if xml is None or f"{image_id}.xml" not in xml:
            continue
        opened += 1
        try:
            ann = parse_annotation(ctx.root / "Annotations" / f"{image_id}.xml")
        except DataError as err:
            problems.append(_data_error("VOC2012", f"annotation {image_id}.xml", err))
            continue
        if (ann.width, ann.height) != photo.size:
            why = f"<size> {ann.width}x{ann.height} differs from the photo's {photo.size}"
            path = ctx.root / "Annotations" / f"{image_id}.xml"
            problems.append(_bad_file("VOC2012", path, why, ctx.fix(FIX_VOC), WARNING))
    return rows + _sample_rows("VOC2012", opened, problems)


def _check_edges(ctx: _Ctx) -> list[Check]:
    """edges: VOC photos of ImageSets/Main/{split,pool} (source=voc) or BSDS500."""
    if ctx.cfg.task.options.get("source", "voc") == "bsds500":
        return _check_bsds(ctx)
    rows, photos = _voc_base(ctx)
    if photos is None:
        return rows
    set_rows, ids = _image_set_rows(ctx, _voc_splits(ctx))
    rows += set_rows
    listed = sorted({i for split_ids in ids.values() for i in split_ids})
    if not listed:
        return rows
    rows.append(
        _coverage(
            ctx,
            "VOC2012",
            "JPEGImages/ (listed ids)",
            listed,
            lambda i: f"{i}.jpg" in photos,
            FIX_VOC,
        )
    )
    chosen = [(i, None) for i in sample([i for i in listed if f"{i}.jpg" in photos], ctx.sample)]
    return rows + _voc_sample(ctx, chosen)


def _voc_splits(ctx: _Ctx) -> tuple[str, ...]:
    """The VOC image sets the task reads (its split and prompt pool), train/val only."""
    wanted = [ctx.cfg.task.split, ctx.cfg.task.prompt_pool]
    return tuple(s for s in ("train", "val") if s in wanted) or ("train", "val")


# ----------------------------------------------------------------------------- BSDS500


def _check_bsds(ctx: _Ctx) -> list[Check]:
    """edges with source=bsds500: images/{train,test} and their groundTruth .mat files."""
    try:
        bsds = BSDSDataset(ctx.root)
    except DataError as err:
        return [Check("BSDS500", "root", "absent", "BSR/BSDS500/data/", MISSING, problem=str(err))]
    rows: list[Check] = []
    needed: list[tuple[str, str]] = []
    for split in ("test", "train"):
        images = _names(bsds.data_dir / "images" / split, ".jpg")
        rows.append(
            _count(
                ctx,
                "BSDS500",
                f"images/{split}/",
                _len(images),
                BSDS_IMAGES[split],
                lambda p: p["per_split"],
                FIX_BSDS,
                "images",
            )
        )
        needed += [(split, name[:-4]) for name in sorted(images or ())]
    if not needed:
        return rows
    truths = {s: _names(bsds.data_dir / "groundTruth" / s, ".mat") or set() for s in BSDS_SPLITS}
    rows.append(
        _coverage(
            ctx,
            "BSDS500",
            "groundTruth/ (per image)",
            [f"{s}/{i}" for s, i in needed],
            lambda k: f"{k.split('/')[1]}.mat" in truths[k.split("/")[0]],
            FIX_BSDS,
        )
    )
    problems, opened = [], 0
    for split, image_id in sample(needed, ctx.sample):
        opened += 1
        photo, why = _open(bsds.image_path(image_id, split))
        if photo is None:
            problems.append(
                _bad_file("BSDS500", bsds.image_path(image_id, split), why, ctx.fix(FIX_BSDS))
            )
            continue
        if f"{image_id}.mat" not in truths[split]:
            continue
        opened += 1
        try:
            edges = bsds.boundaries(image_id, split)
        except DataError as err:
            problems.append(_data_error("BSDS500", f"groundTruth {split}/{image_id}.mat", err))
            continue
        if edges.shape[::-1] != photo.size:
            why = f"boundary map {edges.shape[::-1]} differs from the image's {photo.size}"
            problems.append(
                _bad_file("BSDS500", bsds.gt_path(image_id, split), why, ctx.fix(FIX_BSDS))
            )
    return rows + _sample_rows("BSDS500", opened, problems)


# ----------------------------------------------------------------------------- Cityscapes


_CS_IMAGE, _CS_LABEL = "_leftImg8bit.png", "_gtFine_labelIds.png"


def _city_ids(folder: Path, suffix: str) -> list[str] | None:
    """`<city>/<name>` ids of `folder/<city>/<name><suffix>`, sorted; None when absent."""
    cities = _subfolders(folder)
    if cities is None:
        return None
    ids = []
    for city in cities:
        names = _names(folder / city, suffix) or set()
        ids += [f"{city}/{n[: -len(suffix)]}" for n in names]
    return sorted(ids)


def _check_cityscapes(ctx: _Ctx) -> list[Check]:
    """semseg: leftImg8bit/{split,pool} counted (val 500, train 2,975), a gtFine labelIds
    PNG per image, a sample (RGB photo; 'L' labels of the photo's size, ids 0..33)."""
    if not ctx.root.is_dir():
        return [_root_absent(ctx, "Cityscapes", FIX_CITYSCAPES)]
    rows: list[Check] = []
    needed: list[tuple[str, str]] = []
    splits = list(dict.fromkeys([ctx.cfg.task.split, ctx.cfg.task.prompt_pool]))
    demo_keys = {"train": "num_train", "val": "num_val"}
    for split in splits:
        ids = _city_ids(ctx.root / "leftImg8bit" / split, _CS_IMAGE)
        key = demo_keys.get(split, "")
        rows.append(
            _count(
                ctx,
                "Cityscapes",
                f"leftImg8bit/{split}/",
                _len(ids),
                CITYSCAPES_IMAGES.get(split),
                lambda p, k=key: p[k],
                FIX_CITYSCAPES,
                "images",
            )
        )
        needed += [(split, i) for i in ids or ()]
    if not needed:
        return rows
    labels = {s: set(_city_ids(ctx.root / "gtFine" / s, _CS_LABEL) or ()) for s in splits}
    keys = [f"{s}/{i}" for s, i in needed]
    rows.append(
        _coverage(
            ctx,
            "Cityscapes",
            "gtFine/ labelIds (per image)",
            keys,
            lambda k: k.partition("/")[2] in labels[k.partition("/")[0]],
            FIX_CITYSCAPES,
        )
    )
    problems, opened = [], 0
    for split, image_id in sample(needed, ctx.sample):
        opened += 1
        path = ctx.root / "leftImg8bit" / split / f"{image_id}{_CS_IMAGE}"
        photo, why = _open(path)
        if photo is None:
            problems.append(_bad_file("Cityscapes", path, why, ctx.fix(FIX_CITYSCAPES)))
            continue
        if image_id not in labels[split]:
            continue
        opened += 1
        problems += _label_ids_problems(ctx, split, image_id, photo.size)
    return rows + _sample_rows("Cityscapes", opened, problems)


def _label_ids_problems(ctx: _Ctx, split: str, image_id: str, size: tuple[int, int]) -> list:
    """A gtFine labelIds PNG: readable, 'L' (or 'P'), the photo's size, ids 0..33."""
    path = ctx.root / "gtFine" / split / f"{image_id}{_CS_LABEL}"
    fix = ctx.fix(FIX_CITYSCAPES)
    labels, why = _open(path)
    if labels is None:
        return [_bad_file("Cityscapes", path, why, fix)]
    if labels.mode not in ("L", "P"):
        return [_bad_file("Cityscapes", path, f"a {labels.mode} PNG, not 8-bit labelIds", fix)]
    if labels.size != size:
        why = f"size {labels.size} differs from the photo's {size}"
        return [_bad_file("Cityscapes", path, why, fix)]
    top = int(np.asarray(labels).max())
    if top > CITYSCAPES_MAX_LABEL:
        why = f"holds id {top} > {CITYSCAPES_MAX_LABEL}: not labelIds (labelTrainIds or colour?)"
        return [_bad_file("Cityscapes", path, why, fix, WARNING)]
    return []


# ----------------------------------------------------------------------------- DeepFashion


def _check_fld(ctx: _Ctx) -> list[Check]:
    """keypoints: list_landmarks / list_eval_partition parsed, list_bbox (needed with
    normalize=box), the photos of the split and pool under Img/, a sample (readable,
    visible landmarks inside the photo)."""
    if not ctx.root.is_dir():
        return [_root_absent(ctx, "DeepFashion FLD", FIX_FLD)]
    rows: list[Check] = []
    records = partition = None
    for rel, parse in ((LANDMARKS_FILE, parse_landmarks), (PARTITION_FILE, parse_partition)):
        path = ctx.root / rel
        if not path.is_file():
            rows.append(
                _problem("DeepFashion FLD", rel, "absent", "present", "not found", ctx.fix(FIX_FLD))
            )
            continue
        try:
            parsed = parse(path)
        except DataError as err:
            rows.append(_data_error("DeepFashion FLD", rel, err))
            continue
        count = ctx.label(ctx.expected(None, lambda p: p["num_images"]))
        rows.append(Check("DeepFashion FLD", rel, f"{len(parsed):,} images", count))
        records, partition = (parsed, partition) if rel == LANDMARKS_FILE else (records, parsed)
    rows.append(_bbox_row(ctx, records))
    if records is None or partition is None:
        return rows
    splits = list(dict.fromkeys([ctx.cfg.task.split, ctx.cfg.task.prompt_pool]))
    chosen = [r for r in records if partition.get(r.image) in splits]
    for split in splits:
        n = sum(1 for r in records if partition.get(r.image) == split)
        status, problem = (OK, "") if n else (MISSING, f"no image of {LANDMARKS_FILE} is {split}")
        rows.append(
            Check(
                "DeepFashion FLD",
                f"{split} images",
                f"{n:,}",
                "some",
                status,
                problem=problem,
                fix=ctx.fix(FIX_FLD) if n == 0 else "",
            )
        )
    present = _present_under(ctx.root / "Img", [r.image for r in chosen])
    rows.append(
        _coverage(
            ctx,
            "DeepFashion FLD",
            f"Img/ ({', '.join(splits)})",
            [r.image for r in chosen],
            present,
            FIX_FLD,
        )
    )
    by_name = {r.image: r for r in chosen}
    problems, opened = [], 0
    for name in sample([n for n in by_name if present(n)], ctx.sample):
        opened += 1
        path = ctx.root / "Img" / name
        photo, why = _open(path)
        if photo is None:
            problems.append(_bad_file("DeepFashion FLD", path, why, ctx.fix(FIX_FLD)))
            continue
        record = by_name[name]
        xy = record.xy[record.visibility == VISIBLE]
        w, h = photo.size
        if len(xy) and ((xy < 0).any() or (xy[:, 0] > w).any() or (xy[:, 1] > h).any()):
            why = (
                f"visible landmarks fall outside the {w}x{h} photo: Img/ holds other photos than "
                "the lists (FLD's img.zip has the long side at 512)"
            )
            problems.append(_bad_file("DeepFashion FLD", path, why, ctx.fix(FIX_FLD), WARNING))
    return rows + _sample_rows("DeepFashion FLD", opened, problems)


def _bbox_row(ctx: _Ctx, records: list | None) -> Check:
    """Anno/list_bbox.txt: needed (and checked to cover the images) with normalize=box only."""
    path = ctx.root / BBOX_FILE
    needed = str(ctx.cfg.task.options.get("normalize", "image")) == "box"
    expected = "present" if needed else "optional (normalize=box)"
    if not path.is_file():
        if not needed:
            return Check("DeepFashion FLD", BBOX_FILE, "absent", expected)
        return Check(
            "DeepFashion FLD",
            BBOX_FILE,
            "absent",
            expected,
            MISSING,
            problem="not found (task.options.normalize=box reads it)",
            fix=ctx.fix(FIX_FLD),
        )
    try:
        boxes = parse_bboxes(path)
    except DataError as err:
        return replace(
            _data_error("DeepFashion FLD", BBOX_FILE, err), status=MISSING if needed else WARNING
        )
    lacking = [r.image for r in records or () if r.image not in boxes]
    if lacking:
        problem = f"no box for {len(lacking):,} image(s) of the landmark list (first: {lacking[0]})"
        return Check(
            "DeepFashion FLD",
            BBOX_FILE,
            f"{len(boxes):,} boxes",
            expected,
            MISSING if needed else WARNING,
            problem=problem,
            fix=ctx.fix(FIX_FLD),
        )
    return Check("DeepFashion FLD", BBOX_FILE, f"{len(boxes):,} boxes", expected)


def _present_under(root: Path, relpaths: Sequence[str]) -> Callable[[str], bool]:
    """A lookup `relpath -> exists under root`, one os.scandir per parent folder."""
    listing: dict[str, set[str]] = {}
    for rel in relpaths:
        parent = rel.rpartition("/")[0]
        if parent not in listing:
            listing[parent] = _names(root / parent) or set()

    def present(rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        return name in listing.get(parent, set())

    return present


# ----------------------------------------------------------------------------- ImageNet


def _check_imagenet(ctx: _Ctx) -> list[Check]:
    """colorization: <wnid>/ class folders (1,000) and images (50,000), a flat unsorted
    folder recognised (-> `data prepare imagenet-val`), a sample of images opened. Quick
    mode counts the folders only and looks into the sampled ones."""
    if ctx.cfg.task.options.get("source", "folder") == "hub":
        return [Check("ImageNet val", "hub dataset", "not checked", "-", OK)]
    folders = _subfolders(ctx.root)
    if folders is None:
        return [_root_absent(ctx, "ImageNet val", FIX_IMAGENET)]
    if not folders:
        flat = _names(ctx.root, ".jpeg") or set()
        problem = "holds no class folders" + (
            f" but {len(flat):,} images directly (not sorted into <wnid>/)" if flat else ""
        )
        return [
            Check(
                "ImageNet val",
                "<wnid>/ folders",
                "0",
                ctx.label(ctx.expected(IMAGENET_CLASSES, lambda p: p["classes"])),
                MISSING,
                problem=problem,
                fix=ctx.fix(FIX_IMAGENET),
            )
        ]
    rows = [
        _count(
            ctx,
            "ImageNet val",
            "<wnid>/ folders",
            len(folders),
            IMAGENET_CLASSES,
            lambda p: p["classes"],
            FIX_IMAGENET,
            "folders",
        )
    ]
    looked = sample(folders, ctx.sample) if ctx.quick else folders
    images = {f: sorted(n for n in _names(ctx.root / f) or () if _is_image_name(n)) for f in looked}
    if not ctx.quick:
        total = sum(len(v) for v in images.values())
        rows.append(
            _count(
                ctx,
                "ImageNet val",
                "images",
                total,
                IMAGENET_VAL_IMAGES,
                lambda p: p["classes"] * p["per_class"],
                FIX_IMAGENET,
                "images",
            )
        )
    elif not any(images.values()):
        rows.append(
            Check(
                "ImageNet val",
                "images",
                "0 in the sampled folders",
                "some",
                MISSING,
                problem="the sampled class folders hold no images",
                fix=ctx.fix(FIX_IMAGENET),
            )
        )
    candidates = [f"{f}/{name}" for f, names in images.items() for name in names]
    problems, opened = [], 0
    for rel in sample(candidates, ctx.sample):
        opened += 1
        photo, why = _open(ctx.root / rel)
        if photo is None:
            problems.append(_bad_file("ImageNet val", ctx.root / rel, why, ctx.fix(FIX_IMAGENET)))
    return rows + _sample_rows("ImageNet val", opened, problems)


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


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

DEMO_WRITERS: dict[str, Callable[[Path], Any]] = {
    "pascal5i": make_demo_voc,
    "voc2012-det": make_demo_voc,
    "voc2012-canny": make_demo_voc,
    "cityscapes": make_demo_cityscapes,
    "deepfashion-fld": make_demo_fld,
    "imagenet-val": make_demo_imagenet,
}
"""What writes each family's demo set (data=demo), as its protocol does."""
