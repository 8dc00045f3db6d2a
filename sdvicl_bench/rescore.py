"""`sdvicl-bench rescore`: a run's scores, results.json and grid anew from its saved pictures.

For a run scored by an older task version, or before a metric existed, finished or partial.
No model is loaded: each record's truth is rebuilt from the dataset
(`protocol.sampler_input`, which reads dataset images only), its saved prediction picture is
scored again (`protocol.score`), and the record is rewritten with the new scores, baselines
and extras (its id, prompts, seed, seconds, device and picture paths kept; the GT picture
redrawn). A record made before the oracle row existed gains it (the GT rendered from the
dataset and sent through the run's sampler side, `protocols.oracle`); fgseg counts made with
the void pixels as background (records without `counts_void`) are made void-free, as the
run's `task.options.void` (default ignore) says; `rescored.rules_before` keeps the old
rule. Options a run predates take their current default: colorization's FID is recomputed
with `fid_preprocess=pytorch_fid` (older runs used clean-fid's resize), and results.json's
config names it; keypoints keep `normalize=image` unless the run set `box`. results.json
is rebuilt by the code `run` uses (`running.results.results_of`), with
the task's current version and metric specs (conf/task/<task>.yaml); the previous one is kept
as `results.<timestamp>.json`. grid.png is redrawn.

Records whose scoring is heavy (edges' BSDS boundary matching, seconds per image) are scored
over every core (`workers_for`: spawned workers that rebuild the run's protocol from the
folder); the numbers do not depend on it.

Every sample file of the folder is claimed first, so a run still writing there stops rescore
with one line; a missing prediction picture stops it, with one line, before anything is
written. Sample files are rewritten atomically, each in place (shard files stay shard files).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from PIL import Image
from rich.console import Console

from sdvicl_bench import evaluate
from sdvicl_bench.config import RunConfig, from_dict
from sdvicl_bench.errors import DataError, UserError
from sdvicl_bench.protocols import TaskProtocol
from sdvicl_bench.report.console import make_console
from sdvicl_bench.report.lock import SampleLock
from sdvicl_bench.report.records import (
    all_samples,
    mend_samples,
    read_episodes,
    read_samples,
    sample_files,
    write_json,
    write_samples,
)
from sdvicl_bench.report.summary import print_summary
from sdvicl_bench.running.reporter import Reporter
from sdvicl_bench.running.results import results_of
from sdvicl_bench.types import EpisodeSpec

TASK_CONF = Path(__file__).resolve().parent / "conf" / "task"
"""Where the current task YAMLs live (their `version` and `metrics` go into results.json)."""


def rescore(
    run_dir: Path, *, quiet: bool = False, console: Console | None = None
) -> evaluate.RunOutcome:
    """Rescore one run folder in place (see the module doc); returns its new results."""
    console = console or make_console()
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run_cfg, protocol = evaluate.protocol_of(run_dir)
    key = json.loads((run_dir / "run.json").read_text())["key"]
    episodes = read_episodes(run_dir / "episodes.jsonl")
    claimed = [run_dir / "samples.jsonl", *sample_files(run_dir)]
    with contextlib.ExitStack() as claims:
        for path in dict.fromkeys(claimed):
            claims.enter_context(SampleLock(path))
        files = {path: read_samples(path) for path in sample_files(run_dir)}
        records = [r for rs in files.values() for r in rs]
        if not records:
            raise DataError(
                f"{run_dir} has no finished sample yet: nothing to rescore. Fix: run the "
                "command that made it first (sdvicl-bench run with the same overrides)."
            )
        check_pictures(run_dir, records, run_cfg.save_pictures)
        specs = {e.id: e for e in episodes}
        reporter = Reporter(console, quiet)
        rescored: dict[Path, list[dict]] = {}
        with reporter.progress(f"rescore {run_cfg.task.name}", len(records)) as tick:
            t0, new = time.perf_counter(), []
            for done, record in enumerate(rescore_all(protocol, specs, run_dir, records), 1):
                new.append(record)
                if done % 25 == 0 or done == len(records):  # a log line now and then
                    tick(25 if done % 25 == 0 else done % 25, done, _rate(t0, done))
            for path, rs in files.items():
                rescored[path], new = new[: len(rs)], new[len(rs) :]
        Reporter(console).damaged(sum(mend_samples(p) for p in files), run_dir, redone=False)
        for path, new in rescored.items():
            write_samples(path, new)

        cfg = _current_task(_config_of(run_dir, run_cfg))
        samples = all_samples(run_dir, episodes)
        elapsed = time.perf_counter() - started
        results = results_of(cfg, protocol, key, samples, elapsed, 0, run_dir=run_dir)
        results["timing"]["unet_calls_this_session"] = 0
        kept = _keep_old_results(run_dir)
        results["rescored"] = {
            "at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "previous_results": kept,
            "task_version_before": run_cfg.task.version,
            "rules_before": rules_before(protocol, records),
        }
        write_json(run_dir / "results.json", results)
        if run_cfg.save_pictures:
            evaluate.write_grid(protocol, run_dir, console=console, warn_missing=False)
    if not quiet:
        print_summary(results, run_dir, console)
    return evaluate.RunOutcome(run_dir, results, True, 0)


def _rate(started: float, done: int) -> float:
    return (time.perf_counter() - started) / max(done, 1)


def check_pictures(run_dir: Path, records: list[dict], save_pictures: bool = True) -> None:
    """One-line DataError when a record's prediction picture is not in the run folder."""
    missing = [
        r.get("pred") if isinstance(r.get("pred"), str) else f"{r['id']} (no pred path)"
        for r in records
        if not isinstance(r.get("pred"), str) or not (run_dir / r["pred"]).is_file()
    ]
    if not missing:
        return
    if not save_pictures and len(missing) == len(records):
        raise DataError(
            f"{run_dir} keeps no prediction pictures (it ran with save_pictures=false), and "
            "rescore scores the saved pictures. Fix: rerun it with save_pictures=true."
        )
    shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    plural = "s" if len(missing) > 1 else ""
    raise DataError(
        f"{len(missing)} prediction picture{plural} of {run_dir} missing ({shown}); rescore "
        "scores the saved pictures. Fix: restore them, or delete those samples' lines from "
        "the sample file and rerun to redo them."
    )


def rules_before(protocol: TaskProtocol, records: list[dict]) -> dict[str, list[str]]:
    """{rule field: the rules the old records were made by}, for each record rule of the
    protocol's set-level metrics (fgseg's `counts_void`: ["background"] for a run from
    before the void pixels left the counts; rescore recomputes them under the current rule,
    which results.json's blocks name)."""
    rules = {a.rule.field: a.rule for a in protocol.set_level.values() if a.rule}
    return {name: sorted({r.of_record(x) for x in records}) for name, r in rules.items()}


HEAVY_FIELDS = frozenset({"boundary_counts"})
"""Record fields that take seconds per record to compute (edges' BSDS boundary matching:
1.7-3.8 s per 481 x 321 image): a rescore of such a run scores its records over processes."""


def workers_for(protocol: TaskProtocol, count: int) -> int:
    """Processes to score `count` records with: every core where a record field is heavy
    (`HEAVY_FIELDS`) and there are records enough to pay for starting them, else 1."""
    heavy = HEAVY_FIELDS & set(protocol.record_fields)
    return max(1, min(os.cpu_count() or 1, count)) if heavy and count >= 2 else 1


def rescore_all(
    protocol: TaskProtocol,
    specs: dict[str, EpisodeSpec],
    run_dir: Path,
    records: list[dict],
    workers: int | None = None,
) -> Iterator[dict]:
    """Every record scored again (`_rescored`), in order, as each is done; over `workers`
    processes (default `workers_for`), each of which rebuilds the run's protocol from the
    folder (spawned, not forked: a forked copy of a process that ran torch can hang). The
    scores do not depend on `workers`."""
    workers = workers_for(protocol, len(records)) if workers is None else workers
    if workers <= 1:
        for record in records:
            yield _rescored(protocol, specs, run_dir, record)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(run_dir,)
    ) as pool:
        yield from pool.map(_rescored_job, records)


_JOB: tuple | None = None
"""(protocol, specs, run_dir) of a rescore worker, set by `_start_worker`."""


def _start_worker(run_dir: Path) -> None:
    """A worker's protocol and episodes, rebuilt from the run folder as the parent's were."""
    global _JOB
    _, protocol = evaluate.protocol_of(run_dir)
    specs = {e.id: e for e in read_episodes(run_dir / "episodes.jsonl")}
    _JOB = (protocol, specs, run_dir)


def _rescored_job(record: dict) -> dict:
    """`_rescored` in a worker, on the run its initializer loaded (`_JOB`)."""
    assert _JOB is not None, "the pool's initializer loads the run first"
    return _rescored(*_JOB, record)


def _rescored(
    protocol: TaskProtocol, specs: dict[str, EpisodeSpec], run_dir: Path, record: dict
) -> dict:
    """The record scored again from its saved prediction picture; the GT picture redrawn."""
    spec = specs.get(record["id"]) or _spec_of(record)
    _, truth = protocol.sampler_input(spec)
    with Image.open(run_dir / record["pred"]) as image:
        picture = image.convert("RGB")
    scored = protocol.score(spec, truth, picture)
    new = evaluate.record_of(protocol, spec, scored, 0.0, "unknown")
    for kept in ("seconds", "device", "pred", "gt"):
        if kept in record:
            new[kept] = record[kept]
    if protocol.cfg.save_pictures:
        _save_atomically(scored.gt_picture, run_dir / new["gt"])
    return {**record, **new}


def _spec_of(record: dict) -> EpisodeSpec:
    """The episode of a record whose id is not in episodes.jsonl (merged in from elsewhere)."""
    group = record.get("group")
    meta = {} if group is None else {"fold": group}
    return EpisodeSpec(
        record["id"], record["query"], tuple(record["prompts"]), record["seed"], meta
    )


def _save_atomically(picture: Image.Image, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    picture.save(tmp, format="PNG")
    os.replace(tmp, path)


def _config_of(run_dir: Path, run_cfg: RunConfig) -> RunConfig:
    """The config of the run's last session (results.json), else the one it was made with."""
    try:
        return from_dict(RunConfig, json.loads((run_dir / "results.json").read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return run_cfg


def _current_task(cfg: RunConfig) -> RunConfig:
    """`cfg` with the task's current `version` and `metrics` specs (higher_is_better, scale),
    so results.json names the version that scored it and tables scale new metrics; an option
    the YAML sets that the run's config lacks (made before it existed, e.g. colorization's
    `fid_preprocess`) gets the YAML's value, the default the scoring code applied to it."""
    path = TASK_CONF / f"{cfg.task.name}.yaml"
    if not path.is_file():
        return cfg
    current: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    task = replace(
        cfg.task,
        version=int(current.get("version", cfg.task.version)),
        metrics=dict(current.get("metrics") or cfg.task.metrics),
        options={**(current.get("options") or {}), **cfg.task.options},
    )
    return replace(cfg, task=task)


def _keep_old_results(run_dir: Path) -> str | None:
    """Copy results.json to results.<timestamp>.json (a new name); that name, or None."""
    old = run_dir / "results.json"
    if not old.is_file():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(old.stat().st_mtime))
    target = run_dir / f"results.{stamp}.json"
    n = 1
    while target.exists():
        target = run_dir / f"results.{stamp}-{n}.json"
        n += 1
    shutil.copy2(old, target)
    return target.name
