"""The one orchestrator: data -> episodes -> sampler -> decoder -> metrics -> run record.

`run(cfg)` finds or creates the run folder by key, runs only the episodes not yet in
samples.jsonl (so a rerun resumes and a larger `limit` extends), scores each prediction, the
trivial baselines and the oracle (the task's ceiling, `protocols.oracle`) on the same
episode, and writes results.json. `run_many(cfgs)` does the same for several configs,
sharing rows between those that differ only in what happens to D; `run` is `run_many` with
one config.

The parts live in `running/`: the run folder (`running.folder`), the loop that turns
episodes into records (`running.loop`), records -> results.json (`running.results`), the
grid (`running.pictures`) and what a run prints (`running.reporter`). This module keeps the
order of the steps, the run key, the torchrun leader/barrier protocol and SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from sdvicl_bench import methods, sharding
from sdvicl_bench.config import ModelConfig, RunConfig, to_dict
from sdvicl_bench.protocols import TaskProtocol, make_protocol
from sdvicl_bench.report.records import read_run_samples, run_key
from sdvicl_bench.running.folder import RunFolder, RunOutcome, protocol_of
from sdvicl_bench.running.loop import Variant, record_of, run_episodes
from sdvicl_bench.running.pictures import grid_loaders, write_grid
from sdvicl_bench.running.reporter import Reporter
from sdvicl_bench.running.results import device_name, model_note, results_of, stale_samples
from sdvicl_bench.sampler.backbones.device import dtype_name, resolve_device, resolve_dtype
from sdvicl_bench.sampler.backbones.registry import load_model, model_identity
from sdvicl_bench.sampler.pipeline import Sampler
from sdvicl_bench.sampler.variants import non_shareable_differences
from sdvicl_bench.settings import flatten, key_view, top_level_with
from sdvicl_bench.types import EpisodeSpec
from sdvicl_bench.workflows.data_check import require_data

__all__ = [
    "Reporter",
    "RunOutcome",
    "Terminated",
    "grid_loaders",
    "model_identity",
    "model_note",
    "protocol_of",
    "record_of",
    "results_on",
    "run",
    "run_many",
    "shared_rows_differences",
    "sharing_groups",
    "write_grid",
]


def _sampler_identity(cfg: RunConfig) -> dict[str, Any]:
    """The sampler settings that change a number, for the run key.

    Settings declared `speed` (settings.py: episode batching, the attention kernel, the row
    budget) are left out, so a run resumes across them; `settings.KEY_KEPT`/`KEY_PINNED`
    keep the payload of older runs' keys.
    """
    return key_view(to_dict(cfg.sampler), "sampler")


def _key_of(
    cfg: RunConfig, protocol: TaskProtocol, episodes: list[EpisodeSpec]
) -> tuple[str, tuple[str, str] | None]:
    """The run key: a hash of everything that changes a sample; and (the key the same run
    had before the compute dtype entered it, that dtype) where the two differ, else None.

    SD-VICL is named by its sampler settings, model and compute dtype (`key_dtype`: absent
    for float32, so float32 keys are as they always were); another method by
    `methods.identity` (name, weights, dtype, options) instead.

    The task's `metrics` (declared `scoring`) are left out: they say how samples are scored
    and shown, not what is sampled, so a metric added to a task YAML keeps the run's folder
    (its older records show as stale until `sdvicl-bench rescore` scores them again).
    """
    payload = {
        "task": key_view(to_dict(cfg.task), "task"),
        "sampler": _sampler_identity(cfg),
        "model": model_identity(cfg.model),
        "data": protocol.key_inputs(),
        "episodes": [e.to_json() for e in episodes],
        "seed": cfg.seed,
        "prompts": cfg.num_prompts,
    }
    if not methods.is_sdvicl(cfg):  # SD-VICL's keys stay as they were; sampler, model unused
        del payload["sampler"], payload["model"]
        payload["method"] = methods.identity(cfg.method)
        return run_key(payload), None
    dtype = key_dtype(cfg.model)
    if dtype is None:
        return run_key(payload), None
    legacy = run_key(payload)
    payload["model"] = {**payload["model"], "dtype": dtype}
    return run_key(payload), (legacy, dtype)


def key_dtype(model: ModelConfig) -> str | None:
    """The compute dtype as SD-VICL's run key holds it (`model.dtype` resolved for
    `model.device`): "bfloat16" or "float16"; None for float32, left out so the keys of runs
    made before the dtype entered the key (float32 on a CPU) stay the same
    (`running.legacy` moves the other runs' folders)."""
    dtype = resolve_dtype(model.dtype, resolve_device(model.device))
    return None if dtype == torch.float32 else dtype_name(dtype)


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


NOT_SHARED_IGNORED = top_level_with("output")  # output_dir, save_pictures, experiment
"""RunConfig fields that may differ between variants sharing rows (not about the numbers)."""


def shared_rows_differences(a: RunConfig, b: RunConfig) -> list[str]:
    """The settings (dotted names) where two runs differ and that keep them from sharing A,
    B and C rows in one U-Net batch: anything outside the sampler that changes the episodes,
    the model or the task, and the sampler's `non_shareable_differences` (steps, skip,
    resolution, inversion). Empty: the runs differ only in what happens to D."""
    flat_a, flat_b = flatten(to_dict(replace(a, sampler=b.sampler))), flatten(to_dict(b))
    outside = sorted(
        k
        for k in flat_a.keys() | flat_b.keys()
        if flat_a.get(k) != flat_b.get(k) and k.split(".")[0] not in NOT_SHARED_IGNORED
    )
    return outside + non_shareable_differences(a.sampler, b.sampler)


def sharing_groups(cfgs: list[RunConfig]) -> list[list[int]]:
    """Indices of `cfgs` grouped so that each group's runs can share rows (in input order)."""
    groups: list[list[int]] = []
    for i, cfg in enumerate(cfgs):
        if not methods.is_sdvicl(cfg):  # only SD-VICL's sampler shares rows
            groups.append([i])
            continue
        for group in groups:
            if not shared_rows_differences(cfgs[group[0]], cfg):
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


@dataclass(frozen=True)
class Session:
    """What every run of one sampling pass shares: the protocol and its frozen episodes,
    this process's shard and the reporter."""

    protocol: TaskProtocol
    episodes: list[EpisodeSpec]
    shard: sharding.Shard
    reporter: Reporter

    @property
    def writes(self) -> bool:
        """Whether this process writes results.json and grid.png (the leader under torchrun)."""
        return self.shard.leader or not self.shard.distributed


@dataclass
class OpenRun:
    """One config's run folder, opened and claimed: its key, whether it existed, and the
    episodes it still needs (`todo`, filled in by `_pending`)."""

    cfg: RunConfig
    key: str
    folder: RunFolder
    resumed: bool
    todo: list[EpisodeSpec] = field(default_factory=list)


def run(
    cfg: RunConfig,
    *,
    quiet: bool = False,
    console: Console | None = None,
    reporter: Reporter | None = None,
) -> RunOutcome:
    """Run (or resume) one task with one config; returns the run folder and its results.

    `run_many` with one config. The process claims its sample file (`report.lock.SampleLock`:
    a second process on the same folder and shard gets a one-line DataError) from finding
    the folder until results.json and grid.png are written. SIGTERM is handled like Ctrl-C
    (`Terminated`). A folder this call created is removed again when it fails before any
    sample is written. Output goes through `reporter` (or one made of `quiet`, `console`).
    """
    return run_many([cfg], reporter=Reporter.of(reporter, quiet=quiet, console=console))[0]


def run_many(
    cfgs: list[RunConfig],
    *,
    quiet: bool = False,
    console: Console | None = None,
    reporter: Reporter | None = None,
) -> list[RunOutcome]:
    """Run (or resume) several configs, each into its own run folder, sharing rows where
    they can: configs that differ only in what happens to D (an ablation's or a sweep's
    variants; `sharing_groups`) run in one pass with one U-Net batch per step
    (`Sampler.run_variants`); a config alone in its group runs with `Sampler.run`. An
    episode is sampled only for the variants whose folder lacks it, so a killed pass
    resumes without redoing any variant's finished episodes. Under torchrun every config
    runs alone. Outcomes come back in the order of `cfgs`.
    """
    reporter = Reporter.of(reporter, quiet=quiet, console=console)
    outcomes: dict[int, RunOutcome] = {}
    for group in sharing_groups(cfgs):
        members = [cfgs[i] for i in group]
        if len(members) > 1 and sharding.resolve_shard(members[0].shard).distributed:
            done = [_run_group([cfg], reporter)[0] for cfg in members]
        else:
            done = _run_group(members, reporter)
        outcomes.update(zip(group, done, strict=True))
    return [outcomes[i] for i in range(len(cfgs))]


def _run_group(cfgs: list[RunConfig], reporter: Reporter) -> list[RunOutcome]:
    """Configs that share A, B and C rows: one folder each, one sampling pass.

    1. Episodes: frozen ones from an earlier run, or built by the task's protocol.
    2. The run folders, found by the key of everything that changes a number; under
       torchrun the leader creates them first while the other ranks wait.
    Every folder's sample file is claimed until its results.json is written; a folder this
    call created is removed again (after the claims are released) when the pass fails before
    writing any sample to it.
    """
    with _sigterm_interrupts():
        protocol = make_protocol(cfgs[0])
        require_data(cfgs[0])  # `data check`'s cheap part: one line for missing data, no model
        episodes = protocol.episodes()
        keyed = [_key_of(cfg, protocol, episodes) for cfg in cfgs]
        shard = sharding.resolve_shard(cfgs[0].shard)
        session = Session(protocol, episodes, shard, reporter)
        sharding.start(shard)
        if not shard.leader:  # under torchrun the leader creates the folder first
            sharding.barrier(shard)
        opened: list[OpenRun] = []
        try:
            with contextlib.ExitStack() as claims:
                for cfg, (key, legacy) in zip(cfgs, keyed, strict=True):
                    folder, resumed, claim = RunFolder.open(cfg, key, episodes, shard, legacy)
                    claims.enter_context(claim)
                    opened.append(OpenRun(cfg, key, folder, resumed))
                if shard.leader:
                    sharding.barrier(shard)
                return _run_opened(session, opened)
        except BaseException:
            for one in opened:
                if not one.resumed:
                    one.folder.remove_if_empty()
            raise


def _run_opened(session: Session, opened: list[OpenRun]) -> list[RunOutcome]:
    """Steps 3 and 4 for every opened folder, with one sampling pass between.

    3. What is left: this shard's episodes within `limit` with no finished sample.
    4. Aggregate every finished sample of each folder and write its results.json.
    """
    for one in opened:
        one.todo = _pending(session, one)
    needed = {e.id for one in opened for e in one.todo}
    union = [e for e in session.episodes if e.id in needed]
    started = time.perf_counter()
    unet_calls = 0
    if union:
        unet_calls = _sample(session, opened, union)
    elapsed = time.perf_counter() - started
    return [_conclude(session, one, elapsed, unet_calls) for one in opened]


def _pending(session: Session, one: OpenRun) -> list[EpisodeSpec]:
    """This shard's episodes within `limit` that have no finished sample in the folder.

    Damaged lines of this process's own sample file are set aside first (their episodes are
    redone); missing pictures and stale records are reported; a resumed run says so.
    """
    folder, shard, reporter = one.folder, session.shard, session.reporter
    reporter.damaged(folder.set_aside_damaged(shard), folder.path)
    finished = folder.finished()
    siblings = folder.siblings()
    elsewhere = [s for sibling in siblings for s in read_run_samples(sibling)]
    mine, todo = folder.pending(session.episodes, one.cfg.limit, shard, finished + elsewhere)
    if elsewhere:
        reporter.elsewhere(folder.path, siblings, len(elsewhere))
    if session.writes and one.cfg.save_pictures:
        reporter.missing_pictures(folder.path, folder.without_pictures(finished))
    if session.writes:
        reporter.stale(folder.path, stale_samples(session.protocol, finished))
    if one.resumed and len(mine) > len(todo):  # not a torchrun rank's fresh folder
        reporter.resuming(folder.path, shard, len(mine) - len(todo), len(todo))
    return todo


def _sample(session: Session, opened: list[OpenRun], union: list[EpisodeSpec]) -> int:
    """Load the model (or the run's other method) and run the loop over `union` for every
    opened run that needs an episode of it (`running.loop`); returns the U-Net calls (the
    method's forward passes) made."""
    cfg = opened[0].cfg
    variants = [
        Variant(one.cfg, one.folder.sample_file(session.shard), {e.id for e in one.todo})
        for one in opened
    ]
    if not methods.is_sdvicl(cfg):
        method = methods.build(cfg)
        device = device_name(method.device)
        run_episodes(session.protocol, method, union, variants, device, session.reporter)
        return method.calls
    model = load_model(cfg.model)
    sampler = Sampler(model, cfg.sampler)
    device = device_name(model.device)
    run_episodes(session.protocol, sampler, union, variants, device, session.reporter)
    return sampler.unet_calls


def _conclude(session: Session, one: OpenRun, elapsed: float, unet_calls: int) -> RunOutcome:
    """results.json over every finished sample of the folder, the grid and the summary
    (after all ranks under torchrun, whose leader merges the shard files into samples.jsonl)."""
    shard, folder, reporter = session.shard, one.folder, session.reporter
    sharding.barrier(shard)
    if shard.distributed and shard.leader:
        reporter.damaged(folder.merge_shards(session.episodes), folder.path)
    samples = folder.samples(session.episodes)
    results = results_of(
        one.cfg, session.protocol, one.key, samples, elapsed, len(one.todo), run_dir=folder.path
    )
    results["timing"]["unet_calls_this_session"] = unet_calls
    if session.writes:
        folder.write_results(results)
    sharding.barrier(shard)
    sharding.finish(shard)
    if one.cfg.save_pictures and samples and session.writes:
        write_grid(session.protocol, folder.path, reporter=reporter, warn_missing=False)
    if session.writes:
        reporter.summary(results, folder.path)
    return RunOutcome(folder.path, results, one.resumed, len(one.todo))


def results_on(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """results.json of each run folder recomputed over the episode ids they all finished.

    Comparisons (ablate) must score every variant on the very same episodes, while each
    folder's own results.json describes all of its samples (a larger earlier run included).
    """
    folders = [RunFolder(Path(d)) for d in run_dirs]
    ids = None
    for folder in folders:
        done = {s["id"] for s in folder.finished()}
        ids = done if ids is None else ids & done
    out = []
    for run_dir, folder in zip(run_dirs, folders, strict=True):
        cfg, protocol = protocol_of(run_dir)
        samples = [s for s in folder.samples(folder.episodes()) if s["id"] in (ids or set())]
        out.append(results_of(cfg, protocol, folder.key(), samples, 0.0, 0, run_dir=run_dir))
    return out
