"""The fused Triton kernel (`attention.kernel=triton`) against the float64 reference and the
torch kernel. Without a GPU it runs in Triton's CPU interpreter (set in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sdvicl_bench.config import AttentionConfig, SamplerConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.sampler import attention
from sdvicl_bench.sampler.attention import resolve_kernel, vicl_attention
from sdvicl_bench.sampler.pipeline import Sampler
from tests.helpers import attention_inputs, episode, naive_vicl_attention, rel

fused = pytest.importorskip("sdvicl_bench.sampler.fused_attention")
pytestmark = pytest.mark.skipif(
    not fused.can_run(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
    reason="needs triton, and a GPU or TRITON_INTERPRET=1",
)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_fused(q, k, v, **kw):
    return fused.fused_vicl_attention(q.to(DEVICE), k.to(DEVICE), v.to(DEVICE), **kw).cpu()


@pytest.mark.parametrize("ensemble", ["iwpe", "mean"])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("tau,beta", [(0.4, 1.67), (1.0, 1.0), (0.7, 2.5)])
def test_float32_matches_naive_reference(ensemble, n, tau, beta):
    # Odd sizes on purpose: 37 queries, 11 keys per prompt, head width 8 -> values 24 wide,
    # so every tile has a ragged edge (tiles are 16 wide in the interpreter).
    q, k, v = attention_inputs(n, nq=37, nk=11, d=8, dv=24, seed=n)
    ref, pre = naive_vicl_attention(q, k, v, n, tau, beta, ensemble)
    kw = dict(num_prompts=n, temperature=tau, contrast=beta, ensemble=ensemble)
    out = run_fused(q, k, v, **kw)
    assert out.shape == (2, 3, 37, 24) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    if beta > 1:
        assert (pre > 1).any() and (pre < 0).any(), "both clips must bite on these inputs"


@pytest.mark.parametrize("ensemble", ["iwpe", "mean"])
@pytest.mark.slow
def test_several_key_blocks_and_sd_head_width(ensemble):
    # 3 prompts x 40 keys cross many 16-key tiles; d = 40 is SD1.5's 64x64 head width.
    q, k, v = attention_inputs(3, nq=50, nk=40, d=40, seed=7)
    ref, _ = naive_vicl_attention(q, k, v, 3, 0.4, 1.67, ensemble)
    out = run_fused(q, k, v, num_prompts=3, ensemble=ensemble)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_bfloat16_within_bf16_rounding_of_the_torch_kernel():
    q, k, v = (t.bfloat16() for t in attention_inputs(2, nq=40, nk=24, d=40, seed=3))
    ref, _ = naive_vicl_attention(q, k, v, 2, 0.4, 1.67, "iwpe")
    out = run_fused(q, k, v, num_prompts=2)
    torch_out = vicl_attention(q, k, v, num_prompts=2)
    assert out.dtype == torch.bfloat16
    # bf16 keeps 8 bits: the torch kernel is ~1e-3 from float64; the interpreter rounds
    # bf16 casts toward zero, so allow it a few times that.
    assert rel(torch_out.double(), ref) < 5e-3
    assert rel(out.double(), ref) < 1.5e-2


def test_strided_inputs_as_the_processor_passes_them():
    # The processor hands over views: q is one stream of (E, G, H, N, d), k/v are copies.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 33, 4, 16, generator=g).transpose(2, 3)  # (E, G, H=4, N=33, d)
    q = x[:, 4]
    k = x[:, 0:2].transpose(1, 2).flatten(2, 3)
    v = x[:, 2:4].transpose(1, 2).flatten(2, 3)
    assert not q.is_contiguous()
    out = run_fused(q, k, v, num_prompts=2)
    torch.testing.assert_close(out, vicl_attention(q, k, v, num_prompts=2), atol=1e-5, rtol=1e-5)


def test_tau_beta_one_is_sdpa():
    q, k, v = attention_inputs(2, nq=20, nk=18, d=16, seed=5)
    out = run_fused(q, k, v, num_prompts=2, temperature=1.0, contrast=1.0)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_rejects_bad_inputs():
    q, k, v = attention_inputs(2, nq=8, nk=5, d=8)
    with pytest.raises(ValueError, match="ensemble"):
        fused.fused_vicl_attention(q, k, v, num_prompts=2, ensemble="max")
    with pytest.raises(ValueError, match="blocks"):
        fused.fused_vicl_attention(q, k, v, num_prompts=3)
    with pytest.raises(ValueError, match="dtypes"):
        fused.fused_vicl_attention(q, k.double(), v, num_prompts=2)


@pytest.mark.slow
def test_torch_op_registration_passes_opcheck():
    q, k, v = (t.to(DEVICE) for t in attention_inputs(2, nq=16, nk=8, d=8))
    torch.library.opcheck(fused._vicl_attention_op, (q, k, v, 2, 0.4, 1.67, "iwpe"))


def test_traced_by_torch_compile_as_one_op_without_graph_breaks():
    q, k, v = (t.to(DEVICE) for t in attention_inputs(2, nq=16, nk=8, d=8))

    def f(q, k, v):
        return fused.fused_vicl_attention(q * 2, k, v, num_prompts=2) + 1

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(q, k, v), f(q, k, v))


def test_kernel_failure_falls_back_to_torch_loudly(monkeypatch):
    q, k, v = attention_inputs(2, nq=16, nk=8, d=8)

    def broken(*args):
        raise RuntimeError("PTX too new for this driver\nmore detail")

    monkeypatch.setattr(fused, "_launch", broken)
    monkeypatch.setattr(fused, "FALLBACKS", [])
    monkeypatch.setattr(fused, "_SELF_CHECKED", {})
    with pytest.warns(RuntimeWarning, match="PTX too new"):
        out = fused.fused_vicl_attention(q, k, v, num_prompts=2)
    torch.testing.assert_close(out, vicl_attention(q, k, v, num_prompts=2))
    assert fused.FALLBACKS == ["failed (RuntimeError: PTX too new for this driver)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same reason warns once
        fused.fused_vicl_attention(q, k, v, num_prompts=2)

    def oom(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(fused, "_launch", oom)
    with pytest.raises(torch.OutOfMemoryError):
        fused.fused_vicl_attention(q, k, v, num_prompts=2)


def test_first_call_self_check_catches_a_wrong_kernel(monkeypatch):
    q, k, v = attention_inputs(2, nq=16, nk=8, d=8)
    launches = []

    def wrong(q, k, v, *args):  # builds and runs, but computes garbage
        launches.append(1)
        return torch.zeros(*q.shape[:-1], v.shape[-1])

    monkeypatch.setattr(fused, "_launch", wrong)
    monkeypatch.setattr(fused, "FALLBACKS", [])
    monkeypatch.setattr(fused, "_SELF_CHECKED", {})
    with pytest.warns(RuntimeWarning, match="differs from the torch kernel"):
        out = fused.fused_vicl_attention(q, k, v, num_prompts=2)
    expected = vicl_attention(q, k, v, num_prompts=2)
    torch.testing.assert_close(out, expected)
    again = fused.fused_vicl_attention(q, k, v, num_prompts=2)  # no relaunch, torch kernel
    torch.testing.assert_close(again, expected)
    assert launches == [1]
    # A correct kernel passes its self-check once per signature and is trusted after.
    monkeypatch.undo()
    monkeypatch.setattr(fused, "_SELF_CHECKED", {})
    calls = []
    monkeypatch.setattr(fused, "vicl_attention", lambda *a, **kw: calls.append(1) or expected)
    for _ in range(3):
        torch.testing.assert_close(fused.fused_vicl_attention(q, k, v, num_prompts=2), expected)
    assert len(calls) == 1 and list(fused._SELF_CHECKED.values()) == [True]


def test_resolve_kernel(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_kernel("auto", cpu) == "torch"  # never the interpreter by default
    assert resolve_kernel("torch", cuda) == "torch"
    assert resolve_kernel("auto", cuda) == "triton"
    assert resolve_kernel("triton", cpu) == "triton"  # here: the interpreter is on
    monkeypatch.setattr(fused, "interpreting", lambda: False)
    with pytest.raises(ConfigError, match=r"runs on CUDA.*kernel=auto"):
        resolve_kernel("triton", cpu)
    monkeypatch.setattr(fused, "triton", None)
    assert resolve_kernel("auto", cuda) == "torch"
    with pytest.raises(ConfigError, match="triton package is not installed"):
        resolve_kernel("triton", cuda)


@pytest.mark.slow
def test_sampler_with_fused_kernel_equals_torch_kernel(tiny, monkeypatch):
    calls = []
    real = fused.fused_vicl_attention

    def counted(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(fused, "fused_vicl_attention", counted)
    ep = [episode(2, seed=1)]

    def final(kernel):
        cfg = SamplerConfig(steps=3, resolution=64, attention=AttentionConfig(kernel=kernel))
        sampler = Sampler(tiny, cfg)
        assert sampler.controller.kernel == kernel
        return sampler.run(ep, return_latents=True)[0].latents

    a, b = final("torch"), final("triton")
    assert calls, "the fused kernel never ran"
    assert rel(b, a) < 1e-5
    assert attention.VICLController(AttentionConfig()).kernel == "torch"


@pytest.mark.slow
def test_compiles_for_a100_l40_h100_without_register_spills(tmp_path):
    # Triton's real compiler and bundled ptxas, no GPU needed (scripts/kernel_report.py).
    script = Path(__file__).resolve().parents[1] / "scripts" / "kernel_report.py"
    out = tmp_path / "report.json"
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    proc = subprocess.run(
        [sys.executable, str(script), "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.exists(), proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(r["arch"], r["dim"]) for r in rows} >= {
        (f"sm_{a}", d) for a in (80, 89, 90) for d in (40, 80, 160)
    }
    for r in rows:
        assert "error" not in r, r
        assert r["spill_bytes"] == 0, r
        assert 0 < r["shared_bytes"] <= 99 * 1024, r  # fits every target's shared memory
    assert proc.returncode == 0
