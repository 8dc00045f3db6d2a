"""Backbones behind one interface: SD 2.1 and SDXL layouts through the same processors,
sampler and CLI as SD1.5; loading from local folders in the real diffusers layouts; layer
selectors by the side a layer actually sees; run keys that name a folder's weights."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from typer.testing import CliRunner

from sdvicl_bench import evaluate
from sdvicl_bench.cli import app, compose
from sdvicl_bench.config import AttentionConfig, ModelConfig, SamplerConfig
from sdvicl_bench.errors import ConfigError, ModelError
from sdvicl_bench.report.records import run_key
from sdvicl_bench.sampler.attention import (
    StreamLayout,
    VICLController,
    layer_positions,
    select_layers,
    vicl_processors,
)
from sdvicl_bench.sampler.backbones import BACKBONE_NAMES
from sdvicl_bench.sampler.backbones import registry as reg
from sdvicl_bench.sampler.backbones.registry import load_model, model_identity
from sdvicl_bench.sampler.backbones.sd15 import build_tiny
from sdvicl_bench.sampler.backbones.sd21 import build_tiny_sd21
from sdvicl_bench.sampler.backbones.sdxl import build_tiny_sdxl
from sdvicl_bench.sampler.backbones.toy import TOY_WEIGHTS, load_toy
from sdvicl_bench.sampler.pipeline import Sampler
from tests.helpers import SIZE, episode, rel


@pytest.fixture(scope="module")
def models():
    """The small backbones, built once per module: {name: DiffusionModel}."""
    return {
        "tiny": build_tiny(seed=0),
        "tiny-sd21": build_tiny_sd21(seed=0),
        "tiny-sdxl": build_tiny_sdxl(seed=0),
        "toy": load_toy(TOY_WEIGHTS),
    }


# ----------------------------------------------------------------------------- layer sides


def attn1(prefix: str, blocks: int = 1) -> list[str]:
    return [f"{prefix}.transformer_blocks.{k}.attn1.processor" for k in range(blocks)]


def sd_layout(fine: int) -> dict[str, int]:
    """SD1.5/2.1's attn1 layers (one per attention, one attention per block level down, two
    up at layers_per_block=1) with the latent side `fine` at the finest level."""
    sides = {}
    for i in range(3):
        sides.update(dict.fromkeys(attn1(f"down_blocks.{i}.attentions.0"), fine >> i))
    for j in (1, 2, 3):
        for a in (0, 1):
            sides.update(dict.fromkeys(attn1(f"up_blocks.{j}.attentions.{a}"), fine >> (3 - j)))
    sides.update(dict.fromkeys(attn1("mid_block.attentions.0"), fine >> 3))
    return sides


EXPECTED_SIDES = {
    "tiny": sd_layout(8),  # 64 px through a x8 VAE: 8, 4, 2, mid 1
    "tiny-sd21": sd_layout(8),
    "toy": sd_layout(32),  # 32 px in pixel space: 32, 16, 8, mid 4
    "tiny-sdxl": {  # 64 px -> 8x8 latents; no attention at 8, two transformer layers each
        **dict.fromkeys(attn1("down_blocks.1.attentions.0", 2), 4),
        **dict.fromkeys(attn1("down_blocks.2.attentions.0", 2), 2),
        **dict.fromkeys(
            attn1("up_blocks.0.attentions.0", 2) + attn1("up_blocks.0.attentions.1", 2), 2
        ),
        **dict.fromkeys(
            attn1("up_blocks.1.attentions.0", 2) + attn1("up_blocks.1.attentions.1", 2), 4
        ),
        **dict.fromkeys(attn1("mid_block.attentions.0", 2), 2),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SIDES))
def test_layer_sides_match_the_hand_written_list(models, name):
    assert models[name].layer_sides == EXPECTED_SIDES[name]
    assert models[name].default_resolution == reg.BACKBONES[name].resolution


class Recorder(AttnProcessor2_0):
    """Stock attention that writes down the token count each layer sees."""

    def __init__(self, seen: dict, name: str) -> None:
        super().__init__()
        self.seen, self.name = seen, name

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.seen[self.name] = hidden_states.shape[1]  # (B, N, C) inside a transformer block
        return super().__call__(attn, hidden_states, *args, **kwargs)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIDES))
@torch.no_grad()
def test_layer_sides_are_the_token_grids_a_forward_pass_sees(models, name):
    model = models[name]
    original = dict(model.unet.attn_processors)
    seen: dict[str, int] = {}
    model.unet.set_attn_processor({n: Recorder(seen, n) for n in original})
    try:
        side = model.default_resolution // model.vae_factor
        x = torch.randn(1, model.unet.config.in_channels, side, side)
        model.unet(x, torch.tensor(500), **model.unet_kwargs(x))
    finally:
        model.unet.set_attn_processor(original)
    tokens = {n: c for n, c in seen.items() if n.endswith("attn1.processor")}
    assert tokens == {n: s * s for n, s in model.layer_sides.items()}


FULL_SIZE_LAYERS = {  # attn1 layers per selector at the default resolution (meta device)
    "sd15": {
        "down.64": 2,
        "down.32": 2,
        "down.16": 2,
        "mid.8": 1,
        "up.16": 3,
        "up.32": 3,
        "up.64": 3,
    },
    "sd21": {
        "down.64": 2,
        "down.32": 2,
        "down.16": 2,
        "mid.8": 1,
        "up.16": 3,
        "up.32": 3,
        "up.64": 3,
    },
    "sdxl": {"down.64": 4, "down.32": 20, "mid.32": 10, "up.32": 30, "up.64": 6},
    "toy": {"down.32": 1, "down.16": 1, "down.8": 1, "mid.4": 1, "up.8": 2, "up.16": 2, "up.32": 2},
    "tiny-sdxl": {"down.4": 2, "down.2": 2, "mid.2": 2, "up.2": 4, "up.4": 4},
}


@pytest.mark.parametrize("name", sorted(FULL_SIZE_LAYERS))
def test_every_backbone_lists_its_layers_without_weights(name):
    backbone = reg.BACKBONES[name]
    assert reg.layer_counts(backbone) == FULL_SIZE_LAYERS[name]
    side = backbone.unet_config()["sample_size"]
    assert side * (1 if name == "toy" else 8) == backbone.resolution


def test_every_backbone_has_a_yaml_with_its_resolution():
    assert list(reg.BACKBONES) == list(BACKBONE_NAMES)
    for name, backbone in reg.BACKBONES.items():
        cfg = compose([f"model={name}"])
        assert cfg["model"]["name"] == name
        assert cfg["sampler"]["resolution"] == backbone.resolution, name


def test_layer_table_lists_every_backbone_with_its_layers():
    lines = {line.split()[0]: line for line in reg.layer_table()}
    assert list(lines) == list(BACKBONE_NAMES)
    assert "up.64 (6)" in lines["sdxl"] and "1024 px" in lines["sdxl"]
    assert "up.32 (2)" in lines["toy"] and " 32 px" in lines["toy"]


@pytest.mark.slow  # `ls` also estimates every experiment's GPU hours
def test_ls_lists_every_backbone_with_its_layers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["ls"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if "px " in line}
    assert set(BACKBONE_NAMES) <= set(lines)
    assert "up.64 (6)" in lines["sdxl"] and "1024 px" in lines["sdxl"]
    assert "up.32 (2)" in lines["toy"]


@pytest.mark.parametrize(
    "name,selector,count",
    [
        ("tiny", "up.finest", 2),  # up.8
        ("toy", "up.finest", 2),  # up.32
        ("tiny-sdxl", "up.finest", 4),  # up.4
        ("tiny-sdxl", "down.finest", 2),  # down.4
        ("tiny-sdxl", "finest", 6),  # every layer at side 4
        ("tiny-sdxl", "up.2", 4),
        ("toy", "32", 3),
    ],
)
def test_selectors_by_actual_side_and_finest(models, name, selector, count):
    assert len(select_layers(layer_positions(models[name].unet), [selector])) == count


def test_a_selector_that_matches_nothing_names_what_exists(models):
    with pytest.raises(ConfigError) as err:
        select_layers(layer_positions(models["tiny-sdxl"].unet), ["up.8"])
    msg = str(err.value)
    assert "\n" not in msg and "'up.8'" in msg
    assert "down.4 (2), down.2 (2), mid.2 (2), up.2 (4), up.4 (4)" in msg


# ----------------------------------------------------------------------------- processors


@pytest.mark.parametrize("name", ["tiny-sd21", "tiny-sdxl"])
@pytest.mark.parametrize("layers", [("all",), ("up.finest",)])
@torch.no_grad()
def test_only_dmod_rows_differ_from_stock_attention(models, name, layers):
    model = models[name]
    assert all(isinstance(p, AttnProcessor2_0) for p in model.unet.attn_processors.values())
    layout = StreamLayout(2, True)
    x = torch.randn(layout.size, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    t = torch.tensor(500)
    ref = model.unet(x, t, **model.unet_kwargs(x)).sample
    ctl = VICLController(AttentionConfig(layers=layers), layout)
    with vicl_processors(model.unet, ctl) as selected:
        out = model.unet(x, t, **model.unet_kwargs(x)).sample
    assert selected and set(ctl.modified_calls) == set(selected)
    for r in range(layout.size):
        if r == layout.d_mod:
            assert (out[r] - ref[r]).abs().max() > 1e-4
        else:
            torch.testing.assert_close(out[r], ref[r], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- sampler


def final_latents(sampler: Sampler, episodes) -> list[torch.Tensor]:
    return [r.latents for r in sampler.run(episodes, return_latents=True)]


@pytest.mark.parametrize("name", ["tiny-sd21", "tiny-sdxl"])
def test_fused_inversion_equals_separate_in_one_call_per_step(models, name):
    model, steps = models[name], 3
    eps = [episode(2, offset=0), episode(2, offset=20, seed=1)]
    fused = Sampler(model, SamplerConfig(steps=steps, resolution=SIZE))
    out = final_latents(fused, eps)
    assert fused.unet_calls == steps * len(eps)  # one U-Net call per step per batch
    one = Sampler(model, SamplerConfig(steps=steps, resolution=SIZE))
    one.run(eps[:1])
    assert one.unet_calls == steps
    separate = Sampler(model, SamplerConfig(steps=steps, resolution=SIZE, inversion="separate"))
    for a, b in zip(final_latents(separate, eps), out, strict=True):
        assert rel(a, b) < 1e-4
    assert separate.unet_calls == 2 * steps * len(eps)


def test_sdxl_time_ids_follow_the_sampled_size(models):
    model = models["tiny-sdxl"]
    for side in (8, 16):
        kw = model.unet_kwargs(torch.zeros(3, 4, side, side))
        size = side * 8
        assert kw["encoder_hidden_states"].shape == (3, 77, 48)
        assert kw["added_cond_kwargs"]["text_embeds"].shape == (3, 16)
        want = torch.tensor([[size, size, 0, 0, size, size]] * 3, dtype=torch.float32)
        assert torch.equal(kw["added_cond_kwargs"]["time_ids"], want)
    assert "added_cond_kwargs" not in models["tiny-sd21"].unet_kwargs(torch.zeros(1, 4, 8, 8))


# ----------------------------------------------------------------------------- local folders


def text_config(hidden: int, **kw):
    """A small CLIP text config over the toy tokenizer's vocabulary (2 layers: a penultimate)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=514,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        **kw,
    )


SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


def save_folder(folder, family: str, seed: int = 7, **scheduler):
    """A diffusers-layout SD 2.1 or SDXL folder made of tiny parts; returns the built model."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tiny = build_tiny_sdxl(seed) if family == "sdxl" else build_tiny_sd21(seed)
    tiny.unet.save_pretrained(folder / "unet")
    tiny.vae.save_pretrained(folder / "vae")
    shutil.copytree(TOY_WEIGHTS / "tokenizer", folder / "tokenizer")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({**SCHEDULER, **scheduler})
    )
    torch.manual_seed(seed)
    if family == "sdxl":  # 16 + 32 = the U-Net's 48 cross-attention channels; pooled 16
        CLIPTextModel(text_config(16)).save_pretrained(folder / "text_encoder")
        shutil.copytree(TOY_WEIGHTS / "tokenizer", folder / "tokenizer_2")
        CLIPTextModelWithProjection(text_config(32, projection_dim=16)).save_pretrained(
            folder / "text_encoder_2"
        )
        pipeline = "StableDiffusionXLPipeline"
    else:
        CLIPTextModel(text_config(48)).save_pretrained(folder / "text_encoder")
        pipeline = "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    return tiny


def test_sd21_loads_a_local_folder(tmp_path):
    tiny = save_folder(tmp_path, "sd21", beta_end=0.02)
    model = load_model(ModelConfig(name="sd21", path=str(tmp_path)))
    assert model.name == "sd21" and model.pooled_embeds is None
    assert torch.equal(model.unet.conv_in.weight, tiny.unet.conv_in.weight)
    assert model.prompt_embeds.shape == (1, 77, 48) and torch.isfinite(model.prompt_embeds).all()
    assert model.vae_scale == pytest.approx(0.18215)
    assert model.scheduler.config.beta_end == 0.02  # the folder's betas ...
    assert model.scheduler.config.timestep_spacing == "leading"  # ... the method's DDIM
    x = torch.zeros(2, 4, 8, 8)
    assert model.unet(x, torch.tensor(10), **model.unet_kwargs(x)).sample.shape == x.shape


def test_sdxl_loads_a_local_folder(tmp_path):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    save_folder(tmp_path, "sdxl")
    model = load_model(ModelConfig(name="sdxl", path=str(tmp_path)))
    assert model.name == "sdxl" and model.vae_scale == pytest.approx(0.13025)
    assert model.prompt_embeds.shape == (1, 77, 48) and model.pooled_embeds.shape == (1, 16)
    # prompt_embeds: both encoders' penultimate hidden states; pooled: encoder 2's projection
    tok = CLIPTokenizer.from_pretrained(tmp_path / "tokenizer")
    ids = tok([""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        one = CLIPTextModel.from_pretrained(tmp_path / "text_encoder")(
            ids, output_hidden_states=True
        )
        two = CLIPTextModelWithProjection.from_pretrained(tmp_path / "text_encoder_2")(
            ids, output_hidden_states=True
        )
    want = torch.cat([one.hidden_states[-2], two.hidden_states[-2]], dim=-1)
    torch.testing.assert_close(model.prompt_embeds, want)
    torch.testing.assert_close(model.pooled_embeds, two.text_embeds)
    x = torch.zeros(2, 4, 8, 8)
    kw = model.unet_kwargs(x)
    assert kw["added_cond_kwargs"]["time_ids"][0].tolist() == [64, 64, 0, 0, 64, 64]
    assert model.unet(x, torch.tensor(10), **kw).sample.shape == x.shape


def test_a_v_prediction_folder_is_refused_in_one_line(tmp_path):
    save_folder(tmp_path, "sd21", prediction_type="v_prediction")
    with pytest.raises(ModelError) as err:
        load_model(ModelConfig(name="sd21", path=str(tmp_path)))
    msg = str(err.value)
    assert "\n" not in msg and "v_prediction" in msg and "epsilon" in msg


def test_an_unknown_model_name_is_one_line_with_a_suggestion(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="Did you mean model=sdxl"):
        ModelConfig(name="sdxk")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate", "task=fgseg", "debug=smoke", "model.name=sd2"])
    assert result.exit_code == 2 and "Unknown model 'sd2'" in result.output


# ----------------------------------------------------------------------------- run keys


def test_folders_that_differ_only_in_weights_get_different_run_keys(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    save_folder(a, "sd21", seed=7)
    shutil.copytree(a, b)
    build_tiny_sd21(seed=8).unet.save_pretrained(b / "unet")  # same config, other values
    shutil.copytree(a, c)  # the same folder elsewhere
    for rel_path in ("unet/config.json", "model_index.json", "scheduler/scheduler_config.json"):
        assert (a / rel_path).read_bytes() == (b / rel_path).read_bytes()
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (a / weights).stat().st_size == (b / weights).stat().st_size

    def key(folder) -> str:
        cfg = SimpleNamespace(model=ModelConfig(name="sd21", path=str(folder)))
        return run_key({"model": evaluate.model_identity(cfg.model)})

    assert key(a) != key(b)
    assert key(a) == key(c)  # content, not the path, names the model
    hub = model_identity(ModelConfig(name="sd21", hub_id="org/m", revision="abc"))
    assert hub == {"name": "sd21", "source": "org/m", "revision": "abc"}
    assert model_identity(ModelConfig(name="tiny-sdxl", seed=3)) == {"name": "tiny-sdxl", "seed": 3}


def test_weights_are_hashed_once_per_file_version(tmp_path, monkeypatch):
    save_folder(tmp_path, "sd21")
    first = reg.folder_digest(tmp_path)
    calls = []
    monkeypatch.setattr(reg.hashlib, "sha256", lambda *a: calls.append(1) or _sha256(*a))
    assert reg.folder_digest(tmp_path) == first
    assert len(calls) == 1  # only the folder's total: every file came from the cache


def _sha256(*args):
    import hashlib

    return hashlib.new("sha256", *args)


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-sd21", "tiny-sdxl"])
def test_cli_run_end_to_end(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    args = ["run", "task=fgseg", "data=demo", f"model={name}", "limit=2", "sampler.steps=3"]
    result = CliRunner().invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / result.output.strip().splitlines()[-1]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["n"] == 2 and results["config"]["model"]["name"] == name


def test_validate_checks_layer_selectors_against_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["validate", "task=fgseg", "debug=smoke", "sampler.attention.layers=[up.64]"]
    result = CliRunner().invoke(app, args)  # tiny at 64 px has up.8, up.4, up.2
    assert result.exit_code == 2 and "selector 'up.64' matches no" in result.output
    assert "up.8 (2)" in result.output
    ok = CliRunner().invoke(app, [*args[:3], "model=sdxl", "sampler.attention.layers=[up.64]"])
    assert ok.exit_code == 0, ok.output


def test_only_random_and_toy_models_get_a_warning_note():
    from sdvicl_bench.evaluate import model_note

    assert [model_note(n) for n in ("sd15", "sd21", "sdxl")] == [None, None, None]
    assert "random weights" in model_note("tiny-sdxl") and "toy" in model_note("toy")
