"""What a task's evaluation protocol provides to the orchestrator (`evaluate.py`).

A protocol wires one task's stages: dataset -> episodes -> sampler inputs (A, B, C
pictures) -> decoded prediction -> per-sample scores and trivial baselines. The stage
modules it calls (data/, tasks/, metrics/) do not import each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data import retrieval as rt
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.report.records import read_episodes
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
    """One task's protocol. `metrics` name the per-sample scores (higher_is_better in YAML)."""

    metrics: tuple[str, ...] = ()
    """Per-sample scalar metrics, averaged over episodes (with a bootstrap interval)."""
    dataset_metrics: tuple[str, ...] = ()
    """Set-level metrics computed from all samples at once (e.g. Cityscapes mIoU, FID)."""
    baselines: tuple[str, ...] = ()
    record_fields: tuple[str, ...] = ()
    """Extra record fields the set-level metrics read (e.g. fgseg's pixel counts); a record
    without them was made by an older version (`sdvicl-bench rescore` fills them in)."""
    metric_specs: ClassVar[dict[str, dict]] = {}
    """Direction and scale of metrics the task YAML does not list (results.json completes
    the YAML's `metrics` with them; the run key is not changed)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.run_dir: Path | None = None  # set by the orchestrator once the folder is known

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
        self, name: str, samples: list[dict], baseline: str | None
    ) -> float | dict[str, Any]:
        """A set-level metric over samples.jsonl records (ours, or a baseline's): a number, or
        a whole results block (`overall`, `per_fold`, `mean_of_folds`, `per_class`)."""
        raise NotImplementedError(name)

    def group_of(self, spec: EpisodeSpec) -> str | None:
        """The breakdown group of an episode (the Pascal-5i fold), or None."""
        fold = spec.meta.get("fold")
        return None if fold is None else str(fold)


@dataclass
class QuerySet:
    """Queries and the prompt pool they draw from (e.g. one Pascal-5i fold).

    class_of: the class a key shows (`same_class`, `class_filter=query`); fold_of: the
    breakdown group of a query (None: no breakdown).
    """

    queries: list[str]
    pool: list[str]
    class_of: Callable[[str], int]
    fold_of: Callable[[str], int | None]
    id_prefix: str = ""


class RetrievalProtocol(TaskProtocol):
    """Episodes from query sets and a retriever: frozen, one pass, or cycled (`episodes=N`).

    Subclasses give `query_sets()`, `load_image(key)` (what CLIP sees) and `root`.
    `episodes=N` gives N episodes to every query set, and to every fold of a set where
    `cycle_per_fold` (Pascal-5i: VP's 1000 episodes per fold); elsewhere a set's groups
    (keypoints' clothes types) are a breakdown only and share the set's N.
    """

    root: Path
    cycle_per_fold: bool = False

    @abstractmethod
    def query_sets(self) -> list[QuerySet]:
        """Queries with their prompt pools."""

    @abstractmethod
    def load_image(self, key: str) -> Image.Image:
        """The photo a key names (the retriever's input)."""

    def episodes(self) -> list[EpisodeSpec]:
        cfg = self.cfg
        if isinstance(cfg.episodes, str):
            return read_episodes(Path(cfg.episodes))
        sets = self.query_sets()
        if cfg.episodes is None:
            return [ep for qs in sets for ep in self._episodes_of(qs, cfg.seed, "")]
        if cfg.retrieval.name == "clip_knn":
            raise ConfigError(
                f"episodes={cfg.episodes} cycles the queries with new prompt draws, which "
                "needs a random retriever. Fix: add retrieval=random or retrieval=same_class."
            )
        groups = [g for qs in sets for g in (split_by_fold(qs) if self.cycle_per_fold else [qs])]
        return [ep for g in groups for ep in self._cycled(g, cfg.episodes)]

    def _cycled(self, qs: QuerySet, count: int) -> list[EpisodeSpec]:
        """`count` episodes of one query set: its queries in order, cycled as VP does, each
        cycle c drawing anew (seed + c) with ids suffixed `-c<c>` (c > 0), so ids stay unique."""
        out: list[EpisodeSpec] = []
        cycle = 0
        while len(out) < count and qs.queries:
            suffix = f"-c{cycle}" if cycle else ""
            out += self._episodes_of(qs, self.cfg.seed + cycle, suffix)
            cycle += 1
        return out[:count]

    def _episodes_of(self, qs: QuerySet, draw_seed: int, suffix: str) -> list[EpisodeSpec]:
        prompts = self._retrieve(qs, draw_seed)
        return [
            EpisodeSpec(
                f"{qs.id_prefix}{q}{suffix}",
                q,
                tuple(prompts[q]),
                self.cfg.seed,
                {"fold": qs.fold_of(q)},
            )
            for q in qs.queries
        ]

    def _retrieve(self, qs: QuerySet, seed: int) -> dict[str, list[str]]:
        """{query key: n prompt keys} with the configured retriever."""
        n, name = self.cfg.num_prompts, self.cfg.retrieval.name
        if name == "random":
            return {q: rt.retrieve_random(q, qs.pool, n, seed) for q in qs.queries}
        if name == "same_class":
            return {q: rt.retrieve_same_class(q, qs.pool, n, seed, qs.class_of) for q in qs.queries}
        return self._clip_knn(qs, n)

    def _clip_knn(self, qs: QuerySet, n: int) -> dict[str, list[str]]:
        from sdvicl_bench.data.clip_retrieval import (
            ClipEmbedder,
            EmbeddingCache,
            clip_knn_episodes,
            knn,
        )

        r = self.cfg.retrieval
        embedder = ClipEmbedder.load(r.model_path or r.model_id, revision=r.revision)
        cache = EmbeddingCache(Path(r.cache_dir).expanduser() / "clip")
        fingerprint = str(self.root.resolve())

        def embed(keys: list[str]):
            return cache.get_or_compute(
                keys,
                self.load_image,
                embedder,
                fingerprint=fingerprint,
                same_image=rt.image_id_of,
                batch_size=r.batch_size,
            )

        q_emb, p_emb = embed(qs.queries), embed(qs.pool)
        if r.class_filter == "none":
            # One row per image (its keys share one picture, hence one embedding); which of
            # its keys a prompt uses, i.e. the class B shows, is `retrieval.prompt_class`.
            by_image = rt.keys_by_image(qs.pool)
            row = {k: i for i, k in enumerate(qs.pool)}
            images = [keys[-1] for keys in by_image.values()]
            rows = [row[k] for k in images]
            picked = clip_knn_episodes(qs.queries, images, q_emb, p_emb[rows], n)

            def use(key: str, query: str) -> str:
                keys = by_image[rt.image_id_of(key)]
                return rt.prompt_key(keys, r.prompt_class, qs.class_of(query), qs.class_of)

            return {q: [use(k, q) for k in keys] for q, keys in picked.items()}
        out = {}
        for i, q in enumerate(qs.queries):
            keep = [j for j, k in enumerate(qs.pool) if qs.class_of(k) == qs.class_of(q)]
            out[q] = knn(q_emb[i], p_emb[keep], [qs.pool[j] for j in keep], n, query_key=q)
        return out


def split_by_fold(qs: QuerySet) -> list[QuerySet]:
    """One query set per fold of `qs` (`fold_of` of its queries, order kept; first-seen
    fold first); the pool and class map are shared. A set of one fold comes back as is."""
    folds: dict[int | None, list[str]] = {}
    for q in qs.queries:
        folds.setdefault(qs.fold_of(q), []).append(q)
    if len(folds) <= 1:
        return [qs]
    return [replace(qs, queries=queries) for queries in folds.values()]
