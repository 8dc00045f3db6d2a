"""The rich progress bar the suite draws: a label, the bar, done/total, any text columns,
the time elapsed and the ETA.

Shared by a run's episodes (`running.reporter`), the HTML report's thumbnails
(`report.html.writer`) and the toy model's training (`toy.train`), so every bar reads alike.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(
    label: str = "{task.description}",
    *texts: str,
    console: Console | None = None,
    disable: bool = False,
) -> Progress:
    """A Progress of "[bold]<label>", the bar, done/total, one column per `texts` (rich
    format strings, e.g. "{task.fields[rate]}"), the time elapsed and "ETA <time left>".

    `label` is a rich format string too: the task's description by default. `console`:
    rich's own where None; `disable`: draw nothing (quiet, or a log file)."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(text) for text in texts),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )
