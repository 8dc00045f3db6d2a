"""Picture grids of run folders: exact layout, tile contents, limit, cross-run matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from sdvicl_bench.report.grids import (
    GAP,
    GridRow,
    compare_grid,
    grid_size,
    make_grid,
    run_grid,
    tile_origin,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
YELLOW, CYAN, MAGENTA = (255, 255, 0), (0, 255, 255), (255, 0, 255)
A_COLOUR, B_COLOUR, C_COLOUR = (200, 100, 0), (0, 100, 200), (120, 0, 120)


def _fake_run(
    run_dir: Path, ids: list[str], pred_colour=RED, gt_colour=GREEN, score: float = 0.53219
) -> Path:
    """A run folder with samples.jsonl and pred (64x64) / GT (50x30) pictures."""
    (run_dir / "pictures").mkdir(parents=True)
    lines = []
    for i, episode in enumerate(ids):
        Image.new("RGB", (64, 64), pred_colour).save(run_dir / f"pictures/{episode}.pred.png")
        Image.new("RGB", (50, 30), gt_colour).save(run_dir / f"pictures/{episode}.gt.png")
        record = {
            "id": episode,
            "query": f"q{i}",
            "prompts": [f"p{i}a", f"p{i}b"],
            "seed": i,
            "scores": {"iou": score + i / 100},
            "pred": f"pictures/{episode}.pred.png",
            "gt": f"pictures/{episode}.gt.png",
            "seconds": 0.1,
        }
        lines.append(json.dumps(record) + "\n")
    (run_dir / "samples.jsonl").write_text("".join(lines))
    (run_dir / "results.json").write_text(json.dumps({"task": "fake", "config": {}}))
    return run_dir


def _load_pictures(sample: dict) -> tuple[list[Image.Image], list[Image.Image], Image.Image]:
    """Two prompt pairs and a query, solid colours of assorted sizes."""
    a = [Image.new("RGB", (40, 60), A_COLOUR) for _ in sample["prompts"]]
    b = [Image.new("L", (40, 60), 128) for _ in sample["prompts"]]
    return a, b, Image.new("RGB", (90, 45), C_COLOUR)


def _centre(grid: Image.Image, row: int, col: int, tile: int, titles: bool = True) -> tuple:
    x, y = tile_origin(row, col, tile=tile, label_height=16, titles=titles)
    return grid.getpixel((x + tile // 2, y + tile // 2))


def _expected_size(rows: int, cols: int, tile: int, label: int = 16, titles: bool = True):
    width = cols * tile + (cols - 1) * GAP
    height = (label if titles else 0) + rows * (label + tile) + (rows - 1) * GAP
    return width, height


def test_make_grid_layout_formula_and_letterbox():
    rows = [
        GridRow([Image.new("RGB", (10, 20), RED), Image.new("RGB", (30, 10), BLUE)], "r0"),
        GridRow([Image.new("RGB", (5, 5), GREEN)], "r1"),  # short row: empty tile padded
    ]
    grid = make_grid(rows, tile=32, label_height=12)
    assert grid.size == (2 * 32 + GAP, 2 * (12 + 32) + GAP)
    assert grid.size == grid_size(2, 2, tile=32, label_height=12)
    x, y = tile_origin(0, 0, tile=32, label_height=12)
    assert grid.getpixel((x + 16, y + 16)) == RED
    assert grid.getpixel((x + 1, y + 16)) == (40, 40, 40)  # tall picture: letterboxed sides
    x, y = tile_origin(1, 1, tile=32, label_height=12)
    assert grid.getpixel((x + 16, y + 16)) == (40, 40, 40)  # padded empty tile
    titled = make_grid(rows, tile=32, label_height=12, titles=["a", "b"])
    assert titled.size == (2 * 32 + GAP, 12 + 2 * (12 + 32) + GAP)
    with pytest.raises(ValueError):
        make_grid(rows, titles=["only one"])
    with pytest.raises(ValueError):
        make_grid([])


def test_run_grid_dimensions_and_tiles(tmp_path):
    run = _fake_run(tmp_path / "run", ["e0", "e1", "e2"])
    tile = 64
    out = run_grid(run, load_pictures=_load_pictures, tile=tile)
    assert out == run / "grid.png"
    grid = Image.open(out).convert("RGB")
    cols = 2 + 2 + 1 + 1 + 1  # A_1 A_2 | B_1 B_2 | C | prediction | GT
    assert grid.size == _expected_size(3, cols, tile)
    for row in range(3):
        assert _centre(grid, row, 0, tile) == A_COLOUR
        assert _centre(grid, row, 2, tile) == (128, 128, 128)
        assert _centre(grid, row, 4, tile) == C_COLOUR
        assert _centre(grid, row, 5, tile) == RED
        assert _centre(grid, row, 6, tile) == GREEN
    # GT 50x30 is letterboxed top and bottom.
    x, y = tile_origin(1, 6, tile=tile, label_height=16, titles=True)
    assert grid.getpixel((x + tile // 2, y + 1)) == (40, 40, 40)


def test_run_grid_decoded_column_and_limit(tmp_path):
    run = _fake_run(tmp_path / "run", ["e0", "e1", "e2"])
    seen = []

    def decode(pred: Image.Image, size: tuple[int, int]) -> Image.Image:
        seen.append((pred.size, size))
        return Image.new("RGB", size, BLUE)

    tile = 48
    grid = Image.open(
        run_grid(run, load_pictures=_load_pictures, decoded=decode, limit=2, tile=tile)
    )
    grid = grid.convert("RGB")
    cols = 2 + 2 + 1 + 1 + 1 + 1  # ... | prediction | decoded | GT
    assert grid.size == _expected_size(2, cols, tile)  # limit=2 of 3 samples
    assert seen == [((64, 64), (50, 30))] * 2
    assert _centre(grid, 1, 5, tile) == RED
    assert _centre(grid, 1, 6, tile) == BLUE
    assert _centre(grid, 1, 7, tile) == GREEN


def test_compare_grid_matches_ids_across_runs(tmp_path):
    run_a = _fake_run(tmp_path / "a", ["e0", "e1", "e2"], pred_colour=RED)
    run_b = _fake_run(tmp_path / "b", ["e2", "e1", "e9"], pred_colour=YELLOW, gt_colour=CYAN)
    tile = 40
    out = compare_grid(
        [run_a, run_b], ["base", "ablated"], _load_pictures, tile=tile, out=tmp_path / "cmp.png"
    )
    grid = Image.open(out).convert("RGB")
    # Shared ids in run a's order: e1, e2 -> 2 rows; columns C | GT | base | ablated.
    assert grid.size == _expected_size(2, 4, tile)
    assert _centre(grid, 0, 0, tile) == C_COLOUR
    assert _centre(grid, 0, 1, tile) == GREEN  # GT from the first run
    assert _centre(grid, 0, 2, tile) == RED
    assert _centre(grid, 1, 3, tile) == YELLOW
    limited = compare_grid(
        [run_a, run_b],
        ["base", "ablated"],
        _load_pictures,
        limit=1,
        tile=tile,
        out=tmp_path / "x.png",
    )
    assert Image.open(limited).size == _expected_size(1, 4, tile)
    with pytest.raises(ValueError):
        compare_grid([run_a], ["a", "b"], _load_pictures, out=tmp_path / "y.png")


def test_missing_pictures_show_as_empty_tiles(tmp_path):
    run = _fake_run(tmp_path / "run", ["e0"])
    (run / "pictures/e0.pred.png").unlink()
    grid = Image.open(run_grid(run, load_pictures=_load_pictures, tile=32)).convert("RGB")
    assert grid.size == _expected_size(1, 7, 32)
    assert _centre(grid, 0, 5, 32) == (40, 40, 40)
    assert _centre(grid, 0, 6, 32) == GREEN
