"""Backbones: one module per model family behind one interface (docs/MODELS.md).

    names.py     the names `model.name` accepts (no torch import: config checks them)
    base.py      `DiffusionModel` (the `sampler.denoiser.Denoiser` of a diffusers U-Net, VAE
                 and DDIM scheduler), `Backbone` (how to get one), the DDIM schedule
    device.py    device/dtype resolution and `place_model`
    pretrained.py  `from_pretrained` loading of a hub id or local folder, one-line errors
    sd15.py  sd21.py  sdxl.py  toy.py  tiny_vpred.py   the backbones
    registry.py  name -> Backbone, `load_model`, `model_identity`, `layer_table`

This file imports only `names`, so `sdvicl_bench.config` can check a name cheaply.
"""

from sdvicl_bench.sampler.backbones.names import BACKBONE_NAMES, check_backbone_name

__all__ = ["BACKBONE_NAMES", "check_backbone_name"]
