"""DDIM (eta = 1) step math and edit-friendly DDPM inversion (METHOD.md 2-3).

Edit-friendly inversion (Huberman-Spiegelglas et al., CVPR 2024): every noisy latent x_t of
an image is sampled independently from its clean latent x0, and the noise map z_t is what
makes the eta = 1 step from x_t land exactly on the next sampled latent. Regenerating with
all z_t reproduces every x_t and x0.

The step and the inversion work on a model's output through (x0, eps) (`split`), so they
hold for every prediction type the schedule names (`PREDICTION_TYPES`: epsilon, v or x0 as
diffusers' DDIMScheduler reads them); with epsilon the arithmetic is the plain eps one.

Everything is float32 on the latents' device; schedule constants are float64 scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
"""What a model's output is (diffusers' names): the noise eps, the velocity
v = sqrt(abar) eps - sqrt(1 - abar) x0, or the clean sample x0."""


@dataclass(frozen=True)
class Schedule:
    """The T steps actually run: t_1 > ... > t_T and their alpha-bars.

    abar[i] = alphas_cumprod[t_i]; abar_prev[i] = alphas_cumprod[t_i - 1000/steps], or
    alphas_cumprod[0] after the last step (SD1.5's `set_alpha_to_one=False`).
    prediction_type: what the model's output is (`PREDICTION_TYPES`), read by `split`.
    """

    timesteps: tuple[int, ...]
    abar: tuple[float, ...]
    abar_prev: tuple[float, ...]
    prediction_type: str = "epsilon"

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}"
            )

    def __len__(self) -> int:
        return len(self.timesteps)

    def sigma(self, i: int) -> float:
        """Std of the eta = 1 (DDPM) step i: sqrt((1-a')/(1-a) * (1 - a/a'))."""
        a, ap = self.abar[i], self.abar_prev[i]
        return ((1 - ap) / (1 - a) * (1 - a / ap)) ** 0.5


def make_schedule(scheduler: DDIMScheduler, steps: int, skip: int = 0) -> Schedule:
    """Schedule of `steps` DDIM steps (leading spacing), the first `skip` of them not run.

    The prediction type is the scheduler config's.
    """
    scheduler.set_timesteps(steps)
    ratio = scheduler.config.num_train_timesteps // steps
    acp = scheduler.alphas_cumprod.double()
    final = float(scheduler.final_alpha_cumprod)
    ts = [int(t) for t in scheduler.timesteps[skip:]]
    abar = tuple(float(acp[t]) for t in ts)
    abar_prev = tuple(float(acp[t - ratio]) if t - ratio >= 0 else final for t in ts)
    kind = scheduler.config.prediction_type
    return Schedule(tuple(ts), abar, abar_prev, kind)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, abar: float) -> torch.Tensor:
    """x_t = sqrt(abar) x0 + sqrt(1 - abar) noise (any shape)."""
    return abar**0.5 * x0 + (1 - abar) ** 0.5 * noise


def split(
    output: torch.Tensor, x: torch.Tensor, sched: Schedule, i: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) a model's output at x = x_t of step i stands for, as DDIMScheduler.step
    reads it for the schedule's prediction type.

    epsilon: eps = output, x0 = (x - sqrt(1 - a) eps) / sqrt(a);
    v_prediction: x0 = sqrt(a) x - sqrt(1 - a) v, eps = sqrt(a) v + sqrt(1 - a) x;
    sample: x0 = output, eps = (x - sqrt(a) x0) / sqrt(1 - a). a = abar[i].
    """
    a, kind = sched.abar[i], sched.prediction_type
    if kind == "epsilon":
        return (x - (1 - a) ** 0.5 * output) / a**0.5, output
    if kind == "v_prediction":
        return a**0.5 * x - (1 - a) ** 0.5 * output, a**0.5 * output + (1 - a) ** 0.5 * x
    return output, (x - a**0.5 * output) / (1 - a) ** 0.5


def step_mean(x: torch.Tensor, output: torch.Tensor, sched: Schedule, i: int) -> torch.Tensor:
    """mu_t of the eta = 1 DDIM step i from x_t and the model's output there
    (DDIMScheduler.step without the noise): sqrt(a') x0 + sqrt(1 - a' - sigma^2) eps."""
    ap, sigma = sched.abar_prev[i], sched.sigma(i)
    pred_x0, eps = split(output, x, sched, i)
    return ap**0.5 * pred_x0 + max(1 - ap - sigma**2, 0.0) ** 0.5 * eps


def ddim_step(
    x: torch.Tensor, output: torch.Tensor, sched: Schedule, i: int, z: torch.Tensor | None
) -> torch.Tensor:
    """x_{t_prev} = mu_t(x_t, output) + sigma_t z (z None or sigma 0: no noise)."""
    mu = step_mean(x, output, sched, i)
    sigma = sched.sigma(i)
    return mu if z is None or sigma == 0 else mu + sigma * z


def noise_map(
    x_next: torch.Tensor, x: torch.Tensor, output: torch.Tensor, sched: Schedule, i: int
) -> torch.Tensor:
    """z_t = (x_{t_prev} - mu_t(x_t, output)) / sigma_t; zeros where sigma is 0."""
    sigma = sched.sigma(i)
    if sigma == 0:
        return torch.zeros_like(x)
    return (x_next - step_mean(x, output, sched, i)) / sigma


EpsFn = Callable[[torch.Tensor, int, int], torch.Tensor]
"""The model's output at (x_t (B, 4, h, w), t, i) -> (B, 4, h, w): eps_theta for epsilon
prediction, else what the schedule's prediction type names."""
NoiseMapFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Schedule, int], torch.Tensor]
StepFn = Callable[[torch.Tensor, torch.Tensor, Schedule, int, torch.Tensor | None], torch.Tensor]


def sample_trajectory(x0: torch.Tensor, noises: torch.Tensor, sched: Schedule) -> torch.Tensor:
    """Independently sampled latents x_{t_1..t_T} of clean x0 (B, 4, h, w).

    noises: (T, B, 4, h, w). Returns (T + 1, B, 4, h, w), the last entry x0 itself.
    """
    xs = [add_noise(x0, noises[i], sched.abar[i]) for i in range(len(sched))]
    return torch.stack([*xs, x0])


def invert(
    eps_fn: EpsFn, xs: torch.Tensor, sched: Schedule, map_fn: NoiseMapFn = noise_map
) -> torch.Tensor:
    """Edit-friendly noise maps z_1..z_T of a sampled trajectory xs (T + 1, B, 4, h, w).

    One model call per step (the reference path; the sampler's fused path computes the same
    z from the joint pass). map_fn: the inversion step (a denoiser's `noise_map`).
    Returns (T, B, 4, h, w).
    """
    zs = []
    for i, t in enumerate(sched.timesteps):
        out = eps_fn(xs[i], t, i).float()
        zs.append(map_fn(xs[i + 1], xs[i], out, sched, i))
    return torch.stack(zs)


def regenerate(
    eps_fn: EpsFn,
    x_start: torch.Tensor,
    zs: torch.Tensor,
    sched: Schedule,
    step_fn: StepFn = ddim_step,
) -> torch.Tensor:
    """Run the eta = 1 sampler from x_{t_1} with noise maps zs; returns all T + 1 latents.

    step_fn: the scheduler step (a denoiser's `step`)."""
    xs = [x_start]
    for i, t in enumerate(sched.timesteps):
        out = eps_fn(xs[-1], t, i).float()
        xs.append(step_fn(xs[-1], out, sched, i, zs[i]))
    return torch.stack(xs)
