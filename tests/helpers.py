"""Small deterministic inputs for sampler tests, and the float64 attention reference."""

from __future__ import annotations

import math

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


def naive_vicl_attention(q, k, v, n, tau, beta, ensemble):
    """Row by row in float64: softmax, contrast around the uniform mean, clip, weighted sum.

    Returns the output and the pre-clip contrasted probabilities (to see which clips bit).
    """
    q, k, v = q.double(), k.double(), v.double()
    d = q.shape[-1]
    nk = k.shape[-2] // n
    blocks = (
        [slice(0, n * nk)]
        if ensemble == "iwpe"
        else [slice(j * nk, (j + 1) * nk) for j in range(n)]
    )
    outs, pre = [], []
    for blk in blocks:
        s = q @ k[..., blk, :].transpose(-1, -2) / (tau * math.sqrt(d))
        p = torch.exp(s - s.max(-1, keepdim=True).values)
        p = p / p.sum(-1, keepdim=True)
        mu = 1.0 / s.shape[-1]
        c = mu + beta * (p - mu)
        pre.append(c)
        outs.append(c.clamp(0, 1) @ v[..., blk, :])
    return sum(outs) / len(outs), torch.cat([c.flatten() for c in pre])


def attention_inputs(n, nq=37, nk=11, d=8, seed=0, peaked=True, dv=None):
    """q (2, 3, nq, d), k (2, 3, n*nk, d), v (2, 3, n*nk, dv or d); some rows very peaked."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 3, nq, d, generator=g)
    k = torch.randn(2, 3, n * nk, d, generator=g)
    v = torch.randn(2, 3, n * nk, dv or d, generator=g)
    if peaked:  # some rows so sharp that one key takes nearly all the mass
        q[:, :, ::4] *= 8.0
    return q, k, v
