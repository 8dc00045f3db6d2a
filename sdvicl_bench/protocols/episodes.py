"""Episodes from query sets: frozen (a file), one pass, or cycled (`episodes=N`).

A `QuerySet` is what a dataset family gives: query keys, the pool their prompts come from,
the class of a key and the breakdown group (fold) of a query. Prompts come from the
retrieval stage (`data.retrieval.retrieve`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data.retrieval import retrieve
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.report.records import read_episodes
from sdvicl_bench.types import EpisodeSpec


@dataclass
class QuerySet:
    """Queries and the prompt pool they draw from (e.g. one Pascal-5i fold).

    class_of: the class a key shows (`same_class`, `class_filter=query`); fold_of: the
    breakdown group of a query (None: no breakdown).
    """

    queries: list[str]
    pool: list[str]
    class_of: Callable[[str], Hashable]
    fold_of: Callable[[str], int | str | None]
    id_prefix: str = ""


def build_episodes(
    cfg: RunConfig,
    sets: Callable[[], list[QuerySet]],
    load_image: Callable[[str], Image.Image],
    fingerprint: str,
    cycle_per_fold: bool = False,
) -> list[EpisodeSpec]:
    """The full frozen episode list of a run.

    `episodes=<file>`: read back. Otherwise one pass over every query set, or with
    `episodes=N` N episodes per set, and per fold of a set where `cycle_per_fold` (Pascal-5i:
    VP's 1000 episodes per fold); elsewhere a set's groups are a breakdown only.
    `load_image` and `fingerprint` are what CLIP retrieval sees (`data.retrieval.retrieve`).
    """
    if isinstance(cfg.episodes, str):
        return read_episodes(Path(cfg.episodes))
    query_sets = sets()

    def one_pass(qs: QuerySet, draw_seed: int, suffix: str) -> list[EpisodeSpec]:
        prompts = retrieve(
            qs.queries,
            qs.pool,
            cfg.num_prompts,
            draw_seed,
            qs.class_of,
            cfg.retrieval,
            load_image,
            fingerprint,
        )
        return [
            EpisodeSpec(
                f"{qs.id_prefix}{q}{suffix}",
                q,
                tuple(prompts[q]),
                cfg.seed,
                {"fold": qs.fold_of(q)},
            )
            for q in qs.queries
        ]

    if cfg.episodes is None:
        return [ep for qs in query_sets for ep in one_pass(qs, cfg.seed, "")]
    if cfg.retrieval.name == "clip_knn":
        raise ConfigError(
            f"episodes={cfg.episodes} cycles the queries with new prompt draws, which "
            "needs a random retriever. Fix: add retrieval=random or retrieval=same_class."
        )
    groups = [g for qs in query_sets for g in (split_by_fold(qs) if cycle_per_fold else [qs])]
    out: list[EpisodeSpec] = []
    for group in groups:
        out += cycled(group, cfg.episodes, cfg.seed, one_pass)
    return out


def cycled(qs: QuerySet, count: int, seed: int, one_pass) -> list[EpisodeSpec]:
    """`count` episodes of one query set: its queries in order, cycled as VP does, each
    cycle c drawing anew (seed + c) with ids suffixed `-c<c>` (c > 0), so ids stay unique."""
    out: list[EpisodeSpec] = []
    cycle = 0
    while len(out) < count and qs.queries:
        out += one_pass(qs, seed + cycle, f"-c{cycle}" if cycle else "")
        cycle += 1
    return out[:count]


def split_by_fold(qs: QuerySet) -> list[QuerySet]:
    """One query set per fold of `qs` (`fold_of` of its queries, order kept; first-seen
    fold first); the pool and class map are shared. A set of one fold comes back as is."""
    folds: dict[int | str | None, list[str]] = {}
    for q in qs.queries:
        folds.setdefault(qs.fold_of(q), []).append(q)
    if len(folds) <= 1:
        return [qs]
    return [replace(qs, queries=queries) for queries in folds.values()]
