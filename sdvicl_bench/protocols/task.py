"""The one protocol every task runs: a dataset family + a decoder module + metrics, by YAML.

    sampler input: A = family.image(prompt), B = decoder.render_gt(family.target(prompt)),
                   C = family.query_image(query)
    score:         prediction = decoder.decode(picture, truth at the scoring size);
                   baselines: `black` (an all-black picture), `copy_b` (the first prompt's
                   B) and the family's own (fgseg `all_objects`, colorization `grey`),
                   each decoded and scored like ours; last the `oracle` (a ceiling, not a
                   competitor: the GT picture through the sampler's resize, `protocols.oracle`);
                   per-sample metrics fn(prediction, target); set-level ones keep their
                   record field (`collect`)
    grids:         decoder.visualize(prediction, target), else render_gt(prediction)

Decoder functions get, as keyword arguments, the `task.options` their signature names
(semseg's `palette`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sdvicl_bench import methods
from sdvicl_bench import registry as parts
from sdvicl_bench.config import RunConfig
from sdvicl_bench.protocols import oracle
from sdvicl_bench.protocols.aggregations import Context
from sdvicl_bench.protocols.base import Scored
from sdvicl_bench.protocols.episodes import build_episodes
from sdvicl_bench.protocols.registry import (
    check_task_options,
    resolve_dataset,
    resolve_decoder,
    resolve_metrics,
)
from sdvicl_bench.sampler.pipeline import Episode
from sdvicl_bench.tasks.pictures import size_of
from sdvicl_bench.types import ORACLE, EpisodeSpec

BASELINES = ("black", "copy_b")
"""Every task's trivial baselines (TASKS.md); families add their own."""


@dataclass
class Truth:
    """What `score` needs about a query: its truth at its own size (`target`: GT picture,
    grids) and at the scoring size (`scored`), the first prompt's B, the family's baselines
    and extras."""

    target: Any
    scored: Any
    b: Image.Image
    baselines: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


class TaskProtocol:
    """One task's protocol, as the orchestrator (`evaluate.py`) sees it: the task as its YAML
    names it (`protocols.registry` resolves the names). Every task is one of these.

    Attributes the orchestrator reads: `metrics` (per-sample scalars, averaged over episodes
    with a bootstrap interval), `dataset_metrics` (set-level, from all samples at once, e.g.
    Cityscapes mIoU, FID), `baselines` (the baseline rows of every record and of
    results.json, in order; `types.ORACLE` last, a ceiling, not a competitor:
    `types.competitors`), `record_fields` (extra record fields the set-level metrics read,
    e.g. fgseg's pixel counts and `counts_void`, the void rule that made them (an
    `aggregations.RecordRule`); a record without them was made by an older version, and
    `sdvicl-bench rescore` fills them in) and `metric_specs` (direction and scale of every
    metric reported: results.json completes the config's `task.metrics` with them; the run
    key is not changed).
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        task = cfg.task
        parts.load_plugins(cfg.plugins)  # a config read back from a run folder (rescore)
        self.decoder = resolve_decoder(task.decoder)
        check_task_options(task, task.options)  # also for configs read back from run folders
        resolved = resolve_metrics(task)
        self.family = resolve_dataset(task.dataset)(cfg)
        self.per_sample = {m.name: m.function for m in resolved if m.function is not None}
        self.set_level = {m.name: m.aggregation for m in resolved if m.aggregation is not None}
        self.metrics = tuple(self.per_sample)
        self.dataset_metrics = tuple(self.set_level)
        self.metric_specs = {m.name: m.display for m in resolved}
        self.record_fields = tuple(
            dict.fromkeys(
                name
                for a in self.set_level.values()
                for name in (a.field, a.rule.field if a.rule else None)
                if name
            )
        )
        for aggregation in dict.fromkeys(self.set_level.values()):
            if aggregation.check is not None:
                aggregation.check(cfg)
        self.baselines = (*BASELINES, *self.family.baseline_names, ORACLE)
        self.target_resample = str(task.options.get("target_resize", "nearest"))
        """How B pictures reach the sampler's side (`pipeline.RESAMPLE`): nearest, or
        `task.options.target_resize` where the task has it (edges)."""

    # -- decoder calls, with the options their signatures name
    def _call(self, name: str, *args: Any) -> Any:
        fn = getattr(self.decoder, name)
        params = inspect.signature(fn).parameters
        options = {k: v for k, v in self.cfg.task.options.items() if k in params}
        return fn(*args, **options)

    def render_gt(self, target: Any) -> Image.Image:
        return self._call("render_gt", target)

    def decode(self, picture: Image.Image, target: Any) -> Any:
        return self._call("decode", picture, target)

    # -- the orchestrator's contract
    def episodes(self) -> list[EpisodeSpec]:
        """The full frozen episode list (before `limit`)."""
        return build_episodes(
            self.cfg,
            self.family.query_sets,
            self.family.image,
            str(self.family.root.resolve()),
            self.family.cycle_per_fold,
        )

    def key_inputs(self) -> dict[str, Any]:
        """What, besides configs, changes a number (e.g. split-list hashes)."""
        return self.family.key_inputs()

    def group_of(self, spec: EpisodeSpec) -> str | None:
        """The breakdown group of an episode (the Pascal-5i fold), or None."""
        fold = spec.meta.get("fold")
        return None if fold is None else str(fold)

    def sampler_input(self, spec: EpisodeSpec) -> tuple[Episode, Truth]:
        """The sampler's Episode (A, B, C pictures, noise ids) and the query's truth."""
        family = self.family
        episode = Episode(
            prompts=[family.image(k) for k in spec.prompts],
            targets=[self.render_gt(family.target(k)) for k in spec.prompts],
            query=family.query_image(spec.query),
            seed=spec.seed,
            prompt_ids=[family.prompt_id(k) for k in spec.prompts],
            target_ids=[family.target_id(k) for k in spec.prompts],
            query_id=family.query_id(spec.query),
            target_resample=self.target_resample,
        )
        target = family.target(spec.query)
        truth = Truth(
            target=target,
            scored=family.scored_target(target),
            b=episode.targets[0],
            baselines=family.extra_baselines(spec.query, target),
            extras=family.extras(spec.query),
        )
        return episode, truth

    def visualize(self, picture: Image.Image, truth: Truth) -> Image.Image:
        """The decoded prediction drawn as a picture at the query's size (for grids)."""
        prediction = self.decode(picture, truth.target)
        if callable(getattr(self.decoder, "visualize", None)):
            return self._call("visualize", prediction, truth.target)
        return self.render_gt(prediction)

    def oracle_picture(self, gt_picture: Image.Image) -> Image.Image:
        """The raw oracle picture of a GT picture at the side this run's method predicts at
        (SD-VICL: `sampler.resolution`; `protocols.oracle`; decoded and scored like a
        prediction picture)."""
        side = methods.output_side(self.cfg)
        return oracle.oracle_picture(gt_picture, side, self.target_resample)

    def score(self, spec: EpisodeSpec, truth: Truth, picture: Image.Image) -> Scored:
        """Decode the raw prediction picture at the query's own size and score it."""
        scored, family = truth.scored, self.family
        gt_picture = self.render_gt(truth.target)
        black = Image.new("RGB", size_of(scored))
        predictions: dict[str | None, Any] = {
            None: self.decode(family.scored_picture(picture), scored),
            "black": self.decode(black, scored),
            "copy_b": self.decode(family.scored_picture(truth.b), scored),
        }
        for name, value in truth.baselines.items():
            is_picture = isinstance(value, Image.Image)
            predictions[name] = self.decode(value, scored) if is_picture else value
        ceiling = family.scored_picture(self.oracle_picture(gt_picture))
        predictions[ORACLE] = self.decode(ceiling, scored)  # last: a ceiling, not a competitor

        def scores(prediction: Any) -> dict[str, float]:
            return {name: float(fn(prediction, scored)) for name, fn in self.per_sample.items()}

        extra: dict[str, Any] = {}
        for aggregation in dict.fromkeys(self.set_level.values()):
            if aggregation.field and aggregation.collect and aggregation.field not in extra:
                extra[aggregation.field] = {
                    str(k): aggregation.collect(p, scored, truth.extras)
                    for k, p in predictions.items()
                }
                if aggregation.rule:  # which rule made the field (fgseg: `counts_void`)
                    extra[aggregation.rule.field] = aggregation.rule.of(self.cfg.task.options)
        return Scored(
            scores=scores(predictions[None]),
            baselines={k: scores(p) for k, p in predictions.items() if k is not None},
            gt_picture=gt_picture,
            extra=extra,
        )

    def dataset_metric(
        self, name: str, samples: list[dict], baseline: str | None, run_dir: Path | None
    ) -> float | dict[str, Any]:
        """A set-level metric over samples.jsonl records (ours, or a baseline's) of the run
        folder `run_dir` (None: no folder, so nothing saved to read back): a number, or a
        whole results block (`overall`, `per_fold`, `mean_of_folds`, `per_class`)."""
        context = Context(
            dict(self.cfg.task.options),
            run_dir,
            self.family.class_of,
            self.family.class_names,
            oracle=self.oracle_picture,
        )
        return self.set_level[name].reduce(samples, baseline, context)
