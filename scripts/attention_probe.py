#!/usr/bin/env python
"""Is a model's self-attention positional? The question behind "prompt = query" failures.

SD-VICL carries B's picture to D through attention from C's queries to A's keys; with A = C
(`toy_report.py --only identity`) the right match for every pixel is itself. This probe
takes each task's demo query pictures, noises them to t, runs the U-Net once, and for every
decoder self-attention layer (`up_blocks.*.attn1`) reports, for the picture attending to
itself at the sampler's temperature: the share of queries whose attention argmax is their
own position, and the attention mass within one token (a 3 x 3 window), against a uniform
spread's mass. A layer with argmax=self near 0 and mass near uniform pools globally: it can
carry a blob, not a 2 px disc.

    python scripts/attention_probe.py                       # the shipped toy model
    python scripts/attention_probe.py --model-path <folder> --tasks keypoints --episodes 8
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sdvicl_bench.cli import load_config
from sdvicl_bench.protocols import make_protocol
from sdvicl_bench.sampler.backbones.registry import load_model
from sdvicl_bench.sampler.pipeline import picture_tensor


def probe(task: str, overrides: list[str], episodes: int, steps: tuple[int, ...]) -> dict:
    """{(layer, side, t): (argmax=self share, mass within 1 token)} averaged over pictures."""
    cfg = load_config([f"task={task}", "data=demo", *overrides])
    protocol, model = make_protocol(cfg), load_model(cfg.model)
    tau = cfg.sampler.attention.temperature
    inputs: dict[str, tuple] = {}
    hooks = [
        module.register_forward_pre_hook(
            lambda m, args, kw, name=name: inputs.__setitem__(
                name, (m, kw.get("hidden_states", args[0] if args else None))
            ),
            with_kwargs=True,
        )
        for name, module in model.unet.named_modules()
        if name.startswith("up_blocks") and name.endswith("attn1")
    ]
    found: dict[tuple, list] = {}
    try:
        for spec in protocol.episodes()[:episodes]:
            episode, _ = protocol.sampler_input(spec)
            x0 = picture_tensor(episode.query, cfg.sampler.resolution).unsqueeze(0)
            latents = model.encode(x0)
            for t in steps:
                abar = model.scheduler.alphas_cumprod[t]
                noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(t))
                x = abar.sqrt() * latents + (1 - abar).sqrt() * noise
                with torch.no_grad():
                    model.unet(x, torch.tensor([t]), encoder_hidden_states=model.prompt_embeds)
                for name, (module, hidden) in inputs.items():
                    found.setdefault((name, t), []).append(_self_match(module, hidden[0], tau))
    finally:
        for hook in hooks:
            hook.remove()
    return {key: np.mean(values, axis=0) for key, values in found.items()}


def _self_match(module, hidden: torch.Tensor, tau: float) -> tuple[float, float, int]:
    """(argmax=self share, mass within one token, side) of one picture attending to itself."""
    q, k = module.to_q(hidden), module.to_k(hidden)
    p = (q @ k.T / (q.shape[-1] ** 0.5) / tau).softmax(-1)
    n = p.shape[0]
    side = round(n**0.5)
    yx = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1)
    yx = yx.reshape(-1, 2)
    near = (yx[:, None] - yx[None]).abs().amax(-1) <= 1
    own = (p.argmax(-1) == torch.arange(n)).float().mean().item()
    return own, (p * near).sum(-1).mean().item(), side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--tasks", nargs="+", default=["fgseg", "semseg", "keypoints", "edges"])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 400], help="noise levels t")
    args = parser.parse_args()
    overrides = [f"model={args.model}"] + (
        [f"model.path={args.model_path}"] if args.model_path else []
    )
    print(f"{'task':<11} {'layer':<40} {'side':>4} {'t':>4}  argmax=self  mass<=1  uniform")
    for task in args.tasks:
        for (name, t), (own, mass, side) in sorted(
            probe(task, overrides, args.episodes, tuple(args.steps)).items(),
            key=lambda kv: (kv[0][0], kv[0][1]),
        ):
            layer = name.removesuffix(".transformer_blocks.0.attn1")
            uniform = min(9, side * side) / (side * side)
            cells = f"{int(side):>4} {t:>4}  {own:>10.2f}  {mass:>7.2f}  {uniform:>7.3f}"
            print(f"{task:<11} {layer:<40} {cells}")


if __name__ == "__main__":
    main()
