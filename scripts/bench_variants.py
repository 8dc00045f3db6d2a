#!/usr/bin/env python
"""Variant batching benchmark: an ablation's variants in one U-Net call per step, or each alone.

For n in --prompts and each ablation (V = 2: full + no AdaIN; V = 4: the qkv triplets
CAB, DAB, CBB, DBB), on the same episodes and in one process:
- without: each variant runs on its own (`Sampler(model, variant).run(episodes)`);
- with: all variants share the A, B, C rows (`Sampler.run_variants(episodes, variants)`).
It reports U-Net image passes per step of the whole ablation (from the samplers' counters:
V(2n+3) against 2n+1+2V), seconds per episode of the whole ablation (all its variants), the
speedup, and the largest difference of the final latents between the two (float error).

CPU with the tiny random model by default: absolute times mean little, the ratio within one
run does. Episodes run one at a time (batch_episodes=1) on both sides, so the ratio is what
variant batching alone buys.

Example:
    python scripts/bench_variants.py --json results/bench/cpu-tiny-variants.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from sdvicl_bench.config import SamplerConfig  # noqa: E402
from sdvicl_bench.sampler.backbones.device import (  # noqa: E402
    place_model,
    resolve_device,
    resolve_dtype,
)
from sdvicl_bench.sampler.backbones.sd15 import build_sd15_random, build_tiny  # noqa: E402
from sdvicl_bench.sampler.pipeline import Episode, Sampler  # noqa: E402


def ablations(base: SamplerConfig) -> dict[str, list[tuple[str, SamplerConfig]]]:
    """The benchmarked ablations: label -> [(variant label, config)], the full method first."""
    no_adain = dataclasses.replace(base, adain=dataclasses.replace(base.adain, enabled=False))
    qkv = [
        (q, dataclasses.replace(base, attention=dataclasses.replace(base.attention, qkv=q)))
        for q in ("CAB", "DAB", "CBB", "DBB")
    ]
    return {"adain": [("full", base), ("no AdaIN", no_adain)], "qkv": qkv}


def make_episodes(count: int, n: int, size: int, seed: int) -> list[Episode]:
    """`count` episodes of n smooth random photos with square masks, and a query photo."""
    rng = np.random.default_rng(seed)

    def photo() -> Image.Image:
        base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        return Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR)

    def mask() -> Image.Image:
        arr = np.zeros((size, size, 3), np.uint8)
        x, y = rng.integers(size // 8, size // 2, 2)
        arr[y : y + size // 3, x : x + size // 3] = 255
        return Image.fromarray(arr)

    return [
        Episode([photo() for _ in range(n)], [mask() for _ in range(n)], photo(), seed=e)
        for e in range(count)
    ]


def run_alone(model, configs, episodes) -> tuple[list, int, int]:
    """Each variant on its own: latents[variant][episode], U-Net calls, image passes."""
    latents, calls, passes = [], 0, 0
    for cfg in configs:
        sampler = Sampler(model, cfg)
        latents.append([r.latents for r in sampler.run(episodes, return_latents=True)])
        calls, passes = calls + sampler.unet_calls, passes + sampler.image_passes
    return latents, calls, passes


def run_together(model, configs, episodes) -> tuple[list, int, int]:
    """Every variant in one U-Net call per step: latents[variant][episode], calls, passes."""
    sampler = Sampler(model, configs[0])
    results = sampler.run_variants(episodes, configs, return_latents=True)
    latents = [[r.latents for r in per_variant] for per_variant in results]
    return latents, sampler.unet_calls, sampler.image_passes


def timed(fn, *args) -> tuple[float, tuple]:
    """Wall time of fn(*args) (CUDA work finished on both ends) and its result."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    out = fn(*args)
    sync()
    return time.perf_counter() - start, out


def measure(model, variants, episodes, steps: int, repeats: int) -> dict:
    """Time one ablation without and with variant batching (alternating, best of `repeats`);
    counters and agreement."""
    configs = [cfg for _, cfg in variants]
    without_s, with_s = [], []
    for _ in range(repeats):
        seconds, (alone, without_calls, without_passes) = timed(run_alone, model, configs, episodes)
        without_s.append(seconds)
        seconds, (together, with_calls, with_passes) = timed(run_together, model, configs, episodes)
        with_s.append(seconds)
    per_step = steps * len(episodes)

    diff = max(
        float((b - a).abs().max())
        for per_b, per_a in zip(together, alone, strict=True)
        for b, a in zip(per_b, per_a, strict=True)
    )
    return {
        "calls_per_step_without": without_calls / per_step,
        "calls_per_step_with": with_calls / per_step,
        "passes_per_step_without": without_passes / per_step,
        "passes_per_step_with": with_passes / per_step,
        "s_per_episode_without": min(without_s) / len(episodes),
        "s_per_episode_with": min(with_s) / len(episodes),
        "speedup": min(without_s) / min(with_s),
        "max_abs_latent_diff": diff,
        "seconds_without": without_s,
        "seconds_with": with_s,
    }


def markdown(rows: list[dict]) -> str:
    """Per-step counts are per episode for the whole ablation (all its variants)."""
    head = (
        "| ablation | n | V | calls/step without | with | passes/step without | with | ratio "
        "| s/episode without | with | speedup | max latent diff |"
    )
    lines = [head, "|" + " --- |" * 12]
    for r in rows:
        lines.append(
            f"| {r['ablation']} | {r['n']} | {r['V']} | {r['calls_per_step_without']:g} "
            f"| {r['calls_per_step_with']:g} | {r['passes_per_step_without']:g} "
            f"| {r['passes_per_step_with']:g} "
            f"| {r['passes_per_step_without'] / r['passes_per_step_with']:.2f}x "
            f"| {r['s_per_episode_without']:.2f} | {r['s_per_episode_with']:.2f} "
            f"| {r['speedup']:.2f}x | {r['max_abs_latent_diff']:.1e} |"
        )
    return "\n".join(lines)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--prompts", type=int, nargs="+", default=[1, 5], help="values of n")
    p.add_argument("--ablations", nargs="+", default=["adain", "qkv"], choices=["adain", "qkv"])
    p.add_argument("--steps", type=int, default=20, help="denoising steps")
    p.add_argument("--episodes", type=int, default=2, help="episodes per measurement")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side (best of)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: steady timings on a shared 2-core machine)",
    )
    p.add_argument(
        "--model",
        choices=["tiny", "sd15-random"],
        default="tiny",
        help="tiny (CPU ratios) or sd15-random (the full SD1.5 U-Net, random weights; GPU)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--resolution", type=int, default=64, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="output JSON path")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    diffusers_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    build = build_tiny if args.model == "tiny" else build_sd15_random
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    model = place_model(build(seed=args.seed), device, dtype)
    base = SamplerConfig(steps=args.steps, resolution=args.resolution, batch_episodes=1)
    table = ablations(base)

    # Warm-up: first calls pay for allocations and kernel selection.
    warm = make_episodes(1, 1, args.resolution, args.seed)
    Sampler(model, dataclasses.replace(base, steps=2)).run(warm)

    rows = []
    for n in args.prompts:
        episodes = make_episodes(args.episodes, n, args.resolution, args.seed)
        for name in args.ablations:
            variants = table[name]
            result = measure(model, variants, episodes, args.steps, args.repeats)
            rows.append(
                {"ablation": name, "n": n, "V": len(variants), **result}
                | {"variants": [label for label, _ in variants]}
            )
            print(f"n={n} {name} (V={len(variants)}): {result['speedup']:.2f}x", file=sys.stderr)

    print(markdown(rows))
    if args.json:
        record = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "commit": git_commit(),
            "machine": {
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "platform": platform.platform(),
                "torch": torch.__version__,
            },
            "settings": {
                "model": args.model,
                "device": str(device)
                + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
                "dtype": str(dtype).removeprefix("torch."),
                "steps": args.steps,
                "episodes": args.episodes,
                "resolution": args.resolution,
                "batch_episodes": 1,
                "repeats": args.repeats,
            },
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
