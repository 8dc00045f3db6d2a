"""The toy model's parts: a pixel-space SD-shaped stack small enough to train on two CPU cores.

Why pixel space at 32 x 32: boxes, keypoints and masks stay drawable, and a learned
autoencoder would cost training time and blur the masks the task decoders threshold. The
"VAE" is therefore an exact identity, but a real ``AutoencoderKL`` with hand-set weights
(``identity_vae``), so the sampler's encode/decode and the loader's ``from_pretrained`` run
unchanged. The U-Net has SD1.5's block layout at toy width (self-attention at 32, 16 and 8
px, i.e. SD's 64, 32 and 16 latent sides; a plain block at 4), the text encoder is a small
random CLIP whose "" embedding is the constant conditioning the U-Net is trained with, and
the tokenizer a byte-level CLIP tokenizer with no merges (it only ever encodes "").

Folder layout (diffusers' StableDiffusionPipeline, loaded like SD1.5's ``model.path``)::

    model_index.json  scheduler/  unet/  vae/  text_encoder/  tokenizer/
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from sdvicl_bench.sampler.backbones.sd15 import SD15_DOWN_BLOCKS, SD15_UP_BLOCKS

RESOLUTION = 32
"""Pixels per side: the toy model's images and latents."""

TEXT_DIM = 32
"""Width of the text embedding (the U-Net's cross-attention dimension)."""


def unet_config(layers_per_block: int = 1, width: int = 1) -> dict:
    """SD1.5's U-Net layout at toy width, on 3 pixel channels (1.5 M parameters with one
    layer per block; SD1.5 has two: 2.2 M). ``width`` multiplies every block's channels (the
    one attention head's width with them): 2 gives 5.8 M parameters with one layer."""
    return dict(
        sample_size=RESOLUTION,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(c * width for c in (16, 32, 64, 64)),
        layers_per_block=layers_per_block,
        down_block_types=SD15_DOWN_BLOCKS,
        up_block_types=SD15_UP_BLOCKS,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=1,  # diffusers' SD1.x naming: one head per attention layer
        norm_num_groups=8,
    )


def new_unet(seed: int, layers_per_block: int = 1, width: int = 1) -> UNet2DConditionModel:
    """A freshly initialised toy U-Net (private RNG state; the global one is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DConditionModel(**unet_config(layers_per_block, width))


# ----------------------------------------------------------------------------- identity VAE

_CHANNELS = 12  # 3 groups of [x, -x, +K, -K]
_K = 1000.0  # the constant channels: GroupNorm's variance ~ K^2 / 2, so x passes unscaled
_LIFT = 16.0  # SiLU(z) ~ z for z ~ 16: shift in, shift out (error ~ 16 e^-15 < 1e-5)


def identity_vae() -> AutoencoderKL:
    """An ``AutoencoderKL`` whose encoder mean and decoder are the identity (to ~1e-5).

    One block (no down/upsampling), latent = pixels (3 channels), ``scaling_factor`` 1. Every
    residual branch is zeroed (resnet and block outputs = inputs); the GroupNorm + SiLU before
    each ``conv_out`` is made transparent: each signal x travels as x and -x in a group with
    two constant channels +-K, so the group mean is 0 and its variance (|x|^2 + K^2) / 2 ~ K^2 / 2
    (relative error |x|^2 / K^2 <= 1e-6 for pixels in [-1, 1]); a gain of K / sqrt(2) undoes the
    division, a bias of 16 puts SiLU in its linear range, and ``conv_out`` takes
    (SiLU(16 + x) - SiLU(16 - x)) / 2 = x. Float32 only (K^2 overflows float16).
    """
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(_CHANNELS,),
        layers_per_block=1,
        latent_channels=3,
        norm_num_groups=3,
        sample_size=RESOLUTION,
        scaling_factor=1.0,
        mid_block_add_attention=False,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    with torch.no_grad():
        for p in vae.parameters():
            p.zero_()
        for module in vae.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.fill_(1.0)
        for coder, out_channels in ((vae.encoder, 6), (vae.decoder, 3)):
            _spread(coder.conv_in)
            coder.conv_norm_out.weight.fill_(_K / math.sqrt(2.0))
            coder.conv_norm_out.bias.fill_(_LIFT)
            w = coder.conv_out.weight  # (out_channels, 12, 3, 3); encoder: [mean | logvar = 0]
            for g in range(3):
                w[g, 4 * g, 1, 1] = 0.5
                w[g, 4 * g + 1, 1, 1] = -0.5
            assert w.shape[0] == out_channels
    return vae


def _spread(conv: torch.nn.Conv2d) -> None:
    """conv_in: signal g -> channels [x_g, -x_g, +K, -K] (centre tap and biases)."""
    for g in range(3):
        conv.weight[4 * g, g, 1, 1] = 1.0
        conv.weight[4 * g + 1, g, 1, 1] = -1.0
        conv.bias[4 * g + 2] = _K
        conv.bias[4 * g + 3] = -_K


# ----------------------------------------------------------------------------- text side


def new_text_encoder(seed: int) -> CLIPTextModel:
    """A small random CLIP text encoder (frozen: only its "" embedding is ever used)."""
    config = CLIPTextConfig(
        vocab_size=len(_byte_alphabet()) * 2 + 2,
        hidden_size=TEXT_DIM,
        intermediate_size=2 * TEXT_DIM,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=TEXT_DIM,
        bos_token_id=2 * len(_byte_alphabet()),
        eos_token_id=2 * len(_byte_alphabet()) + 1,
        pad_token_id=2 * len(_byte_alphabet()) + 1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPTextModel(config).eval()


def _byte_alphabet() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 bytes."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_tokenizer(folder: Path) -> None:
    """A byte-level CLIP tokenizer with no merges (every character its own token)."""
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = _byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    vocab_file, merges_file = folder / "_vocab.json", folder / "_merges.txt"
    vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)
    tokenizer.save_pretrained(folder)
    vocab_file.unlink()
    merges_file.unlink()


@torch.no_grad()
def empty_prompt_embedding(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel) -> torch.Tensor:
    """(1, 77, D): the text encoder's output for "" (as ``models.load_pretrained`` computes it)."""
    ids = tokenizer(
        [""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    return text_encoder(ids)[0]


# ----------------------------------------------------------------------------- the folder


def write_folder(
    folder: Path,
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    scheduler_config: dict,
) -> None:
    """Save a diffusers StableDiffusionPipeline folder (safetensors) for ``from_pretrained``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    identity_vae().save_pretrained(folder / "vae", safe_serialization=True)
    text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
    write_tokenizer(folder / "tokenizer")
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "DDIMScheduler", **scheduler_config}, indent=2) + "\n",
        encoding="utf-8",
    )
    index = {
        "_class_name": "StableDiffusionPipeline",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
