"""Model loading: the tiny stack, sd15 from a local folder (same path as a hub id), errors."""

from __future__ import annotations

import json

import pytest
import torch

from sdvicl_bench.config import ModelConfig
from sdvicl_bench.errors import ModelError
from sdvicl_bench.sampler.backbones.base import make_scheduler
from sdvicl_bench.sampler.backbones.registry import load_model
from sdvicl_bench.sampler.backbones.sd15 import build_tiny


def test_tiny_is_sd_shaped_and_seeded():
    model = load_model(ModelConfig(name="tiny"))
    sides = set(model.layer_sides.values())
    assert {8, 4, 2} <= sides  # self-attention at three resolutions of its 8x8 latents
    latents = model.encode(torch.zeros(2, 3, 64, 64))
    assert latents.shape == (2, 4, 8, 8)  # x8 VAE
    assert model.decode(latents).shape == (2, 3, 64, 64)
    assert model.prompt_embeds.shape == (1, 77, model.unet.config.cross_attention_dim)
    again, other = build_tiny(seed=0), build_tiny(seed=1)
    w = model.unet.conv_in.weight
    assert torch.equal(w, again.unet.conv_in.weight) and not torch.equal(
        w, other.unet.conv_in.weight
    )


def test_scheduler_is_sd15_ddim():
    s = make_scheduler()
    s.set_timesteps(70)
    assert int(s.timesteps[0]) == 967 and int(s.timesteps[-1]) == 1 and len(s.timesteps) == 70
    assert abs(float(s.final_alpha_cumprod) - 0.99915) < 1e-5


def save_tiny_pipeline(folder):
    """A diffusers-layout SD folder made of tiny parts, tokenizer files written by hand."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tiny = build_tiny(seed=7)
    tiny.unet.save_pretrained(folder / "unet")
    tiny.vae.save_pretrained(folder / "vae")
    tok_dir = folder / "tokenizer"
    tok_dir.mkdir(parents=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "a": 3}
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(
        str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77
    ).save_pretrained(tok_dir)
    torch.manual_seed(0)
    text_cfg = CLIPTextConfig(
        vocab_size=4,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    CLIPTextModel(text_cfg).save_pretrained(folder / "text_encoder")
    return tiny


def test_sd15_loads_a_local_folder(tmp_path):
    tiny = save_tiny_pipeline(tmp_path)
    model = load_model(ModelConfig(name="sd15", path=str(tmp_path)))
    assert model.name == "sd15" and model.dtype == torch.float32
    assert torch.equal(model.unet.conv_in.weight, tiny.unet.conv_in.weight)
    assert model.prompt_embeds.shape == (1, 77, 32)
    assert torch.isfinite(model.prompt_embeds).all()


def test_unreachable_hub_id_is_one_line(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast, no retries
    with pytest.raises(ModelError) as err:
        load_model(
            ModelConfig(name="sd15", hub_id="no-such-org/no-such-model-xyz", revision="main")
        )
    msg = str(err.value)
    assert "\n" not in msg and "no-such-org/no-such-model-xyz" in msg and "model.path" in msg
