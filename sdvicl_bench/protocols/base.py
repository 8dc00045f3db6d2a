"""What a task's evaluation protocol provides to the orchestrator (`evaluate.py`).

A protocol wires one task's stages: dataset -> episodes -> sampler inputs (A, B, C
pictures) -> decoded prediction -> per-sample scores and trivial baselines. Every task is one
`protocols.task.YamlTask`, built from its YAML by `protocols.registry`; the stage modules it
calls (data/, tasks/, metrics/) do not import each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.sampler.pipeline import Episode
from sdvicl_bench.types import EpisodeSpec


@dataclass
class Scored:
    """A scored prediction: the method's scores, each baseline's, and the GT picture to save."""

    scores: dict[str, float]
    baselines: dict[str, dict[str, float]]
    gt_picture: Image.Image
    extra: dict[str, Any] = field(default_factory=dict)


class TaskProtocol(ABC):
    """One task's protocol, as the orchestrator sees it."""

    metrics: tuple[str, ...] = ()
    """Per-sample scalar metrics, averaged over episodes (with a bootstrap interval)."""
    dataset_metrics: tuple[str, ...] = ()
    """Set-level metrics computed from all samples at once (e.g. Cityscapes mIoU, FID)."""
    baselines: tuple[str, ...] = ()
    """The baseline rows of every record and of results.json, in order; `types.ORACLE` last
    where the protocol scores one (a ceiling, not a competitor: `types.competitors`)."""
    record_fields: tuple[str, ...] = ()
    """Extra record fields the set-level metrics read (e.g. fgseg's pixel counts); a record
    without them was made by an older version (`sdvicl-bench rescore` fills them in)."""
    metric_specs: dict[str, dict] = {}  # noqa: RUF012 (read-only default)
    """Direction and scale of every metric reported (results.json completes the config's
    `task.metrics` with them; the run key is not changed)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def episodes(self) -> list[EpisodeSpec]:
        """The full frozen episode list (before `limit`)."""

    @abstractmethod
    def key_inputs(self) -> dict[str, Any]:
        """What, besides configs, changes a number (e.g. split-list hashes)."""

    @abstractmethod
    def sampler_input(self, spec: EpisodeSpec) -> tuple[Episode, Any]:
        """The sampler's Episode (A, B, C pictures, noise ids) and the query's truth."""

    @abstractmethod
    def score(self, spec: EpisodeSpec, truth: Any, picture: Image.Image) -> Scored:
        """Decode the raw prediction picture at the query's own size and score it."""

    def visualize(self, picture: Image.Image, truth: Any) -> Image.Image:
        """The decoded prediction drawn as a picture at the query's size (for grids)."""
        return picture

    def dataset_metric(
        self, name: str, samples: list[dict], baseline: str | None, run_dir: Path | None
    ) -> float | dict[str, Any]:
        """A set-level metric over samples.jsonl records (ours, or a baseline's) of the run
        folder `run_dir` (None: no folder, so nothing saved to read back): a number, or a
        whole results block (`overall`, `per_fold`, `mean_of_folds`, `per_class`)."""
        raise NotImplementedError(name)

    def group_of(self, spec: EpisodeSpec) -> str | None:
        """The breakdown group of an episode (the Pascal-5i fold), or None."""
        fold = spec.meta.get("fold")
        return None if fold is None else str(fold)
