"""A run folder's picture grid (grid.png), drawn from its samples and the task's protocol.

`report.grids` draws; this module hands it what only the protocol knows: the episode's A, B
and C pictures, and the prediction decoded and drawn against the same sample's truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image
from rich.console import Console

from sdvicl_bench.errors import DataError
from sdvicl_bench.protocols import TaskProtocol
from sdvicl_bench.report.grids import GRID_FIELDS, run_grid
from sdvicl_bench.report.records import missing_pictures, read_run_samples
from sdvicl_bench.running.reporter import Reporter
from sdvicl_bench.types import EpisodeSpec


def grid_loaders(protocol: TaskProtocol):
    """(load_pictures, decoded) for report.grids: A, B, C from the protocol; the decoded
    prediction drawn by the protocol from the same sample's truth."""
    last: dict[str, Any] = {}

    def load_pictures(sample: dict):
        spec = EpisodeSpec(sample["id"], sample["query"], tuple(sample["prompts"]), sample["seed"])
        episode, truth = protocol.sampler_input(spec)
        last["truth"] = truth
        return list(episode.prompts), list(episode.targets), episode.query

    def decoded(picture: Image.Image, _size) -> Image.Image:
        return protocol.visualize(picture, last["truth"])

    return load_pictures, decoded


def write_grid(
    protocol: TaskProtocol,
    run_dir: Path,
    limit: int = 8,
    *,
    console: Console | None = None,
    warn_missing: bool = True,
    reporter: Reporter | None = None,
) -> Path:
    """grid.png of the first episodes: A.. | B.. | C | prediction | decoded | GT, with scores.

    A one-line DataError where the folder has no finished sample yet; with `warn_missing`, a
    warning line naming the pictures that are gone (drawn as empty tiles). Prints through
    `reporter` (or a plain one on `console`).
    """
    shown = read_run_samples(run_dir, fields=GRID_FIELDS)[: max(0, limit)]
    if not shown:
        raise DataError(
            f"{run_dir} has no finished sample yet: nothing to draw. Fix: run the command "
            "that made it first (sdvicl-bench run with the same overrides)."
        )
    missing = missing_pictures(run_dir, shown)
    if warn_missing and protocol.cfg.save_pictures:
        Reporter.of(reporter, console=console).missing_tiles(run_dir, missing)
    load_pictures, decoded = grid_loaders(protocol)
    return run_grid(run_dir, load_pictures=load_pictures, decoded=decoded, limit=limit)
