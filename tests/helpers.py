"""Small deterministic inputs for sampler tests: pictures, episodes, a relative error."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sdvicl_bench.sampler.pipeline import Episode

SIZE = 64


def picture(seed: int, binary: bool = False) -> Image.Image:
    """A smooth random photo, or (binary) a white square on black, SIZE x SIZE."""
    rng = np.random.default_rng(seed)
    if binary:
        arr = np.zeros((SIZE, SIZE, 3), np.uint8)
        x, y = rng.integers(8, 40, 2)
        arr[y : y + 20, x : x + 20] = 255
        return Image.fromarray(arr)
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((SIZE, SIZE), Image.Resampling.BILINEAR)


def episode(n: int = 1, seed: int = 0, offset: int = 0, **kw) -> Episode:
    """n prompt photos with square masks and a query photo; `offset` picks other pictures."""
    prompts = [picture(100 + offset + j) for j in range(n)]
    targets = [picture(200 + offset + j, binary=True) for j in range(n)]
    return Episode(prompts, targets, picture(300 + offset), seed=seed, **kw)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ||a - b|| / ||b||."""
    return float((a - b).norm() / b.norm())
