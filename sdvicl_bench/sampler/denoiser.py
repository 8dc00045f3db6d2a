"""The one interface the sampler talks to a model through: `Denoiser`.

The SD-VICL loop (pipeline.py, naive.py) and the loader need these from a model, nothing else:

    encode / decode        pictures <-> the latents it denoises (a VAE, or the identity)
    place                  move it to a device and dtype (the loader's call, `load_model`)
    schedule(steps, skip)  the T steps run, their alpha-bars and the prediction type
    predict(x, t)          one call of the network on latents x at timestep t, with the
                           model's own empty-prompt conditioning -> its raw output
    split / step / noise_map
                           what that output means: (x0, eps), the scheduler step from x_t to
                           x_{t_prev}, and the inversion step (the noise map that makes the
                           step land on a given x_{t_prev}); by default the DDIM eta = 1 math
                           of inversion.py for the schedule's prediction type (epsilon,
                           v_prediction, sample)
    network, attention_layers()
                           the module whose self-attention processors the sampler swaps
                           (diffusers' `attn_processors` / `set_attn_processor`) and its
                           self-attention layers -> (block, side), which the layer selectors
                           (`up`, `up.32`, `up.finest`) resolve against

A U-Net with a DDIM-style scheduler of any of the three prediction types is
`backbones.base.DiffusionModel`; a backbone of another architecture (a transformer) or
sampler family implements this class (docs/ARCHITECTURE.md, "adding a backbone"). Swap
guidance mixes two outputs of D at the same x_t with weights that sum to one, which is the
same mix of their eps (and x0) for every prediction type, so it runs on raw outputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from sdvicl_bench.sampler.inversion import Schedule, ddim_step, noise_map, split


class Denoiser(ABC):
    """A diffusion model as the sampler sees it (see the module docstring).

    Attributes every implementation has: `name` (its `model=` name), `device`, `dtype`.
    """

    name: str
    device: torch.device
    dtype: torch.dtype

    # ------------------------------------------------------------------ latents

    @abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pictures (B, 3, H, W) in [-1, 1] -> clean latents (B, c, h, w)."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, c, h, w) -> pictures (B, 3, H, W) in [0, 1], float32."""

    # ------------------------------------------------------------------ the network

    @abstractmethod
    def predict(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """One network call: latents x (R, c, h, w) float32 at timestep t -> the model's
        output (R, c, h, w) float32, with its own conditioning (the empty prompt)."""

    @property
    @abstractmethod
    def network(self) -> torch.nn.Module:
        """The module whose attention processors the sampler installs and restores."""

    @abstractmethod
    def attention_layers(self) -> dict[str, tuple[str, int]]:
        """Every self-attention processor name of `network` -> (block, token grid side at
        the default resolution), in network order; block is `down`, `mid` or `up`."""

    @abstractmethod
    def place(
        self, device: torch.device, dtype: torch.dtype, *, channels_last: bool, compile: bool
    ) -> Denoiser:
        """Move every part to `device` and `dtype` in eval mode (set `device`, `dtype`);
        channels_last: NHWC convolutions; compile: torch.compile the network. Returns self."""

    @property
    def compiled(self) -> bool:
        """Whether `network` is torch.compile'd (then the processors keep no counters)."""
        return hasattr(self.network, "_orig_mod")

    # ------------------------------------------------------------------ the schedule

    @abstractmethod
    def schedule(self, steps: int, skip: int = 0) -> Schedule:
        """The `steps`-step schedule with its first `skip` steps left out."""

    @property
    @abstractmethod
    def prediction_type(self) -> str:
        """What `predict` returns: `epsilon`, `v_prediction` or `sample` (x0)."""

    def split(
        self, output: torch.Tensor, x: torch.Tensor, sched: Schedule, i: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) that an output of `predict` at x = x_t of step i stands for."""
        return split(output, x, sched, i)

    def step(
        self,
        x: torch.Tensor,
        output: torch.Tensor,
        sched: Schedule,
        i: int,
        z: torch.Tensor | None,
    ) -> torch.Tensor:
        """The scheduler step i: x_t and the output there -> x_{t_prev}, with noise z (None:
        none)."""
        return ddim_step(x, output, sched, i, z)

    def noise_map(
        self, x_next: torch.Tensor, x: torch.Tensor, output: torch.Tensor, sched: Schedule, i: int
    ) -> torch.Tensor:
        """The inversion step i: the z with which `step` from x lands on x_next."""
        return noise_map(x_next, x, output, sched, i)
