"""The paper's and the baselines' reference numbers (TASKS.md 8), read from one data file."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import yaml


@cache
def reference_numbers() -> dict[str, Any]:
    """{task: {metric, entries: [{source, value, prompts, ...}], relative: [...]}}."""
    text = files("sdvicl_bench.report").joinpath("reference_numbers.yaml").read_text()
    return yaml.safe_load(text)


def references_for(task: str) -> list[dict[str, Any]]:
    """Reference rows of one task (empty where none is known: tables print n/a)."""
    return list(reference_numbers().get(task, {}).get("entries", []))
