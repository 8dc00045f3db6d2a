"""The models, by their old address: everything now lives in `sdvicl_bench.sampler.backbones`.

One module per backbone family there (sd15, sd21, sdxl, toy) behind one interface
(`backbones.base.Backbone`, `DiffusionModel`); this module re-exports the names the rest of
the code and the scripts import from here, so `from sdvicl_bench.sampler.models import X`
keeps working.
"""

from __future__ import annotations

from sdvicl_bench.sampler.backbones.base import (
    SD15_SCHEDULER,
    SD15_VAE_SCALE,
    Backbone,
    DiffusionModel,
    make_scheduler,
)
from sdvicl_bench.sampler.backbones.device import (
    device_choices,
    place_model,
    resolve_device,
    resolve_dtype,
)
from sdvicl_bench.sampler.backbones.pretrained import (
    FOLDER_FIX,
    HUB_TIMEOUT_S,
    hub_reachable,
    load_parts,
    load_pretrained,
    missing_folder_error,
)
from sdvicl_bench.sampler.backbones.registry import (
    BACKBONES,
    get_backbone,
    load_model,
    model_identity,
)
from sdvicl_bench.sampler.backbones.sd15 import (
    SD15_DOWN_BLOCKS,
    SD15_UP_BLOCKS,
    build_sd15_random,
    build_tiny,
    load_sd15,
    sd15_unet_config,
    sd15_vae_config,
    tiny_unet_config,
    tiny_vae_config,
)
from sdvicl_bench.sampler.backbones.sd21 import build_tiny_sd21, load_sd21
from sdvicl_bench.sampler.backbones.sdxl import build_tiny_sdxl, load_sdxl
from sdvicl_bench.sampler.backbones.toy import TOY_RECORD, TOY_WEIGHTS, check_weights, load_toy

__all__ = [
    "BACKBONES",
    "FOLDER_FIX",
    "HUB_TIMEOUT_S",
    "SD15_DOWN_BLOCKS",
    "SD15_SCHEDULER",
    "SD15_UP_BLOCKS",
    "SD15_VAE_SCALE",
    "TOY_RECORD",
    "TOY_WEIGHTS",
    "Backbone",
    "DiffusionModel",
    "build_sd15_random",
    "build_tiny",
    "build_tiny_sd21",
    "build_tiny_sdxl",
    "check_weights",
    "device_choices",
    "get_backbone",
    "hub_reachable",
    "load_model",
    "load_parts",
    "load_pretrained",
    "load_sd15",
    "load_sd21",
    "load_sdxl",
    "load_toy",
    "make_scheduler",
    "missing_folder_error",
    "model_identity",
    "place_model",
    "resolve_device",
    "resolve_dtype",
    "sd15_unet_config",
    "sd15_vae_config",
    "tiny_unet_config",
    "tiny_vae_config",
]
