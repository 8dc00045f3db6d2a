"""Variant batching (sampler/variants.py): V sampler variants share the A, B, C rows of one
U-Net call per step, and each variant's result equals running it alone."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from sdvicl_bench.config import AttentionConfig, SamplerConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.sampler.attention import StreamLayout, VICLAttnProcessor, VICLController
from sdvicl_bench.sampler.pipeline import Sampler
from sdvicl_bench.sampler.variants import non_shareable_differences, rows_per_call
from tests.helpers import SIZE, episode

STEPS = 4
FULL = SamplerConfig(steps=STEPS, resolution=SIZE)


def variant(**kw) -> SamplerConfig:
    """FULL with top-level fields and `attention`/`swap`/`adain` fields (as dicts) replaced."""
    groups = {k: kw.pop(k) for k in ("attention", "swap", "adain") if k in kw}
    for name, fields in groups.items():
        kw[name] = dataclasses.replace(getattr(FULL, name), **fields)
    return dataclasses.replace(FULL, **kw)


# The ablate components (ablations.COMPONENTS), each as [full, variant(s)]. On tiny at 64 px
# the decoder's attention layers sit at sides 2, 4, 8; `up.finest` is its 8x8 level.
COMPONENTS = {
    "adain": [variant(adain={"enabled": False})],
    "contrast": [variant(attention={"contrast": 1.0})],
    "swap_guidance": [variant(swap={"enabled": False})],
    "temperature": [variant(attention={"temperature": 1.0})],
    "iwpe": [variant(attention={"ensemble": "mean"})],
    "layers": [variant(attention={"layers": ("up.finest",)})],
    "qkv": [variant(attention={"qkv": q}) for q in ("DAB", "CBB", "DBB")],
    "inversion": [variant(init="noise")],
}


def rows_per_episode(n: int, variants: list[SamplerConfig]) -> int:
    """2n+1 shared rows, then 2 per variant with swap guidance, 1 without."""
    return 2 * n + 1 + sum(2 if v.swap.enabled else 1 for v in variants)


# How far a variant's final latents (|latents| <= 1.44) may sit from the same variant run
# alone. Sharing a U-Net call changes the matmul shapes, hence float32 rounding. Measured
# max |together - alone| on a 2-core x86_64, torch 2.13.0+cpu: 1.62e-5 in
# test_mixed_variants_batched_episodes (two episodes per call; its no-AdaIN variant, the
# others <= 2.2e-6; 24 model/episode seeds x torch.set_num_threads(1) and (2)); 1.22e-5 in
# the component tests (the adain one; 0 with 1 thread over 12 seeds, <= 1.22e-5 with 2
# threads over 9 seeds); <= 9.2e-7 in test_mixed_n_keeps_input_order. 2e-4 is ~12x the max;
# batched latents shifted by 1e-3, or swapped episodes, fail it.
ATOL = 2e-4


def assert_each_equals_alone(model, variants, episodes, together) -> None:
    """Every variant's final latents equal `Sampler(model, variant).run(...)` within ATOL."""
    assert len(together) == len(variants)
    for v, (config, results) in enumerate(zip(variants, together, strict=True)):
        alone = Sampler(model, config).run(episodes, return_latents=True)
        assert len(results) == len(episodes)
        for e, (got, want) in enumerate(zip(results, alone, strict=True)):
            torch.testing.assert_close(
                got.latents, want.latents, atol=ATOL, rtol=0.0, msg=f"variant {v}, episode {e}"
            )


# ---------------------------------------------------------------------- every component


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_component_variants_share_rows_and_equal_alone(tiny, component):
    n = 2
    variants = [FULL, *COMPONENTS[component]]
    episodes = [episode(n, seed=1)]
    sampler = Sampler(tiny, FULL)
    together = sampler.run_variants(episodes, variants, return_latents=True)
    assert sampler.unet_calls == STEPS
    assert sampler.image_passes == STEPS * rows_per_episode(n, variants)
    if all(v.swap.enabled for v in variants):
        assert sampler.image_passes == STEPS * (2 * n + 1 + 2 * len(variants))
    assert_each_equals_alone(tiny, variants, episodes, together)
    # the variant really is different (else sharing could hide a mix-up of rows); measured
    # >= 9.5e-3 (iwpe) over the seeds at ATOL, so 1e-3: ~10x below that, 5x above ATOL
    assert (together[0][0].latents - together[1][0].latents).abs().max() > 1e-3


def test_mixed_variants_batched_episodes(tiny):
    """Four variants mixing every kind of switch, n = 3, two episodes in one call per step."""
    variants = [
        FULL,
        variant(attention={"qkv": "DAB", "temperature": 0.8, "steps": (1, None)}),
        variant(adain={"enabled": False}, attention={"layers": ("up.finest",)}),
        variant(swap={"gamma": 1.0, "schedule": "ramp"}, init="noise", last_z_zero=False),
    ]
    episodes = [episode(3, seed=0), episode(3, seed=7, offset=10)]
    sampler = Sampler(tiny, dataclasses.replace(FULL, batch_episodes=2))
    together = sampler.run_variants(episodes, variants, return_latents=True, diagnostics=True)
    assert sampler.unet_calls == STEPS
    assert sampler.image_passes == STEPS * 2 * (2 * 3 + 1 + 2 * 4)
    # two episodes per call: measured max |together - alone| 1.62e-5 over 24 seeds x 1 and 2
    # threads (2-core x86_64, torch 2.13.0+cpu), within ATOL = 2e-4 (details at ATOL)
    assert_each_equals_alone(tiny, variants, episodes, together)
    # each variant's diagnostics are its own: its swap schedule, its D
    for config, results in zip(variants, together, strict=True):
        alone = Sampler(tiny, config).run(episodes[:1], diagnostics=True)[0].diagnostics
        got = results[0].diagnostics
        assert [d["w"] for d in got] == [d["w"] for d in alone]
        for a, b in zip(got, alone, strict=True):
            # measured max |diff| 8.3e-7 (same 24 seeds x 1, 2 threads, machine): ~12x margin
            assert a["d_mean"] == pytest.approx(b["d_mean"], abs=1e-5)


def test_swap_off_variant_has_one_row(tiny):
    variants = [variant(swap={"enabled": False}), FULL, variant(swap={"enabled": False})]
    sampler = Sampler(tiny, FULL)
    sampler.run_variants([episode(1)], variants)
    assert sampler.image_passes == STEPS * (3 + 1 + 2 + 1)


def test_mixed_n_keeps_input_order(tiny):
    variants = [FULL, variant(attention={"qkv": "DBB"})]
    episodes = [episode(1, seed=0), episode(2, seed=1, offset=5), episode(1, seed=2, offset=9)]
    sampler = Sampler(tiny, dataclasses.replace(FULL, batch_episodes=2))
    together = sampler.run_variants(episodes, variants, return_latents=True)
    assert sampler.unet_calls == 3 * STEPS  # n = 1, then n = 2, then n = 1 again
    assert_each_equals_alone(tiny, variants, episodes, together)


def test_one_variant_is_run(tiny):
    """run is the V = 1 case of the same loop: same numbers and counters."""
    episodes = [episode(2, seed=4)]
    a, b = Sampler(tiny, FULL), Sampler(tiny, FULL)
    alone = a.run(episodes, return_latents=True)[0]
    (together,) = b.run_variants(episodes, [FULL], return_latents=True)
    assert torch.equal(alone.latents, together[0].latents)
    assert alone.picture.tobytes() == together[0].picture.tobytes()
    assert (a.unet_calls, a.image_passes) == (b.unet_calls, b.image_passes) == (STEPS, STEPS * 7)


# ---------------------------------------------------------------------- layout, processor


def test_layout_rows():
    one = StreamLayout(2, True)
    assert (one.size, one.c, one.d_mod, one.d_def) == (7, 4, 5, 6)
    assert StreamLayout(2, False).size == 6 and StreamLayout(2, False).d_def is None
    many = StreamLayout(2, (True, False, True))
    assert many.num_variants == 3 and many.size == 2 * 2 + 1 + 2 + 1 + 2
    assert many.d_mods == (5, 7, 8) and many.d_defs == (6, None, 9)


@torch.no_grad()
def test_processor_unselected_variant_row_is_plain():
    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=4, dim_head=8).eval()
    layout = StreamLayout(1, (True, True))
    ctl = VICLController(AttentionConfig())
    ctl.use(layout, [AttentionConfig(), AttentionConfig(qkv="DBB")])
    x = torch.randn(2 * layout.size, 16, 32, generator=torch.Generator().manual_seed(1))
    stock = AttnProcessor2_0()(attn, x)
    proc = VICLAttnProcessor(ctl, "x")
    both = proc(attn, x)
    ctl.layer_sets = (frozenset({"x"}), frozenset())  # variant 1 does not modify layer x
    first = proc(attn, x)
    for e in range(2):
        rows = {r: e * layout.size + r for r in range(layout.size)}
        d0, d1 = rows[layout.d_mods[0]], rows[layout.d_mods[1]]
        torch.testing.assert_close(first[d0], both[d0], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(first[d1], stock[d1], atol=1e-6, rtol=1e-6)
        assert (both[d1] - stock[d1]).abs().max() > 1e-3
        for r in set(rows.values()) - {d0, d1}:
            torch.testing.assert_close(first[r], stock[r], atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------------- what may differ


def test_non_shareable_differences_names_the_shared_settings():
    other = dataclasses.replace(FULL, steps=5, skip=1, resolution=128, inversion="separate")
    assert non_shareable_differences(FULL, other) == [
        "sampler.steps",
        "sampler.skip",
        "sampler.resolution",
        "sampler.inversion",
    ]
    assert non_shareable_differences(other, FULL) == non_shareable_differences(FULL, other)
    assert non_shareable_differences(FULL, FULL) == []
    per_variant = [v for vs in COMPONENTS.values() for v in vs] + [
        variant(last_z_zero=False),
        variant(attention={"steps": (1, 3), "chunk_size": 7, "kernel": "torch"}),
        variant(swap={"gamma": 1.0, "schedule": "constant"}, adain={"steps": (0, 2)}),
        variant(batch_episodes=4, row_budget=100),
    ]
    for v in per_variant:
        assert non_shareable_differences(FULL, v) == []


def test_run_variants_rejects_a_non_shareable_mix_in_one_line(tiny):
    sampler = Sampler(tiny, FULL)
    bad = [FULL, variant(steps=5, adain={"enabled": False}), variant(resolution=128)]
    with pytest.raises(ConfigError) as err:
        sampler.run_variants([episode(1)], bad)
    message = str(err.value)
    assert "sampler.steps" in message and "Variant 1" in message and "\n" not in message
    assert "adain" not in message
    assert sampler.unet_calls == 0
    with pytest.raises(ConfigError, match="at least one"):
        sampler.run_variants([episode(1)], [])


# ---------------------------------------------------------------------- row budget


def test_rows_per_call():
    no_swap = variant(swap={"enabled": False})
    assert rows_per_call(1, [FULL], 1) == 5  # the plain sampler: 2n+3
    assert rows_per_call(5, [FULL] * 4, 1) == 11 + 8  # 2n+1+2V
    assert rows_per_call(3, [FULL, no_swap], 2) == 2 * (7 + 2 + 1)


def test_row_budget(tiny):
    variants = [FULL, variant(adain={"enabled": False})]  # 2n+1+4 = 9 rows at n = 2
    episodes = [episode(2), episode(2, seed=1)]

    def sampler(budget: int, batch: int = 2) -> Sampler:
        return Sampler(tiny, dataclasses.replace(FULL, batch_episodes=batch, row_budget=budget))

    with pytest.raises(ConfigError, match=r"sampler\.batch_episodes=1 fits") as err:
        sampler(17).run_variants(episodes, variants)
    assert "18 rows" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="at most 1 of these variants fit"):
        sampler(8, batch=1).run_variants(episodes, variants)
    with pytest.raises(ConfigError, match=r"sampler\.row_budget=7 or more"):
        sampler(6, batch=1).run(episodes)  # run checks it too: 2n+3 = 7 rows
    ok = sampler(18)
    ok.run_variants(episodes, variants)
    assert ok.image_passes == STEPS * 18
    with pytest.raises(ConfigError, match="row_budget=0"):
        dataclasses.replace(FULL, row_budget=0)
