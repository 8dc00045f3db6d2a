"""Stable Diffusion 2.1-base (`sd21`, 512 px, epsilon) and its layout at toy width (`tiny-sd21`).

SD 2.1 differs from SD1.5 in the text encoder (OpenCLIP ViT-H, 1024 wide, already cut at its
penultimate layer, so the pipeline's last hidden state is the conditioning as for SD1.5),
linear projections in its transformers and a head count per level (5, 10, 20, 20 heads of
64 channels) instead of 8 heads everywhere. Loading is SD1.5's `load_pretrained`. The 768-v
model (stabilityai/stable-diffusion-2-1) predicts v and is refused at load time.
"""

from __future__ import annotations

from sdvicl_bench.sampler.backbones.base import Backbone, DiffusionModel, random_model
from sdvicl_bench.sampler.backbones.pretrained import load_pretrained, source_of
from sdvicl_bench.sampler.backbones.sd15 import (
    SD15_DOWN_BLOCKS,
    SD15_UP_BLOCKS,
    tiny_vae_config,
)


def sd21_unet_config() -> dict:
    """SD 2.1-base's U-Net config (diffusers' naming: `attention_head_dim` = heads per level)."""
    return dict(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=SD15_DOWN_BLOCKS,
        up_block_types=SD15_UP_BLOCKS,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    )


def tiny_sd21_unet_config() -> dict:
    """SD 2.1's layout at toy width: linear projections, more heads at coarser levels."""
    return dict(
        sample_size=8,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        down_block_types=SD15_DOWN_BLOCKS,
        up_block_types=SD15_UP_BLOCKS,
        cross_attention_dim=48,
        attention_head_dim=(2, 4, 8, 8),
        use_linear_projection=True,
        norm_num_groups=8,
    )


def load_sd21(source: str, revision: str | None) -> DiffusionModel:
    """Load SD 2.1-base from a hub id (at `revision`) or a local diffusers folder."""
    return load_pretrained("sd21", source, revision)


def build_tiny_sd21(seed: int = 0) -> DiffusionModel:
    """Random SD2.1-shaped stack (4 levels, attn1 at 3, x8 VAE) for tests."""
    return random_model("tiny-sd21", tiny_sd21_unet_config(), tiny_vae_config(), seed)


BACKBONES = (
    Backbone(
        name="sd21",
        kind="hub",
        resolution=512,
        load=lambda cfg: load_sd21(*source_of(cfg)),
        unet_config=sd21_unet_config,
        summary="Stable Diffusion 2.1-base (512 px, epsilon prediction)",
    ),
    Backbone(
        name="tiny-sd21",
        kind="random",
        resolution=64,
        load=lambda cfg: build_tiny_sd21(cfg.seed),
        unet_config=tiny_sd21_unet_config,
        summary="SD 2.1's layout at toy width, random weights (tests)",
    ),
)
