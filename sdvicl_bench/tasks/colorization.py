"""Colorization (ImageNet-1k val): the colour image from its grey version.

An episode shows prompt pairs (grey image A, colour image B) and the grey query C; the model
paints D, the query in colour. The query picture is the grey image as 3 channels (PIL
``convert("L")``, ITU-R 601 luma, see ``data.imagenet.grey``); the ground truth is the colour
image itself. The prediction is resized bicubically to the image's own size (per channel, in
float, clipped to [0, 1]) and scored with ``metrics.mse.mse`` / ``mse_vp`` per image and FID
over the whole set (``metrics.fid``, read back from the saved pictures; its resize and scaling
as ``task.options.fid_preprocess`` says). Trivial baseline: the grey query itself as the
prediction.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from PIL import Image

from sdvicl_bench.tasks.pictures import as_rgb, size_of

OPTIONS: dict[str, Any] = {
    "source": Literal["folder", "hub"],
    "hub_name": str,
    "queries": int,
    "fid": bool,
    "fid_weights": str | None,
    "fid_preprocess": Literal["pytorch_fid", "clean"],  # metrics.fid.FID_PREPROCESS
}
"""`task.options` of colorization, with the type or choices of each."""


def render_gt(image: Image.Image | np.ndarray) -> Image.Image:
    """The ground-truth picture: the colour image itself, as PIL RGB (W, H) (a copy).

    ``image``: PIL (any mode) or float (H, W, 3) in [0, 1] (the truth, or a prediction)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    rgb = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), mode="RGB")


def query_picture(image: Image.Image) -> Image.Image:
    """The query picture: the grey image as 3 equal channels, PIL RGB (W, H) (PIL
    ``convert("L")``, ITU-R 601 luma, as ``data.imagenet.grey``)."""
    return image.convert("L").convert("RGB")


def decode(picture: Image.Image | np.ndarray, target: Any) -> np.ndarray:
    """Predicted picture -> float32 (H, W, 3) in [0, 1] at ``target``'s size (the truth
    colour image, or a size (W, H): ``pictures.size_of``).

    ``picture``: PIL image (any mode, converted to RGB) or uint8 array (h, w, 3). Values are
    divided by 255; if the size differs each channel is resized with BICUBIC as a float ('F')
    image and the result clipped to [0, 1] (bicubic overshoots at sharp edges).
    """
    rgb = as_rgb(picture)
    out = rgb.astype(np.float32) / np.float32(255.0)
    w, h = size_of(target)
    if out.shape[:2] == (h, w):
        return out
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(out[:, :, c]), mode="F").resize(
                (w, h), Image.Resampling.BICUBIC
            ),
            dtype=np.float32,
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)
