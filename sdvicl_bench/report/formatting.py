"""How the result tables print: numbers, folds, config values and the printed cells.

The formatting `tables` (Markdown, LaTeX) and the HTML report (`report.html`) share, so a
number reads the same everywhere: 2 decimals for scaled metrics, 4 significant digits
otherwise, "n/a" where there is none.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

# Printed columns and their headers (Markdown and LaTeX).
PRINTED = (
    ("task", "task"),
    ("method", "method"),
    ("metric", "metric"),
    ("value", "value"),
    ("episode_mean", "per-episode mean"),
    ("ci", "95% CI"),
    ("folds", "folds"),
    ("n", "n"),
    ("prompts", "prompts"),
    ("note", "note"),
    ("source", "source"),
)


def num(value: Any) -> float:
    """A float, NaN for None or anything not numeric."""
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def format_number(value: Any, scale: float = 1.0) -> str:
    """2 decimals for scaled metrics (scale != 1), 4 significant digits otherwise; n/a."""
    v = num(value)
    if math.isnan(v):
        return "n/a"
    return f"{v:.2f}" if scale != 1 else f"{v:.4g}"


def fold_rank(group: str) -> tuple[int, Any]:
    try:
        return (0, int(group))
    except (TypeError, ValueError):
        return (1, str(group))


def shown(key: str, value: Any) -> str:
    """A config value as a table label shows it: None is the default, a frozen episodes file
    is named by its run folder."""
    if value is None:
        return "default"
    if key == "episodes" and isinstance(value, str):
        path = Path(value)
        return f"frozen from {path.parent.name}" if path.parent.name else path.name
    return str(value)


def printed_cells(df: pd.DataFrame) -> list[list[str]]:
    """The printed cells of each row, as strings."""
    out = []
    for row in df.itertuples(index=False):
        r = row._asdict()
        cells = []
        for col, _ in PRINTED:
            value = r[col]
            if col == "value":
                cells.append(format_number(value, r["scale"]))
            elif col == "episode_mean":
                cells.append("" if math.isnan(value) else format_number(value, r["scale"]))
            elif col == "prompts":
                cells.append("n/a" if pd.isna(value) else str(int(value)))
            elif col == "n":
                cells.append("" if pd.isna(value) else str(int(value)))
            else:
                cells.append(
                    ""
                    if value is None or (isinstance(value, float) and math.isnan(value))
                    else str(value)
                )
        out.append(cells)
    return out


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
