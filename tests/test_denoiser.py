"""The denoiser interface (sampler/denoiser.py): every prediction type's step against
diffusers' DDIMScheduler, inversion and the whole method with a v-prediction backbone
(`tiny-vpred`), and the epsilon path bit for bit the arithmetic it had before the interface."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDIMScheduler
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.config import (
    AdaINConfig,
    AttentionConfig,
    ModelConfig,
    SamplerConfig,
    SwapGuidanceConfig,
)
from sdvicl_bench.errors import ModelError
from sdvicl_bench.sampler.backbones.base import make_scheduler
from sdvicl_bench.sampler.backbones.registry import get_backbone, layer_counts, load_model
from sdvicl_bench.sampler.backbones.tiny_vpred import build_tiny_vpred
from sdvicl_bench.sampler.denoiser import Denoiser
from sdvicl_bench.sampler.guidance import swap_guidance
from sdvicl_bench.sampler.inversion import (
    PREDICTION_TYPES,
    ddim_step,
    invert,
    make_schedule,
    regenerate,
    sample_trajectory,
    split,
)
from sdvicl_bench.sampler.pipeline import Sampler, picture_tensor
from tests.helpers import SIZE, episode, picture, rel


@pytest.fixture(scope="module")
def vpred():
    """The tiny U-Net read as v-prediction (random weights), one per module."""
    return build_tiny_vpred(seed=0)


def cfg(**kw) -> SamplerConfig:
    return SamplerConfig(**{"steps": 3, "resolution": SIZE, **kw})


def predict_fn(model: Denoiser):
    """The model's prediction as an `inversion.EpsFn` (x, t, i) -> output."""
    return lambda x, t, i: model.predict(x, t)


# ---------------------------------------------------------------------- the step vs diffusers

# |ours - diffusers| / (1 + |diffusers|) over every step of 70 and of 10, measured: epsilon and
# v <= 5e-7 (x_prev) and 1.1e-6 (x0); sample <= 1.3e-5 (x_prev: eps = (x - sqrt(a) x0) /
# sqrt(1 - a) divides by 0.03 at the last step). Ours uses float64 alpha-bars, diffusers float32.
STEP_TOLERANCE = {"epsilon": 1e-5, "v_prediction": 1e-5, "sample": 1e-4}


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
@pytest.mark.parametrize("steps", [70, 10])
def test_step_equals_diffusers_ddim_eta1_for_each_prediction_type(kind, steps):
    sched = make_schedule(make_scheduler(prediction_type=kind), steps)
    assert sched.prediction_type == kind
    ref = DDIMScheduler.from_config(make_scheduler(prediction_type=kind).config)
    ref.set_timesteps(steps)
    tol = STEP_TOLERANCE[kind]
    g = torch.Generator().manual_seed(0)
    for i in [0, 1, steps // 2, steps - 1]:
        x, out, z = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
        want = ref.step(out, sched.timesteps[i], x, eta=1.0, variance_noise=z)
        x0, _ = split(out, x, sched, i)
        torch.testing.assert_close(x0, want.pred_original_sample, atol=tol, rtol=tol)
        mine = ddim_step(x, out, sched, i, z)  # the step `Denoiser.step` defaults to
        torch.testing.assert_close(mine, want.prev_sample, atol=tol, rtol=tol)


@torch.no_grad()
def test_the_v_backbone_steps_as_diffusers_does_through_its_interface(vpred):
    assert vpred.prediction_type == "v_prediction"
    sched = vpred.schedule(10)
    assert sched.prediction_type == "v_prediction"
    ref = DDIMScheduler.from_config(vpred.scheduler.config)  # a fresh one, its own formulas
    ref.set_timesteps(10)
    g = torch.Generator().manual_seed(1)
    tol = STEP_TOLERANCE["v_prediction"]
    for i in range(10):
        x, z = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
        v = vpred.predict(x, sched.timesteps[i])
        want = ref.step(v, sched.timesteps[i], x, eta=1.0, variance_noise=z).prev_sample
        torch.testing.assert_close(vpred.step(x, v, sched, i, z), want, atol=tol, rtol=tol)
        if i == 0:  # not vacuous: the same output read as epsilon steps elsewhere
            eps_sched = make_schedule(make_scheduler(), 10)
            assert rel(ddim_step(x, v, eps_sched, 0, z), want) > 1e-2


def test_the_true_velocity_splits_into_the_clean_sample_and_its_noise(vpred):
    ref = DDIMScheduler.from_config(vpred.scheduler.config)
    sched = vpred.schedule(10)
    g = torch.Generator().manual_seed(2)
    for i in (0, 5, 9):
        x0, noise = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
        t = torch.tensor([sched.timesteps[i]])
        x_t = ref.add_noise(x0, noise, t)
        v = ref.get_velocity(x0, noise, t)  # diffusers' own v
        got_x0, got_eps = vpred.split(v, x_t, sched, i)
        # float32 alpha-bars in diffusers vs float64 here: measured <= 1.6e-7 of (1 + |want|)
        torch.testing.assert_close(got_x0, x0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_eps, noise, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_swap_guidance_on_outputs_is_swap_guidance_on_eps_and_x0(kind):
    sched = make_schedule(make_scheduler(prediction_type=kind), 10)
    swap = SwapGuidanceConfig()  # gamma 3.5, decay
    g = torch.Generator().manual_seed(3)
    x, out_mod, out_def = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    for i in (0, 5, 9):
        guided = split(swap_guidance(out_mod, out_def, swap, i, 10), x, sched, i)
        mods, defs = split(out_mod, x, sched, i), split(out_def, x, sched, i)
        for got, a, b in zip(guided, mods, defs, strict=True):  # x0, then eps
            want = swap_guidance(a, b, swap, i, 10)
            # float32 rounding of two affine maps: measured <= 4.1e-6 of (1 + |want|)
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_an_unknown_prediction_type_is_refused():
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        make_schedule(make_scheduler(prediction_type="flow"), 10)


# ---------------------------------------------------------------------- inversion, whole method


@torch.no_grad()
@pytest.mark.parametrize("name", ["tiny", "tiny-vpred"])
def test_regenerating_with_every_z_reproduces_the_trajectory(name):
    model = load_model(ModelConfig(name=name))
    sched = model.schedule(10)
    x0 = model.encode(picture_tensor(picture(1), SIZE)[None]).float()
    noise = torch.randn(10, *x0.shape, generator=torch.Generator().manual_seed(1))
    xs = sample_trajectory(x0, noise, sched)
    zs = invert(predict_fn(model), xs, sched, model.noise_map)
    again = regenerate(predict_fn(model), xs[0], zs, sched, model.step)
    assert (again - xs).abs().max() < 1e-4  # the tolerance of test_sampler's epsilon case
    assert (again[-1] - x0).abs().max() < 1e-4


def test_all_modifications_off_reproduces_c_with_v_prediction(vpred):
    off = cfg(
        last_z_zero=False,
        attention=AttentionConfig(layers=("none",)),
        swap=SwapGuidanceConfig(enabled=False),
        adain=AdaINConfig(enabled=False),
    )
    ep = episode()
    d = Sampler(vpred, off).run([ep], return_latents=True)[0].latents
    c = vpred.encode(picture_tensor(ep.query, SIZE)[None])[0]
    assert (d - c).abs().max() < 1e-4


def test_fused_inversion_equals_separate_with_v_prediction(vpred):
    ep = episode(2)
    fused, separate = Sampler(vpred, cfg()), Sampler(vpred, cfg(inversion="separate"))
    a = fused.run([ep], return_latents=True)[0].latents
    b = separate.run([ep], return_latents=True)[0].latents
    assert rel(a, b) < 1e-4  # test_sampler's tolerance for the epsilon case
    assert fused.unet_calls == 3 and separate.unet_calls == 6
    # Not vacuous: the same network read as epsilon (tiny, same seed) draws another D.
    tiny = load_model(ModelConfig(name="tiny"))
    assert torch.equal(tiny.unet.conv_in.weight, vpred.unet.conv_in.weight)
    assert rel(Sampler(tiny, cfg()).run([ep], return_latents=True)[0].latents, a) > 1e-2


def test_tiny_vpred_is_registered_with_tinys_layers():
    backbone = get_backbone("tiny-vpred")
    assert backbone.kind == "random" and backbone.resolution == 64
    assert layer_counts(backbone) == layer_counts(get_backbone("tiny"))


def test_a_folder_of_another_prediction_type_names_both():
    from sdvicl_bench.sampler.backbones.base import check_prediction_type

    with pytest.raises(ModelError) as err:
        check_prediction_type("x", "f", {"prediction_type": "epsilon"}, "v_prediction")
    msg = str(err.value)
    assert "\n" not in msg and "prediction_type=epsilon" in msg and "v_prediction" in msg
    check_prediction_type("x", "f", {"prediction_type": "v_prediction"}, "v_prediction")


@pytest.mark.slow
def test_cli_runs_the_whole_method_with_the_v_backbone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "task=fgseg", "data=demo", "model=tiny-vpred", "limit=2", "sampler.steps=3"]
    result = CliRunner().invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / result.output.strip().splitlines()[-1]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["n"] == 2 and results["config"]["model"]["name"] == "tiny-vpred"
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and all(0 <= s["scores"]["iou"] <= 1 for s in samples)


# ---------------------------------------------------------------------- epsilon: unchanged


def old_ddim_step(x, eps, sched, i, z):
    """inversion.ddim_step as it was before the interface (git 5a24a70), for epsilon only."""
    a, ap, sigma = sched.abar[i], sched.abar_prev[i], sched.sigma(i)
    pred_x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
    mu = ap**0.5 * pred_x0 + max(1 - ap - sigma**2, 0.0) ** 0.5 * eps
    return mu if z is None or sigma == 0 else mu + sigma * z


def old_noise_map(x_next, x, eps, sched, i):
    """inversion.noise_map as it was before the interface."""
    sigma = sched.sigma(i)
    if sigma == 0:
        return torch.zeros_like(x)
    return (x_next - old_ddim_step(x, eps, sched, i, None)) / sigma


@torch.no_grad()
def test_the_epsilon_path_is_the_old_arithmetic_bit_for_bit(tiny):
    sched = tiny.schedule(10, 2)
    assert sched == make_schedule(make_scheduler(), 10, 2)
    assert sched.prediction_type == tiny.prediction_type == "epsilon"
    g = torch.Generator().manual_seed(4)
    x, x_next, z = (torch.randn(3, 4, 8, 8, generator=g) for _ in range(3))
    t = sched.timesteps[1]
    eps = tiny.predict(x, t)
    old = tiny.unet(x, torch.tensor(t), encoder_hidden_states=tiny.prompt_embeds.expand(3, -1, -1))
    assert torch.equal(eps, old.sample.float())
    for i in range(len(sched)):
        assert torch.equal(tiny.split(eps, x, sched, i)[1], eps)
        assert torch.equal(tiny.step(x, eps, sched, i, z), old_ddim_step(x, eps, sched, i, z))
        assert torch.equal(tiny.step(x, eps, sched, i, None), old_ddim_step(x, eps, sched, i, None))
        want = old_noise_map(x_next, x, eps, sched, i)
        assert torch.equal(tiny.noise_map(x_next, x, eps, sched, i), want)
