"""DDIM (eta = 1) step math and edit-friendly DDPM inversion (METHOD.md 2-3).

Edit-friendly inversion (Huberman-Spiegelglas et al., CVPR 2024): every noisy latent x_t of
an image is sampled independently from its clean latent x0, and the noise map z_t is what
makes the eta = 1 step from x_t land exactly on the next sampled latent. Regenerating with
all z_t reproduces every x_t and x0.

Everything is float32 on the latents' device; schedule constants are float64 scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler


@dataclass(frozen=True)
class Schedule:
    """The T steps actually run: t_1 > ... > t_T and their alpha-bars.

    abar[i] = alphas_cumprod[t_i]; abar_prev[i] = alphas_cumprod[t_i - 1000/steps], or
    alphas_cumprod[0] after the last step (SD1.5's `set_alpha_to_one=False`).
    """

    timesteps: tuple[int, ...]
    abar: tuple[float, ...]
    abar_prev: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.timesteps)

    def sigma(self, i: int) -> float:
        """Std of the eta = 1 (DDPM) step i: sqrt((1-a')/(1-a) * (1 - a/a'))."""
        a, ap = self.abar[i], self.abar_prev[i]
        return ((1 - ap) / (1 - a) * (1 - a / ap)) ** 0.5


def make_schedule(scheduler: DDIMScheduler, steps: int, skip: int = 0) -> Schedule:
    """Schedule of `steps` DDIM steps (leading spacing), the first `skip` of them not run."""
    scheduler.set_timesteps(steps)
    ratio = scheduler.config.num_train_timesteps // steps
    acp = scheduler.alphas_cumprod.double()
    final = float(scheduler.final_alpha_cumprod)
    ts = [int(t) for t in scheduler.timesteps[skip:]]
    abar = tuple(float(acp[t]) for t in ts)
    abar_prev = tuple(float(acp[t - ratio]) if t - ratio >= 0 else final for t in ts)
    return Schedule(tuple(ts), abar, abar_prev)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, abar: float) -> torch.Tensor:
    """x_t = sqrt(abar) x0 + sqrt(1 - abar) noise (any shape)."""
    return abar**0.5 * x0 + (1 - abar) ** 0.5 * noise


def step_mean(x: torch.Tensor, eps: torch.Tensor, sched: Schedule, i: int) -> torch.Tensor:
    """mu_t(x_t, eps) of the eta = 1 DDIM step i (DDIMScheduler.step without the noise)."""
    a, ap, sigma = sched.abar[i], sched.abar_prev[i], sched.sigma(i)
    pred_x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
    return ap**0.5 * pred_x0 + max(1 - ap - sigma**2, 0.0) ** 0.5 * eps


def ddim_step(
    x: torch.Tensor, eps: torch.Tensor, sched: Schedule, i: int, z: torch.Tensor | None
) -> torch.Tensor:
    """x_{t_prev} = mu_t(x_t, eps) + sigma_t z (z None or sigma 0: no noise)."""
    mu = step_mean(x, eps, sched, i)
    sigma = sched.sigma(i)
    return mu if z is None or sigma == 0 else mu + sigma * z


def noise_map(
    x_next: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, sched: Schedule, i: int
) -> torch.Tensor:
    """z_t = (x_{t_prev} - mu_t(x_t, eps)) / sigma_t; zeros where sigma is 0."""
    sigma = sched.sigma(i)
    if sigma == 0:
        return torch.zeros_like(x)
    return (x_next - step_mean(x, eps, sched, i)) / sigma


EpsFn = Callable[[torch.Tensor, int, int], torch.Tensor]
"""eps_theta(x_t (B, 4, h, w), t, i) -> (B, 4, h, w)."""


def sample_trajectory(x0: torch.Tensor, noises: torch.Tensor, sched: Schedule) -> torch.Tensor:
    """Independently sampled latents x_{t_1..t_T} of clean x0 (B, 4, h, w).

    noises: (T, B, 4, h, w). Returns (T + 1, B, 4, h, w), the last entry x0 itself.
    """
    xs = [add_noise(x0, noises[i], sched.abar[i]) for i in range(len(sched))]
    return torch.stack([*xs, x0])


def invert(eps_fn: EpsFn, xs: torch.Tensor, sched: Schedule) -> torch.Tensor:
    """Edit-friendly noise maps z_1..z_T of a sampled trajectory xs (T + 1, B, 4, h, w).

    One eps call per step (the reference path; the sampler's fused path computes the same
    z from the joint pass). Returns (T, B, 4, h, w).
    """
    zs = []
    for i, t in enumerate(sched.timesteps):
        eps = eps_fn(xs[i], t, i).float()
        zs.append(noise_map(xs[i + 1], xs[i], eps, sched, i))
    return torch.stack(zs)


def regenerate(eps_fn: EpsFn, x_start: torch.Tensor, zs: torch.Tensor, sched: Schedule):
    """Run the eta = 1 sampler from x_{t_1} with noise maps zs; returns all T + 1 latents."""
    xs = [x_start]
    for i, t in enumerate(sched.timesteps):
        eps = eps_fn(xs[-1], t, i).float()
        xs.append(ddim_step(xs[-1], eps, sched, i, zs[i]))
    return torch.stack(xs)
