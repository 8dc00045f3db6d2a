"""The modified attention of METHOD.md 5 as one fused Triton kernel (`attention.kernel`).

Same numbers as `attention_math.vicl_attention` (the readable torch reference) without ever
writing a score to memory. The torch path holds a chunk x n*Nk float32 score block per head
and passes over it five to six times (matmul, softmax, contrast, clip, cast); at n = 5 on a
64x64 layer that is 2.7 GB per layer and episode, half the time of a step on an H100. Here
each program owns BLOCK_M query rows and walks the keys twice:

1. row statistics: running max m and sum l of exp(s - m) over the keys of one softmax
   (all n*Nk keys for `iwpe`, one prompt's Nk for `mean`), giving lse = m + log l;
2. p = exp(s - lse) (the softmax, exactly normalised), p' = clip(mu + beta (p - mu), 0, 1),
   out += p' V, with p' cast to V's dtype as the torch path does.

Scores come from bf16/fp16 q and k with float32 accumulation, which is what the torch path's
upcast-then-matmul computes (products of bf16 values are exact in float32); everything
after the dot product is float32. Computing Q K^T twice costs FLOPs the tensor cores have
to spare; memory holds only q, k, v and the output.

Runs on CUDA. For tests without a GPU, Triton's interpreter (`TRITON_INTERPRET=1` set before
Triton is imported) runs the same kernel on CPU tensors; it cannot multiply bf16 tiles, so
there the tiles are upcast to float32 first (`UPCAST`).
"""

from __future__ import annotations

import math
import os
import warnings

import torch

from sdvicl_bench.sampler.attention_math import check_inputs, vicl_attention

try:  # Triton ships with CUDA builds of torch; CPU installs may lack it.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None
    tl = None


def triton_available() -> bool:
    """Whether Triton is importable (it may still lack a GPU to run on)."""
    return triton is not None


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (`TRITON_INTERPRET=1`)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def can_run(device: torch.device) -> bool:
    """Whether the fused kernel can run on tensors of `device`."""
    if triton is None:
        return False
    return device.type == "cuda" or interpreting()


if triton is not None:

    @triton.jit
    def _score_block(
        q, k_base, keys, key_ok, dq, sk_n, sk_d, scale,
        DIM: tl.constexpr, UPCAST: tl.constexpr, IEEE_DOT: tl.constexpr,
    ):  # fmt: skip
        """Scores (BLOCK_M, BLOCK_N) of the q tile against the keys `keys` (float32)."""
        kt = tl.load(  # (BLOCK_D, BLOCK_N): K transposed
            k_base + keys[None, :] * sk_n + dq[:, None] * sk_d,
            mask=key_ok[None, :] & (dq[:, None] < DIM),
            other=0.0,
        )
        if UPCAST:
            kt = kt.to(tl.float32)
        if IEEE_DOT:
            return tl.dot(q, kt, input_precision="ieee") * scale
        return tl.dot(q, kt) * scale

    @triton.jit
    def _vicl_attention_kernel(
        Q, K, V, Out,
        sq_b, sq_h, sq_n, sq_d,
        sk_b, sk_h, sk_n, sk_d,
        sv_b, sv_h, sv_n, sv_d,
        so_b, so_h, so_n, so_d,
        heads, num_queries, seg_len, num_segs,
        scale, mu, contrast,
        DIM: tl.constexpr,
        DIM_V: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        BLOCK_DV: tl.constexpr,
        UPCAST: tl.constexpr,
        IEEE_DOT: tl.constexpr,
    ):  # fmt: skip
        """One program: BLOCK_M query rows of one (batch, head); see the module docstring.

        Keys/values are `num_segs` softmax segments of `seg_len` keys each (1 x n*Nk for
        iwpe, n x Nk for mean); the output is the mean of the segments' outputs.
        """
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // heads
        h = pid_bh % heads
        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.arange(0, BLOCK_N)
        dq = tl.arange(0, BLOCK_D)
        dv = tl.arange(0, BLOCK_DV)
        row_ok = rows < num_queries

        q = tl.load(
            Q + b * sq_b + h * sq_h + rows[:, None] * sq_n + dq[None, :] * sq_d,
            mask=row_ok[:, None] & (dq[None, :] < DIM),
            other=0.0,
        )
        if UPCAST:
            q = q.to(tl.float32)
        k_base = K + b * sk_b + h * sk_h
        v_base = V + b * sv_b + h * sv_h
        # Sum over segments of p' V (one accumulator: the mean is taken at the end).
        acc = tl.zeros((BLOCK_M, BLOCK_DV), dtype=tl.float32)

        for seg in range(0, num_segs):
            first = seg * seg_len
            # Pass 1: the softmax normaliser of this segment, row by row (online max/sum).
            m = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
            l = tl.zeros((BLOCK_M,), dtype=tl.float32)  # noqa: E741
            for start in range(0, seg_len, BLOCK_N):
                key_ok = (start + cols) < seg_len
                keys = first + start + cols
                s = _score_block(
                    q, k_base, keys, key_ok, dq, sk_n, sk_d, scale, DIM, UPCAST, IEEE_DOT
                )
                s = tl.where(key_ok[None, :], s, float("-inf"))
                m_new = tl.maximum(m, tl.max(s, 1))
                l = l * tl.exp(m - m_new) + tl.sum(tl.exp(s - m_new[:, None]), 1)  # noqa: E741
                m = m_new
            lse = m + tl.log(l)

            # Pass 2: normalised probabilities, contrast and clip, times V.
            for start in range(0, seg_len, BLOCK_N):
                key_ok = (start + cols) < seg_len
                keys = first + start + cols
                vb = tl.load(  # (BLOCK_N, BLOCK_DV), issued before the dot to hide latency
                    v_base + keys[:, None] * sv_n + dv[None, :] * sv_d,
                    mask=key_ok[:, None] & (dv[None, :] < DIM_V),
                    other=0.0,
                )
                s = _score_block(
                    q, k_base, keys, key_ok, dq, sk_n, sk_d, scale, DIM, UPCAST, IEEE_DOT
                )
                p = tl.exp(s - lse[:, None])
                p = tl.minimum(tl.maximum(contrast * p + (1.0 - contrast) * mu, 0.0), 1.0)
                p = tl.where(key_ok[None, :], p, 0.0)
                p = p.to(vb.dtype)  # as the torch path: probabilities in V's dtype
                if UPCAST:
                    acc += tl.dot(p.to(tl.float32), vb.to(tl.float32), input_precision="ieee")
                elif IEEE_DOT:
                    acc += tl.dot(p, vb, input_precision="ieee")
                else:
                    acc += tl.dot(p, vb)

        out = acc / num_segs
        tl.store(
            Out + b * so_b + h * so_h + rows[:, None] * so_n + dv[None, :] * so_d,
            out.to(Out.dtype.element_ty),
            mask=row_ok[:, None] & (dv[None, :] < DIM_V),
        )


# Tiles (BLOCK_M, BLOCK_N) per padded head width, chosen free of register spills with
# `scripts/kernel_report.py` (checked in the tests): Hopper's warpgroup MMA keeps larger
# tiles in registers than the mma.sync of sm_80/sm_89 and others.
_TILES_SM90 = {64: (128, 32), 128: (64, 64), 256: (64, 32)}
_TILES_OTHER = {64: (128, 32), 128: (32, 32), 256: (32, 16)}


def _blocks(dim: int, dim_v: int, arch: int = 90) -> dict[str, int]:
    """Tile sizes and launch settings for head sizes `dim`, `dim_v` on compute capability
    `arch` (90 = H100).

    SD1.5's heads are 40, 80 and 160 wide (padded to 64, 128, 256). Fixed, not autotuned, so
    that a run gives the same bytes every time. The interpreter gets small tiles so that
    tests cross several blocks cheaply.
    """
    block_d = max(16, triton.next_power_of_2(dim))
    block_dv = max(16, triton.next_power_of_2(dim_v))
    if interpreting():
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": block_d, "BLOCK_DV": block_dv}
    table = _TILES_SM90 if arch == 90 else _TILES_OTHER
    block_m, block_n = table[min(max(block_d, block_dv, 64), 256)]
    if max(block_d, block_dv) > 256:  # wider than SD's heads: keep registers in bounds
        block_m, block_n = 16, 16
    return {
        "BLOCK_M": block_m,
        "BLOCK_N": block_n,
        "BLOCK_D": block_d,
        "BLOCK_DV": block_dv,
        "num_warps": 8,
        "num_stages": 2,
    }


def _arch(device: torch.device) -> int:
    """Compute capability as major*10 + minor (90 for H100); 0 off CUDA."""
    if device.type != "cuda":
        return 0
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def _launch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num_prompts: int,
    temperature: float,
    contrast: float,
    ensemble: str,
) -> torch.Tensor:
    """Launch the kernel; shapes as `fused_vicl_attention`."""
    batch, heads, nq, dim = q.shape
    total_keys, dim_v = k.shape[-2], v.shape[-1]
    segments = num_prompts if ensemble == "mean" else 1
    seg_len = total_keys // segments
    out = q.new_empty(batch, heads, nq, dim_v)
    blocks = _blocks(dim, dim_v, _arch(q.device))
    grid = (triton.cdiv(nq, blocks["BLOCK_M"]), batch * heads)
    _vicl_attention_kernel[grid](
        q, k, v, out,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        heads, nq, seg_len, segments,
        1.0 / (temperature * math.sqrt(dim)), 1.0 / seg_len, float(contrast),
        DIM=dim,
        DIM_V=dim_v,
        UPCAST=interpreting(),
        IEEE_DOT=q.dtype == torch.float32,
        **blocks,
    )  # fmt: skip
    return out


# Why the kernel could not run, once per reason; the torch path ran instead (see below).
FALLBACKS: list[str] = []
# Per input signature: whether the kernel's first output matched the torch kernel's.
_SELF_CHECKED: dict[tuple, bool] = {}
# Relative error allowed in that first comparison (bf16/fp16 keep 8/11 bits).
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def _fall_back(reason: str) -> None:
    if reason not in FALLBACKS:
        FALLBACKS.append(reason)
        warnings.warn(
            f"fused VICL attention kernel: {reason}; using the torch kernel. "
            "Set sampler.attention.kernel=torch to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )


@torch.library.custom_op("sdvicl::vicl_attention", mutates_args=())
def _vicl_attention_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num_prompts: int,
    temperature: float,
    contrast: float,
    ensemble: str,
) -> torch.Tensor:
    """The kernel as an opaque torch op, so `torch.compile` calls it instead of tracing it.

    Guards, because a GPU, driver or Triton version the kernel was never run on can fail
    it: the first call of each input signature (device, dtype, head widths, keys, n,
    ensemble) is compared with the torch kernel, and where Triton cannot build or launch the
    kernel (a compiler error, too little shared memory) or the comparison fails, the torch
    kernel computes the same numbers instead, for the rest of the process. A warning says
    so once per reason and `FALLBACKS` keeps it for benchmarks. Out-of-memory errors are
    not caught.
    """

    def torch_kernel() -> torch.Tensor:
        return vicl_attention(
            q,
            k,
            v,
            num_prompts=num_prompts,
            temperature=temperature,
            contrast=contrast,
            ensemble=ensemble,
            chunk_size=1024,
        )

    key = (q.device.type, q.dtype, q.shape[-1], v.shape[-1], k.shape[-2], num_prompts, ensemble)
    if _SELF_CHECKED.get(key) is False:
        return torch_kernel()
    try:
        out = _launch(q, k, v, num_prompts, temperature, contrast, ensemble)
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # any kernel failure falls back, loudly
        lines = str(err).strip().splitlines()
        _fall_back(f"failed ({type(err).__name__}: {lines[0][:200]})" if lines else "failed")
        return torch_kernel()
    if key not in _SELF_CHECKED:
        reference = torch_kernel()
        err = float((out.float() - reference.float()).norm() / reference.float().norm())
        tolerance = SELF_CHECK_TOLERANCE.get(q.dtype, 5e-2)
        _SELF_CHECKED[key] = bool(err <= tolerance)  # NaN fails too
        if not _SELF_CHECKED[key]:
            _fall_back(
                f"first output differs from the torch kernel's by {err:.1e} "
                f"(allowed {tolerance:.0e}; {q.dtype}, head {q.shape[-1]}, n {num_prompts})"
            )
            return reference
    return out


@_vicl_attention_op.register_fake
def _(q, k, v, num_prompts, temperature, contrast, ensemble):
    return q.new_empty(*q.shape[:-1], v.shape[-1])


def fused_vicl_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    num_prompts: int = 1,
    temperature: float = 0.4,
    contrast: float = 1.67,
    ensemble: str = "iwpe",
) -> torch.Tensor:
    """`vicl_attention` in one Triton kernel: same arguments (no chunk_size), same result.

    Args:
        q: (B, H, Nq, d) queries.
        k: (B, H, n*Nk, d) keys, the n prompts' blocks in order.
        v: (B, H, n*Nk, dv) values, same layout.

    Returns:
        (B, H, Nq, dv) in q's dtype. No score block is ever stored: memory is O(inputs).
    """
    if triton is None:
        raise RuntimeError("attention.kernel=triton needs the triton package")
    check_inputs(k, v, num_prompts, ensemble)
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    return _vicl_attention_op(
        q, k, v, int(num_prompts), float(temperature), float(contrast), str(ensemble)
    )
