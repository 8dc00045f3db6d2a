"""The one orchestrator: data -> episodes -> sampler -> decoder -> metrics -> run record.

`run(cfg)` finds or creates the run folder by key, runs only the episodes not yet in
samples.jsonl (so a rerun resumes and a larger `limit` extends), scores each prediction, the
trivial baselines and the oracle (the task's ceiling, `protocols.oracle`) on the same
episode, and writes results.json.
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

import sdvicl_bench
from sdvicl_bench import sharding
from sdvicl_bench.config import RunConfig, to_dict
from sdvicl_bench.metrics.aggregate import metric_block
from sdvicl_bench.protocols import Scored, TaskProtocol, make_protocol
from sdvicl_bench.report import lock
from sdvicl_bench.report.lock import SampleLock
from sdvicl_bench.report.records import (
    DAMAGED_NAME,
    SampleWriter,
    all_samples,
    creation_lock_path,
    find_or_create_run_dir,
    mend_samples,
    merge_samples,
    missing_pictures,
    read_episodes,
    read_run_samples,
    run_key,
    sample_files,
    write_episodes,
    write_json,
)
from sdvicl_bench.report.summary import print_summary
from sdvicl_bench.sampler.backbones.registry import get_backbone
from sdvicl_bench.sampler.models import load_model, model_identity
from sdvicl_bench.sampler.pipeline import Sampler
from sdvicl_bench.sampler.variants import non_shareable_differences
from sdvicl_bench.types import EpisodeSpec

RANDOM_WEIGHTS_NOTE = (
    "model={name} has random weights: its numbers say nothing about the method. "
    "Only the baseline and oracle rows are meaningful."
)
TOY_NOTE = (
    "model=toy is a small model (1.5 M parameters, 32 px) trained here on synthetic demo "
    "data, not SD1.5: it shows the method working at toy scale; its numbers do not predict "
    "SD1.5's (docs/TOY.md)."
)


def model_note(name: str) -> str | None:
    """The one line a summary shows about what the model's numbers can mean: none for a
    model with real weights (sd15, sd21, sdxl), a warning for the toy and random ones."""
    kind = get_backbone(name).kind
    if kind == "hub":
        return None
    return TOY_NOTE if kind == "toy" else RANDOM_WEIGHTS_NOTE.format(name=name)


@dataclass
class RunOutcome:
    run_dir: Path
    results: dict[str, Any]
    resumed: bool
    new_samples: int


def _sampler_identity(cfg: RunConfig) -> dict[str, Any]:
    """The sampler settings that change a number, for the run key.

    Exactness switches that only change how (episode batching, the attention kernel, the
    row budget) are left out, so a run resumes across them.
    """
    sampler = to_dict(replace(cfg.sampler, batch_episodes=1))
    sampler["attention"].pop("kernel", None)
    sampler.pop("row_budget", None)
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
        key = _key_of(cfg, protocol, episodes)
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


NOT_SHARED_IGNORED = ("output_dir", "save_pictures", "experiment")
"""RunConfig fields that may differ between variants sharing rows (not about the numbers)."""


def shared_rows_differences(a: RunConfig, b: RunConfig) -> list[str]:
    """The settings (dotted names) where two runs differ and that keep them from sharing A,
    B and C rows in one U-Net batch: anything outside the sampler that changes the episodes,
    the model or the task, and the sampler's `non_shareable_differences` (steps, skip,
    resolution, inversion). Empty: the runs differ only in what happens to D."""
    flat_a, flat_b = _flatten(to_dict(replace(a, sampler=b.sampler))), _flatten(to_dict(b))
    outside = sorted(
        k
        for k in flat_a.keys() | flat_b.keys()
        if flat_a.get(k) != flat_b.get(k) and k.split(".")[0] not in NOT_SHARED_IGNORED
    )
    return outside + non_shareable_differences(a.sampler, b.sampler)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def sharing_groups(cfgs: list[RunConfig]) -> list[list[int]]:
    """Indices of `cfgs` grouped so that each group's runs can share rows (in input order)."""
    groups: list[list[int]] = []
    for i, cfg in enumerate(cfgs):
        for group in groups:
            if not shared_rows_differences(cfgs[group[0]], cfg):
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


def run_many(
    cfgs: list[RunConfig], *, quiet: bool = False, console: Console | None = None
) -> list[RunOutcome]:
    """Run (or resume) several configs, each into its own run folder, sharing rows where
    they can: configs that differ only in what happens to D (an ablation's or a sweep's
    variants; `sharing_groups`) run in one pass with one U-Net batch per step
    (`Sampler.run_variants`); a config alone in its group runs with `run`. An episode is
    sampled only for the variants whose folder lacks it, so a killed pass resumes without
    redoing any variant's finished episodes. Outcomes come back in the order of `cfgs`.
    """
    console = console or Console(stderr=True)
    outcomes: dict[int, RunOutcome] = {}
    for group in sharing_groups(cfgs):
        members = [cfgs[i] for i in group]
        if len(group) == 1 or sharding.resolve_shard(members[0].shard).distributed:
            done = [run(cfg, quiet=quiet, console=console) for cfg in members]
        else:
            done = _run_joint(members, quiet, console)
        outcomes.update(zip(group, done, strict=True))
    return [outcomes[i] for i in range(len(cfgs))]


def _run_joint(cfgs: list[RunConfig], quiet: bool, console: Console) -> list[RunOutcome]:
    """`run` for configs that share A, B and C rows: one folder each, one sampling pass.

    Every folder's sample file is claimed until its results.json is written; a folder this
    call created is removed again (after the claims are released) when the pass fails before
    writing any sample to it.
    """
    with _sigterm_interrupts():
        protocol = make_protocol(cfgs[0])
        episodes = protocol.episodes()
        shard = sharding.resolve_shard(cfgs[0].shard)
        opened: list[tuple[RunConfig, str, Path, bool]] = []
        try:
            with contextlib.ExitStack() as claims:
                for cfg in cfgs:
                    key = _key_of(cfg, protocol, episodes)
                    run_dir, resumed, claim = _open_run_dir(cfg, key, episodes, shard)
                    claims.enter_context(claim)
                    opened.append((cfg, key, run_dir, resumed))
                return _run_joint_claimed(protocol, episodes, shard, opened, quiet, console)
        except BaseException:
            for cfg, _, run_dir, resumed in opened:
                if not resumed:
                    _remove_if_empty(run_dir, Path(cfg.output_dir), cfg.task.name)
            raise


def _run_joint_claimed(protocol, episodes, shard, opened, quiet, console) -> list[RunOutcome]:
    """Steps 3 and 4 of `run` for every opened folder, with one sampling pass between."""
    todos = [
        _pending(cfg, protocol, episodes, shard, run_dir, resumed, quiet, console)
        for cfg, _, run_dir, resumed in opened
    ]
    needed = {e.id for todo in todos for e in todo}
    union = [e for e in episodes if e.id in needed]
    started = time.perf_counter()
    unet_calls = 0
    if union:
        cfg = opened[0][0]
        model = load_model(cfg.model)
        sampler = Sampler(model, cfg.sampler)
        writes = [
            (cfg, run_dir / shard.samples_name, {e.id for e in todo})
            for (cfg, _, run_dir, _), todo in zip(opened, todos, strict=True)
        ]
        _run_episodes(protocol, sampler, union, writes, _device_name(model.device), quiet, console)
        unet_calls = sampler.unet_calls
    elapsed = time.perf_counter() - started
    return [
        _conclude(
            cfg,
            protocol,
            key,
            episodes,
            shard,
            run_dir,
            resumed,
            elapsed,
            todo,
            unet_calls,
            quiet,
            console,
        )
        for (cfg, key, run_dir, resumed), todo in zip(opened, todos, strict=True)
    ]


def _key_of(cfg: RunConfig, protocol: TaskProtocol, episodes: list[EpisodeSpec]) -> str:
    """The run key: a hash of everything that changes a sample.

    The task's `metrics` are left out: they say how samples are scored and shown, not what
    is sampled, so a metric added to a task YAML keeps the run's folder (its older records
    show as stale until `sdvicl-bench rescore` scores them again).
    """
    task = to_dict(cfg.task)
    task.pop("metrics", None)
    return run_key(
        {
            "task": task,
            "sampler": _sampler_identity(cfg),
            "model": _model_identity(cfg),
            "data": protocol.key_inputs(),
            "episodes": [e.to_json() for e in episodes],
            "seed": cfg.seed,
            "prompts": cfg.num_prompts,
        }
    )


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

    # 3. What is left: this shard's episodes within `limit` with no finished sample.
    todo = _pending(cfg, protocol, episodes, shard, run_dir, resumed, quiet, console)
    started = time.perf_counter()
    unet_calls = 0
    if todo:
        model = load_model(cfg.model)
        sampler = Sampler(model, cfg.sampler)
        writes = [(cfg, run_dir / shard.samples_name, {e.id for e in todo})]
        _run_episodes(protocol, sampler, todo, writes, _device_name(model.device), quiet, console)
        unet_calls = sampler.unet_calls
    elapsed = time.perf_counter() - started

    # 4. Aggregate every finished sample of the folder and write results.json.
    return _conclude(
        cfg,
        protocol,
        key,
        episodes,
        shard,
        run_dir,
        resumed,
        elapsed,
        todo,
        unet_calls,
        quiet,
        console,
    )


def _pending(cfg, protocol, episodes, shard, run_dir, resumed, quiet, console) -> list[EpisodeSpec]:
    """This shard's episodes within `limit` that have no finished sample in `run_dir`.

    Damaged lines of this process's own sample file are set aside first (their episodes are
    redone); missing pictures and stale records are reported; a resumed run says so.
    """
    writes = shard.leader or not shard.distributed  # who writes results.json and grid.png
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
    return todo


def _conclude(
    cfg,
    protocol,
    key,
    episodes,
    shard,
    run_dir,
    resumed,
    elapsed,
    todo,
    unet_calls,
    quiet,
    console,
) -> RunOutcome:
    """results.json over every finished sample of the folder, the grid and the summary
    (after all ranks under torchrun, whose leader merges the shard files into samples.jsonl)."""
    writes = shard.leader or not shard.distributed
    sharding.barrier(shard)
    if shard.distributed and shard.leader:
        _report_damaged(merge_samples(run_dir, episodes), run_dir, console)
    samples = all_samples(run_dir, episodes)
    results = _results(cfg, protocol, key, samples, elapsed, len(todo), run_dir=run_dir)
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
    """One line when finished records lack a metric or a baseline row (the oracle) the
    protocol reports now (`_stale_samples`)."""
    stale = _stale_samples(protocol, samples)
    if stale:
        _say(
            console,
            f"note: {len(stale)} finished sample{'s' if len(stale) > 1 else ''} of {run_dir} "
            "predate some of this task's metrics or baseline rows (e.g. the oracle), which "
            "leave them out (or show n/a). "
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
    return cfg, make_protocol(cfg)


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
        samples = [s for s in all_samples(run_dir, episodes) if s["id"] in (ids or set())]
        key = json.loads((run_dir / "run.json").read_text())["key"]
        out.append(_results(cfg, protocol, key, samples, 0.0, 0, run_dir=run_dir))
    return out


def _run_episodes(protocol, sampler, todo, writes, device, quiet, console) -> None:
    """Sample, decode, score and record `todo` in batches of `batch_episodes`.

    writes: one (config, sample file, ids it still needs) per variant. One variant runs
    `Sampler.run`; several share each episode's A, B and C rows in one U-Net batch per step
    (`Sampler.run_variants`), each episode sampled only for the variants that need it.
    """
    cfg = writes[0][0]
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
    label = cfg.task.name if len(writes) == 1 else f"{cfg.task.name} x {len(writes)} variants"
    with progress, contextlib.ExitStack() as files:
        writers = [files.enter_context(SampleWriter(path)) for _, path, _ in writes]
        bar = progress.add_task(label, total=len(todo), rate="")
        t0 = time.perf_counter()
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for need, specs in _by_variants_needed(batch, writes).items():
                tb = time.perf_counter()
                inputs = [protocol.sampler_input(spec) for spec in specs]
                episodes = [x for x, _ in inputs]
                if len(writes) == 1:
                    outputs = [sampler.run(episodes)]
                else:
                    outputs = sampler.run_variants(episodes, [writes[v][0].sampler for v in need])
                # seconds per episode and variant: the batch's time shared by its rows' owners
                seconds = (time.perf_counter() - tb) / (len(specs) * len(need))
                for v, results in zip(need, outputs, strict=True):
                    v_cfg, path, _ = writes[v]
                    for spec, (_, truth), out in zip(specs, inputs, results, strict=True):
                        record = _record(
                            protocol, spec, truth, out.picture, path.parent, seconds, v_cfg, device
                        )
                        writers[v].write(record)
            finished = start + len(batch)
            rate = (time.perf_counter() - t0) / finished
            progress.update(bar, advance=len(batch), rate=f"{rate:.2f} s/episode")
            if quiet is False and not console.is_terminal:
                console.print(f"{label}: {finished}/{len(todo)} episodes, {rate:.2f} s/episode")


def _by_variants_needed(
    batch: list[EpisodeSpec], writes: list[tuple]
) -> dict[tuple[int, ...], list[EpisodeSpec]]:
    """The batch's episodes grouped by which variants still need them (batch order kept)."""
    groups: dict[tuple[int, ...], list[EpisodeSpec]] = {}
    for spec in batch:
        need = tuple(v for v, (_, _, ids) in enumerate(writes) if spec.id in ids)
        if need:
            groups.setdefault(need, []).append(spec)
    return groups


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
    """Ids of the records that lack a metric's score, a baseline row (e.g. the oracle) or a
    field the protocol's set-level metrics read (`record_fields`): made by an older version,
    their numbers show as NaN or leave the mean until `sdvicl-bench rescore` recomputes them."""
    fields = protocol.record_fields
    return [
        s["id"]
        for s in samples
        if any(m not in s.get("scores", {}) for m in protocol.metrics)
        or any(b not in (s.get("baselines") or {}) for b in protocol.baselines)
        or any(f not in s for f in fields)
    ]


def _results(cfg, protocol, key, samples, elapsed, new, *, run_dir=None) -> dict[str, Any]:
    """results.json: metrics and baselines over `samples` (every finished sample of the
    folder), the devices that produced them, versions and this session's timing.

    Per-sample metrics: the mean with a bootstrap interval over the records that have the
    score (n says how many), per group and the mean of groups. Set-level metrics: the
    protocol's `dataset_metric` (which may read the run folder `run_dir`, e.g. FID's
    pictures), a number or a whole block (`_dataset_block`).
    """
    groups = [s.get("group") for s in samples]

    def block(get) -> dict[str, Any]:
        return metric_block([get(s) for s in samples], groups)

    metrics = {m: block(lambda s, m=m: _score_of(s, None, m)) for m in protocol.metrics}
    baselines = {
        name: {m: block(lambda s, n=name, m=m: _score_of(s, n, m)) for m in protocol.metrics}
        for name in protocol.baselines
    }
    for m in protocol.dataset_metrics:  # set-level metrics: one value from all samples
        value = protocol.dataset_metric(m, samples, None, run_dir)
        metrics[m] = _dataset_block(value, len(samples))
        for name in protocol.baselines:
            value = protocol.dataset_metric(m, samples, name, run_dir)
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


def _model_identity(cfg: RunConfig) -> dict[str, Any]:
    return model_identity(cfg.model)


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
