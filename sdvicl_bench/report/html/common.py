"""What the report page's modules share: the thumbnail folder, the run colours, escaping."""

from __future__ import annotations

import html
from typing import Any

IMG_DIR = "img"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=False)


def _attr(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)
