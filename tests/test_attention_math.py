"""vicl_attention against the naive float64 reference in helpers.py (METHOD.md 5)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from sdvicl_bench.sampler import attention_math
from sdvicl_bench.sampler.attention_math import vicl_attention
from tests.helpers import attention_inputs as inputs
from tests.helpers import naive_vicl_attention as naive


@pytest.mark.parametrize("ensemble", ["iwpe", "mean"])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("tau,beta", [(0.4, 1.67), (1.0, 1.0), (0.7, 2.5), (1.0, 1.67), (0.4, 1.0)])
def test_matches_naive_reference(ensemble, n, tau, beta):
    q, k, v = inputs(n, seed=n)
    ref, pre = naive(q, k, v, n, tau, beta, ensemble)
    out = vicl_attention(q, k, v, num_prompts=n, temperature=tau, contrast=beta, ensemble=ensemble)
    assert out.shape == q.shape and out.dtype == q.dtype
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=1e-5)
    if beta > 1:  # both clips must have been exercised by these inputs
        assert (pre > 1).any(), "upper clip never bit"
        assert (pre < 0).any(), "lower clip never bit"


@pytest.mark.parametrize("chunk", [1, 5, 8, 36])
@pytest.mark.parametrize("ensemble", ["iwpe", "mean"])
def test_blocked_equals_materialised(monkeypatch, chunk, ensemble):
    q, k, v = inputs(3, nq=37)
    full = vicl_attention(q, k, v, num_prompts=3, ensemble=ensemble)
    calls = []
    real = attention_math._attend_block

    def spy(qb, *args):
        calls.append(qb.shape[-2])
        return real(qb, *args)

    monkeypatch.setattr(attention_math, "_attend_block", spy)
    blocked = vicl_attention(q, k, v, num_prompts=3, ensemble=ensemble, chunk_size=chunk)
    assert len(calls) == math.ceil(37 / chunk) > 1
    assert max(calls) <= chunk and sum(calls) == 37
    torch.testing.assert_close(blocked, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("ensemble", ["iwpe", "mean"])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_copies_of_one_prompt_equal_one_prompt_at_beta_1(ensemble, n):
    q, k1, v1 = inputs(1)
    one = vicl_attention(q, k1, v1, num_prompts=1, contrast=1.0, ensemble=ensemble)
    many = vicl_attention(
        q,
        k1.repeat(1, 1, n, 1),
        v1.repeat(1, 1, n, 1),
        num_prompts=n,
        contrast=1.0,
        ensemble=ensemble,
    )
    torch.testing.assert_close(many, one, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ensemble", ["iwpe", "mean"])
def test_prompt_order_never_matters(ensemble):
    n, nk = 4, 11
    q, k, v = inputs(n, nk=nk)
    base = vicl_attention(q, k, v, num_prompts=n, ensemble=ensemble)
    for perm in itertools.islice(itertools.permutations(range(n)), 1, 6):
        idx = torch.cat([torch.arange(j * nk, (j + 1) * nk) for j in perm])
        out = vicl_attention(q, k[..., idx, :], v[..., idx, :], num_prompts=n, ensemble=ensemble)
        torch.testing.assert_close(out, base, atol=1e-5, rtol=1e-5)


def test_tau_beta_one_is_sdpa():
    q, k, v = inputs(1)
    out = vicl_attention(q, k, v, temperature=1.0, contrast=1.0)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_contrast_changes_output_and_softmax_runs_in_float32():
    q, k, v = inputs(2)
    a = vicl_attention(q, k, v, num_prompts=2, contrast=1.0)
    b = vicl_attention(q, k, v, num_prompts=2, contrast=1.67)
    assert (a - b).abs().max() > 1e-3
    half = vicl_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), num_prompts=2)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), b, atol=0.1, rtol=0.05)
