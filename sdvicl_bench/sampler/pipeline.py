"""The SD-VICL joint denoising loop (METHOD.md 2-4), one denoiser call per step.

The model is a `denoiser.Denoiser`: the loop asks it for the schedule, one prediction per
call, the scheduler and inversion steps on that prediction, and its attention layers; it
names no backbone, architecture or prediction type.

Per step, one batch of 2n+3 image streams per episode:
    [A_1..A_n, B_1..B_n, C, D_mod, D_def]
A, B and C enter at their independently sampled x_t (edit-friendly, never denoised); D_mod
and D_def share D's latent and differ only inside the modified attn1 layers. C's noise map
comes out of the same pass (fused inversion), D steps with it, swap guidance mixes D's two
predictions, and AdaIN pulls D's channel statistics toward B's.

Variants (`variants.py`): settings that act on D only can differ between V variants of the
sampler, which then share the A, B, C rows: one call per step over
    [A_1..A_n, B_1..B_n, C, D_mod^1, D_def^1, ..., D_mod^V, D_def^V]
(D_def^v only if variant v uses swap guidance). The plain sampler is the case V = 1 of the
same loop (`_run_joint`).

Entry points: `Sampler(model, cfg).run(episodes)` for many episodes (batched by
`cfg.batch_episodes`), `Sampler(model, cfg).run_variants(episodes, variants)` for the same
episodes under several sampler configs at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from sdvicl_bench.config import SamplerConfig
from sdvicl_bench.sampler.attention import (
    StreamLayout,
    VICLController,
    in_window,
    resolve_kernel,
    vicl_processors,
)
from sdvicl_bench.sampler.denoiser import Denoiser
from sdvicl_bench.sampler.guidance import adain, swap_guidance, swap_weight
from sdvicl_bench.sampler.inversion import Schedule, invert, sample_trajectory
from sdvicl_bench.sampler.noise import image_noise
from sdvicl_bench.sampler.variants import check_row_budget, check_shareable, variant_layout


@dataclass
class Episode:
    """One in-context problem: n prompt pairs (A_i, B_i) and a query C.

    Ids key each image's noise (METHOD.md 3); left out, they are hashes of the pictures'
    content, so identical pictures share noise wherever they sit.
    """

    prompts: Sequence[Image.Image]
    targets: Sequence[Image.Image]
    query: Image.Image
    seed: int = 0
    prompt_ids: Sequence[str] | None = None
    target_ids: Sequence[str] | None = None
    query_id: str | None = None
    target_resample: str = "nearest"  # how the B pictures reach the sampler's side (RESAMPLE)

    def __post_init__(self) -> None:
        if self.target_resample not in RESAMPLE:
            raise ValueError(f"target_resample must be one of {sorted(RESAMPLE)}")
        if not self.prompts or len(self.prompts) != len(self.targets):
            raise ValueError("an episode needs n >= 1 prompt images and as many ground truths")
        self.prompt_ids = list(self.prompt_ids or [content_id(im) for im in self.prompts])
        self.target_ids = list(self.target_ids or [content_id(im) for im in self.targets])
        self.query_id = self.query_id or content_id(self.query)

    @property
    def num_prompts(self) -> int:
        return len(self.prompts)


@dataclass
class EpisodeResult:
    """The raw prediction picture D (resolution x resolution RGB), optionally more.

    latents: D's final x0 (4, h, w) float32 on the CPU, if asked for.
    diagnostics: one dict per step (i, t, w, d_mean, d_std, swap_delta), if asked for.
    """

    picture: Image.Image
    latents: torch.Tensor | None = None
    diagnostics: list[dict] | None = None


def content_id(image: Image.Image) -> str:
    """A short hash of a picture's pixels (its default noise key)."""
    h = hashlib.sha1(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()[:16]


RESAMPLE: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "area": Image.Resampling.BOX,
}
"""How a picture is resized to the sampler's side: photos bicubic; ground-truth pictures
NEAREST by default so palette colours stay pure (METHOD.md 2), or area (BOX: the mean of the
covered pixels) where thin white-on-black lines would vanish under NEAREST (edges)."""


def picture_tensor(image: Image.Image, size: int, *, resample: str = "bicubic") -> torch.Tensor:
    """PIL picture -> (3, size, size) float32 in [-1, 1], resized uncropped (``RESAMPLE``)."""
    arr = np.asarray(
        image.convert("RGB").resize((size, size), RESAMPLE[resample]), dtype=np.float32
    )
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def tensor_picture(x: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> RGB PIL picture."""
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def image_trajectories(
    x0: torch.Tensor, ids: Sequence[str], role: str, seeds: Sequence[int], sched: Schedule
) -> torch.Tensor:
    """Sampled latents of N images, each from its own (seed, id, role) noise (METHOD.md 3).

    x0: (N, 4, h, w) clean latents. Returns (T + 1, N, 4, h, w), the last entry x0 itself.
    """
    shape = (len(sched), *x0.shape[1:])
    noise = torch.stack(
        [image_noise(s, i, role, shape, x0.device) for s, i in zip(seeds, ids, strict=True)],
        dim=1,
    )  # (T, N, 4, h, w)
    return sample_trajectory(x0, noise, sched)


@dataclass
class Sampler:
    """Runs SD-VICL episodes with one model and one sampler config.

    Counters (for tests and benchmarks): `unet_calls` (denoiser calls) and `image_passes`
    (rows through the denoiser), accumulated over the sampler's life.
    """

    model: Denoiser
    cfg: SamplerConfig
    unet_calls: int = 0
    image_passes: int = 0
    controller: VICLController = field(init=False)

    def __post_init__(self) -> None:
        self.controller = VICLController(
            self.cfg.attention,
            count_calls=not self.model.compiled,  # torch.compile'd: no Python counters
            kernel=resolve_kernel(self.cfg.attention.kernel, self.model.device),
        )

    # ------------------------------------------------------------------ public

    def run(
        self,
        episodes: Sequence[Episode],
        *,
        return_latents: bool = False,
        diagnostics: bool = False,
    ) -> list[EpisodeResult]:
        """Run episodes in batches of up to `cfg.batch_episodes` consecutive ones with the same n.

        Results come back in input order and do not depend on the batching.
        """
        results: list[EpisodeResult] = []
        for batch in self._batches(episodes, [self.cfg]):
            results += self.run_batch(batch, return_latents=return_latents, diagnostics=diagnostics)
        return results

    def run_variants(
        self,
        episodes: Sequence[Episode],
        variants: Sequence[SamplerConfig],
        *,
        return_latents: bool = False,
        diagnostics: bool = False,
    ) -> list[list[EpisodeResult]]:
        """Run the episodes under every sampler config of `variants`, all in one denoiser call
        per step: the variants share the rows A, B, C and each has its own D rows.

        Each variant's attention (qkv, temperature, contrast, ensemble, layers, step window),
        swap guidance, AdaIN, init and last_z_zero act on its own D. Episodes are batched as
        in `run`; rows per call = batch_episodes x (2n+1 + sum over variants of 2 with swap
        guidance, 1 without), see `variants.py`.

        Returns one list per variant (in the given order) of one result per episode (input
        order); each list equals `Sampler(model, variant).run(episodes)` within float error.
        Raises a one-line ConfigError when a variant differs from this sampler's config in a
        setting the rows cannot share (`variants.non_shareable_differences`: steps, skip,
        resolution, inversion) or a call would exceed `cfg.row_budget`. How settings
        (batch_episodes, row_budget, attention.kernel) are this sampler's.
        """
        variants = list(variants)
        check_shareable(self.cfg, variants)
        per_variant: list[list[EpisodeResult]] = [[] for _ in variants]
        for batch in self._batches(episodes, variants):
            out = self._run_joint(
                batch, variants, return_latents=return_latents, diagnostics=diagnostics
            )
            for results, more in zip(per_variant, out, strict=True):
                results += more
        return per_variant

    def run_batch(
        self,
        episodes: Sequence[Episode],
        *,
        return_latents: bool = False,
        diagnostics: bool = False,
    ) -> list[EpisodeResult]:
        """E episodes sharing n, in one denoiser batch of E x (2n+3) rows per step."""
        return self._run_joint(
            episodes, [self.cfg], return_latents=return_latents, diagnostics=diagnostics
        )[0]

    # ------------------------------------------------------------------ the loop

    @torch.inference_mode()
    def _run_joint(
        self,
        episodes: Sequence[Episode],
        variants: Sequence[SamplerConfig],
        *,
        return_latents: bool,
        diagnostics: bool,
    ) -> list[list[EpisodeResult]]:
        """E episodes sharing n under V variants: one denoiser call per step over E groups of
        [A.., B.., C, then each variant's D_mod (and D_def)]. Returns results[variant][episode].

        The schedule, resolution and inversion are `self.cfg`'s (the variants agree on them).
        """
        cfg, model = self.cfg, self.model
        n = episodes[0].num_prompts
        if any(ep.num_prompts != n for ep in episodes):
            raise ValueError("all episodes of one batch must have the same number of prompts")
        E, dev = len(episodes), model.device
        layout = variant_layout(n, variants)
        sched = model.schedule(cfg.steps, cfg.skip)
        T = len(sched)

        # 1. Encode every picture in one VAE batch: latents (E, n, 4, h, w) and (E, 4, h, w).
        x0_a, x0_b, x0_c = self._encode(episodes)
        shape = tuple(x0_c.shape[1:])

        # 2. Sample each image's trajectory x_{t_1..t_T}, x0 from its own noise (METHOD.md 3).
        seeds = [ep.seed for ep in episodes]
        seeds_n = [s for s in seeds for _ in range(n)]
        a_ids = [i for ep in episodes for i in ep.prompt_ids]
        b_ids = [i for ep in episodes for i in ep.target_ids]
        traj_a = image_trajectories(x0_a.flatten(0, 1), a_ids, "A", seeds_n, sched)
        traj_b = image_trajectories(x0_b.flatten(0, 1), b_ids, "B", seeds_n, sched)
        traj_c = image_trajectories(x0_c, [ep.query_id for ep in episodes], "C", seeds, sched)
        traj_a = traj_a.unflatten(1, (E, n))
        traj_b = traj_b.unflatten(1, (E, n))

        # 3. The reference path inverts C first (one extra denoiser call per step).
        zs_c = None
        if cfg.inversion == "separate":
            zs_c = invert(self._plain_predict, traj_c, sched, model.noise_map)

        # 4. Each variant's D starts at C's x_{t_1} (or, init=noise, from D's own Gaussian
        #    noise, the same for every variant that asks for it).
        noise_d = None
        if any(v.init == "noise" for v in variants):
            noise_d = torch.stack(
                [image_noise(ep.seed, ep.query_id, "D", (T + 1, *shape), dev) for ep in episodes],
                dim=1,
            )  # (T + 1, E, 4, h, w): start, then one map per step
        x_d = [noise_d[0] if v.init == "noise" else traj_c[0].clone() for v in variants]

        self.controller.use(layout, [v.attention for v in variants])
        self.controller.active = True
        trace: list[list[dict]] = [[] for _ in variants]
        with vicl_processors(model.network, self.controller, model.attention_layers()):
            for i, t in enumerate(sched.timesteps):
                # 5. One call over [A.., B.., C, D_mod, D_def per variant] for every episode;
                #    `out` is the model's prediction (eps for an epsilon model).
                streams = [traj_a[i], traj_b[i], traj_c[i][:, None]]
                for x, swap in zip(x_d, layout.swaps, strict=True):
                    streams += [x[:, None]] * (2 if swap else 1)
                self.controller.step = i
                out = self._predict(torch.cat(streams, dim=1).flatten(0, 1), t)
                out = out.unflatten(0, (E, layout.size))

                # 6. C's edit-friendly noise map from the same pass (fused inversion).
                if zs_c is None:
                    z_c = model.noise_map(traj_c[i + 1], traj_c[i], out[:, layout.c], sched, i)
                else:
                    z_c = zs_c[i]

                for v, var in enumerate(variants):
                    # 7. Swap guidance: out_def + gamma w(i) (out_mod - out_def).
                    out_d = out[:, layout.d_mods[v]]
                    if layout.swaps[v]:
                        out_d = swap_guidance(out_d, out[:, layout.d_defs[v]], var.swap, i, T)

                    # 8. Step D with C's noise map (init=noise: D's own; none after the last
                    #    step with last_z_zero).
                    z = noise_d[i + 1] if var.init == "noise" else z_c
                    if i == T - 1 and var.last_z_zero:
                        z = None
                    x_d[v] = model.step(x_d[v], out_d, sched, i, z)

                    # 9. AdaIN toward B at the same noise level (B's next sampled latent).
                    if var.adain.enabled and in_window(i, var.adain.steps):
                        x_d[v] = adain(x_d[v], traj_b[i + 1])

                    if diagnostics:
                        trace[v].append(self._diagnose(i, sched, x_d[v], out, layout, v, var))

        # 10. Decode each variant's D x0: the raw prediction pictures.
        return [
            self._results(x, trace[v] if diagnostics else None, return_latents)
            for v, x in enumerate(x_d)
        ]

    def _results(
        self, x_d: torch.Tensor, trace: list[dict] | None, return_latents: bool
    ) -> list[EpisodeResult]:
        """One variant's final x0 (E, 4, h, w) and per-step trace -> one result per episode."""
        pictures = self.model.decode(x_d)
        results = []
        for e in range(len(x_d)):
            diag = None
            if trace is not None:
                diag = [
                    {k: (v[e] if isinstance(v, list) else v) for k, v in d.items()} for d in trace
                ]
            results.append(
                EpisodeResult(
                    picture=tensor_picture(pictures[e]),
                    latents=x_d[e].float().cpu() if return_latents else None,
                    diagnostics=diag,
                )
            )
        return results

    def _batches(
        self, episodes: Sequence[Episode], variants: Sequence[SamplerConfig]
    ) -> list[list[Episode]]:
        """Consecutive episodes with the same n, up to `cfg.batch_episodes` per batch.

        Checks first that a call of `cfg.batch_episodes` episodes with these variants stays
        within `cfg.row_budget` rows for every n present (one-line ConfigError otherwise).
        """
        batches: list[list[Episode]] = []
        for ep in episodes:
            last = batches[-1] if batches else []
            if 0 < len(last) < self.cfg.batch_episodes and ep.num_prompts == last[0].num_prompts:
                last.append(ep)
            else:
                batches.append([ep])
        for n in sorted({batch[0].num_prompts for batch in batches}):
            check_row_budget(self.cfg.row_budget, n, variants, self.cfg.batch_episodes)
        return batches

    # ------------------------------------------------------------------ internals

    def _encode(self, episodes: Sequence[Episode]):
        """VAE posterior means: A, B (E, n, 4, h, w) and C (E, 4, h, w), float32."""
        size, n, E = self.cfg.resolution, episodes[0].num_prompts, len(episodes)
        pics = [picture_tensor(im, size) for ep in episodes for im in ep.prompts]
        pics += [
            picture_tensor(im, size, resample=ep.target_resample)
            for ep in episodes
            for im in ep.targets
        ]
        pics += [picture_tensor(ep.query, size) for ep in episodes]
        latents = self.model.encode(torch.stack(pics)).float()
        a, b, c = latents.split([E * n, E * n, E])
        return a.unflatten(0, (E, n)), b.unflatten(0, (E, n)), c

    def _predict(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """One counted denoiser call: x (R, c, h, w) float32 at timestep t -> the model's
        prediction (R, c, h, w) float32 (`Denoiser.predict`, with its own conditioning)."""
        self.unet_calls += 1
        self.image_passes += x.shape[0]
        return self.model.predict(x, t)

    def _plain_predict(self, x: torch.Tensor, t: int, i: int) -> torch.Tensor:
        """The prediction for images on their own (no group layout, plain attention)."""
        return self._predict(x, t)

    def _diagnose(
        self,
        i: int,
        sched: Schedule,
        x_d,
        out,
        layout: StreamLayout,
        variant: int = 0,
        cfg: SamplerConfig | None = None,
    ) -> dict:
        """Step i of one variant (its row in `layout`, its config; default the sampler's).

        swap_delta: RMS of eps_mod - eps_def, D's two noise predictions (for any prediction
        type the eps of the output difference: eps is affine in the output at a shared x_t).
        """
        cfg = cfg or self.cfg
        d_mod, d_def = layout.d_mods[variant], layout.d_defs[variant]
        delta = None
        if d_def is not None:
            diff = out[:, d_mod] - out[:, d_def]
            diff = self.model.split(diff, torch.zeros_like(diff), sched, i)[1]
            delta = diff.pow(2).mean(dim=(1, 2, 3)).sqrt()
        return {
            "i": i,
            "t": sched.timesteps[i],
            "w": swap_weight(i, len(sched), cfg.swap.schedule) if d_def is not None else None,
            "d_mean": x_d.mean(dim=(1, 2, 3)).tolist(),
            "d_std": x_d.std(dim=(1, 2, 3)).tolist(),
            "swap_delta": delta.tolist() if delta is not None else None,
        }
