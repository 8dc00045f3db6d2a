"""The one orchestrator: data -> episodes -> sampler -> decoder -> metrics -> run record.

`run(cfg)` finds or creates the run folder by key, runs only the episodes not yet in
samples.jsonl (so a rerun resumes and a larger `limit` extends), scores each prediction and
the trivial baselines on the same episode, and writes results.json.
"""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

import sdvicl_bench
from sdvicl_bench.config import RunConfig, to_dict
from sdvicl_bench.data import fgseg_episodes
from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.errors import ConfigError, DataError
from sdvicl_bench.metrics.iou import foreground_iou, mean_with_ci
from sdvicl_bench.report.records import (
    SampleWriter,
    find_or_create_run_dir,
    read_episodes,
    read_samples,
    run_key,
    write_episodes,
    write_json,
)
from sdvicl_bench.sampler.models import load_model
from sdvicl_bench.sampler.pipeline import Episode, Sampler
from sdvicl_bench.tasks import fgseg
from sdvicl_bench.types import EpisodeSpec

TASKS = ("fgseg",)
RANDOM_WEIGHTS_NOTE = (
    "model={name} has random weights: its numbers say nothing about the method. "
    "Only the baseline rows are meaningful."
)


@dataclass
class RunOutcome:
    run_dir: Path
    results: dict[str, Any]
    resumed: bool
    new_samples: int


def dataset_root(cfg: RunConfig) -> Path:
    """The task's dataset folder; demo data is written there on first use."""
    root = Path(cfg.data.root).expanduser() / cfg.task.root_subdir
    if cfg.data.name == "demo":
        make_demo_voc(root)
    if not root.is_dir():
        raise DataError(
            f"Dataset root not found: {root}. Fix: put VOC2012 (JPEGImages/, "
            "SegmentationClassAug/) there, or pass data.root=<folder holding "
            f"{cfg.task.root_subdir}/>, or try data=demo."
        )
    return root


def run(cfg: RunConfig, *, quiet: bool = False, console: Console | None = None) -> RunOutcome:
    """Run (or resume) one task with one config; returns the run folder and its results."""
    console = console or Console(stderr=True)
    if cfg.task.name not in TASKS:
        raise ConfigError(
            f"task={cfg.task.name} is not implemented yet. Available: {', '.join(TASKS)}."
        )
    root = dataset_root(cfg)
    splits_dir = root / cfg.task.splits_subdir
    if not splits_dir.is_dir():
        raise DataError(
            f"Pascal-5i split lists not found: {splits_dir}. Fix: copy the HSNet lists "
            "({trn,val}/fold{0..3}.txt) there."
        )
    folds = list(cfg.task.folds)

    # 1. Episodes: frozen ones from an earlier run, or built from the split lists.
    if cfg.episodes:
        episodes = read_episodes(Path(cfg.episodes))
    else:
        episodes = fgseg_episodes.build_episodes(
            splits_dir,
            folds,
            prompts=cfg.prompts,
            seed=cfg.seed,
            retrieval=cfg.task.retrieval,
            split=cfg.task.split,
            prompt_pool=cfg.task.prompt_pool,
        )

    # 2. The run folder, found by the key of everything that changes a number.
    key = run_key(
        {
            "task": to_dict(cfg.task),
            "sampler": to_dict(replace(cfg.sampler, batch_episodes=1)),
            "model": _model_identity(cfg),
            "splits": fgseg_episodes.split_hashes(splits_dir, folds),
            "episodes": [e.to_json() for e in episodes],
            "seed": cfg.seed,
            "prompts": cfg.prompts,
        }
    )
    run_dir, resumed = find_or_create_run_dir(Path(cfg.output_dir), cfg.task.name, key)
    if not (run_dir / "episodes.jsonl").exists():
        write_episodes(run_dir / "episodes.jsonl", episodes)
    (run_dir / "pictures").mkdir(exist_ok=True)

    # 3. What is left: episodes within `limit` with no finished sample.
    selected = episodes[: cfg.limit] if cfg.limit else episodes
    done = {s["id"] for s in read_samples(run_dir / "samples.jsonl")}
    todo = [e for e in selected if e.id not in done]

    pictures = fgseg_episodes.FgsegPictures(root)
    started = time.perf_counter()
    device = "n/a"
    if todo:
        model = load_model(cfg.model)
        device = _device_name(model.device)
        sampler = Sampler(model, cfg.sampler)
        _run_episodes(cfg, sampler, pictures, todo, run_dir, quiet, console)
    elapsed = time.perf_counter() - started

    # 4. Aggregate everything finished within `limit` and write results.json.
    samples = [
        s for s in read_samples(run_dir / "samples.jsonl") if s["id"] in {e.id for e in selected}
    ]
    results = _results(cfg, key, samples, folds, device, elapsed, len(todo))
    write_json(run_dir / "results.json", results)
    if not quiet:
        print_summary(results, run_dir, console)
    return RunOutcome(run_dir, results, resumed, len(todo))


def _run_episodes(cfg, sampler, pictures, todo, run_dir, quiet, console) -> None:
    """Sample, decode, score and record `todo` in batches of `batch_episodes`."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )
    batch_size = cfg.sampler.batch_episodes
    with progress, SampleWriter(run_dir / "samples.jsonl") as writer:
        bar = progress.add_task(cfg.task.name, total=len(todo), rate="")
        t0 = time.perf_counter()
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            tb = time.perf_counter()
            inputs = [_episode_input(spec, pictures) for spec in batch]
            outputs = sampler.run([x for x, _ in inputs])
            seconds = (time.perf_counter() - tb) / len(batch)
            for spec, (_, truth), out in zip(batch, inputs, outputs, strict=True):
                writer.write(_score(spec, truth, out.picture, run_dir, seconds, cfg.save_pictures))
            finished = start + len(batch)
            rate = (time.perf_counter() - t0) / finished
            progress.update(bar, advance=len(batch), rate=f"{rate:.2f} s/episode")
            if quiet is False and not console.is_terminal:
                console.print(
                    f"{cfg.task.name}: {finished}/{len(todo)} episodes, {rate:.2f} s/episode"
                )


def _episode_input(spec: EpisodeSpec, pictures) -> tuple[Episode, dict]:
    """Sampler input (A: photos, B: rendered GT, C: query photo) and the query's truth."""
    query = pictures.image(spec.query)
    prompt_masks = [pictures.mask(k) for k in spec.prompts]
    episode = Episode(
        prompts=[pictures.image(k) for k in spec.prompts],
        targets=[fgseg.render_gt(m) for m in prompt_masks],
        query=query,
        seed=spec.seed,
        prompt_ids=[k.rpartition("__")[0] for k in spec.prompts],
        target_ids=list(spec.prompts),
        query_id=spec.query.rpartition("__")[0],
    )
    truth = {"mask": pictures.mask(spec.query), "prompt_mask": prompt_masks[0]}
    return episode, truth


def _score(spec, truth, picture: Image.Image, run_dir: Path, seconds: float, save: bool) -> dict:
    """One samples.jsonl record: decode at the query's own size, IoU, baselines, pictures."""
    gt = truth["mask"]
    size = (gt.shape[1], gt.shape[0])
    pred = fgseg.decode(picture, size)
    black = np.zeros_like(gt)
    copy_b = fgseg.resize_mask(truth["prompt_mask"], size)
    record = {
        "id": spec.id,
        "query": spec.query,
        "prompts": list(spec.prompts),
        "seed": spec.seed,
        "fold": spec.meta.get("fold"),
        "scores": {"iou": foreground_iou(pred, gt)},
        "baselines": {
            "black": {"iou": foreground_iou(black, gt)},
            "copy_b": {"iou": foreground_iou(copy_b, gt)},
        },
        "pred": f"pictures/{spec.id}.pred.png",
        "gt": f"pictures/{spec.id}.gt.png",
        "seconds": round(seconds, 4),
    }
    if save:
        picture.save(run_dir / record["pred"])
        fgseg.render_gt(gt).save(run_dir / record["gt"])
    return record


def _aggregate(values: list[float]) -> dict[str, float]:
    return mean_with_ci(values) if values else {"mean": float("nan"), "n": 0}


def _results(cfg, key, samples, folds, device, elapsed, new) -> dict[str, Any]:
    def block(get) -> dict[str, Any]:
        per_fold = {
            str(f): _aggregate([get(s) for s in samples if s.get("fold") == f]) for f in folds
        }
        fold_means = [v["mean"] for v in per_fold.values() if v.get("n")]
        return {
            "overall": _aggregate([get(s) for s in samples]),
            "per_fold": per_fold,
            "mean_of_folds": float(np.mean(fold_means)) if fold_means else float("nan"),
        }

    metrics = {"iou": block(lambda s: s["scores"]["iou"])}
    baselines = {
        name: {"iou": block(lambda s, n=name: s["baselines"][n]["iou"])}
        for name in ("black", "copy_b")
    }
    note = None if cfg.model.name == "sd15" else RANDOM_WEIGHTS_NOTE.format(name=cfg.model.name)
    return {
        "key": key,
        "task": cfg.task.name,
        "task_version": cfg.task.version,
        "n": len(samples),
        "metrics": metrics,
        "baselines": baselines,
        "note": note,
        "config": to_dict(cfg),
        "versions": {
            "sdvicl_bench": sdvicl_bench.__version__,
            "torch": torch.__version__,
            "diffusers": _version("diffusers"),
            "python": platform.python_version(),
        },
        "git": _git_hash(),
        "device": device,
        "timing": {
            "seconds_this_session": round(elapsed, 2),
            "new_samples": new,
            "mean_seconds_per_episode": (
                round(float(np.mean([s["seconds"] for s in samples])), 4) if samples else None
            ),
        },
    }


def print_summary(results: dict[str, Any], run_dir: Path, console: Console) -> None:
    """A table of ours and the baselines, with n and the 95% interval; where the files are."""
    table = Table(title=f"{results['task']} (v{results['task_version']}), n = {results['n']}")
    table.add_column("method")
    table.add_column("IoU mean", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("mean of folds", justify="right")
    rows = [("SD-VICL", results["metrics"])] + [
        (f"baseline: {k}", v) for k, v in results["baselines"].items()
    ]
    for name, m in rows:
        o = m["iou"]["overall"]
        ci = f"[{100 * o['low']:.1f}, {100 * o['high']:.1f}]" if "low" in o else "n/a"
        table.add_row(name, f"{100 * o['mean']:.2f}", ci, f"{100 * m['iou']['mean_of_folds']:.2f}")
    console.print(table)
    if results["note"]:
        console.print(f"[bold yellow]Note:[/] {results['note']}")
    console.print(f"Run folder: {run_dir}")


def _model_identity(cfg: RunConfig) -> dict[str, Any]:
    m = cfg.model
    if m.name == "sd15":
        return {
            "name": m.name,
            "source": m.path or m.hub_id,
            "revision": None if m.path else m.revision,
        }
    return {"name": m.name, "seed": m.seed}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}"


def _version(pkg: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def _git_hash() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
