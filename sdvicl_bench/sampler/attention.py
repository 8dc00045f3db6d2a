"""The SD-VICL self-attention in diffusers' attention layers: processor and controller.

Read top to bottom:
1. `resolve_kernel`: which kernel computes the modified attention of METHOD.md 5: the torch
   reference `attention_math.vicl_attention`, or the same math as one fused Triton kernel
   that stores no scores (`fused_attention.py`, the fast path on CUDA).
2. `StreamLayout`: where A_1..A_n, B_1..B_n, C and each variant's D_mod, D_def sit in a
   batch of the denoiser (one variant = the plain sampler; several = `variants.py`).
3. `select_layers`: which self-attention layers are modified (METHOD.md 6), by the
   (block, side) each layer has; `layer_positions` names them for a diffusers U-Net.
4. `VICLController`: the per-step state every processor reads (one object, no globals).
5. `VICLAttnProcessor`: D_mod rows get the modified attention, every other row plain SDPA.
6. `vicl_processors`: a context manager that installs them and restores the originals.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from sdvicl_bench.config import AttentionConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.sampler.attention_math import vicl_attention

# ----------------------------------------------------------------------------- 1. the kernel


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
    """Rows of one episode's group in the U-Net batch:

        [A_1..A_n, B_1..B_n, C, D_mod^1, D_def^1, ..., D_mod^V, D_def^V]

    One (D_mod, D_def) pair per variant of the sampler settings (`variants.py`); D_def^v
    exists only when variant v uses swap guidance. The plain sampler is V = 1:
    [A_1..A_n, B_1..B_n, C, D_mod, D_def]. Episodes are stacked group after group.

    swap: whether each variant has a D_def row; a single bool is one variant.
    """

    num_prompts: int
    swap: bool | tuple[bool, ...] = True

    @property
    def swaps(self) -> tuple[bool, ...]:
        """Per variant: whether it has a D_def row."""
        return (self.swap,) if isinstance(self.swap, bool) else tuple(self.swap)

    @property
    def num_variants(self) -> int:
        return len(self.swaps)

    @property
    def size(self) -> int:
        """Group size: 2n+1 shared rows, then 2 rows per variant with swap guidance, 1 without
        (2n+3 for one variant with swap guidance, 2n+1+2V when all V variants use it)."""
        return 2 * self.num_prompts + 1 + sum(2 if swap else 1 for swap in self.swaps)

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
    def d_mods(self) -> tuple[int, ...]:
        """Row of each variant's D_mod."""
        rows, row = [], self.c + 1
        for swap in self.swaps:
            rows.append(row)
            row += 2 if swap else 1
        return tuple(rows)

    @property
    def d_defs(self) -> tuple[int | None, ...]:
        """Row of each variant's D_def (right after its D_mod), None without swap guidance."""
        return tuple(
            r + 1 if swap else None for r, swap in zip(self.d_mods, self.swaps, strict=True)
        )

    @property
    def d_mod(self) -> int:
        """The first (for V = 1: the only) variant's D_mod row."""
        return self.d_mods[0]

    @property
    def d_def(self) -> int | None:
        """The first (for V = 1: the only) variant's D_def row."""
        return self.d_defs[0]


# ----------------------------------------------------------------------------- 3. layer choice
# A model's self-attention layers are positions: processor name -> (block, side), block one of
# BLOCKS. The denoiser says what its layers are (`Denoiser.attention_layers`); a diffusers
# U-Net's are named here (`layer_positions`), and selectors resolve against any of them.

_BLOCK_RE = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.|^(mid_block)\.")
BLOCKS = ("down", "mid", "up")


def layer_position(name: str, num_levels: int, latent_side: int) -> tuple[str, int]:
    """('down'|'mid'|'up', token grid side) of an attention processor name.

    latent_side: the U-Net's input side (its `sample_size` at the default resolution). Each
    level halves it: down_blocks.i runs at latent_side >> i, up_blocks.j at
    latent_side >> (L-1-j), the mid block at latent_side >> (L-1), L = num_levels.
    """
    m = _BLOCK_RE.match(name)
    if not m:
        raise ValueError(f"not a U-Net attention processor name: {name}")
    if m.group(3):
        return "mid", latent_side >> (num_levels - 1)
    index = int(m.group(2))
    if m.group(1) == "down_blocks":
        return "down", latent_side >> index
    return "up", latent_side >> (num_levels - 1 - index)


def layer_positions(unet) -> dict[str, tuple[str, int]]:
    """Every attn1 processor name of `unet` -> (block, side it sees at the default resolution).

    The default resolution is the U-Net's configured `sample_size` (its latent side; 64 for
    SD1.5/2.1 at 512 px, 128 for SDXL at 1024 px, 32 for the pixel-space toy model), so
    `up.64` means the same layers whatever size a run samples at. In U-Net order.
    """
    config = unet.config
    size = config.sample_size
    side = int(size if isinstance(size, int) else size[0])
    levels = len(config.block_out_channels)
    return {
        name: layer_position(name, levels, side)
        for name in unet.attn_processors
        if name.endswith("attn1.processor")
    }


def count_layers(positions: Mapping[str, tuple[str, int]]) -> dict[str, int]:
    """{'<block>.<side>': attn1 layers} in the order data flows: down (fine to coarse), mid,
    up (coarse to fine)."""
    counts = Counter(positions.values())
    order = sorted(counts, key=lambda p: (BLOCKS.index(p[0]), p[1] if p[0] == "up" else -p[1]))
    return {f"{block}.{side}": counts[block, side] for block, side in order}


def describe_layers(positions: Mapping[str, tuple[str, int]]) -> str:
    """'down.64 (2), down.32 (2), ..., up.64 (3)': the selectors a model has, with counts."""
    return ", ".join(f"{sel} ({n})" for sel, n in count_layers(positions).items())


def select_layers(positions: Mapping[str, tuple[str, int]], selectors: Sequence[str]) -> list[str]:
    """The attn1 processor names matched by `selectors` (METHOD.md 6), in U-Net order.

    positions: attn1 name -> (block, side), from `layer_positions(unet)`.
    Selectors: `all`, `none`, `down`, `mid`, `up`, a side `64`, `<block>.<side>` such as
    `up.64` (sides as the layers see them at the model's default resolution), or
    `<block>.finest` / `finest`: the block's largest side among its attention layers (the
    decoder's finest level is up.64 in SD1.5 and SDXL, up.32 in the toy model). A selector
    that matches nothing is a one-line ConfigError naming the selectors this model has.
    """
    chosen: set[str] = set()
    for sel in selectors:
        sel = str(sel).strip().lower()
        if sel == "none":
            continue
        block, _, side = sel.partition(".")
        if block.isdigit() or block == "finest":
            block, side = "all", block
        if block not in ("all", *BLOCKS) or (side and not (side.isdigit() or side == "finest")):
            raise ConfigError(
                f"sampler.attention.layers: unknown selector '{sel}'. Use all, none, down, mid, "
                "up, a side (e.g. 64), <block>.<side> such as up.64, or <block>.finest."
            )
        in_block = {n: s for n, (b, s) in positions.items() if block == "all" or b == block}
        if side == "finest" and in_block:
            side = str(max(in_block.values()))
        hits = [n for n, s in in_block.items() if not side or s == int(side)]
        if not hits:
            raise ConfigError(
                f"sampler.attention.layers: selector '{sel}' matches no self-attention layer "
                f"of this model; it has {describe_layers(positions) or 'none'}. Fix: pick one "
                "of those (sides at the model's default resolution) or <block>.finest."
            )
        chosen.update(hits)
    return [n for n in positions if n in chosen]


# ----------------------------------------------------------------------------- 4. controller


@dataclass
class VICLController:
    """Per-step state shared by every VICL processor of one U-Net.

    diffusers' `Attention.forward` passes a processor only the kwargs its `__call__` names,
    so the sampler sets these fields before each U-Net call instead (METHOD.md 5).

    Several variants (`variants.py`) each have a D_mod row in `layout`, their own attention
    settings in `configs` and their own modified layers in `layer_sets`; one variant is the
    plain sampler.

    Attributes:
        config: the attention settings (of the first variant; for V = 1 the only ones).
        layout: group layout of the current batch (n, each variant's swap guidance).
        step: loop index i of the current U-Net call (0..T-1). Setting it (or `use`)
            recomputes which variants' step windows hold it, so compiled code reads that
            tuple, which is the same at every step of a window, and never the step itself
            (dynamo treats a module's int as a constant: one recompile per step otherwise).
        active: False for calls whose batch is not a joint group (e.g. inverting C alone):
            then every selected layer behaves as plain attention.
        modified_calls: how often each layer ran the modified attention (for tests/logs).
        count_calls: keep `modified_calls` (off under torch.compile, where the changing
            counts would be guards that force recompiles).
        kernel: 'torch' or 'triton', resolved from `config.kernel` for the model's device.
        variants: every variant's attention settings, `config` first; () = just `config`.
            Set both with `use`.
        layer_sets: each variant's modified layer names, set by `vicl_processors`;
            () = every layer that has a VICL processor (processors built by hand).
    """

    config: AttentionConfig
    layout: StreamLayout = field(default_factory=lambda: StreamLayout(1))
    _step: int = field(default=0, init=False, repr=False)
    _in_window: tuple[bool, ...] = field(default=(), init=False, repr=False)
    active: bool = True
    modified_calls: Counter = field(default_factory=Counter)
    count_calls: bool = True
    kernel: str = "torch"
    variants: tuple[AttentionConfig, ...] = ()
    layer_sets: tuple[frozenset[str], ...] = ()

    def __post_init__(self) -> None:
        self.step = 0

    @property
    def step(self) -> int:
        return self._step

    @step.setter
    def step(self, i: int) -> None:
        self._step = i
        self._in_window = tuple(in_window(i, cfg.steps) for cfg in self.configs)

    @property
    def configs(self) -> tuple[AttentionConfig, ...]:
        """Each variant's attention settings, in the order of `layout`'s D_mod rows."""
        return self.variants or (self.config,)

    def use(self, layout: StreamLayout, configs: Sequence[AttentionConfig]) -> None:
        """Set the batch layout and one attention config per variant (the first is `config`)."""
        if len(configs) != layout.num_variants:
            raise ValueError(f"{len(configs)} attention configs for {layout.num_variants} variants")
        self.layout = layout
        self.config = configs[0]
        self.variants = tuple(configs)
        self.step = self._step

    def modified_variants(self, name: str) -> list[int]:
        """The variants whose D_mod row gets the modified attention at layer `name` now:
        the layer is one of theirs and the current step lies in their window."""
        if not self.active:
            return []
        return [
            v
            for v, now in enumerate(self._in_window)
            if now and (not self.layer_sets or name in self.layer_sets[v])
        ]

    def modifies_now(self) -> bool:
        """Whether any variant's D_mod attention is modified at the current step."""
        return self.active and any(self._in_window)


def in_window(i: int, window: tuple[int | None, int | None]) -> bool:
    """Whether loop index i lies in the window [start, stop) (None = open end)."""
    start, stop = window
    return (start is None or i >= start) and (stop is None or i < stop)


# ----------------------------------------------------------------------------- 5. processor


class VICLAttnProcessor:
    """attn1 processor: D_mod rows get `vicl_attention`, every other row plain SDPA.

    Q, K, V for D_mod come from the streams that `config.qkv` names (METHOD.md 5, paper
    Table 3): CAB = (Q_C, K_A, V_B) by default; DAB, CBB, DBB. With several variants, each
    D_mod row uses its own variant's settings, and a variant whose layers or step window
    leave out this layer now gets plain attention on its D_mod row. When no variant is
    modified here now, or the controller is inactive, this is exactly diffusers'
    `AttnProcessor2_0`.
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
        variants = ctl.modified_variants(self.name)
        if (
            not variants
            or encoder_hidden_states is not None
            or attention_mask is not None
            or hidden_states.shape[0] % ctl.layout.size
        ):
            return self._plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if ctl.count_calls:
            ctl.modified_calls[self.name] += 1
        return self._modified(attn, hidden_states, temb, variants)

    def _modified(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None,
        variants: Sequence[int],
    ) -> torch.Tensor:
        """hidden_states (E*G, N, C) or (E*G, C, h, w) -> same shape.

        The layer's own pre- and post-processing exactly as `AttnProcessor2_0` does it, around
        `_attend`, which is where the rows get their attention (`variants`: whose D_mod rows
        get the modified one).
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

        out = self._attend(attn, hidden_states, variants)

        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(rows, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _kernel(self, cfg: AttentionConfig):
        """The modified attention the controller's kernel names (same call signature)."""
        if self.controller.kernel == "triton":
            from sdvicl_bench.sampler.fused_attention import fused_vicl_attention

            return fused_vicl_attention
        return partial(vicl_attention, chunk_size=cfg.chunk_size)

    def _attend(
        self, attn: Attention, hidden_states: torch.Tensor, variants: Sequence[int]
    ) -> torch.Tensor:
        """(E*G, N, C) -> (E*G, N, H*d): the modified attention for the D_mod rows of
        `variants`, SDPA for every other row."""
        layout = self.controller.layout
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

        out = query.new_empty(episodes, group, attn.heads, tokens, value.shape[-1])

        # Plain rows (all but the modified D_mod rows): stock scaled-dot-product attention.
        modified = {layout.d_mods[v]: v for v in variants}  # row -> variant
        plain = [r for r in range(group) if r not in modified]
        out[:, plain] = F.scaled_dot_product_attention(
            query[:, plain].flatten(0, 1),
            key[:, plain].flatten(0, 1),
            value[:, plain].flatten(0, 1),
        ).unflatten(0, (episodes, len(plain)))

        # Modified D_mod rows: Q, K, V from the streams the variant's qkv names; the n
        # prompts side by side on the token axis.
        def prompts(x: torch.Tensor, which: slice) -> torch.Tensor:  # -> (E, H, n*N, d)
            return x[:, which].transpose(1, 2).flatten(2, 3)

        values_b = prompts(value, layout.b)
        keys_of: dict[str, torch.Tensor] = {}  # K of A or B, laid out once for all variants
        for row, v in modified.items():
            cfg = self.controller.configs[v]
            q_src = layout.c if cfg.qkv[0] == "C" else row
            k_name = cfg.qkv[1]
            if k_name not in keys_of:
                keys_of[k_name] = prompts(key, layout.a if k_name == "A" else layout.b)
            out[:, row] = self._kernel(cfg)(
                query[:, q_src],
                keys_of[k_name],
                values_b,
                num_prompts=layout.num_prompts,
                temperature=cfg.temperature,
                contrast=cfg.contrast,
                ensemble=cfg.ensemble,
            )
        return out.transpose(2, 3).reshape(rows, tokens, -1).to(query.dtype)


# ----------------------------------------------------------------------------- 6. install


@contextmanager
def vicl_processors(
    unet, controller: VICLController, positions: Mapping[str, tuple[str, int]] | None = None
) -> Iterator[list[str]]:
    """Install VICL processors on the selected attn1 layers of `unet`; restore on exit.

    unet: any diffusers model with `attn_processors` / `set_attn_processor` (the denoiser's
        `network`). positions: its self-attention layers -> (block, side), what the
        selectors resolve against (`Denoiser.attention_layers()`); None = a U-Net's
        (`layer_positions`).

    With several variants (`controller.configs`), each variant's selection goes into
    `controller.layer_sets` and the processors go on their union. Yields the names of the
    modified layers. Every other processor (attn2, unselected attn1) stays as it was. The
    originals come back even if the body raises.
    """
    original = dict(unet.attn_processors)
    if positions is None:
        positions = layer_positions(unet)
    controller.layer_sets = tuple(
        frozenset(select_layers(positions, cfg.layers)) for cfg in controller.configs
    )
    selected = [name for name in original if any(name in s for s in controller.layer_sets)]
    procs = {
        name: VICLAttnProcessor(controller, name) if name in selected else proc
        for name, proc in original.items()
    }
    unet.set_attn_processor(dict(procs))  # a copy: diffusers pops entries
    try:
        yield selected
    finally:
        unet.set_attn_processor(dict(original))
        controller.layer_sets = ()
