"""The naive SD-VICL sampler: the same numbers as `Sampler`, computed the wasteful way.

A reference in the style of the method's ancestor (Cross-Image Attention), for the speed
benchmark (METHOD.md 9) and for tests that the fast path changes no number:

1. Inversion first: every image A_1..A_n, B_1..B_n, C is inverted with edit-friendly
   inversion, one U-Net call per step over the 2n+1 images. Only C's noise maps are used;
   A and B still enter the joint loop at their independently sampled x_t.
2. The joint loop runs the two guidance passes separately over every stream
   [A_1..A_n, B_1..B_n, C, D]: one with the modified attention on D's row (eps_mod), one
   plain (eps_def). Per step 2n+1 + 2(2n+2) = 6n+5 image-passes (4n+3 without swap
   guidance), against the fused loop's 2n+3 (2n+2).
3. Attention is materialised: the modified layers compute every row's own attention with
   diffusers' classic `AttnProcessor` math and then overwrite D's row with
   `vicl_attention(chunk_size=None)`; every other attention layer runs the classic
   `AttnProcessor` (no SDPA) for the duration of a run.

The step math (the denoiser's step, swap_guidance, adain, last_z_zero, init=noise) is the
pipeline's own. `first_step_eps` gives one step's predictions (eps for an epsilon model) of
either sampler for the same inputs, so the two paths can be compared one step at a time.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor

from sdvicl_bench.sampler.attention import (
    StreamLayout,
    VICLAttnProcessor,
    VICLController,
    in_window,
    layer_positions,
    select_layers,
    vicl_processors,
)
from sdvicl_bench.sampler.attention_math import vicl_attention
from sdvicl_bench.sampler.guidance import adain, swap_guidance
from sdvicl_bench.sampler.inversion import Schedule, invert
from sdvicl_bench.sampler.noise import image_noise
from sdvicl_bench.sampler.pipeline import (
    Episode,
    EpisodeResult,
    Sampler,
    image_trajectories,
    tensor_picture,
)

# ----------------------------------------------------------------------------- processors


class NaiveAttnProcessor(VICLAttnProcessor):
    """attn1 processor in the ancestor's style: materialise, then overwrite D's row.

    Every row's own attention is computed with diffusers' classic `AttnProcessor` math
    (full score matrix per head); when the controller says the step is modified, each
    episode's D row (`layout.d_mod`) is then replaced by `vicl_attention` over the whole
    n*Nk keys at once (chunk_size=None). Q, K, V sources follow `config.qkv` as in
    `VICLAttnProcessor`, whose gating and pre/post-processing it shares. Otherwise it is
    exactly `AttnProcessor`.
    """

    def __init__(self, controller: VICLController, name: str) -> None:
        super().__init__(controller, name)
        self._plain = AttnProcessor()

    def _attend(
        self, attn: Attention, hidden_states: torch.Tensor, variants: Sequence[int]
    ) -> torch.Tensor:
        """(R, N, C) -> (R, N, H*d): materialised attention everywhere, then the D_mod rows
        of `variants` (the naive sampler has one)."""
        layout = self.controller.layout
        rows = hidden_states.shape[0]
        # Every row's plain attention, materialised: (R*H, N, d) -> (R, H, N, d).
        query, key, value = (
            attn.head_to_batch_dim(proj(hidden_states))
            for proj in (attn.to_q, attn.to_k, attn.to_v)
        )
        out = torch.bmm(attn.get_attention_scores(query, key), value)
        out, query, key, value = (
            x.unflatten(0, (rows, attn.heads)) for x in (out, query, key, value)
        )

        # Overwrite each episode's D row with the modified attention (one softmax, n*Nk keys).
        for base, variant in itertools.product(range(0, rows, layout.size), variants):
            cfg, d_mod = self.controller.configs[variant], layout.d_mods[variant]
            q_row = base + (layout.c if cfg.qkv[0] == "C" else d_mod)
            k_rows = layout.a if cfg.qkv[1] == "A" else layout.b
            k = torch.cat([key[base + r] for r in range(k_rows.start, k_rows.stop)], dim=1)
            v = torch.cat([value[base + r] for r in range(layout.b.start, layout.b.stop)], dim=1)
            out[base + d_mod] = vicl_attention(
                query[q_row][None],
                k[None],
                v[None],
                num_prompts=layout.num_prompts,
                temperature=cfg.temperature,
                contrast=cfg.contrast,
                ensemble=cfg.ensemble,
                chunk_size=None,
            )[0].to(out.dtype)
        return attn.batch_to_head_dim(out.flatten(0, 1))


@contextmanager
def naive_processors(
    unet, controller: VICLController, positions: Mapping[str, tuple[str, int]] | None = None
) -> Iterator[list[str]]:
    """Install `NaiveAttnProcessor` on the selected attn1 layers, the classic materialised
    `AttnProcessor` on every other attention layer; restore the originals on exit.

    positions: the layers the selectors resolve against (`Denoiser.attention_layers()`);
    None = a U-Net's (`layer_positions`). Yields the names of the modified layers.
    """
    original = dict(unet.attn_processors)
    if positions is None:
        positions = layer_positions(unet)
    selected = select_layers(positions, controller.config.layers)
    procs = {
        name: NaiveAttnProcessor(controller, name) if name in selected else AttnProcessor()
        for name in original
    }
    unet.set_attn_processor(dict(procs))  # a copy: diffusers pops entries
    try:
        yield selected
    finally:
        unet.set_attn_processor(dict(original))


# ----------------------------------------------------------------------------- inputs


@dataclass
class EpisodeTrajectories:
    """One episode's independently sampled latents (METHOD.md 3), as `Sampler` samples them.

    a, b: (T + 1, n, 4, h, w); c: (T + 1, 1, 4, h, w); the last entry of each is x0.
    """

    sched: Schedule
    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor

    @property
    def num_prompts(self) -> int:
        return self.a.shape[1]


def episode_trajectories(sampler: Sampler, episode: Episode) -> EpisodeTrajectories:
    """Encode one episode and sample every image's trajectory from its own noise.

    Same VAE batch and the same (seed, image id, role) noise keys as `Sampler.run_batch`.
    """
    cfg = sampler.cfg
    sched = sampler.model.schedule(cfg.steps, cfg.skip)
    x0_a, x0_b, x0_c = sampler._encode([episode])  # (1, n, 4, h, w), (1, n, ...), (1, 4, h, w)

    seeds = [episode.seed] * episode.num_prompts

    return EpisodeTrajectories(
        sched=sched,
        a=image_trajectories(x0_a[0], episode.prompt_ids, "A", seeds, sched),
        b=image_trajectories(x0_b[0], episode.target_ids, "B", seeds, sched),
        c=image_trajectories(x0_c, [episode.query_id], "C", [episode.seed], sched),
    )


# ----------------------------------------------------------------------------- sampler


@dataclass
class NaiveSampler(Sampler):
    """The wasteful reference sampler: same `run` API, results and counters as `Sampler`.

    Inherits `run` (input order kept), the VAE encoding and the counted denoiser call; the
    attention config is forced to `chunk_size=None` and the torch kernel. Episodes run one at
    a time whatever `cfg.batch_episodes` says.
    """

    def __post_init__(self) -> None:
        attention = dataclasses.replace(self.cfg.attention, chunk_size=None, kernel="torch")
        self.cfg = dataclasses.replace(self.cfg, attention=attention)
        super().__post_init__()

    @torch.inference_mode()
    def run_batch(
        self,
        episodes: Sequence[Episode],
        *,
        return_latents: bool = False,
        diagnostics: bool = False,
    ) -> list[EpisodeResult]:
        """Each episode on its own: invert all, then the two guidance passes per step."""
        results = []
        for ep in episodes:
            x_d, trace = self._run_one(ep, diagnostics)
            results.append(
                EpisodeResult(
                    picture=tensor_picture(self.model.decode(x_d)[0]),
                    latents=x_d[0].float().cpu() if return_latents else None,
                    diagnostics=trace if diagnostics else None,
                )
            )
        return results

    def _run_one(self, episode: Episode, diagnostics: bool) -> tuple[torch.Tensor, list[dict]]:
        """D's final x0 (1, 4, h, w) float32 and the per-step diagnostics of one episode."""
        cfg, ctl, model = self.cfg, self.controller, self.model
        tr = episode_trajectories(self, episode)
        n, sched, T = tr.num_prompts, tr.sched, len(tr.sched)
        trace: list[dict] = []
        with naive_processors(model.network, ctl, model.attention_layers()):
            # 1. Invert every image (2n+1 image-passes per step); keep only C's noise maps.
            ctl.active = False
            every = torch.cat([tr.a, tr.b, tr.c], dim=1)  # (T + 1, 2n+1, 4, h, w)
            zs_c = invert(self._plain_predict, every, sched, model.noise_map)[:, 2 * n :]

            # 2. D starts at C's x_{t_1} (or, init=noise, from its own Gaussian noise).
            noise_d = None
            if cfg.init == "noise":
                shape = (T + 1, *tr.c.shape[2:])
                noise_d = image_noise(episode.seed, episode.query_id, "D", shape, every.device)
                x_d = noise_d[0][None]
            else:
                x_d = tr.c[0].clone()

            for i in range(T):
                # 3. Two separate passes over [A.., B.., C, D]: modified, then plain.
                eps_all, eps_def = self.guidance_eps(tr, x_d, i)
                eps_mod = eps_all[2 * n + 1 :]

                # 4. Swap guidance, C's (or D's own) noise map, the eta = 1 step, AdaIN.
                eps_d = (
                    eps_mod if eps_def is None else swap_guidance(eps_mod, eps_def, cfg.swap, i, T)
                )
                z = zs_c[i] if noise_d is None else noise_d[i + 1][None]
                if i == T - 1 and cfg.last_z_zero:
                    z = None
                x_d = model.step(x_d, eps_d, sched, i, z)
                if cfg.adain.enabled and in_window(i, cfg.adain.steps):
                    x_d = adain(x_d, tr.b[i + 1][None])

                if diagnostics:
                    trace.append(self._diagnose_naive(i, sched, x_d, eps_all, eps_def, n))
        return x_d, trace

    def guidance_eps(
        self, tr: EpisodeTrajectories, x_d: torch.Tensor, i: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The guidance passes of step i over [A_1..A_n, B_1..B_n, C, D] (2n+2 rows each).

        Needs `naive_processors` installed. Returns every row's prediction of the modified
        pass (2n+2, 4, h, w) (D's row is eps_mod) and D's prediction of the plain pass
        (1, 4, h, w), or None without swap guidance (eps for an epsilon model).
        """
        ctl, n, t = self.controller, tr.num_prompts, tr.sched.timesteps[i]
        x = torch.cat([tr.a[i], tr.b[i], tr.c[i], x_d])  # (2n+2, 4, h, w)
        ctl.use(StreamLayout(n, swap=False), [self.cfg.attention])
        ctl.step, ctl.active = i, True
        eps_all = self._predict(x, t)
        eps_def = None
        if self.cfg.swap.enabled:
            ctl.active = False
            eps_def = self._predict(x, t)[2 * n + 1 :]
        return eps_all, eps_def

    def _diagnose_naive(self, i, sched, x_d, eps_all, eps_def, n: int) -> dict:
        """`Sampler._diagnose` on the [A.., B.., C, D_mod, D_def] group rebuilt from two passes."""
        group = eps_all if eps_def is None else torch.cat([eps_all, eps_def])
        diag = self._diagnose(i, sched, x_d, group[None], StreamLayout(n, eps_def is not None))
        return {k: (v[0] if isinstance(v, list) else v) for k, v in diag.items()}


# ----------------------------------------------------------------------------- one step


@torch.inference_mode()
def first_step_eps(sampler: Sampler, episode: Episode) -> dict[str, torch.Tensor | None]:
    """Step 0's predictions of either sampler for one episode (same inputs for both).

    The optimized side (`Sampler`) makes one denoiser call over [A.., B.., C, D_mod, D_def]
    through `vicl_processors`, as `Sampler.run_batch` does; the naive side runs its
    inversion pass over [A.., B.., C] (eps_c) and its two guidance passes. D's input is C's
    x_{t_1} (init=inversion).

    Returns float32 tensors (1, 4, h, w), the model's predictions (eps for an epsilon
    model): eps_mod (D with the modified attention), eps_def
    (D with plain attention; None without swap guidance), eps_c (C, plain attention).
    """
    tr = episode_trajectories(sampler, episode)
    n, t, x_d = tr.num_prompts, tr.sched.timesteps[0], tr.c[0]
    ctl, model = sampler.controller, sampler.model
    if isinstance(sampler, NaiveSampler):
        with naive_processors(model.network, ctl, model.attention_layers()):
            ctl.active = False
            eps_c = sampler._predict(torch.cat([tr.a[0], tr.b[0], tr.c[0]]), t)[2 * n :]
            eps_all, eps_def = sampler.guidance_eps(tr, x_d, 0)
        return {"eps_mod": eps_all[2 * n + 1 :], "eps_def": eps_def, "eps_c": eps_c}

    layout = StreamLayout(n, sampler.cfg.swap.enabled)
    streams = [tr.a[0], tr.b[0], tr.c[0], x_d] + ([x_d] if layout.swap else [])
    ctl.use(layout, [sampler.cfg.attention])
    ctl.step, ctl.active = 0, True
    with vicl_processors(model.network, ctl, model.attention_layers()):
        eps = sampler._predict(torch.cat(streams), t)  # (2n+3, 4, h, w)
    return {
        "eps_mod": eps[layout.d_mod : layout.d_mod + 1],
        "eps_def": eps[layout.d_def : layout.d_def + 1] if layout.swap else None,
        "eps_c": eps[layout.c : layout.c + 1],
    }
