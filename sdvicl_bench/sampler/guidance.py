"""Domain alignment of D: swap-guidance weights and AdaIN (METHOD.md 4).

Swap guidance (paper, gamma = 3.5): eps_D = eps_def + gamma * w(i) * (eps_mod - eps_def),
pushing D from what plain attention would draw toward what the modified one draws. The
sampler mixes the model's raw outputs: for a v or x0 model that is the same mix of eps, since
eps is affine in the output at D's shared x_t and the weights sum to one (`denoiser.py`).
AdaIN (Huang & Belongie 2017, as the paper uses it): after a step, each latent channel of D
gets the spatial mean and std of B at the same noise level.
"""

from __future__ import annotations

import torch

from sdvicl_bench.config import SwapGuidanceConfig


def swap_weight(i: int, num_steps: int, schedule: str) -> float:
    """w(i) for loop index i = 0..T-1.

    decay: (T - i) / T (1 at the first step, 1/T at the last) [choice: the swap dominates the
    structure-forming early steps]; ramp: (i + 1) / T; constant: 1.
    """
    if schedule == "decay":
        return (num_steps - i) / num_steps
    if schedule == "ramp":
        return (i + 1) / num_steps
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown swap schedule {schedule!r}")


def swap_guidance(
    eps_mod: torch.Tensor, eps_def: torch.Tensor, cfg: SwapGuidanceConfig, i: int, num_steps: int
) -> torch.Tensor:
    """eps_def + gamma w(i) (eps_mod - eps_def); any matching shapes."""
    scale = cfg.gamma * swap_weight(i, num_steps, cfg.schedule)
    return eps_def + scale * (eps_mod - eps_def)


def channel_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel spatial mean and std of x (..., C, h, w): s = sqrt(biased var + eps)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
    return mean, (var + eps).sqrt()


def adain(x: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Give x (E, C, h, w) the channel statistics of the references ref (E, n, C, h, w).

    With n references the target mean is the mean of their means, the target std the mean
    of their stds (METHOD.md 4).
    """
    mu_x, s_x = channel_stats(x, eps)
    mu_r, s_r = channel_stats(ref, eps)
    return (x - mu_x) / s_x * s_r.mean(dim=1) + mu_r.mean(dim=1)
