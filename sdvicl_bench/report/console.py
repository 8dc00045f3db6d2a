"""The rich console every command prints through: full width when not a terminal.

On a terminal rich wraps and cuts tables at the window's width. In a log file, CI or a pipe
(`| less`) there is no window, and rich would fall back to 80 columns and cut every wide
table cell with "…"; there the console takes `PIPE_WIDTH` columns, so tables keep their
natural width and no cell is cut (COLUMNS, when set, still wins, as rich documents).
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPE_WIDTH = 1000
"""Columns when not writing to a terminal: wider than any table this suite prints."""


def make_console(*, stderr: bool = True) -> Console:
    """A console on stderr (stdout with `stderr=False`), full width when not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not (hasattr(stream, "isatty") and stream.isatty()) and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH
    return Console(stderr=stderr, width=width)
