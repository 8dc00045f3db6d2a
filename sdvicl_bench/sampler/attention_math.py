"""The modified self-attention of METHOD.md 5 on plain tensors: the readable torch reference.

`attention.py` wires it into diffusers' attention layers (the processor picks this or the
fused Triton kernel of `fused_attention.py`, which computes the same numbers and falls back
to this one). It lives apart from both so that they import it and not each other.
"""

from __future__ import annotations

import math

import torch


def vicl_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    num_prompts: int = 1,
    temperature: float = 0.4,
    contrast: float = 1.67,
    ensemble: str = "iwpe",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """SD-VICL attention: out = clip(mu + beta (softmax(Q K^T / (tau sqrt d)) - mu), 0, 1) V.

    Args:
        q: (B, H, Nq, d) queries (from C for the default CAB triplet).
        k: (B, H, n*Nk, d) keys, the n prompts' blocks in order (from A_1..A_n).
        v: (B, H, n*Nk, d) values, same layout (from B_1..B_n).
        num_prompts: n.
        temperature: tau (1.0 = off); scores are divided by tau * sqrt(d).
        contrast: beta (1.0 = off); mu is the uniform row mean, no renormalisation after the
            clip (as in Cross-Image Attention).
        ensemble: "iwpe", one softmax over all n*Nk keys (mu = 1/(n Nk)); "mean", each
            prompt's own attention output (mu = 1/Nk), averaged over prompts (SegGPT's
            feature ensembling).
        chunk_size: query rows per block; each block holds chunk_size x n*Nk float32 scores
            per head and is exact. None = all rows at once.

    Returns:
        (B, H, Nq, d) in q's dtype. Softmax and contrast run in float32.
    """
    check_inputs(k, v, num_prompts, ensemble)
    batch, heads, nq, dim = q.shape
    nk = k.shape[-2] // num_prompts
    scale = 1.0 / (temperature * math.sqrt(dim))
    if ensemble == "mean":  # (B, H, n, Nk, d): one softmax per prompt
        k = k.unflatten(-2, (num_prompts, nk))
        v = v.unflatten(-2, (num_prompts, nk))
        mu = 1.0 / nk
    else:
        mu = 1.0 / (num_prompts * nk)
    chunk = nq if chunk_size is None else max(1, int(chunk_size))
    if chunk >= nq:
        return _attend_block(q, k, v, scale, mu, contrast, ensemble)
    out = q.new_empty(batch, heads, nq, v.shape[-1])
    for start in range(0, nq, chunk):
        rows = slice(start, start + chunk)
        out[:, :, rows] = _attend_block(q[:, :, rows], k, v, scale, mu, contrast, ensemble)
    return out


def check_inputs(k: torch.Tensor, v: torch.Tensor, num_prompts: int, ensemble: str) -> None:
    """ValueError unless k, v hold `num_prompts` equal blocks and `ensemble` is known."""
    if ensemble not in ("iwpe", "mean"):
        raise ValueError(f"ensemble must be 'iwpe' or 'mean', got {ensemble!r}")
    if k.shape[-2] % num_prompts or k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"k {tuple(k.shape)} / v {tuple(v.shape)} do not hold {num_prompts} blocks"
        )


def _attend_block(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    mu: float,
    contrast: float,
    ensemble: str,
) -> torch.Tensor:
    """One block of query rows. q (B, H, c, d); k, v (B, H, n*Nk, d) or (B, H, n, Nk, d)."""
    if ensemble == "mean":
        q = q.unsqueeze(2)  # (B, H, 1, c, d) against (B, H, n, Nk, d)
    # Scores in float32 (q, k are small next to the chunk x n*Nk score block, so upcasting them
    # is cheap and keeps large logits exact), one softmax, then contrast and clip in place.
    scores = torch.matmul(q.float() * scale, k.float().transpose(-1, -2))
    probs = scores.softmax(dim=-1)
    del scores
    if contrast != 1.0:  # mu + beta (P - mu) = beta P + (1 - beta) mu
        probs.mul_(contrast).add_((1.0 - contrast) * mu).clamp_(0.0, 1.0)
    out = torch.matmul(probs.to(v.dtype), v)
    if ensemble == "mean":
        out = out.mean(dim=2)
    return out.to(q.dtype)
