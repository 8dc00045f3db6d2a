"""The U-Net denoiser every backbone so far is (`DiffusionModel`) and how a backbone says
what it is (`Backbone`).

The sampler talks to a model only through `sampler.denoiser.Denoiser`. `DiffusionModel`
implements it for a diffusers `UNet2DConditionModel` + `AutoencoderKL` + the method's DDIM
scheduler, with the scheduler's prediction type (epsilon, v_prediction or sample): its U-Net
keyword arguments (`unet_kwargs`), VAE factor and layer sides stay in here. A backbone is a
`Backbone` record in one module (sd15.py, sd21.py, sdxl.py, toy.py, tiny_vpred.py): its
name, default resolution, how to build or load it, and its network's known config (for
listing its layers without weights). The DDIM schedule of METHOD.md 2 is built here from
each backbone's own beta schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from sdvicl_bench.config import ModelConfig
from sdvicl_bench.errors import ModelError
from sdvicl_bench.sampler.attention import layer_positions
from sdvicl_bench.sampler.denoiser import Denoiser
from sdvicl_bench.sampler.inversion import Schedule, make_schedule

SD15_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="leading",
    prediction_type="epsilon",
)
"""SD1.5's scheduler config as METHOD.md 2 states it. SD 2.1-base and SDXL train on the same
betas, so every backbone's default schedule is this one."""

BETA_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")
"""What a model folder's own scheduler config contributes: its training noise schedule. The
sampling settings (DDIM, leading spacing, steps_offset 1, no final alpha 1) are the method's."""

SD15_VAE_SCALE = 0.18215


def make_scheduler(
    folder_config: dict | None = None, prediction_type: str = "epsilon"
) -> DDIMScheduler:
    """The method's DDIM scheduler on a model's beta schedule.

    folder_config: the model folder's scheduler config (any scheduler class), or None for
    SD1.5's. Only its betas (`BETA_KEYS`) are taken; a folder whose model predicts anything
    but the backbone's `prediction_type` is refused by `check_prediction_type` before this.
    """
    config = dict(SD15_SCHEDULER, prediction_type=prediction_type)
    for key in BETA_KEYS:
        if folder_config and folder_config.get(key) is not None:
            config[key] = folder_config[key]
    return DDIMScheduler(**config)


def check_prediction_type(
    name: str, source: str, folder_config: dict | None, expected: str = "epsilon"
) -> None:
    """One-line ModelError unless the folder's scheduler predicts what backbone `name` reads
    its U-Net's output as (`expected`); a folder that says nothing predicts epsilon."""
    kind = (folder_config or {}).get("prediction_type", "epsilon")
    if kind == expected:
        return
    example = (
        ", e.g. stabilityai/stable-diffusion-2-1-base (512 px) instead of the 768-v "
        "stabilityai/stable-diffusion-2-1"
        if expected == "epsilon"
        else ""
    )
    raise ModelError(
        f"Cannot use '{source}' as model={name}: its scheduler config says "
        f"prediction_type={kind}, but model={name} reads its U-Net's output as {expected} "
        f"(METHOD.md 2). Fix: use a {expected} model{example}."
    )


@dataclass
class DiffusionModel(Denoiser):
    """A built or loaded U-Net model, ready for the sampler: the `Denoiser` of a diffusers
    U-Net, VAE and DDIM scheduler (its prediction type is the scheduler config's).

    prompt_embeds: (1, L, D) text embedding of "" (METHOD.md 2: one embedding shared by every
        stream), broadcast to every row of a U-Net call.
    pooled_embeds: (1, P) pooled text embedding of "" for U-Nets with SDXL's "text_time"
        added conditioning, else None. With it every call also gets SDXL's micro-conditioning
        time ids (H, W, 0, 0, H, W) of the picture size being sampled: original size = target
        size = the sampled size, no crop.
    """

    name: str
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: DDIMScheduler
    prompt_embeds: torch.Tensor
    device: torch.device
    dtype: torch.dtype
    source: str
    revision: str | None = None
    pooled_embeds: torch.Tensor | None = None

    @property
    def vae_scale(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", SD15_VAE_SCALE))

    @property
    def vae_factor(self) -> int:
        """Pixels per latent side: 2 per VAE down block after the first (8 in SD, 1 for toy)."""
        return vae_factor(self.vae.config)

    @property
    def default_resolution(self) -> int:
        """The picture side the U-Net was configured for: `sample_size` x the VAE factor."""
        return latent_side(self.unet.config) * self.vae_factor

    @property
    def layer_sides(self) -> dict[str, int]:
        """Every self-attention processor name -> its token grid side at the default resolution."""
        return {name: side for name, (_, side) in self.attention_layers().items()}

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pictures (B, 3, H, W) in [-1, 1] -> latents (B, c, H/f, W/f): posterior mean x scale."""
        images = images.to(self.device, self.dtype)
        return self.vae.encode(images).latent_dist.mean * self.vae_scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, c, h, w) -> pictures (B, 3, f h, f w) in [0, 1], float32."""
        out = self.vae.decode(latents.to(self.device, self.dtype) / self.vae_scale).sample
        return ((out.float() + 1) / 2).clamp(0, 1)

    def unet_kwargs(self, x: torch.Tensor) -> dict:
        """The conditioning keyword arguments of one U-Net call on latents x (R, c, h, w).

        encoder_hidden_states: (R, L, D); for SDXL-style U-Nets also added_cond_kwargs with
        text_embeds (R, P) and time_ids (R, 6) = (H, W, 0, 0, H, W), H x W = x's picture size.
        """
        rows = x.shape[0]
        kwargs: dict = {"encoder_hidden_states": self.prompt_embeds.expand(rows, -1, -1)}
        if self.pooled_embeds is not None:
            height, width = (s * self.vae_factor for s in x.shape[-2:])
            ids = torch.tensor(
                [height, width, 0, 0, height, width], device=self.device, dtype=self.dtype
            )
            kwargs["added_cond_kwargs"] = {
                "text_embeds": self.pooled_embeds.expand(rows, -1),
                "time_ids": ids.expand(rows, -1),
            }
        return kwargs

    def attn1_names(self) -> list[str]:
        """Processor names of every self-attention (attn1) layer, in U-Net order."""
        return [n for n in self.unet.attn_processors if n.endswith("attn1.processor")]

    # ------------------------------------------------------------------ Denoiser

    def predict(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """One U-Net call: x (R, c, h, w) float32 at timestep t -> output (R, c, h, w) float32.

        The conditioning (empty-prompt embedding, and for SDXL-style U-Nets the pooled
        embedding and size time ids) is `unet_kwargs`.
        """
        timestep = torch.tensor(t, device=self.device)
        return self.unet(x.to(self.dtype), timestep, **self.unet_kwargs(x)).sample.float()

    @property
    def network(self) -> torch.nn.Module:
        return self.unet

    def attention_layers(self) -> dict[str, tuple[str, int]]:
        """The U-Net's attn1 processors -> (block, side) (`attention.layer_positions`)."""
        return layer_positions(self.unet)

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    def schedule(self, steps: int, skip: int = 0) -> Schedule:
        """The method's DDIM steps on this model's scheduler (`inversion.make_schedule`)."""
        return make_schedule(self.scheduler, steps, skip)

    def place(
        self, device: torch.device, dtype: torch.dtype, *, channels_last: bool, compile: bool
    ) -> DiffusionModel:
        """U-Net, VAE and embeddings to `device` and `dtype`, eval mode, no gradients;
        channels_last: NHWC memory format; compile: `torch.compile(unet, dynamic=False)`."""
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.unet.to(device, dtype, memory_format=fmt).eval().requires_grad_(False)
        self.vae.to(device, dtype, memory_format=fmt).eval().requires_grad_(False)
        self.prompt_embeds = self.prompt_embeds.to(device, dtype)
        if self.pooled_embeds is not None:
            self.pooled_embeds = self.pooled_embeds.to(device, dtype)
        self.device, self.dtype = device, dtype
        if compile:
            self.unet = torch.compile(self.unet, dynamic=False)
        return self


def vae_factor(vae_config) -> int:
    """Pixels per latent side of an AutoencoderKL config: 2 ** (down blocks - 1)."""
    return 2 ** (len(vae_config.block_out_channels) - 1)


def latent_side(unet_config) -> int:
    """The U-Net's configured latent side (`sample_size`; its height when a pair)."""
    size = unet_config.sample_size
    return int(size if isinstance(size, int) else size[0])


@dataclass(frozen=True)
class Backbone:
    """One `model=` choice: what it is, how to get it, and its U-Net's known layout.

    kind: `hub` (weights from `hub_id`@`revision` or a local folder `model.path`), `toy`
        (weights shipped in the package, sha256-checked) or `random` (built in code from
        `model.seed`; its numbers mean nothing).
    resolution: default picture side (its YAML's `sampler.resolution`); the U-Net's
        `sample_size` x the VAE factor.
    load: `ModelConfig` -> DiffusionModel (or another `Denoiser`) on the CPU in float32
        (`load_model` places it).
    unet_config: the U-Net's config (real sizes), for listing its layers on the meta device.
    summary: one line for `sdvicl-bench ls` and docs/MODELS.md.
    meta_layers: the network's self-attention layers -> (block, side) without weights, for a
        backbone that is not a `UNet2DConditionModel`; None = `unet_config`'s U-Net built on
        the meta device.
    """

    name: str
    kind: Literal["hub", "toy", "random"]
    resolution: int
    load: Callable[[ModelConfig], Denoiser]
    unet_config: Callable[[], dict]
    summary: str
    meta_layers: Callable[[], dict[str, tuple[str, int]]] | None = None

    def layer_positions(self) -> dict[str, tuple[str, int]]:
        """The backbone's self-attention layers -> (block, side) at its default resolution,
        from its known config: no weights."""
        if self.meta_layers is not None:
            return self.meta_layers()
        with torch.device("meta"):
            return layer_positions(UNet2DConditionModel.from_config(self.unet_config()))


def random_model(
    name: str,
    unet_cfg: dict,
    vae_cfg: dict,
    seed: int,
    *,
    pooled_dim: int | None = None,
    prediction_type: str = "epsilon",
) -> DiffusionModel:
    """Random weights and conditioning from a private generator state (global RNG untouched).

    pooled_dim: width of a random pooled embedding (SDXL-style U-Nets), else none.
    prediction_type: what its scheduler reads the U-Net's output as.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        embeds = torch.randn(1, 77, unet_cfg["cross_attention_dim"])
        pooled = torch.randn(1, pooled_dim) if pooled_dim else None
    return DiffusionModel(
        name=name,
        unet=unet,
        vae=vae,
        scheduler=make_scheduler(prediction_type=prediction_type),
        prompt_embeds=embeds,
        pooled_embeds=pooled,
        device=torch.device("cpu"),
        dtype=torch.float32,
        source=f"random:{name}:seed{seed}",
    )
