"""The one orchestrator: data -> episodes -> sampler -> decoder -> metrics -> run record.

`run(cfg)` finds or creates the run folder by key, runs only the episodes not yet in
samples.jsonl (so a rerun resumes and a larger `limit` extends), scores each prediction and
the trivial baselines on the same episode, and writes results.json.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
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
from sdvicl_bench import sharding
from sdvicl_bench.config import RunConfig, to_dict
from sdvicl_bench.metrics.iou import mean_with_ci
from sdvicl_bench.protocols import Scored, TaskProtocol, make_protocol
from sdvicl_bench.report import lock
from sdvicl_bench.report.lock import SampleLock
from sdvicl_bench.report.records import (
    DAMAGED_NAME,
    SampleWriter,
    creation_lock_path,
    find_or_create_run_dir,
    mend_samples,
    missing_pictures,
    read_episodes,
    read_run_samples,
    run_key,
    sample_files,
    write_episodes,
    write_json,
    write_samples,
)
from sdvicl_bench.sampler.models import TOY_WEIGHTS, check_weights, load_model
from sdvicl_bench.sampler.pipeline import Sampler
from sdvicl_bench.types import EpisodeSpec

RANDOM_WEIGHTS_NOTE = (
    "model={name} has random weights: its numbers say nothing about the method. "
    "Only the baseline rows are meaningful."
)
TOY_NOTE = (
    "model=toy is a small model (1.5 M parameters, 32 px) trained here on synthetic demo "
    "data, not SD1.5: it shows the method working at toy scale; its numbers do not predict "
    "SD1.5's (docs/TOY.md)."
)


def model_note(name: str) -> str | None:
    """The one line a summary shows about what the model's numbers can mean."""
    if name == "sd15":
        return None
    return TOY_NOTE if name == "toy" else RANDOM_WEIGHTS_NOTE.format(name=name)


@dataclass
class RunOutcome:
    run_dir: Path
    results: dict[str, Any]
    resumed: bool
    new_samples: int


def _sampler_identity(cfg: RunConfig) -> dict[str, Any]:
    """The sampler settings that change a number, for the run key.

    Exactness switches that only change how (episode batching, the attention kernel) are
    left out, so a run resumes across them.
    """
    sampler = to_dict(replace(cfg.sampler, batch_episodes=1))
    sampler["attention"].pop("kernel", None)
    return sampler


class Terminated(KeyboardInterrupt):
    """SIGTERM (SLURM pre-emption, `kill`) during a run, handled like Ctrl-C: finished samples
    are kept and the CLI says so in one line; `exit_code` is the shell's 128 + 15."""

    exit_code = 143


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Within: SIGTERM raises `Terminated` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def run(cfg: RunConfig, *, quiet: bool = False, console: Console | None = None) -> RunOutcome:
    """Run (or resume) one task with one config; returns the run folder and its results.

    The process claims its sample file (`report.lock.SampleLock`: a second process on the
    same folder and shard gets a one-line DataError) from finding the folder until
    results.json and grid.png are written. SIGTERM is handled like Ctrl-C (`Terminated`).
    A folder this call created is removed again when it fails before any sample is written.
    """
    console = console or Console(stderr=True)
    with _sigterm_interrupts():
        protocol = make_protocol(cfg)

        # 1. Episodes: frozen ones from an earlier run, or built by the task's protocol.
        episodes = protocol.episodes()

        # 2. The run folder, found by the key of everything that changes a number.
        key = run_key(
            {
                "task": to_dict(cfg.task),
                "sampler": _sampler_identity(cfg),
                "model": _model_identity(cfg),
                "data": protocol.key_inputs(),
                "episodes": [e.to_json() for e in episodes],
                "seed": cfg.seed,
                "prompts": cfg.num_prompts,
            }
        )
        shard = sharding.resolve_shard(cfg.shard)
        sharding.start(shard)
        if not shard.leader:  # under torchrun the leader creates the folder first
            sharding.barrier(shard)
        run_dir, resumed, claim = _open_run_dir(cfg, key, episodes, shard)
        try:
            with claim:
                if shard.leader:
                    sharding.barrier(shard)
                return _run_claimed(
                    cfg, protocol, key, episodes, shard, run_dir, resumed, quiet, console
                )
        except BaseException:
            if not resumed:
                _remove_if_empty(run_dir, Path(cfg.output_dir), cfg.task.name)
            raise


def _open_run_dir(
    cfg: RunConfig, key: str, episodes: list[EpisodeSpec], shard: sharding.Shard
) -> tuple[Path, bool, SampleLock]:
    """(run folder, resumed, this process's claim on its sample file).

    Finding or creating the folder and claiming the sample file are one step under the
    task's creation lock, so two processes started at once share one folder and the second
    one on the same sample file stops with a one-line DataError.
    """
    base = Path(cfg.output_dir)
    with lock.exclusive(creation_lock_path(base, cfg.task.name)):
        run_dir, resumed = find_or_create_run_dir(base, cfg.task.name, key)
        if not (run_dir / "episodes.jsonl").exists():
            write_episodes(run_dir / "episodes.jsonl", episodes)
            write_json(run_dir / "run.json", {"key": key, "config": to_dict(cfg)})
        (run_dir / "pictures").mkdir(exist_ok=True)
        claim = SampleLock(run_dir / shard.samples_name).acquire()
    return run_dir, resumed, claim


def _remove_if_empty(run_dir: Path, base: Path, task: str) -> None:
    """Remove a run folder that holds no sample and that no other process claims (a run that
    failed before its first sample, e.g. at model loading, leaves nothing behind)."""
    with lock.exclusive(creation_lock_path(base, task)):
        claimed = any(run_dir.glob("*.lock"))
        kept = (run_dir / DAMAGED_NAME).exists() or any(
            p.stat().st_size for p in sample_files(run_dir)
        )
        if not claimed and not kept:
            shutil.rmtree(run_dir, ignore_errors=True)


def _run_claimed(
    cfg, protocol, key, episodes, shard, run_dir, resumed, quiet, console
) -> RunOutcome:
    """Steps 3 and 4 of `run`, with this process's sample file claimed."""
    protocol.run_dir = run_dir
    writes = shard.leader or not shard.distributed  # who writes results.json and grid.png

    # 3. What is left: this shard's episodes within `limit` with no finished sample. Damaged
    #    lines of this process's own sample file are set aside first (their episodes redone).
    samples_path = run_dir / shard.samples_name
    _set_aside_damaged(samples_path, console)
    selected = episodes[: cfg.limit] if cfg.limit else episodes
    finished = read_run_samples(run_dir)
    done = {s["id"] for s in finished}
    mine = [e for i, e in enumerate(selected) if shard.take(i)]
    todo = [e for e in mine if e.id not in done]
    if writes and cfg.save_pictures:
        _warn_missing_pictures(run_dir, finished, console)
    if writes and not quiet:
        _warn_stale(protocol, run_dir, finished, console)
    if resumed and not quiet:
        _say(console, _resume_line(run_dir, shard, len(mine) - len(todo), len(todo)))

    started = time.perf_counter()
    unet_calls = 0
    if todo:
        model = load_model(cfg.model)
        sampler = Sampler(model, cfg.sampler)
        device = _device_name(model.device)
        _run_episodes(cfg, protocol, sampler, todo, samples_path, device, quiet, console)
        unet_calls = sampler.unet_calls
    elapsed = time.perf_counter() - started

    # 4. Aggregate every finished sample of the folder and write results.json (after all
    #    ranks under torchrun, whose leader merges the shard files into samples.jsonl).
    sharding.barrier(shard)
    if shard.distributed and shard.leader:
        _report_damaged(merge_samples(run_dir, episodes), run_dir, console)
    samples = _all_samples(run_dir, episodes)
    results = _results(cfg, protocol, key, samples, elapsed, len(todo))
    results["timing"]["unet_calls_this_session"] = unet_calls
    if writes:
        write_json(run_dir / "results.json", results)
    sharding.barrier(shard)
    sharding.finish(shard)
    if cfg.save_pictures and samples and writes:
        write_grid(protocol, run_dir, console=console, warn_missing=False)
    if not quiet and writes:
        print_summary(results, run_dir, console)
    return RunOutcome(run_dir, results, resumed, len(todo))


def _resume_line(run_dir: Path, shard: sharding.Shard, done: int, todo: int) -> str:
    """The line a rerun prints before sampling: which folder, what is done and what is left."""
    part = f" (shard {shard.index}/{shard.count})" if shard.count > 1 else ""
    return f"Resuming {run_dir}{part}: {done} episodes done, {todo} to do."


def _say(console: Console, text: str) -> None:
    """Print one plain line (no markup, no wrapping: paths stay whole)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _set_aside_damaged(samples_path: Path, console: Console) -> None:
    """Mend this process's own sample file (`records.mend_samples`) and say so in one line."""
    _report_damaged(mend_samples(samples_path), samples_path.parent, console)


def _report_damaged(count: int, run_dir: Path, console: Console) -> None:
    if count:
        _say(
            console,
            f"warning: {count} damaged line{'s' if count > 1 else ''} of the sample files set "
            f"aside in {run_dir / DAMAGED_NAME}; their episodes will be redone.",
        )


def _warn_missing_pictures(run_dir: Path, samples: list[dict], console: Console) -> None:
    """One line naming the finished samples whose picture files are gone.

    Their scores stand and they are not resampled (a run may have had its pictures deleted on
    purpose, to save disk): deleting a sample's line from its sample file makes the next run
    redo it and save its pictures again.
    """
    gone = [s["id"] for s in samples if missing_pictures(run_dir, [s])]
    if gone:
        shown = ", ".join(gone[:3]) + (", ..." if len(gone) > 3 else "")
        _say(
            console,
            f"warning: {len(gone)} finished sample{'s' if len(gone) > 1 else ''} of {run_dir} "
            f"miss their picture files ({shown}); their scores stand. To recreate the "
            "pictures, delete their lines from the sample file and rerun.",
        )


def _warn_stale(
    protocol: TaskProtocol, run_dir: Path, samples: list[dict], console: Console
) -> None:
    """One line when finished records lack a metric the protocol reports now (`_stale_samples`)."""
    stale = _stale_samples(protocol, samples)
    if stale:
        _say(
            console,
            f"note: {len(stale)} finished sample{'s' if len(stale) > 1 else ''} of {run_dir} "
            "predate some of this task's metrics, which leave them out (or show n/a). "
            f"Fix: sdvicl-bench rescore {run_dir}",
        )


def _grid_loaders(protocol: TaskProtocol):
    """(load_pictures, decoded) for report.grids: A, B, C from the protocol; the decoded
    prediction drawn by the protocol from the same sample's truth."""
    last: dict[str, Any] = {}

    def load_pictures(sample: dict):
        spec = EpisodeSpec(sample["id"], sample["query"], tuple(sample["prompts"]), sample["seed"])
        episode, truth = protocol.sampler_input(spec)
        last["truth"] = truth
        return list(episode.prompts), list(episode.targets), episode.query

    def decoded(picture: Image.Image, _size) -> Image.Image:
        return protocol.visualize(picture, last["truth"])

    return load_pictures, decoded


def write_grid(
    protocol: TaskProtocol,
    run_dir: Path,
    limit: int = 8,
    *,
    console: Console | None = None,
    warn_missing: bool = True,
) -> Path:
    """grid.png of the first episodes: A.. | B.. | C | prediction | decoded | GT, with scores.

    A one-line DataError where the folder has no finished sample yet; with `warn_missing`, a
    warning line naming the pictures that are gone (drawn as empty tiles).
    """
    from sdvicl_bench.errors import DataError
    from sdvicl_bench.report.grids import GRID_FIELDS, run_grid

    shown = read_run_samples(run_dir, fields=GRID_FIELDS)[: max(0, limit)]
    if not shown:
        raise DataError(
            f"{run_dir} has no finished sample yet: nothing to draw. Fix: run the command "
            "that made it first (sdvicl-bench run with the same overrides)."
        )
    missing = missing_pictures(run_dir, shown)
    if warn_missing and missing and protocol.cfg.save_pictures:
        names = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        _say(
            console or Console(stderr=True),
            f"warning: {len(missing)} picture{'s' if len(missing) > 1 else ''} of {run_dir} "
            f"missing ({names}), drawn as empty tiles. Fix: delete those samples' lines from "
            "the sample file and rerun to recreate them.",
        )
    load_pictures, decoded = _grid_loaders(protocol)
    return run_grid(run_dir, load_pictures=load_pictures, decoded=decoded, limit=limit)


def protocol_of(run_dir: Path) -> tuple[RunConfig, TaskProtocol]:
    """The config and protocol a run folder was made with (from its run.json)."""
    from sdvicl_bench.config import from_dict
    from sdvicl_bench.errors import DataError

    if not (run_dir / "run.json").is_file():
        raise DataError(
            f"{run_dir} is not a run folder (no run.json). "
            "Fix: pass a folder under results/runs/<task>/."
        )
    cfg = from_dict(RunConfig, json.loads((run_dir / "run.json").read_text())["config"])
    protocol = make_protocol(cfg)
    protocol.run_dir = run_dir
    return cfg, protocol


def results_on(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """results.json of each run folder recomputed over the episode ids they all finished.

    Comparisons (ablate) must score every variant on the very same episodes, while each
    folder's own results.json describes all of its samples (a larger earlier run included).
    """
    ids = None
    for run_dir in run_dirs:
        done = {s["id"] for s in read_run_samples(run_dir)}
        ids = done if ids is None else ids & done
    out = []
    for run_dir in run_dirs:
        cfg, protocol = protocol_of(run_dir)
        episodes = read_episodes(run_dir / "episodes.jsonl")
        samples = [s for s in _all_samples(run_dir, episodes) if s["id"] in (ids or set())]
        key = json.loads((run_dir / "run.json").read_text())["key"]
        out.append(_results(cfg, protocol, key, samples, 0.0, 0))
    return out


def _all_samples(run_dir: Path, episodes: list[EpisodeSpec]) -> list[dict]:
    """Every finished sample of the folder, one per id: in frozen episode order, then any
    others (ids not in `episodes`) sorted."""
    by_id = {s["id"]: s for s in read_run_samples(run_dir)}
    order = [e.id for e in episodes if e.id in by_id]
    order += sorted(set(by_id) - set(order))
    return [by_id[i] for i in order]


def merge_samples(run_dir: Path, episodes: list[EpisodeSpec]) -> int:
    """Fold the shard files (and any copies from other folders) into samples.jsonl, in
    episode order, one record per episode id; then move the shard files to shards/.

    Damaged lines of the folded files are set aside first (`records.mend_samples`); returns
    how many. The caller owns every sample file of the folder (its locks, or the barrier
    after which no rank writes).
    """
    damaged = sum(mend_samples(path) for path in sample_files(run_dir))
    write_samples(run_dir / "samples.jsonl", _all_samples(run_dir, episodes))
    shards = run_dir / "shards"  # kept for the record: which process ran which episode
    for path in run_dir.glob("samples.shard*.jsonl"):
        shards.mkdir(exist_ok=True)
        path.replace(shards / path.name)
    return damaged


def merge(
    run_dirs: list[Path], *, quiet: bool = False, console: Console | None = None
) -> RunOutcome:
    """Merge run folders of one key (shards of a SLURM array) into the first; results.json and
    grid.png anew, describing every sample, with config.shard null.

    Every sample file of the folders is claimed first (a shard still running there stops
    the merge with a one-line DataError).
    """
    from sdvicl_bench.errors import DataError

    console = console or Console(stderr=True)
    infos = []
    for d in run_dirs:
        if not (d / "run.json").is_file():
            raise DataError(
                f"{d} is not a run folder (no run.json). "
                "Fix: pass folders under results/runs/<task>/."
            )
        infos.append(json.loads((d / "run.json").read_text()))
    keys = {i["key"] for i in infos}
    if len(keys) != 1:
        raise DataError(
            f"Run folders of different runs (keys {', '.join(sorted(keys))}). "
            "Fix: merge shards of one run only."
        )
    target = run_dirs[0]
    others = list({d.resolve(): d for d in run_dirs[1:] if d.resolve() != target.resolve()})
    claimed = [target / "samples.jsonl", *sample_files(target)]
    claimed += [path for other in others for path in sample_files(other)]
    with contextlib.ExitStack() as claims:
        for path in dict.fromkeys(claimed):
            claims.enter_context(SampleLock(path))
        for other in others:
            for path in sample_files(other):
                shutil.copyfile(path, target / f"{path.stem}.from-{other.name}.jsonl")
            for pic in (other / "pictures").glob("*"):
                if not (target / "pictures" / pic.name).exists():
                    shutil.copyfile(pic, target / "pictures" / pic.name)
        cfg, protocol = protocol_of(target)
        cfg = replace(cfg, shard=None)  # the merged folder is the whole run
        episodes = read_episodes(target / "episodes.jsonl")
        _report_damaged(merge_samples(target, episodes), target, console)
        for path in target.glob("samples*.from-*.jsonl"):
            path.unlink()
        samples = _all_samples(target, episodes)
        results = _results(cfg, protocol, infos[0]["key"], samples, 0.0, 0)
        write_json(target / "results.json", results)
        if cfg.save_pictures and samples:
            write_grid(protocol, target, console=console)
    if not quiet:
        print_summary(results, target, console)
    return RunOutcome(target, results, True, 0)


def _run_episodes(cfg, protocol, sampler, todo, samples_path, device, quiet, console) -> None:
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
        disable=quiet or not console.is_terminal,  # plain log lines instead (below)
    )
    batch_size = cfg.sampler.batch_episodes
    run_dir = samples_path.parent
    with progress, SampleWriter(samples_path) as writer:
        bar = progress.add_task(cfg.task.name, total=len(todo), rate="")
        t0 = time.perf_counter()
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            tb = time.perf_counter()
            inputs = [protocol.sampler_input(spec) for spec in batch]
            outputs = sampler.run([x for x, _ in inputs])
            seconds = (time.perf_counter() - tb) / len(batch)
            for spec, (_, truth), out in zip(batch, inputs, outputs, strict=True):
                record = _record(protocol, spec, truth, out.picture, run_dir, seconds, cfg, device)
                writer.write(record)
            finished = start + len(batch)
            rate = (time.perf_counter() - t0) / finished
            progress.update(bar, advance=len(batch), rate=f"{rate:.2f} s/episode")
            if quiet is False and not console.is_terminal:
                console.print(
                    f"{cfg.task.name}: {finished}/{len(todo)} episodes, {rate:.2f} s/episode"
                )


def _record(
    protocol: TaskProtocol,
    spec: EpisodeSpec,
    truth,
    picture: Image.Image,
    run_dir: Path,
    seconds: float,
    cfg: RunConfig,
    device: str = "unknown",
) -> dict:
    """One samples.jsonl record: scores, baselines, picture paths, seconds, device; saves the
    prediction and GT pictures where `cfg.save_pictures`."""
    scored = protocol.score(spec, truth, picture)
    record = record_of(protocol, spec, scored, seconds, device)
    if cfg.save_pictures:
        picture.save(run_dir / record["pred"])
        scored.gt_picture.save(run_dir / record["gt"])
    return record


def record_of(
    protocol: TaskProtocol, spec: EpisodeSpec, scored: Scored, seconds: float, device: str
) -> dict:
    """The samples.jsonl record of a scored episode (what `_record` writes; `rescore` too)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.id)  # ids may hold "/" (city/name, wnid/file)
    return {
        "id": spec.id,
        "query": spec.query,
        "prompts": list(spec.prompts),
        "seed": spec.seed,
        "group": protocol.group_of(spec),
        "scores": scored.scores,
        "baselines": scored.baselines,
        "pred": f"pictures/{stem}.pred.png",
        "gt": f"pictures/{stem}.gt.png",
        "seconds": round(seconds, 4),
        "device": device,
        **scored.extra,
    }


def _aggregate(values: list[float]) -> dict[str, float]:
    """Mean with a 95% bootstrap interval over the finite values (NaN = not scorable)."""
    values = [v for v in values if v == v]
    return mean_with_ci(values) if values else {"mean": float("nan"), "n": 0}


def _score_of(sample: dict, baseline: str | None, metric: str) -> float:
    """A record's score of ours (baseline None) or a baseline; NaN where the record lacks it
    (made before the metric existed: `sdvicl-bench rescore` adds it)."""
    scores = sample.get("scores") if baseline is None else sample.get("baselines", {}).get(baseline)
    value = (scores or {}).get(metric)
    return float("nan") if value is None else value


def _dataset_block(value: float | dict[str, Any], n: int) -> dict[str, Any]:
    """A set-level metric's results.json block: a number over `n` samples, or the block a
    protocol gives (`overall`, and any of `per_fold`, `mean_of_folds`, `per_class`)."""
    return dict(value) if isinstance(value, dict) else {"overall": {"mean": value, "n": n}}


def _stale_samples(protocol: TaskProtocol, samples: list[dict]) -> list[str]:
    """Ids of the records that lack a metric's score or a field the protocol's set-level
    metrics read (`record_fields`): made by an older version, their numbers show as NaN or
    leave the mean until `sdvicl-bench rescore` recomputes them."""
    fields = protocol.record_fields
    return [
        s["id"]
        for s in samples
        if any(m not in s.get("scores", {}) for m in protocol.metrics)
        or any(f not in s for f in fields)
    ]


def _results(cfg, protocol, key, samples, elapsed, new) -> dict[str, Any]:
    """results.json: metrics and baselines over `samples` (every finished sample of the
    folder), the devices that produced them, versions and this session's timing.

    Per-sample metrics: the mean with a bootstrap interval over the records that have the
    score (n says how many), per group and the mean of groups. Set-level metrics: the
    protocol's `dataset_metric`, a number or a whole block (`_dataset_block`).
    """
    groups = sorted({s["group"] for s in samples if s.get("group") is not None})

    def block(get) -> dict[str, Any]:
        per_group = {
            g: _aggregate([get(s) for s in samples if s.get("group") == g]) for g in groups
        }
        group_means = [v["mean"] for v in per_group.values() if v.get("n")]
        return {
            "overall": _aggregate([get(s) for s in samples]),
            "per_fold": per_group,
            "mean_of_folds": float(np.mean(group_means)) if group_means else float("nan"),
        }

    metrics = {m: block(lambda s, m=m: _score_of(s, None, m)) for m in protocol.metrics}
    baselines = {
        name: {m: block(lambda s, n=name, m=m: _score_of(s, n, m)) for m in protocol.metrics}
        for name in protocol.baselines
    }
    for m in protocol.dataset_metrics:  # set-level metrics: one value from all samples
        metrics[m] = _dataset_block(protocol.dataset_metric(m, samples, None), len(samples))
        for name in protocol.baselines:
            value = protocol.dataset_metric(m, samples, name)
            baselines[name][m] = _dataset_block(value, len(samples))
    note = model_note(cfg.model.name)
    devices = _device_counts(samples)
    seconds = [s["seconds"] for s in samples if isinstance(s.get("seconds"), (int, float))]
    return {
        "key": key,
        "task": cfg.task.name,
        "task_version": cfg.task.version,
        "n": len(samples),
        "metrics": metrics,
        "baselines": baselines,
        "note": note,
        "config": _reported_config(cfg, protocol),
        "versions": {
            "sdvicl_bench": sdvicl_bench.__version__,
            "torch": torch.__version__,
            "diffusers": _version("diffusers"),
            "python": platform.python_version(),
        },
        "git": _git_hash(),
        "device": ", ".join(devices) or "n/a",
        "devices": devices,
        "timing": {
            "seconds_this_session": round(elapsed, 2),
            "new_samples": new,
            "mean_seconds_per_episode": round(float(np.mean(seconds)), 4) if seconds else None,
        },
    }


def _reported_config(cfg: RunConfig, protocol: TaskProtocol) -> dict[str, Any]:
    """The resolved config for results.json, with `task.metrics` completed by the protocol's
    `metric_specs` (direction and scale of metrics the task YAML does not list, e.g. ones
    added since; the YAML's own entries win). Tables and summaries read them from here; the
    run key is computed from the config itself, so it does not change."""
    config = to_dict(cfg)
    specs = config["task"].get("metrics") or {}
    defaults = protocol.metric_specs
    config["task"]["metrics"] = {**specs, **{k: v for k, v in defaults.items() if k not in specs}}
    return config


def _device_counts(samples: list[dict]) -> dict[str, int]:
    """How many samples each device produced ("unknown": records from before the field)."""
    return dict(Counter(str(s.get("device") or "unknown") for s in samples))


def print_summary(results: dict[str, Any], run_dir: Path, console: Console) -> None:
    """A table of ours and the baselines, with n and the 95% interval; where the files are.

    Per metric: the mean (scaled as the task YAML says), its 95% bootstrap interval where the
    metric is per-sample, and the mean of folds where the task has folds. The title gives the
    episode count, per fold where the run has folds (`count_phrase`).
    """
    from sdvicl_bench.report.tables import count_phrase

    specs = results["config"]["task"].get("metrics") or {}
    rows = [("SD-VICL", results["metrics"])] + [
        (f"baseline: {k}", v) for k, v in results["baselines"].items()
    ]
    table = Table(title=f"{results['task']} (v{results['task_version']}), {count_phrase(results)}")
    table.add_column("method")
    columns = []
    for metric in results["metrics"]:
        spec = specs.get(metric) or {}
        arrow = "↑" if spec.get("higher_is_better", True) else "↓"
        has_ci = "low" in results["metrics"][metric]["overall"]
        folds = results["metrics"][metric].get("mean_of_folds", float("nan"))
        has_folds = folds == folds
        table.add_column(f"{metric} {arrow}", justify="right")
        if has_ci:
            table.add_column("95% CI", justify="right")
        if has_folds:
            table.add_column("mean of folds", justify="right")
        columns.append((metric, float(spec.get("scale", 1)), has_ci, has_folds))
    for name, block in rows:
        cells = [name]
        for metric, scale, has_ci, has_folds in columns:
            o = block[metric]["overall"]
            cells.append("n/a" if o["mean"] != o["mean"] else f"{scale * o['mean']:.4g}")
            if has_ci:
                ci = f"[{scale * o['low']:.3g}, {scale * o['high']:.3g}]" if "low" in o else "n/a"
                cells.append(ci)
            if has_folds:
                cells.append(f"{scale * block[metric]['mean_of_folds']:.4g}")
        table.add_row(*cells)
    console.print(table)
    if results["note"]:
        console.print(f"[bold yellow]Note:[/] {results['note']}")
    console.print(f"Run folder: {run_dir}")
    if (run_dir / "grid.png").exists():
        console.print(f"Pictures: {run_dir / 'grid.png'} (A | B | C | prediction | decoded | GT)")


def _model_identity(cfg: RunConfig) -> dict[str, Any]:
    m = cfg.model
    if m.name == "sd15":
        return {
            "name": m.name,
            "source": m.path or m.hub_id,
            "revision": None if m.path else m.revision,
        }
    if m.name == "toy":  # its weights' identity: a retraining gets new run folders
        folder = Path(m.path).expanduser() if m.path else TOY_WEIGHTS
        weights = check_weights(folder)
        return {"name": m.name, "weights": run_key(weights)}
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
