"""What every command shares: the console, error and Ctrl-C handling, the overrides argument
and the epilog helpers."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from sdvicl_bench.errors import UserError, disk_error_line
from sdvicl_bench.report.console import make_console

console = make_console()  # full width in logs and pipes: no table cut at 80 columns


WRITE_FIXES = {
    "run": "choose output_dir=<writable folder> (finished samples are kept: rerun to resume)",
    "ablate": "choose output_dir=<writable folder> and run it from a writable folder",
    "reproduce": "pass --out <writable folder> and run it from a writable folder",
    "tables": "pass --out <writable folder>",
    "grid": "copy the run folder somewhere writable and pass that copy",
    "merge": "copy the run folders somewhere writable and merge the copies",
    "rescore": "copy the run folder somewhere writable and rescore the copy",
    "report": "pass --out <writable folder>",
}
"""A command's way out of a full disk or read-only folder (errors.disk_error_line)."""

RESUME_HINT = "finished samples are saved; rerun the same command to resume."
"""What Ctrl-C (or SIGTERM) prints after `interrupted: ` / `terminated (SIGTERM): `."""

RESUME_HINTS = {
    "data_prepare": (
        "data prepare keeps the files it finished; run the same command again to convert "
        "the rest (finished files are skipped)."
    ),
}
"""A command's own resume hint where `RESUME_HINT` (a run's samples) does not fit."""


def user_errors(fn):
    """Turn UserError (and a full disk, read-only or forbidden folder) into one stderr line +
    exit 2; Ctrl-C into a resume hint + exit 130."""
    fix = WRITE_FIXES.get(fn.__name__, "choose a writable folder")
    hint = RESUME_HINTS.get(fn.__name__, RESUME_HINT)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            fail(str(err))
        except OSError as err:
            line = disk_error_line(err, fix)
            if line is None:
                raise
            fail(line)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM during a run (evaluate.Terminated)
            code = getattr(err, "exit_code", 130)
            what = "terminated (SIGTERM)" if code == 143 else "interrupted"
            typer.echo(f"{what}: {hint}", err=True)
            raise typer.Exit(code) from None

    return wrapper


def fail(message: str) -> NoReturn:
    """Print `error: <message>` on stderr and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2) from None


Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Hydra overrides: task=fgseg prompts=5 model=tiny data=demo limit=8 ..."),
]

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]

RunFolders = Annotated[list[Path] | None, typer.Argument(help="run folders or folders of them")]

PASS_OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}
"""context_settings of a command taking `Overrides`: every word reaches them as given."""


def examples(*lines: str) -> str:
    """A command's epilog: `Example:` (or `Examples:`) and each command line, indented, as a
    paragraph of its own."""
    head = "Example:" if len(lines) == 1 else "Examples:"
    return head + "".join(f"\n\n  {line}" for line in lines)
