"""Measure the toy model on the demo worlds: the tables of docs/TOY.md.

    python scripts/toy_report.py            # every table, 64 episodes each (2 cores)
    python scripts/toy_report.py --only tasks --episodes 16
    python scripts/toy_report.py --only tasks --seed 7   # a held-out run seed
    python scripts/toy_report.py --only identity         # each task with prompt = query

Every run goes through `evaluate.run` (the same path as `sdvicl-bench run`) on frozen
episodes spread evenly over the task's query list (so fgseg's 64 hold 16 per fold), with
`model=toy data=demo`. Tables: SD-VICL against the baselines for every task; fgseg at n = 1,
3, 5; every `ablate` component on fgseg. Each cell: mean [95% bootstrap interval], x100 where
the task's config says so. The `oracle` row (the GT picture through the prediction's path) is
each task's ceiling, never a competitor. `identity` runs every task's episodes with the query
itself as the prompt: the correspondence is then trivial (each pixel's own position), so a
model that still cannot paint B there cannot transfer the task's pictures at all, whatever
the prompts. Under every task table a verdict line says whether
SD-VICL beats every trivial baseline on the headline metrics (`HEADLINE`): for per-episode
metrics its interval clear of the best baseline's mean, for set-level ones a better value.
Writes Markdown to --out and prints it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from sdvicl_bench import ablations, evaluate
from sdvicl_bench.cli import load_config
from sdvicl_bench.protocols import make_protocol
from sdvicl_bench.report.records import write_episodes
from sdvicl_bench.types import ORACLE, ORACLE_LABEL, competitors

TASKS = ["fgseg", "det", "semseg", "keypoints", "edges", "colorization"]
BASE = ["data=demo", "model=toy"]

HEADLINE: dict[str, tuple[str, ...]] = {
    "fgseg": ("iou",),
    "det": ("iou",),
    "semseg": ("miou",),
    "keypoints": ("pck", "ne"),
    "edges": ("mse",),
    "colorization": ("mse", "fid"),
}
"""The metrics on which SD-VICL must beat every trivial baseline, per task."""


def frozen_episodes(task: str, prompts: int | None, count: int, folder: Path) -> Path:
    """`count` episodes spread evenly over the task's default episode list, frozen to a file.

    A task whose demo has fewer queries than `count` (semseg, keypoints, colorization) cycles
    them with new prompt draws (`episodes=<count>`, per fold where the task has folds) and
    keeps `count` of those, spread over the folds.
    """
    overrides = [f"task={task}", *BASE] + ([f"prompts={prompts}"] if prompts else [])
    episodes = make_protocol(load_config(overrides)).episodes()
    if len(episodes) < count:
        episodes = make_protocol(load_config([*overrides, f"episodes={count}"])).episodes()
    stride = max(len(episodes) // count, 1)
    picked = episodes[::stride][:count]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}-n{prompts or 'default'}-{len(picked)}.jsonl"
    write_episodes(path, picked)
    return path


def identity_episodes(frozen: Path) -> Path:
    """The frozen episodes of `frozen` with the query as the only prompt (B is then the GT)."""
    path = frozen.with_name(frozen.stem + "-identity.jsonl")
    lines = []
    for line in frozen.read_text().splitlines():
        episode = json.loads(line)
        lines.append(json.dumps({**episode, "prompts": [episode["query"]]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def run(task: str, episodes: Path, extra: list[str], out_dir: Path) -> dict:
    cfg = load_config(
        [f"task={task}", *BASE, f"episodes={episodes}", f"output_dir={out_dir}", *extra]
    )
    return evaluate.run(cfg, quiet=True).results


def cell(block: dict, scale: float) -> str:
    """mean [95% interval]: x100 metrics with one decimal, others with 3 significant digits."""
    overall = block.get("overall", block)

    def fmt(x: float) -> str:
        return f"{x * scale:.1f}" if scale != 1 else f"{x:.3g}"

    mean = overall.get("mean", float("nan"))
    if "low" in overall and "high" in overall:
        return f"{fmt(mean)} [{fmt(overall['low'])}, {fmt(overall['high'])}]"
    return fmt(mean)


def metric_specs(results: dict) -> dict[str, tuple[float, str]]:
    specs = results["config"]["task"].get("metrics") or {}
    out = {}
    for name in results["metrics"]:
        spec = specs.get(name) or {}
        arrow = "↑" if spec.get("higher_is_better", True) else "↓"
        out[name] = (float(spec.get("scale", 1)), arrow)
    return out


def method_rows(results: dict, label: str = "SD-VICL") -> list[str]:
    specs = metric_specs(results)
    rows = [
        f"| {label} | "
        + " | ".join(cell(results["metrics"][m], s) for m, (s, _) in specs.items())
        + " |"
    ]
    labelled = [(f"baseline: {k}", v) for k, v in competitors(results["baselines"]).items()]
    if ORACLE in results["baselines"]:  # last: a ceiling, not a competitor
        labelled.append((f"*{ORACLE_LABEL}*", results["baselines"][ORACLE]))
    for label, block in labelled:
        cells = [cell(block[m], s) if m in block else "" for m, (s, _) in specs.items()]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return rows


def _value(block: dict) -> tuple[float, float, float]:
    """(mean, low, high) of a results.json metric block (low = high = mean without interval)."""
    overall = block.get("overall", block) if isinstance(block, dict) else {"mean": block}
    mean = float(overall.get("mean", float("nan")))
    return mean, float(overall.get("low", mean)), float(overall.get("high", mean))


def verdict(task: str, results: dict) -> tuple[bool, str]:
    """Whether SD-VICL beats every trivial baseline (the oracle excluded) on the task's
    headline metrics, and a line saying so metric by metric."""
    specs = results["config"]["task"].get("metrics") or {}
    parts, ok = [], True
    for metric in HEADLINE.get(task, ()):
        higher = (specs.get(metric) or {}).get("higher_is_better", True)
        mean, low, high = _value(results["metrics"][metric])
        rivals = {
            name: _value(block[metric])[0]
            for name, block in competitors(results["baselines"]).items()
            if metric in block and not math.isnan(_value(block[metric])[0])
        }
        best_name = (max if higher else min)(rivals, key=rivals.get)
        best = rivals[best_name]
        clear = (low > best) if higher else (high < best)
        ok &= clear
        sign = ">" if higher else "<"
        bound = f"{'low' if higher else 'high'} {(low if higher else high):.4g}"
        parts.append(
            f"{metric}: {mean:.4g} ({bound}) {sign} {best_name} {best:.4g}: "
            + ("yes" if clear else "NO")
        )
    return ok, (
        "**beats every trivial baseline**" if ok else "**does not beat every trivial baseline**"
    ) + " (" + "; ".join(parts) + ")"


def header(results: dict, first: str = "method") -> list[str]:
    specs = metric_specs(results)
    names = [f"{m} {arrow}" + (f" (x{s:g})" if s != 1 else "") for m, (s, arrow) in specs.items()]
    return [f"| {first} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--only", choices=["tasks", "identity", "prompts", "ablate"], nargs="*")
    parser.add_argument("--out", type=Path, default=Path("results/toy/report.md"))
    parser.add_argument("--runs", type=Path, default=Path("results/toy/runs"))
    parser.add_argument("--model-path", help="another training's folder (default: shipped)")
    parser.add_argument("--components", nargs="*", help="ablate only these (default: all)")
    parser.add_argument("--tasks", nargs="*", choices=TASKS, help="only these tasks (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (episodes' prompts, noise)")
    args = parser.parse_args()
    BASE.append(f"seed={args.seed}")
    if args.model_path:
        BASE.append(f"model.path={args.model_path}")
    only = set(args.only or ["tasks", "prompts", "ablate"])
    frozen_dir = args.runs / "episodes"
    lines = [
        f"Episodes per row: {args.episodes} (frozen, spread over the query list); seed {args.seed}",
        "",
    ]
    started = time.time()

    if "tasks" in only:
        lines += ["## SD-VICL vs baselines, every task (n = 1)", ""]
        for task in args.tasks or TASKS:
            eps = frozen_episodes(task, None, args.episodes, frozen_dir)
            res = run(task, eps, [], args.runs)
            line = verdict(task, res)[1]
            lines += [f"### {task} (n = {res['n']})", "", *header(res), *method_rows(res), ""]
            lines += [line, ""]
            print(f"{task}: done ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)

    if "identity" in only:
        lines += [
            "## Every task with the query as its own prompt (correspondence trivial)",
            "",
            "| task | metric | SD-VICL, prompt = query | SD-VICL, prompts drawn | oracle |",
            "|---|---|---|---|---|",
        ]
        for task in args.tasks or TASKS:
            eps = frozen_episodes(task, None, args.episodes, frozen_dir)
            drawn = run(task, eps, [], args.runs)
            same = run(task, identity_episodes(eps), [], args.runs)
            for metric in HEADLINE[task]:
                scale = metric_specs(drawn)[metric][0]
                lines.append(
                    f"| {task} | {metric} | {cell(same['metrics'][metric], scale)} | "
                    f"{cell(drawn['metrics'][metric], scale)} | "
                    f"{cell(drawn['baselines'][ORACLE][metric], scale)} |"
                )
            print(f"{task} identity: done ({time.time() - started:.0f} s)", file=sys.stderr)
        lines.append("")

    if "prompts" in only:
        lines += ["## fgseg: number of prompts", ""]
        first = True
        for n in (1, 3, 5):
            eps = frozen_episodes("fgseg", n, args.episodes, frozen_dir)
            res = run("fgseg", eps, [f"prompts={n}"], args.runs)
            if first:
                lines += header(res, "n")
                first = False
            specs = metric_specs(res)
            lines.append(
                f"| {n} | "
                + " | ".join(cell(res["metrics"][m], s) for m, (s, _) in specs.items())
                + " |"
            )
            print(f"fgseg n={n}: done ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
        lines.append("")

    if "ablate" in only:
        lines += ["## fgseg: each `ablate` component (n = 1, same episodes)", ""]
        eps = frozen_episodes("fgseg", None, args.episodes, frozen_dir)
        full = run("fgseg", eps, [], args.runs)
        scale = metric_specs(full)["iou"][0]
        full_iou = full["metrics"]["iou"]["overall"]["mean"]
        lines += ["| component | variant | iou ↑ (x100) | delta to full |", "|---|---|---|---|"]
        lines.append(f"| - | full method | {cell(full['metrics']['iou'], scale)} | |")
        for component, variants in ablations.COMPONENTS.items():
            if args.components and component not in args.components:
                continue
            for label, extra in variants[1:]:
                res = run("fgseg", eps, extra, args.runs)
                iou = res["metrics"]["iou"]["overall"]["mean"]
                lines.append(
                    f"| {component} | {label} | {cell(res['metrics']['iou'], scale)} | "
                    f"{(iou - full_iou) * scale:+.1f} |"
                )
            print(
                f"ablate {component}: done ({time.time() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        lines.append("")

    lines.append(f"Wall time: {time.time() - started:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
