"""File helpers and row builders the dataset checks share: folder listings, opening an
image, count / coverage / sample rows and the one-line problem rows."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from sdvicl_bench.data.images import UNREADABLE
from sdvicl_bench.errors import UserError
from sdvicl_bench.workflows.data_check.context import _Ctx
from sdvicl_bench.workflows.data_check.report import MISSING, WARNING, Check

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


def _len(names: set[str] | list[str] | None) -> int | None:
    return None if names is None else len(names)
