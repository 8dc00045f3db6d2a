"""What a run says, and the output settings that decide it, in one object.

`Reporter` carries the console and `quiet` so the run's steps take one argument instead of
two threaded through every call. Warnings a user must see whatever `quiet` says (damaged
lines set aside, missing pictures) always print; notes, the resume line, the progress and
the summary are left out when quiet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from sdvicl_bench.report.console import make_console
from sdvicl_bench.report.progress import progress_bar
from sdvicl_bench.report.records import DAMAGED_NAME
from sdvicl_bench.report.summary import print_summary
from sdvicl_bench.sharding import Shard


def _stderr_console() -> Console:
    return make_console()  # full width in logs and pipes


@dataclass
class Reporter:
    """Where a run prints (`console`) and whether it keeps to warnings (`quiet`)."""

    console: Console = field(default_factory=_stderr_console)
    quiet: bool = False

    @classmethod
    def of(
        cls,
        reporter: Reporter | None = None,
        *,
        quiet: bool = False,
        console: Console | None = None,
    ) -> Reporter:
        """The reporter an entry point was given, else one from its `quiet`/`console`
        keywords (the older way to call `run`, `run_many`, `merge` ...)."""
        if reporter is not None:
            return reporter
        return cls(console or _stderr_console(), quiet)

    def say(self, text: str) -> None:
        """Print one plain line (no markup, no wrapping: paths stay whole)."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def damaged(self, count: int, run_dir: Path, *, redone: bool = True) -> None:
        """One warning line when `count` damaged sample lines were set aside; `redone`: the
        caller samples their episodes again (a run), else (rescore, merge) a rerun will."""
        if count:
            then = (
                "their episodes will be redone"
                if redone
                else "rerun the run's command to sample their episodes again"
            )
            self.say(
                f"warning: {_count(count, 'damaged line')} of the sample files "
                f"set aside in {run_dir / DAMAGED_NAME}; {then}."
            )

    def missing_pictures(self, run_dir: Path, gone: list[str]) -> None:
        """One line naming the finished samples (ids) whose picture files are gone.

        Their scores stand and they are not resampled (a run may have had its pictures
        deleted on purpose, to save disk): deleting a sample's line from its sample file
        makes the next run redo it and save its pictures again.
        """
        if gone:
            self.say(
                f"warning: {_count(len(gone), 'finished sample')} of {run_dir} miss their "
                f"picture files ({_first_three(gone)}); their scores stand. To "
                "recreate the pictures, delete their lines from the sample file and rerun."
            )

    def missing_tiles(self, run_dir: Path, missing: list[str]) -> None:
        """One line naming the picture files a grid draws as empty tiles."""
        if missing:
            self.say(
                f"warning: {_count(len(missing), 'picture')} of {run_dir} missing "
                f"({_first_three(missing)}), drawn as empty tiles. Fix: delete those "
                "samples' lines from the sample file and rerun to recreate them."
            )

    def stale(self, run_dir: Path, stale: list[str]) -> None:
        """One note (unless quiet) when finished records (ids) lack a metric or a baseline
        row the protocol reports now (`results.stale_samples`)."""
        if stale and not self.quiet:
            self.say(
                f"note: {_count(len(stale), 'finished sample')} of "
                f"{run_dir} predate some of this task's metrics or baseline rows (e.g. the "
                "oracle), which leave them out (or show n/a). "
                f"Fix: sdvicl-bench rescore {run_dir}"
            )

    def elsewhere(self, run_dir: Path, siblings: list[Path], count: int) -> None:
        """One line: finished samples of this run in other folders of its key are not redone,
        and how to fold them into this folder's results."""
        names = " ".join(str(s) for s in siblings)
        self.say(
            f"note: {_count(count, 'finished sample')} of this run are in "
            f"other folders of its key ({names}); they are not sampled again. To count them "
            f"in one results.json: sdvicl-bench merge {run_dir} {names}"
        )

    def resuming(self, run_dir: Path, shard: Shard, done: int, todo: int) -> None:
        """The line (unless quiet) a rerun prints before sampling: which folder, what is done
        and what is left."""
        if not self.quiet:
            part = f" (shard {shard.index}/{shard.count})" if shard.count > 1 else ""
            self.say(f"Resuming {run_dir}{part}: {done} episodes done, {todo} to do.")

    @contextlib.contextmanager
    def progress(self, label: str, total: int) -> Iterator[Callable[[int, int, float], None]]:
        """A progress bar with its ETA on a terminal, a plain line per batch in a log (none
        when quiet). Yields `tick(advance, finished, seconds_per_episode)`."""
        bar = progress_bar(
            "{task.description}",
            "{task.fields[rate]}",
            console=self.console,
            disable=self.quiet or not self.console.is_terminal,  # plain log lines instead
        )
        with bar:
            task = bar.add_task(label, total=total, rate="")

            def tick(advance: int, finished: int, rate: float) -> None:
                bar.update(task, advance=advance, rate=f"{rate:.2f} s/episode")
                if not self.quiet and not self.console.is_terminal:
                    self.console.print(
                        f"{label}: {finished}/{total} episodes, {rate:.2f} s/episode, "
                        f"ETA {eta_text((total - finished) * rate)}"
                    )

            yield tick

    def summary(self, results: dict[str, Any], run_dir: Path) -> None:
        """The run's summary table (`report.summary.print_summary`), unless quiet."""
        if not self.quiet:
            print_summary(results, run_dir, self.console)


def _count(count: int, noun: str) -> str:
    """A count and its noun, plural where more than one: "1 picture", "3 pictures"."""
    return f"{count} {noun}{'s' if count > 1 else ''}"


def _first_three(names: list[str]) -> str:
    """Up to three of `names`, then ", ..." where there are more."""
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def eta_text(seconds: float) -> str:
    """A remaining time as a person reads it in a log: "45 s", "12 min 5 s", "3 h 20 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
