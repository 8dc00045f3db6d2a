"""The sampler: DDIM step vs diffusers, inversion round trip, fused vs separate, batching,
invariances, and that every switch does what it says (METHOD.md 2-4)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sdvicl_bench.config import AdaINConfig, AttentionConfig, SamplerConfig, SwapGuidanceConfig
from sdvicl_bench.sampler.backbones.base import make_scheduler
from sdvicl_bench.sampler.guidance import adain, swap_weight
from sdvicl_bench.sampler.inversion import (
    ddim_step,
    invert,
    make_schedule,
    regenerate,
    sample_trajectory,
)
from sdvicl_bench.sampler.pipeline import Episode, Sampler, picture_tensor
from tests.helpers import SIZE, episode, picture, rel


def cfg(**kw) -> SamplerConfig:
    base = dict(steps=3, resolution=SIZE)
    base.update(kw)
    return SamplerConfig(**base)


def final_latents(model, config, episodes):
    return [r.latents for r in Sampler(model, config).run(episodes, return_latents=True)]


# ---------------------------------------------------------------------- step and inversion


@pytest.mark.parametrize("steps", [70, 10])
def test_one_step_equals_diffusers_ddim_eta1(steps):
    sched = make_schedule(make_scheduler(), steps)
    ref = make_scheduler()
    ref.set_timesteps(steps)
    g = torch.Generator().manual_seed(0)
    for i in [0, 1, steps // 2, steps - 1]:
        x, eps, z = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
        t = sched.timesteps[i]
        want = ref.step(eps, t, x, eta=1.0, variance_noise=z).prev_sample
        torch.testing.assert_close(ddim_step(x, eps, sched, i, z), want, atol=1e-5, rtol=1e-5)
    assert sched.timesteps[-1] == 1 and abs(sched.abar_prev[-1] - 0.99915) < 1e-5
    assert 0.01 < sched.sigma(steps - 1) < 0.03  # the last step still has noise (METHOD.md 2)


@torch.no_grad()
def test_regenerating_with_every_z_reproduces_the_trajectory(tiny):
    sched = make_schedule(tiny.scheduler, 10)
    x0 = tiny.encode(picture_tensor(picture(1), SIZE)[None]).float()
    noise = torch.randn(10, *x0.shape, generator=torch.Generator().manual_seed(1))
    xs = sample_trajectory(x0, noise, sched)

    def eps_fn(x, t, i):
        e = tiny.prompt_embeds.expand(len(x), -1, -1)
        return tiny.unet(x, torch.tensor(t), encoder_hidden_states=e).sample

    zs = invert(eps_fn, xs, sched)
    again = regenerate(eps_fn, xs[0], zs, sched)
    assert (again - xs).abs().max() < 1e-4
    assert (again[-1] - x0).abs().max() < 1e-4


def test_all_modifications_off_reproduces_c(tiny):
    off = cfg(
        last_z_zero=False,
        attention=AttentionConfig(layers=("none",)),
        swap=SwapGuidanceConfig(enabled=False),
        adain=AdaINConfig(enabled=False),
    )
    ep = episode()
    d = final_latents(tiny, off, [ep])[0]
    c = tiny.encode(picture_tensor(ep.query, SIZE)[None])[0]
    assert (d - c).abs().max() < 1e-4


@pytest.mark.parametrize("n", [1, 3])
def test_fused_equals_separate_with_call_counts(tiny, n):
    ep = episode(n)
    fused, separate = Sampler(tiny, cfg(steps=4)), Sampler(tiny, cfg(steps=4, inversion="separate"))
    a = fused.run([ep], return_latents=True)[0].latents
    b = separate.run([ep], return_latents=True)[0].latents
    assert rel(a, b) < 1e-4
    assert fused.unet_calls == 4 and separate.unet_calls == 8
    assert fused.image_passes == 4 * (2 * n + 3)


# ---------------------------------------------------------------------- invariances


def test_batched_episodes_equal_alone(tiny):
    eps = [episode(2, seed=0, offset=0), episode(2, seed=5, offset=10)]
    alone = [final_latents(tiny, cfg(), [e])[0] for e in eps]
    sampler = Sampler(tiny, cfg(batch_episodes=2))
    together = [r.latents for r in sampler.run(eps, return_latents=True)]
    assert sampler.unet_calls == 3  # both episodes in one call per step
    for a, b in zip(alone, together, strict=True):
        assert rel(b, a) < 1e-4


@pytest.mark.parametrize("n", [2, 4])
def test_copies_of_one_prompt_equal_one_prompt_at_beta_1(tiny, n):
    beta1 = cfg(attention=AttentionConfig(contrast=1.0))
    one = episode(1)
    many = Episode(list(one.prompts) * n, list(one.targets) * n, one.query, seed=one.seed)
    assert rel(final_latents(tiny, beta1, [many])[0], final_latents(tiny, beta1, [one])[0]) < 1e-4


def test_prompt_order_does_not_matter(tiny):
    ep = episode(3)
    flipped = Episode(ep.prompts[::-1], ep.targets[::-1], ep.query, seed=ep.seed)
    assert rel(final_latents(tiny, cfg(), [flipped])[0], final_latents(tiny, cfg(), [ep])[0]) < 1e-4


def test_seed_determinism(tiny):
    first = Sampler(tiny, cfg()).run([episode(seed=3)])[0].picture.tobytes()
    again = Sampler(tiny, cfg()).run([episode(seed=3)])[0].picture.tobytes()
    other = Sampler(tiny, cfg()).run([episode(seed=4)])[0].picture.tobytes()
    assert first == again and first != other


# ---------------------------------------------------------------------- guidance pieces


def test_swap_weights_by_hand():
    assert [swap_weight(i, 4, "decay") for i in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert [swap_weight(i, 4, "ramp") for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [swap_weight(i, 4, "constant") for i in range(4)] == [1.0] * 4


@pytest.mark.parametrize("n", [1, 3])
def test_adain_matches_reference_statistics(n):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g) * 3 + 1
    ref = (
        torch.randn(2, n, 4, 8, 8, generator=g) * (torch.rand(2, n, 4, 1, 1, generator=g) + 0.5) - 2
    )
    out = adain(x, ref)
    flat_ref = ref.flatten(-2).double()
    want_mean = flat_ref.mean(-1).mean(1)
    want_std = (flat_ref.var(-1, unbiased=False) + 1e-5).sqrt().mean(1)
    flat = out.flatten(-2).double()
    torch.testing.assert_close(flat.mean(-1), want_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        (flat.var(-1, unbiased=False) + 1e-5).sqrt(), want_std, atol=1e-4, rtol=1e-4
    )


def test_swap_off_computes_no_d_def(tiny):
    sampler = Sampler(tiny, cfg(swap=SwapGuidanceConfig(enabled=False)))
    sampler.run([episode(2)])
    assert sampler.image_passes == 3 * (2 * 2 + 2)


# ---------------------------------------------------------------------- every switch


VALUE_SWITCHES = {
    "temperature": {"attention": AttentionConfig(temperature=1.0)},
    "contrast": {"attention": AttentionConfig(contrast=1.0)},
    "gamma": {"swap": SwapGuidanceConfig(gamma=1.0)},
    "schedule": {"swap": SwapGuidanceConfig(schedule="ramp")},
    "swap_off": {"swap": SwapGuidanceConfig(enabled=False)},
    "adain_off": {"adain": AdaINConfig(enabled=False)},
    "adain_window": {"adain": AdaINConfig(steps=(0, 1))},
    "layers": {"attention": AttentionConfig(layers=("up.8",))},
    "qkv": {"attention": AttentionConfig(qkv="DBB")},
    "ensemble": {"attention": AttentionConfig(ensemble="mean")},
    "attention_window": {"attention": AttentionConfig(steps=(1, None))},
    "init": {"init": "noise"},
    "last_z_zero": {"last_z_zero": False},
}

EXACT_SWITCHES = {
    "inversion": {"inversion": "separate"},
    "chunk_size": {"attention": AttentionConfig(chunk_size=7)},
    "batch_episodes": {"batch_episodes": 2},
}


@pytest.fixture(scope="module")
def baseline(tiny):
    eps = [episode(2, offset=0), episode(2, offset=20, seed=1)]
    return eps, final_latents(tiny, cfg(), eps)


@pytest.mark.parametrize("name", sorted(VALUE_SWITCHES))
def test_value_switch_changes_prediction(tiny, baseline, name):
    eps, base = baseline
    out = final_latents(tiny, cfg(**VALUE_SWITCHES[name]), eps)
    assert rel(out[0], base[0]) > 1e-3, name


@pytest.mark.parametrize("name", sorted(EXACT_SWITCHES))
def test_exactness_switch_keeps_prediction(tiny, baseline, name):
    eps, base = baseline
    out = final_latents(tiny, cfg(**EXACT_SWITCHES[name]), eps)
    for a, b in zip(out, base, strict=True):
        assert rel(a, b) < 1e-4, name


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg().steps = 5  # type: ignore[misc]
