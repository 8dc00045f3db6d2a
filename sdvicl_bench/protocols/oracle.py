"""The oracle: each task's ceiling, the ground truth sent through the path a prediction takes.

    GT picture (render_gt of the query's truth)
      -> the sampler's side, resized exactly as the sampler resizes a B picture
         (`pipeline.picture_tensor`, the task's `target_resample`)
      -> an 8-bit picture again, as the sampler returns D (`pipeline.tensor_picture`)
      -> `family.scored_picture`, `decode` and every metric, like the model's prediction
         (`TaskProtocol.score`; set-level metrics through the record fields, FID through
         `Context.oracle`)

It does not go through the VAE (no encode / decode round trip), so it measures what the
sampler's resolution and the decoder lose, not what the autoencoder loses. Read against it:
SD-VICL well below the oracle says the model is the limit; an oracle far below perfect says
the resolution or the decoder is. Recorded as the baseline `types.ORACLE` ("oracle"), last,
and shown as a ceiling (`types.ORACLE_LABEL`), never as a competitor (`types.competitors`).
"""

from __future__ import annotations

from PIL import Image

from sdvicl_bench.sampler.pipeline import picture_tensor, tensor_picture


def oracle_picture(gt_picture: Image.Image, resolution: int, resample: str) -> Image.Image:
    """The raw oracle picture: `gt_picture` at the sampler's side `resolution` (RGB, square),
    resized with `resample` (`pipeline.RESAMPLE`) as B pictures are, rounded back to 8 bits
    as the sampler's output is."""
    x = picture_tensor(gt_picture, resolution, resample=resample)
    return tensor_picture((x + 1) / 2)
