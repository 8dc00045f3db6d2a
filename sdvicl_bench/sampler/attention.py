"""The SD-VICL self-attention: the math, the diffusers processor and its controller.

Read top to bottom:
1. `vicl_attention`: the modified attention of METHOD.md 5 on plain tensors.
2. `StreamLayout`: where A_1..A_n, B_1..B_n, C, D_mod, D_def sit in a U-Net batch.
3. `select_layers`: which attn1 layers are modified (METHOD.md 6).
4. `VICLController`: the per-step state every processor reads (one object, no globals).
5. `VICLAttnProcessor`: D_mod rows get the modified attention, every other row plain SDPA.
6. `vicl_processors`: a context manager that installs them and restores the originals.

The same math as one fused Triton kernel that stores no scores (the fast path on CUDA,
`attention.kernel`) lives in `fused_attention.py`; `resolve_kernel` picks between them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from sdvicl_bench.config import AttentionConfig
from sdvicl_bench.errors import ConfigError

# ----------------------------------------------------------------------------- 1. the math


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


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """`attention.kernel` ('auto' | 'torch' | 'triton') -> the kernel to run on `device`.

    auto: the fused Triton kernel on CUDA when Triton is installed, else `vicl_attention`.
    Raises ConfigError (one line) for 'triton' where it cannot run.
    """
    if kernel == "torch" or (kernel == "auto" and device.type != "cuda"):
        return "torch"
    from sdvicl_bench.sampler import fused_attention

    if fused_attention.can_run(device):
        return "triton"
    if kernel == "auto":
        return "torch"
    why = (
        "the triton package is not installed"
        if not fused_attention.triton_available()
        else (f"it runs on CUDA, and the model is on {device.type}")
    )
    raise ConfigError(
        f"sampler.attention.kernel=triton: {why}. Fix: sampler.attention.kernel=auto (or torch)."
    )


# ----------------------------------------------------------------------------- 2. batch layout


@dataclass(frozen=True)
class StreamLayout:
    """Rows of one episode's group in the U-Net batch: [A_1..A_n, B_1..B_n, C, D_mod, D_def].

    D_def exists only with swap guidance. Episodes are stacked group after group.
    """

    num_prompts: int
    swap: bool = True

    @property
    def size(self) -> int:
        """Group size: 2n+3 with swap guidance, 2n+2 without."""
        return 2 * self.num_prompts + 2 + int(self.swap)

    @property
    def a(self) -> slice:
        return slice(0, self.num_prompts)

    @property
    def b(self) -> slice:
        return slice(self.num_prompts, 2 * self.num_prompts)

    @property
    def c(self) -> int:
        return 2 * self.num_prompts

    @property
    def d_mod(self) -> int:
        return 2 * self.num_prompts + 1

    @property
    def d_def(self) -> int | None:
        return 2 * self.num_prompts + 2 if self.swap else None


# ----------------------------------------------------------------------------- 3. layer choice

_BLOCK_RE = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.|^(mid_block)\.")


def layer_position(name: str, num_levels: int) -> tuple[str, int]:
    """('down'|'mid'|'up', nominal side at 512 px) of an attention processor name.

    down_blocks.i runs at level i, up_blocks.j at level L-1-j, the mid block at L-1; the
    nominal side is 64 >> level (64, 32, 16, 8 in SD1.5), whatever the actual input size.
    """
    m = _BLOCK_RE.match(name)
    if not m:
        raise ValueError(f"not a U-Net attention processor name: {name}")
    if m.group(3):
        return "mid", 64 >> (num_levels - 1)
    index = int(m.group(2))
    if m.group(1) == "down_blocks":
        return "down", 64 >> index
    return "up", 64 >> (num_levels - 1 - index)


def select_layers(names: Sequence[str], num_levels: int, selectors: Sequence[str]) -> list[str]:
    """The attn1 processor names matched by `selectors` (METHOD.md 6).

    Selectors: `all`, `none`, `down`, `mid`, `up`, a side `64`, or `<block>.<side>` such as
    `up.64`. A selector that matches nothing is a config error.
    """
    attn1 = [n for n in names if n.endswith("attn1.processor")]
    chosen: set[str] = set()
    for sel in selectors:
        sel = str(sel).strip().lower()
        if sel == "none":
            continue
        block, _, side = sel.partition(".")
        if block.isdigit():
            block, side = "all", block
        if block not in ("all", "down", "mid", "up") or (side and not side.isdigit()):
            raise ConfigError(
                f"sampler.attention.layers: unknown selector '{sel}'. Use all, none, down, mid, "
                "up, a side (64, 32, 16, 8) or <block>.<side> such as up.64."
            )
        hits = [
            n
            for n in attn1
            if (block == "all" or layer_position(n, num_levels)[0] == block)
            and (not side or layer_position(n, num_levels)[1] == int(side))
        ]
        if not hits:
            raise ConfigError(
                f"sampler.attention.layers: selector '{sel}' matches no self-attention layer "
                "of this model (e.g. SD1.5 has none at down.8 or up.8)."
            )
        chosen.update(hits)
    return [n for n in attn1 if n in chosen]


# ----------------------------------------------------------------------------- 4. controller


@dataclass
class VICLController:
    """Per-step state shared by every VICL processor of one U-Net.

    diffusers' `Attention.forward` passes a processor only the kwargs its `__call__` names,
    so the sampler sets these fields before each U-Net call instead (METHOD.md 5).

    Attributes:
        config: the attention settings.
        layout: group layout of the current batch (n, swap).
        step: loop index i of the current U-Net call (0..T-1).
        active: False for calls whose batch is not a joint group (e.g. inverting C alone):
            then every selected layer behaves as plain attention.
        modified_calls: how often each layer ran the modified attention (for tests/logs).
        count_calls: keep `modified_calls` (off under torch.compile, where the changing
            counts would be guards that force recompiles).
        kernel: 'torch' or 'triton', resolved from `config.kernel` for the model's device.
    """

    config: AttentionConfig
    layout: StreamLayout = field(default_factory=lambda: StreamLayout(1))
    step: int = 0
    active: bool = True
    modified_calls: Counter = field(default_factory=Counter)
    count_calls: bool = True
    kernel: str = "torch"

    def modifies_now(self) -> bool:
        """Whether D_mod's attention is modified at the current step."""
        start, stop = self.config.steps
        in_window = (start is None or self.step >= start) and (stop is None or self.step < stop)
        return self.active and in_window


# ----------------------------------------------------------------------------- 5. processor


class VICLAttnProcessor:
    """attn1 processor: D_mod rows get `vicl_attention`, every other row plain SDPA.

    Q, K, V for D_mod come from the streams that `config.qkv` names (METHOD.md 5, paper
    Table 3): CAB = (Q_C, K_A, V_B) by default; DAB, CBB, DBB. Outside the step window, or
    when the controller is inactive, this is exactly diffusers' `AttnProcessor2_0`.
    """

    def __init__(self, controller: VICLController, name: str) -> None:
        self.controller = controller
        self.name = name
        self._plain = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        ctl = self.controller
        layout = ctl.layout
        if (
            not ctl.modifies_now()
            or encoder_hidden_states is not None
            or attention_mask is not None
            or hidden_states.shape[0] % layout.size
        ):
            return self._plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if ctl.count_calls:
            ctl.modified_calls[self.name] += 1
        return self._modified(attn, hidden_states, temb)

    def _modified(
        self, attn: Attention, hidden_states: torch.Tensor, temb: torch.Tensor | None
    ) -> torch.Tensor:
        """hidden_states (E*G, N, C) or (E*G, C, h, w) -> same shape.

        The layer's own pre- and post-processing exactly as `AttnProcessor2_0` does it, around
        `_attend`, which is where the rows get their attention.
        """
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            rows, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(rows, channel, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        out = self._attend(attn, hidden_states)

        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(rows, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _kernel(self):
        """The modified attention the controller's kernel names (same call signature)."""
        if self.controller.kernel == "triton":
            from sdvicl_bench.sampler.fused_attention import fused_vicl_attention

            return fused_vicl_attention
        return partial(vicl_attention, chunk_size=self.controller.config.chunk_size)

    def _attend(self, attn: Attention, hidden_states: torch.Tensor) -> torch.Tensor:
        """(E*G, N, C) -> (E*G, N, H*d): SDPA for plain rows, the modified attention for D_mod."""
        cfg, layout = self.controller.config, self.controller.layout
        rows, tokens, _ = hidden_states.shape
        episodes, group = rows // layout.size, layout.size

        def heads(x: torch.Tensor) -> torch.Tensor:  # (E*G, N, H*d) -> (E, G, H, N, d)
            return x.view(episodes, group, tokens, attn.heads, -1).transpose(2, 3)

        query = heads(attn.to_q(hidden_states))
        key = heads(attn.to_k(hidden_states))
        value = heads(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        # Plain rows (everything but D_mod): stock scaled-dot-product attention.
        dm = layout.d_mod

        def plain_rows(x: torch.Tensor) -> torch.Tensor:  # (E, G-1, H, N, d) -> (E(G-1), H, N, d)
            return torch.cat([x[:, :dm], x[:, dm + 1 :]], dim=1).flatten(0, 1)

        plain = F.scaled_dot_product_attention(
            plain_rows(query), plain_rows(key), plain_rows(value)
        ).unflatten(0, (episodes, group - 1))

        # D_mod rows: Q, K, V from the streams qkv names; n prompts side by side on tokens.
        def prompts(x: torch.Tensor, which: slice) -> torch.Tensor:  # -> (E, H, n*N, d)
            return x[:, which].transpose(1, 2).flatten(2, 3)

        q_src = layout.c if cfg.qkv[0] == "C" else dm
        k_src = layout.a if cfg.qkv[1] == "A" else layout.b
        mod = self._kernel()(
            query[:, q_src],
            prompts(key, k_src),
            prompts(value, layout.b),
            num_prompts=layout.num_prompts,
            temperature=cfg.temperature,
            contrast=cfg.contrast,
            ensemble=cfg.ensemble,
        )
        out = torch.cat([plain[:, :dm], mod.unsqueeze(1), plain[:, dm:]], dim=1)
        return out.transpose(2, 3).reshape(rows, tokens, -1).to(query.dtype)


# ----------------------------------------------------------------------------- 6. install


@contextmanager
def vicl_processors(unet, controller: VICLController) -> Iterator[list[str]]:
    """Install VICL processors on the selected attn1 layers of `unet`; restore on exit.

    Yields the names of the modified layers. Every other processor (attn2, unselected
    attn1) stays as it was. The originals come back even if the body raises.
    """
    original = dict(unet.attn_processors)
    num_levels = len(unet.config.block_out_channels)
    selected = select_layers(list(original), num_levels, controller.config.layers)
    procs = {
        name: VICLAttnProcessor(controller, name) if name in selected else proc
        for name, proc in original.items()
    }
    unet.set_attn_processor(dict(procs))  # a copy: diffusers pops entries
    try:
        yield selected
    finally:
        unet.set_attn_processor(dict(original))
