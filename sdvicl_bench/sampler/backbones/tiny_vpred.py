"""A v-prediction backbone (`tiny-vpred`): SD1.5's layout at toy width, random weights.

The same U-Net and VAE as `tiny` (sd15.py), read as v-prediction (v = sqrt(abar) eps -
sqrt(1 - abar) x0, as SD 2.1-768 predicts): its scheduler says `prediction_type=
"v_prediction"` and the sampler's step and inversion convert through (x0, eps)
(`inversion.split`). It exists to prove, in tests and on the CLI, that a backbone of another
prediction type runs the whole method through the `Denoiser` interface. Its numbers mean
nothing.
"""

from __future__ import annotations

from sdvicl_bench.sampler.backbones.base import Backbone, DiffusionModel, random_model
from sdvicl_bench.sampler.backbones.sd15 import tiny_unet_config, tiny_vae_config


def build_tiny_vpred(seed: int = 0) -> DiffusionModel:
    """Random SD-shaped stack (4 levels, attn1 at 3, x8 VAE) whose output is read as v."""
    return random_model(
        "tiny-vpred", tiny_unet_config(), tiny_vae_config(), seed, prediction_type="v_prediction"
    )


BACKBONES = (
    Backbone(
        name="tiny-vpred",
        kind="random",
        resolution=64,
        load=lambda cfg: build_tiny_vpred(cfg.seed),
        unet_config=tiny_unet_config,
        summary="SD1.5's layout at toy width read as v-prediction, random weights (tests)",
    ),
)
