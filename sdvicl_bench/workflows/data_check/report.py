"""The data check's records and their output: statuses, `Check` rows, `TaskReport`s,
`render` (a rich table and the problem lines) and `exit_code`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

OK, WARNING, MISSING = "ok", "warning", "missing"
_RANK = {OK: 0, WARNING: 1, MISSING: 2}
_STYLE = {OK: "green", WARNING: "yellow", MISSING: "bold red"}


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
