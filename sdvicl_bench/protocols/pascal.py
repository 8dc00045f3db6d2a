"""Pascal-5i foreground segmentation: episodes and the pictures each one needs.

Episodes [TASKS.md 1]: one pass over each fold's val list; prompts from the prompt pool
(`random`: the fold's trn list; `same_class`: the fold's val list, entries of the query's
class, never the query image, as in Visual Prompting). B is the mask of the retrieved
entry's own class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sdvicl_bench.data.pascal import PascalEntry, VOCDataset, read_split_list, split_list_path
from sdvicl_bench.data.retrieval import retrieve_random, retrieve_same_class
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.types import EpisodeSpec

RETRIEVERS = ("random", "same_class")


def parse_key(key: str) -> PascalEntry:
    """`<image id>__<2-digit class>` -> PascalEntry."""
    image_id, _, cls = key.rpartition("__")
    return PascalEntry(image_id, int(cls))


def build_episodes(
    splits_dir: Path,
    folds: list[int],
    *,
    prompts: int,
    seed: int,
    retrieval: str,
    split: str = "val",
    prompt_pool: str = "trn",
) -> list[EpisodeSpec]:
    """Every entry of each fold's `split` list as a query, with `prompts` retrieved prompts."""
    if retrieval not in RETRIEVERS:
        raise ConfigError(f"task.retrieval={retrieval!r}: choose one of {', '.join(RETRIEVERS)}.")
    episodes = []
    for fold in folds:
        queries = read_split_list(split_list_path(splits_dir, split, fold))
        pool_name = split if retrieval == "same_class" else prompt_pool
        pool = read_split_list(split_list_path(splits_dir, pool_name, fold))
        for q in queries:
            if retrieval == "same_class":
                chosen = [e.key for e in retrieve_same_class(q, pool, prompts, seed)]
            else:
                chosen = retrieve_random(q.key, [e.key for e in pool], prompts, seed)
            episodes.append(
                EpisodeSpec(f"f{fold}-{q.key}", q.key, tuple(chosen), seed, {"fold": fold})
            )
    return episodes


def split_hashes(splits_dir: Path, folds: list[int]) -> dict[str, str]:
    """sha256 of every split list the episodes read (part of the run key)."""
    from sdvicl_bench.data.pascal import file_sha256

    return {
        f"{s}{f}": file_sha256(split_list_path(splits_dir, s, f))
        for f in folds
        for s in ("trn", "val")
        if split_list_path(splits_dir, s, f).exists()
    }


class FgsegPictures:
    """Images and masks for fgseg episodes from a VOC root."""

    def __init__(self, root: Path) -> None:
        self.voc = VOCDataset(root)

    def image(self, key: str) -> Image.Image:
        return self.voc.image(parse_key(key).image_id)

    def mask(self, key: str) -> np.ndarray:
        """(H, W) bool: pixels of the entry's class (void counts as background)."""
        entry = parse_key(key)
        return self.voc.class_mask(entry.image_id, entry.class_id)
