"""The VICL processor against diffusers' stock AttnProcessor2_0 and hand-built references."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from sdvicl_bench.config import AttentionConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.sampler.attention import (
    StreamLayout,
    VICLAttnProcessor,
    VICLController,
    layer_positions,
    select_layers,
    vicl_attention,
    vicl_processors,
)

HEADS, DIM, TOKENS = 4, 32, 16


@pytest.fixture(scope="module")
def attn():
    torch.manual_seed(0)
    return Attention(query_dim=DIM, heads=HEADS, dim_head=DIM // HEADS).eval()


def rows(layout: StreamLayout, episodes: int = 1, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(episodes * layout.size, TOKENS, DIM, generator=g)


def stock(attn, x):
    return AttnProcessor2_0()(attn, x)


def reference_dmod(attn, x, layout, cfg, episode=0):
    """to_out(vicl_attention(Q_src, K_src, V_B)) for one episode, from the layer's projections."""
    g = x[episode * layout.size : (episode + 1) * layout.size]

    def h(t):  # (N, H*d) -> (1, H, N, d)
        return t.view(1, TOKENS, HEADS, -1).transpose(1, 2)

    src = {"C": layout.c, "D": layout.d_mod}
    q = h(attn.to_q(g[src[cfg.qkv[0]]]))
    kv_rows = layout.a if cfg.qkv[1] == "A" else layout.b
    k = torch.cat([h(attn.to_k(g[r])) for r in range(kv_rows.start, kv_rows.stop)], dim=2)
    v = torch.cat([h(attn.to_v(g[r])) for r in range(layout.b.start, layout.b.stop)], dim=2)
    out = vicl_attention(
        q,
        k,
        v,
        num_prompts=layout.num_prompts,
        temperature=cfg.temperature,
        contrast=cfg.contrast,
        ensemble=cfg.ensemble,
    )
    return attn.to_out[0](out.transpose(1, 2).reshape(TOKENS, -1))


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("swap", [True, False])
@torch.no_grad()
def test_plain_rows_untouched_and_dmod_is_reference(attn, n, swap):
    layout = StreamLayout(n, swap)
    cfg = AttentionConfig(chunk_size=5)
    proc = VICLAttnProcessor(VICLController(cfg, layout), "x")
    x = rows(layout, episodes=2)
    out, ref = proc(attn, x), stock(attn, x)
    for e in range(2):
        for r in range(layout.size):
            got, want = out[e * layout.size + r], ref[e * layout.size + r]
            if r == layout.d_mod:
                torch.testing.assert_close(
                    got, reference_dmod(attn, x, layout, cfg, e), atol=1e-5, rtol=1e-5
                )
                assert (got - want).abs().max() > 1e-3
            else:  # A, B, C and D_def: exactly what the stock processor computes
                torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("qkv", ["CAB", "DAB", "CBB", "DBB"])
@torch.no_grad()
def test_qkv_triplets_read_the_named_streams(attn, qkv):
    layout = StreamLayout(2, True)
    cfg = AttentionConfig(qkv=qkv)
    x = rows(layout)
    x[layout.d_mod] = 5 * torch.randn(TOKENS, DIM)  # a planted D, far from C
    out = VICLAttnProcessor(VICLController(cfg, layout), "x")(attn, x)[layout.d_mod]
    torch.testing.assert_close(out, reference_dmod(attn, x, layout, cfg), atol=1e-5, rtol=1e-5)
    other = AttentionConfig(qkv=("D" if qkv[0] == "C" else "C") + qkv[1:])
    assert (out - reference_dmod(attn, x, layout, other)).abs().max() > 1e-3


@torch.no_grad()
def test_outside_step_window_is_stock(attn):
    layout = StreamLayout(1, True)
    ctl = VICLController(AttentionConfig(steps=(2, 4)), layout)
    proc = VICLAttnProcessor(ctl, "x")
    x = rows(layout)
    for step, modified in [(0, False), (1, False), (2, True), (3, True), (4, False)]:
        ctl.step = step
        diff = (proc(attn, x) - stock(attn, x)).abs().max()
        assert (diff > 1e-3) == modified, step
    assert ctl.modified_calls["x"] == 2


def unet_eps(model, x):
    t = torch.tensor(500)
    return model.unet(x, t, encoder_hidden_states=model.prompt_embeds.expand(len(x), -1, -1)).sample


@torch.no_grad()
def test_unet_rows_and_layer_selection(tiny):
    layout = StreamLayout(2, True)
    x = torch.randn(layout.size, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    ref = unet_eps(tiny, x)
    before = dict(tiny.unet.attn_processors)
    for layers, expected in [
        (("up",), 6),
        (("up.8",), 2),  # tiny at 64 px: 8x8 latents, the decoder's finest level
        (("up.finest",), 2),
        (("all",), 10),
        (("down.4", "mid"), 2),
    ]:
        ctl = VICLController(AttentionConfig(layers=layers), layout)
        with vicl_processors(tiny.unet, ctl) as selected:
            out = unet_eps(tiny, x)
        assert len(selected) == expected
        assert set(ctl.modified_calls) == set(selected)
        assert all(c == 1 for c in ctl.modified_calls.values())
        for r in range(layout.size):  # only D_mod's prediction changes
            changed = (out[r] - ref[r]).abs().max() > 1e-4
            assert changed == (r == layout.d_mod), (layers, r)
    # modification off: every stream equals the stock U-Net
    ctl = VICLController(AttentionConfig(layers=("none",)), layout)
    with vicl_processors(tiny.unet, ctl):
        torch.testing.assert_close(unet_eps(tiny, x), ref, atol=1e-6, rtol=1e-6)
    assert dict(tiny.unet.attn_processors) == before  # originals restored (same objects)


def test_processors_restored_after_error(tiny):
    before = dict(tiny.unet.attn_processors)
    with pytest.raises(RuntimeError), vicl_processors(tiny.unet, VICLController(AttentionConfig())):
        assert any(isinstance(p, VICLAttnProcessor) for p in tiny.unet.attn_processors.values())
        raise RuntimeError("boom")
    assert dict(tiny.unet.attn_processors) == before


def test_select_layers_rejects_unknown_selectors(tiny):
    positions = layer_positions(tiny.unet)
    with pytest.raises(ConfigError, match="unknown selector"):
        select_layers(positions, ["upp"])
    with pytest.raises(ConfigError, match="matches no") as err:
        select_layers(positions, ["up.64"])  # SD1.5's side; tiny's decoder is at 8, 4, 2
    assert "down.8 (1)" in str(err.value) and "up.8 (2)" in str(err.value)
    assert all("attn1" in n for n in select_layers(positions, ["all"]))
