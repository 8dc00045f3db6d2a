"""Stable Diffusion v1.5 and the random stacks with its layout: `sd15`, `sd15-random`, `tiny`.

`sd15` loads a diffusers folder (hub id at a pinned revision, or `model.path`) through
`load_pretrained`; `sd15-random` is the full architecture with random weights (speed and
memory work); `tiny` is SD1.5's block layout at toy width (unit tests). Nothing here
downloads a tokenizer for the random ones: their `prompt_embeds` are made in code.
"""

from __future__ import annotations

from sdvicl_bench.sampler.backbones.base import (
    SD15_VAE_SCALE,
    Backbone,
    DiffusionModel,
    random_model,
)
from sdvicl_bench.sampler.backbones.pretrained import load_pretrained, source_of

SD15_DOWN_BLOCKS = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
SD15_UP_BLOCKS = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
"""SD1.5's U-Net block layout: attention at the three finer levels, down and up."""


def sd15_unet_config() -> dict:
    """SD1.5's U-Net config (diffusers' defaults are SD1.x; listed to be explicit)."""
    return dict(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=SD15_DOWN_BLOCKS,
        up_block_types=SD15_UP_BLOCKS,
        cross_attention_dim=768,
        attention_head_dim=8,
    )


def sd15_vae_config() -> dict:
    """SD1.5's VAE config (SD 2.1 uses the same)."""
    return dict(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
        scaling_factor=SD15_VAE_SCALE,
    )


def tiny_unet_config() -> dict:
    """SD1.5's block layout at toy width: self-attention at three resolutions, down and up."""
    return dict(
        sample_size=8,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        down_block_types=SD15_DOWN_BLOCKS,
        up_block_types=SD15_UP_BLOCKS,
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=8,
    )


def tiny_vae_config() -> dict:
    """A x8 VAE (three downsamplings) with 4 latent channels, at toy width."""
    return dict(
        block_out_channels=(16, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        scaling_factor=SD15_VAE_SCALE,
    )


def load_sd15(source: str, revision: str | None) -> DiffusionModel:
    """Load SD1.5 from a hub id (at `revision`) or a local diffusers folder."""
    return load_pretrained("sd15", source, revision)


def build_tiny(seed: int = 0) -> DiffusionModel:
    """The test model: random, small, SD-shaped (4 levels, attn1 at 3 resolutions, x8 VAE)."""
    return random_model("tiny", tiny_unet_config(), tiny_vae_config(), seed)


def build_sd15_random(seed: int = 0) -> DiffusionModel:
    """Full-size SD1.5 U-Net and VAE with random weights (no download; speed/memory only)."""
    return random_model("sd15-random", sd15_unet_config(), sd15_vae_config(), seed)


BACKBONES = (
    Backbone(
        name="sd15",
        kind="hub",
        resolution=512,
        load=lambda cfg: load_sd15(*source_of(cfg)),
        unet_config=sd15_unet_config,
        summary="Stable Diffusion v1.5 (the paper's model)",
    ),
    Backbone(
        name="sd15-random",
        kind="random",
        resolution=512,
        load=lambda cfg: build_sd15_random(cfg.seed),
        unet_config=sd15_unet_config,
        summary="SD1.5's architecture, random weights (speed and memory work)",
    ),
    Backbone(
        name="tiny",
        kind="random",
        resolution=64,
        load=lambda cfg: build_tiny(cfg.seed),
        unet_config=tiny_unet_config,
        summary="SD1.5's layout at toy width, random weights (tests)",
    ),
)
