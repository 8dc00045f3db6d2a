"""Stable Diffusion XL base 1.0 (`sdxl`, 1024 px) and its layout at toy width (`tiny-sdxl`).

SDXL's U-Net has three levels (no attention at the finest, 1024 px -> 128 latent side, so
self-attention at sides 64 and 32, with 2 and 10 transformer layers per block), two text
encoders and SDXL's "text_time" added conditioning. The empty-prompt conditioning follows
diffusers' StableDiffusionXLPipeline: prompt_embeds = the penultimate hidden states of
text_encoder (CLIP ViT-L) and text_encoder_2 (OpenCLIP ViT-bigG, with projection)
concatenated (768 + 1280 = 2048 wide); pooled = text_encoder_2's projected text embedding
(1280). The time ids are made per call from the sampled size (`DiffusionModel.unet_kwargs`).
VAE scaling factor 0.13025 comes from the folder's vae/config.json.
"""

from __future__ import annotations

import torch

from sdvicl_bench.sampler.backbones.base import Backbone, DiffusionModel, random_model
from sdvicl_bench.sampler.backbones.pretrained import (
    assemble,
    empty_prompt_ids,
    load_parts,
    sd_parts,
    source_of,
)

SDXL_DOWN_BLOCKS = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
SDXL_UP_BLOCKS = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
"""SDXL's U-Net block layout: attention at the two coarser levels, down and up."""

SDXL_VAE_SCALE = 0.13025


def sdxl_unet_config() -> dict:
    """SDXL base 1.0's U-Net config."""
    return dict(
        sample_size=128,
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        down_block_types=SDXL_DOWN_BLOCKS,
        up_block_types=SDXL_UP_BLOCKS,
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_embed_type_num_heads=64,
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=1280 + 6 * 256,
    )


TINY_POOLED_DIM = 16
TINY_TIME_DIM = 8


def tiny_sdxl_unet_config() -> dict:
    """SDXL's layout at toy width: 3 levels, attention at two, 1 and 2 transformer layers."""
    return dict(
        sample_size=8,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        down_block_types=SDXL_DOWN_BLOCKS,
        up_block_types=SDXL_UP_BLOCKS,
        transformer_layers_per_block=(1, 2, 2),
        attention_head_dim=(2, 4, 4),
        cross_attention_dim=48,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TINY_TIME_DIM,
        projection_class_embeddings_input_dim=TINY_POOLED_DIM + 6 * TINY_TIME_DIM,
        norm_num_groups=8,
    )


def tiny_sdxl_vae_config() -> dict:
    """A x8 VAE at toy width with SDXL's scaling factor."""
    return dict(
        block_out_channels=(16, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        scaling_factor=SDXL_VAE_SCALE,
    )


def sdxl_parts() -> dict:
    """SD's parts plus the second tokenizer and the projecting second text encoder."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    return {
        **sd_parts(),
        "tokenizer_2": CLIPTokenizer.from_pretrained,
        "text_encoder_2": CLIPTextModelWithProjection.from_pretrained,
    }


def load_sdxl(source: str, revision: str | None) -> DiffusionModel:
    """Load SDXL base from a hub id (at `revision`) or a local diffusers folder."""
    parts = load_parts("sdxl", source, revision, sdxl_parts())
    with torch.no_grad():
        first = parts["text_encoder"](
            empty_prompt_ids(parts["tokenizer"]), output_hidden_states=True
        )
        second = parts["text_encoder_2"](
            empty_prompt_ids(parts["tokenizer_2"]), output_hidden_states=True
        )
        embeds = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
        pooled = second.text_embeds
    return assemble("sdxl", source, revision, parts, embeds, pooled)


def build_tiny_sdxl(seed: int = 0) -> DiffusionModel:
    """Random SDXL-shaped stack (3 levels, attn1 at 2, text_time conditioning) for tests."""
    return random_model(
        "tiny-sdxl",
        tiny_sdxl_unet_config(),
        tiny_sdxl_vae_config(),
        seed,
        pooled_dim=TINY_POOLED_DIM,
    )


BACKBONES = (
    Backbone(
        name="sdxl",
        kind="hub",
        resolution=1024,
        load=lambda cfg: load_sdxl(*source_of(cfg)),
        unet_config=sdxl_unet_config,
        summary="Stable Diffusion XL base 1.0 (1024 px, two text encoders)",
    ),
    Backbone(
        name="tiny-sdxl",
        kind="random",
        resolution=64,
        load=lambda cfg: build_tiny_sdxl(cfg.seed),
        unet_config=tiny_sdxl_unet_config,
        summary="SDXL's layout at toy width, random weights (tests)",
    ),
)
