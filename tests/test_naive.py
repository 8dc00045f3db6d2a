"""The naive reference sampler against the fused one (METHOD.md 9): the cost model's
image-pass counts, one step's noise predictions and the final latents."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor

from sdvicl_bench.config import AttentionConfig, SamplerConfig, SwapGuidanceConfig
from sdvicl_bench.sampler.naive import (
    NaiveAttnProcessor,
    NaiveSampler,
    episode_trajectories,
    first_step_eps,
    naive_processors,
)
from sdvicl_bench.sampler.pipeline import Episode, Sampler
from tests.helpers import SIZE, episode, rel

STEPS = 4
NO_SWAP = SwapGuidanceConfig(enabled=False)


def cfg(**kw) -> SamplerConfig:
    return SamplerConfig(**{"steps": STEPS, "resolution": SIZE, **kw})


def latents(sampler: Sampler, ep: Episode) -> torch.Tensor:
    return sampler.run([ep], return_latents=True)[0].latents


# ---------------------------------------------------------------------- cost model


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("swap", [True, False])
def test_image_passes_per_step(tiny, n, swap):
    config = cfg() if swap else cfg(swap=NO_SWAP)
    fast, naive = Sampler(tiny, config), NaiveSampler(tiny, config)
    ep = episode(n)
    fast.run([ep])
    naive.run([ep])
    assert fast.image_passes == STEPS * (2 * n + 3 if swap else 2 * n + 2)
    assert naive.image_passes == STEPS * (6 * n + 5 if swap else 4 * n + 3)
    assert fast.unet_calls == STEPS
    assert naive.unet_calls == STEPS * (3 if swap else 2)


def test_naive_materialises_and_restores(tiny):
    naive = NaiveSampler(tiny, cfg(attention=AttentionConfig(chunk_size=7)))
    assert naive.cfg.attention.chunk_size is None
    before = dict(tiny.unet.attn_processors)
    with naive_processors(tiny.unet, naive.controller) as selected:
        procs = tiny.unet.attn_processors
        assert selected and all(isinstance(procs[k], NaiveAttnProcessor) for k in selected)
        assert all(type(p) is AttnProcessor for k, p in procs.items() if k not in selected)
    naive.run([episode(1)])
    after = tiny.unet.attn_processors
    assert all(after[k] is before[k] for k in before)
    # The modified pass runs once per step on each selected layer (not on the plain pass).
    assert set(naive.controller.modified_calls.values()) == {STEPS}


# ---------------------------------------------------------------------- same numbers


@pytest.mark.parametrize("n", [1, 3])
def test_first_step_eps_agree(tiny, n):
    ep = episode(n)
    fast = first_step_eps(Sampler(tiny, cfg()), ep)
    naive = first_step_eps(NaiveSampler(tiny, cfg()), ep)
    for key in ("eps_mod", "eps_def", "eps_c"):
        assert fast[key].shape == (1, 4, SIZE // 8, SIZE // 8)
        assert rel(naive[key], fast[key]) < 1e-4, key

    # Independent anchor: C alone through the stock U-Net (no processor of ours installed).
    x_c = episode_trajectories(Sampler(tiny, cfg()), ep).c[0]
    t = Sampler(tiny, cfg()).model.scheduler.timesteps[0]
    with torch.no_grad():
        ref = tiny.unet(x_c, t, encoder_hidden_states=tiny.prompt_embeds).sample
    assert rel(fast["eps_c"], ref) < 1e-4 and rel(naive["eps_c"], ref) < 1e-4
    # At step 0 D is C's x_{t_1}: plain attention on D gives C's eps, the modified one not.
    assert rel(fast["eps_def"], ref) < 1e-4
    assert rel(fast["eps_mod"], fast["eps_def"]) > 1e-2


def test_first_step_eps_without_swap(tiny):
    ep = episode(2)
    fast = first_step_eps(Sampler(tiny, cfg(swap=NO_SWAP)), ep)
    naive = first_step_eps(NaiveSampler(tiny, cfg(swap=NO_SWAP)), ep)
    assert fast["eps_def"] is None and naive["eps_def"] is None
    assert rel(naive["eps_mod"], fast["eps_mod"]) < 1e-4


@pytest.mark.parametrize("n", [1, 3])
def test_final_latents_agree(tiny, n):
    ep = episode(n)
    fast = latents(Sampler(tiny, cfg()), ep)
    naive = latents(NaiveSampler(tiny, cfg()), ep)
    assert torch.isfinite(naive).all()
    assert rel(naive, fast) < 1e-4
    # Not vacuous: without the modified attention D ends elsewhere.
    off = latents(Sampler(tiny, cfg(attention=AttentionConfig(layers=("none",)))), ep)
    assert rel(off, fast) > 1e-3


@pytest.mark.parametrize(
    "overrides",
    [{"swap": NO_SWAP}, {"init": "noise", "last_z_zero": False}],
    ids=["swap-off", "init-noise"],
)
def test_final_latents_agree_other_settings(tiny, overrides):
    ep = episode(2)
    fast = latents(Sampler(tiny, cfg(**overrides)), ep)
    naive = latents(NaiveSampler(tiny, cfg(**overrides)), ep)
    assert rel(naive, fast) < 1e-4


def test_batched_run_and_diagnostics_match(tiny):
    eps = [episode(1, seed=0), episode(1, seed=3)]
    fast = Sampler(tiny, cfg(batch_episodes=2)).run(eps, return_latents=True, diagnostics=True)
    naive = NaiveSampler(tiny, cfg(batch_episodes=2)).run(
        eps, return_latents=True, diagnostics=True
    )
    for f, s in zip(fast, naive, strict=True):
        assert rel(s.latents, f.latents) < 1e-4
        assert len(s.diagnostics) == STEPS
        for df, dn in zip(f.diagnostics, s.diagnostics, strict=True):
            assert df["i"] == dn["i"] and df["w"] == dn["w"]
            assert dn["swap_delta"] == pytest.approx(df["swap_delta"], rel=1e-3)
