"""Picture grids of a run folder: prompts, query, prediction, decoded result and GT per episode.

`make_grid` lays out rows of pictures on an exactly computable canvas; `run_grid` builds one
row per episode of a run folder (`grid.png`); `compare_grid` puts the same episodes of several
run folders side by side (ablations). The dataset-specific part, loading the prompt and query
pictures of a sample, is a callable supplied by the caller.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sdvicl_bench.report import records
from sdvicl_bench.types import ORACLE

GAP = 2
"""Pixels between columns and between rows."""
LETTERBOX = (40, 40, 40)
"""Fill of the part of a tile the picture does not cover (and of empty tiles)."""
BACKGROUND = (0, 0, 0)
"""Fill of the gaps and the caption / title strips."""
TEXT = (255, 255, 255)

LoadPictures = Callable[[dict], tuple[list[Image.Image], list[Image.Image], Image.Image]]
"""`load_pictures(sample) -> (A pictures, B pictures, C)`: the prompt pairs and the query."""
Decode = Callable[[Image.Image, tuple[int, int]], Image.Image]
"""`decoded(raw prediction, GT size (w, h)) -> picture of the decoded result`."""


@dataclass
class GridRow:
    """One row of a grid: its pictures (columns; None = empty tile) and a caption above it."""

    pictures: list[Image.Image | None]
    caption: str = ""


def grid_size(
    rows: int, cols: int, *, tile: int = 128, label_height: int = 16, titles: bool = False
) -> tuple[int, int]:
    """(width, height) of a `make_grid` canvas; see `make_grid` for the formula."""
    width = cols * tile + (cols - 1) * GAP
    height = (label_height if titles else 0) + rows * (label_height + tile) + (rows - 1) * GAP
    return width, height


def tile_origin(
    row: int, col: int, *, tile: int = 128, label_height: int = 16, titles: bool = False
) -> tuple[int, int]:
    """(x, y) of the top-left pixel of the tile at (row, col), both 0-based."""
    x = col * (tile + GAP)
    y = (label_height if titles else 0) + row * (label_height + tile + GAP) + label_height
    return x, y


def make_grid(
    rows: Sequence[GridRow],
    *,
    tile: int = 128,
    label_height: int = 16,
    titles: list[str] | None = None,
) -> Image.Image:
    """Lay out `rows` on one RGB canvas.

    Layout (no outer margins, `gap` = `GAP` = 2 px, `cols` = the longest row; shorter rows
    are padded with empty tiles):

    - optional titles strip, `label_height` px high, at the very top: `titles[j]` over column j;
    - per row: a caption strip of `label_height` px (white text on black), then the tiles,
      each `tile` x `tile` px; rows are separated by `gap` px (none after the last row);
    - columns are separated by `gap` px.

    So width = cols*tile + (cols-1)*gap and
    height = (label_height if titles else 0) + rows*(label_height + tile) + (rows-1)*gap.
    The tile (row r, col c) starts at x = c*(tile+gap),
    y = (label_height if titles else 0) + r*(label_height+tile+gap) + label_height
    (`tile_origin`). Each picture is converted to RGB and resized with BILINEAR to fit the
    tile keeping its aspect ratio (up- or downscaled), centred on a dark grey (40,40,40)
    letterbox. Text uses PIL's default font and is clipped to its strip/column.
    """
    if not rows:
        raise ValueError("make_grid needs at least one row")
    cols = max(len(r.pictures) for r in rows)
    if cols == 0:
        raise ValueError("make_grid needs at least one picture per grid")
    if titles is not None and len(titles) != cols:
        raise ValueError(f"{len(titles)} titles for {cols} columns")
    has_titles = titles is not None
    canvas = Image.new(
        "RGB",
        grid_size(len(rows), cols, tile=tile, label_height=label_height, titles=has_titles),
        BACKGROUND,
    )
    font = ImageFont.load_default()
    if titles is not None:
        for c, title in enumerate(titles):
            x, _ = tile_origin(0, c, tile=tile, label_height=label_height)
            _text(canvas, (x, 0), (tile, label_height), title, font)
    for r, row in enumerate(rows):
        _, y0 = tile_origin(r, 0, tile=tile, label_height=label_height, titles=has_titles)
        _text(canvas, (0, y0 - label_height), (canvas.width, label_height), row.caption, font)
        for c in range(cols):
            pic = row.pictures[c] if c < len(row.pictures) else None
            x, y = tile_origin(r, c, tile=tile, label_height=label_height, titles=has_titles)
            canvas.paste(fit_tile(pic, tile), (x, y))
    return canvas


def fit_tile(picture: Image.Image | None, tile: int) -> Image.Image:
    """`picture` resized (BILINEAR, aspect kept) and centred on a tile x tile letterbox."""
    out = Image.new("RGB", (tile, tile), LETTERBOX)
    if picture is None or picture.width == 0 or picture.height == 0:
        return out
    rgb = to_rgb(picture)
    scale = min(tile / rgb.width, tile / rgb.height)
    w = min(tile, max(1, round(rgb.width * scale)))
    h = min(tile, max(1, round(rgb.height * scale)))
    resized = rgb.resize((w, h), Image.Resampling.BILINEAR)
    out.paste(resized, ((tile - w) // 2, (tile - h) // 2))
    return out


def to_rgb(picture: Image.Image) -> Image.Image:
    """RGB view of any PIL picture; 16/32-bit and float ones are min-max stretched to 0..255."""
    if picture.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(picture, dtype=np.float64)
        lo, hi = (float(np.nanmin(a)), float(np.nanmax(a))) if a.size else (0.0, 0.0)
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        a = np.nan_to_num(a)
        return Image.fromarray(a.clip(0, 255).astype(np.uint8)).convert("RGB")
    return picture if picture.mode == "RGB" else picture.convert("RGB")


def _text(
    canvas: Image.Image,
    xy: tuple[int, int],
    size: tuple[int, int],
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    """Draw `text` into the box at `xy` of `size`, clipped to the box."""
    if not text:
        return
    strip = Image.new("RGB", size, BACKGROUND)
    ImageDraw.Draw(strip).text((2, 1), text, fill=TEXT, font=font)
    canvas.paste(strip, xy)


# ------------------------------------------------------------------ run folders


GRID_FIELDS = {"id": str, "query": str, "prompts": list, "seed": int}
"""What a sample record needs to be drawn (its scores and pictures may be absent)."""


def read_run_samples(run_dir: Path) -> list[dict]:
    """Finished samples of a run folder (shard files too), read-only: a damaged line is
    skipped and left for the run's resume to set aside."""
    if not records.sample_files(Path(run_dir)):
        raise FileNotFoundError(
            f"{Path(run_dir) / 'samples.jsonl'} not found: is {run_dir} a run folder?"
        )
    return records.read_run_samples(Path(run_dir), fields=GRID_FIELDS)


def load_run_picture(run_dir: Path, rel: str | None) -> Image.Image | None:
    """A picture saved in a run folder (path relative to it); None if not saved."""
    if not rel:
        return None
    path = Path(run_dir) / rel
    if not path.is_file():
        return None
    with Image.open(path) as im:
        return im.copy()


def format_scores(scores: dict[str, Any] | None) -> str:
    """`"iou 0.53  acc 0.912"`: each score with 3 significant digits."""
    parts = []
    for name, value in (scores or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            parts.append(f"{name} {value}")
        elif math.isnan(value):
            parts.append(f"{name} nan")
        else:
            parts.append(f"{name} {value:.3g}")
    return "  ".join(parts)


def score_line(sample: dict[str, Any]) -> str:
    """A run grid's caption: the episode id, its scores and, where the record has it, the
    oracle's (the task's ceiling, not a competitor) after a bar,
    "f0-x__1  iou 0.53  |  ceiling (oracle): iou 0.98"."""
    line = f"{sample['id']}  {format_scores(sample.get('scores'))}".rstrip()
    oracle = (sample.get("baselines") or {}).get(ORACLE)
    if isinstance(oracle, dict) and oracle:
        line += f"  |  ceiling (oracle): {format_scores(oracle)}"
    return line


def run_grid(
    run_dir: Path,
    *,
    load_pictures: LoadPictures,
    decoded: Decode | None = None,
    limit: int = 8,
    tile: int = 128,
) -> Path:
    """Write `<run_dir>/grid.png`: one row per episode (the first `limit` samples).

    Columns: A_1..A_n | B_1..B_n | C | prediction | decoded (only if `decoded` is given) | GT,
    with n the most prompts of any shown episode (fewer prompts leave empty tiles). The caption
    is the episode id, its scores and the oracle's (`score_line`, 3 significant digits). A
    prediction or GT that was not saved (`save_pictures: false`) or was deleted shows as an
    empty tile (`records.missing_pictures` names them for a warning). Returns the path
    written.
    """
    run_dir = Path(run_dir)
    samples = read_run_samples(run_dir)[: max(0, limit)]
    if not samples:
        raise ValueError(f"{run_dir}/samples.jsonl has no samples to show")
    loaded = [load_pictures(s) for s in samples]
    n = max(max(len(a), len(b)) for a, b, _ in loaded)
    rows = []
    for sample, (a, b, c) in zip(samples, loaded, strict=True):
        pred = load_run_picture(run_dir, sample.get("pred"))
        gt = load_run_picture(run_dir, sample.get("gt"))
        pics: list[Image.Image | None] = [*_pad(a, n), *_pad(b, n), c, pred]
        if decoded is not None:
            size = gt.size if gt is not None else c.size
            pics.append(decoded(pred, size) if pred is not None else None)
        pics.append(gt)
        rows.append(GridRow(pics, score_line(sample)))
    titles = [f"A_{i + 1}" for i in range(n)] + [f"B_{i + 1}" for i in range(n)]
    titles += ["C", "prediction", *(["decoded"] if decoded is not None else []), "GT"]
    out = run_dir / "grid.png"
    save_atomic(make_grid(rows, tile=tile, titles=titles), out)
    return out


def compare_grid(
    run_dirs: list[Path],
    labels: list[str],
    load_pictures: LoadPictures,
    *,
    limit: int = 8,
    tile: int = 128,
    out: Path,
) -> Path:
    """Write `out`: the same episodes across runs (ablations), one row per episode.

    Episodes are matched by `id`, in the first run's order, keeping only ids present in every
    run; the first `limit` of them are shown. Columns: C | GT | the prediction of each run
    (titled with its label). The caption holds the id and, per run, its label and scores.
    C comes from `load_pictures` on the first run's sample, GT from the first run's folder.
    """
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("compare_grid needs at least one run folder")
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} run folders")
    per_run = [{s["id"]: s for s in read_run_samples(d)} for d in run_dirs]
    first_order = [s["id"] for s in read_run_samples(run_dirs[0])]
    ids = [i for i in dict.fromkeys(first_order) if all(i in r for r in per_run)]
    ids = ids[: max(0, limit)]
    if not ids:
        raise ValueError("the runs share no episode id")
    rows = []
    for episode in ids:
        first = per_run[0][episode]
        _, _, c = load_pictures(first)
        pics: list[Image.Image | None] = [c, load_run_picture(run_dirs[0], first.get("gt"))]
        parts = [episode]
        for d, label, samples in zip(run_dirs, labels, per_run, strict=True):
            sample = samples[episode]
            pics.append(load_run_picture(d, sample.get("pred")))
            parts.append(f"{label}: {format_scores(sample.get('scores'))}".rstrip())
        rows.append(GridRow(pics, "  |  ".join(parts)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(make_grid(rows, tile=tile, titles=["C", "GT", *labels]), out)
    return out


def save_atomic(picture: Image.Image, out: Path) -> None:
    """Save `picture` to `out` via a per-process temp file and a rename, so a reader (or a
    second process drawing the same grid) never sees half a file."""
    fmt = Image.registered_extensions().get(out.suffix.lower(), "PNG")
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    picture.save(tmp, format=fmt)
    os.replace(tmp, out)


def _pad(pictures: list[Image.Image], n: int) -> list[Image.Image | None]:
    """`pictures` padded with None (empty tiles) to length n."""
    return [*pictures, *([None] * (n - len(pictures)))]
