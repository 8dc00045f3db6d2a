"""The loop that turns episodes into records: sample, decode, score, append to samples.jsonl.

One variant runs `Sampler.run` (another method: `Method.run`, `methods/`); several variants
(an ablation's or a sweep's configs that differ only in what happens to D) share each
episode's A, B and C rows in one U-Net batch per step (`Sampler.run_variants`), each
episode sampled only for the variants that still need it. Records are appended and flushed
one by one (`report.records.SampleWriter`), so an interrupted loop loses no finished sample.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.methods.base import Method
from sdvicl_bench.protocols import Scored, TaskProtocol
from sdvicl_bench.report.records import SampleWriter
from sdvicl_bench.running.reporter import Reporter
from sdvicl_bench.sampler.pipeline import Sampler
from sdvicl_bench.types import EpisodeSpec


class Variant(NamedTuple):
    """One config the loop samples for: its sample file and the episode ids it still needs."""

    cfg: RunConfig
    samples_path: Path
    ids: set[str]


def run_episodes(
    protocol: TaskProtocol,
    sampler: Sampler | Method,
    todo: list[EpisodeSpec],
    variants: list[Variant],
    device: str,
    reporter: Reporter,
) -> None:
    """Sample, decode, score and record `todo` in batches of `batch_episodes` (the first
    variant's), for every variant that needs each episode; `device` names the device in
    the records."""
    cfg = variants[0].cfg
    batch_size = cfg.sampler.batch_episodes
    label = cfg.task.name if len(variants) == 1 else f"{cfg.task.name} x {len(variants)} variants"
    with reporter.progress(label, len(todo)) as tick, contextlib.ExitStack() as files:
        writers = [files.enter_context(SampleWriter(v.samples_path)) for v in variants]
        t0 = time.perf_counter()
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for need, specs in _by_variants_needed(batch, variants).items():
                chosen = [(variants[v], writers[v]) for v in need]
                _sample_batch(protocol, sampler, specs, chosen, device, len(variants) > 1)
            finished = start + len(batch)
            tick(len(batch), finished, (time.perf_counter() - t0) / finished)


def _sample_batch(
    protocol: TaskProtocol,
    sampler: Sampler | Method,
    specs: list[EpisodeSpec],
    chosen: list[tuple[Variant, SampleWriter]],
    device: str,
    shared: bool,
) -> None:
    """One sampler call on `specs` for the `chosen` variants (`shared`: through
    `run_variants`, else `run`), each result recorded into its variant's sample file."""
    started = time.perf_counter()
    inputs = [protocol.sampler_input(spec) for spec in specs]
    episodes = [x for x, _ in inputs]
    if shared:
        outputs = sampler.run_variants(episodes, [v.cfg.sampler for v, _ in chosen])
    else:
        outputs = [sampler.run(episodes)]
    # seconds per episode and variant: the batch's time shared by its rows' owners
    seconds = (time.perf_counter() - started) / (len(specs) * len(chosen))
    for (variant, writer), results in zip(chosen, outputs, strict=True):
        cfg, run_dir = variant.cfg, variant.samples_path.parent
        for spec, (_, truth), out in zip(specs, inputs, results, strict=True):
            record = _record(protocol, spec, truth, out.picture, run_dir, seconds, cfg, device)
            writer.write(record)


def _by_variants_needed(
    batch: list[EpisodeSpec], variants: list[Variant]
) -> dict[tuple[int, ...], list[EpisodeSpec]]:
    """The batch's episodes grouped by which variants still need them (batch order kept)."""
    groups: dict[tuple[int, ...], list[EpisodeSpec]] = {}
    for spec in batch:
        need = tuple(v for v, variant in enumerate(variants) if spec.id in variant.ids)
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
    """The samples.jsonl record of a scored episode (what the loop writes; `rescore` too)."""
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
