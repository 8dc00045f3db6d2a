"""Prompt retrievers: pick the in-context examples (prompt pairs) for one query.

Items are identified by string keys. A key of the form ``<image id>__<suffix>`` (the HSNet
list-line form, e.g. ``2007_000033__01``) names one use of an image; any other key is an
image id itself. A retriever never returns the query's own image, whatever the suffix.

Randomness is seeded from ``sha256(seed, query key)``, never Python's ``hash()``, so a draw
depends only on (seed, query, pool) and not on the process, the order of the pool or the
other queries. To draw anew per cycle (``episodes=1000`` over a shorter list), change
``seed`` per cycle.

An image listed under several keys (an HSNet list names it once per fold class it holds)
is one prompt image; ``prompt_key`` says which of its keys, hence which class's mask B, a
prompt uses (``retrieval.prompt_class``: ``last_listed`` as UnsupPR, or ``query``).

``retrieve`` is the stage the protocols call: query keys, a pool of keys and a class function
in, ``{query: prompt keys}`` out, by the configured retriever (``clip_knn`` lazily loads CLIP).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from sdvicl_bench.data.keys import image_id_of
from sdvicl_bench.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

    from sdvicl_bench.config import RetrievalConfig

T = TypeVar("T")


def query_rng(seed: int, query_key: str) -> np.random.Generator:
    """A numpy Generator seeded by sha256 of (seed, query key): stable across processes."""
    digest = hashlib.sha256(f"{int(seed)}\x1f{query_key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def draw_distinct(
    query_key: str,
    candidates: Sequence[T],
    n: int,
    seed: int,
    *,
    key: Callable[[T], str] = str,
    what: str = "prompt candidates",
) -> list[T]:
    """``n`` distinct candidates, uniformly without replacement, seeded by (seed, query key).

    Candidates are deduplicated and sorted by ``key`` first, so the result does not depend on
    their order. The caller filters out what the query may not see; fewer than ``n`` left
    raises a one-line DataError naming ``what``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    unique = sorted({key(c): c for c in candidates}.items())
    if len(unique) < n:
        raise DataError(
            f"only {len(unique)} {what} for query {query_key}, {n} prompts asked. "
            "Fix: lower the number of prompts or use a larger prompt pool."
        )
    picks = query_rng(seed, query_key).choice(len(unique), size=n, replace=False)
    return [unique[i][1] for i in picks]


def retrieve_random(query_key: str, pool: list[str], n: int, seed: int) -> list[str]:
    """``n`` distinct pool keys drawn at random; none shares the query's image id."""
    own = image_id_of(query_key)
    candidates = [k for k in pool if image_id_of(k) != own]
    return draw_distinct(
        query_key, candidates, n, seed, what="prompt pool entries from other images"
    )


def retrieve_same_class(
    query_key: str, pool: list[str], n: int, seed: int, class_of: Callable[[str], Hashable]
) -> list[str]:
    """``n`` distinct pool keys of the query's class, from images other than the query's.

    The VP protocol (``same_class``; for Pascal-5i the pool is the fold's val list).
    ``class_of`` maps a key to its class: any hashable (Pascal ids, clothes types, wnids).
    """
    own, wanted = image_id_of(query_key), class_of(query_key)
    candidates = [k for k in pool if image_id_of(k) != own and class_of(k) == wanted]
    return draw_distinct(
        query_key, candidates, n, seed, what=f"pool entries of class {wanted} from other images"
    )


# ----------------------------------------------------------------------------- prompt class

PROMPT_CLASS_RULES = ("last_listed", "query")
"""Which class a prompt image listed under several keys shows (``retrieval.prompt_class``)."""


def keys_by_image(pool: Sequence[str]) -> dict[str, list[str]]:
    """``{image id: its pool keys in list order}``, images in order of first appearance.

    An HSNet list names an image once per fold class it holds (``<id>__<class>``), sorted by
    class, so an image's keys run from its lowest to its highest class id.
    """
    out: dict[str, list[str]] = {}
    for key in pool:
        out.setdefault(image_id_of(key), []).append(key)
    return out


def prompt_key(
    image_keys: Sequence[str],
    rule: str,
    wanted: Hashable = None,
    class_of: Callable[[str], Hashable] | None = None,
) -> str:
    """The key (hence the class B shows) a prompt image is used with.

    ``image_keys``: one image's pool keys in list order (``keys_by_image``). ``last_listed``
    (UnsupPR: its image -> class map is filled line by line, so the last line wins): the last
    key. ``query``: the key of class ``wanted`` (the query's) where the image has one, else
    the last key. A one-key image gives its key under either rule.
    """
    if not image_keys:
        raise ValueError("an image needs at least one key")
    if rule not in PROMPT_CLASS_RULES:
        raise ValueError(f"unknown prompt-class rule {rule!r}; choose from {PROMPT_CLASS_RULES}")
    if rule == "query" and class_of is not None:
        for key in image_keys:
            if class_of(key) == wanted:
                return key
    return image_keys[-1]


# ----------------------------------------------------------------------------- the stage


def retrieve(
    queries: Sequence[str],
    pool: Sequence[str],
    n: int,
    seed: int,
    class_of: Callable[[str], Hashable],
    settings: RetrievalConfig,
    load_image: Callable[[str], Image.Image] | None = None,
    fingerprint: str = "",
) -> dict[str, list[str]]:
    """``{query key: n prompt keys}`` for every query: the prompt-retrieval stage.

    ``settings.name``: ``random`` (``retrieve_random``), ``same_class``
    (``retrieve_same_class`` by ``class_of``) or ``clip_knn`` (``clip_knn``, which needs
    ``load_image``, the picture CLIP sees for a key, and ``fingerprint``, what tells one
    dataset's keys from another's in the embedding cache, e.g. its root folder).
    """
    if settings.name == "random":
        return {q: retrieve_random(q, list(pool), n, seed) for q in queries}
    if settings.name == "same_class":
        return {q: retrieve_same_class(q, list(pool), n, seed, class_of) for q in queries}
    if load_image is None:
        raise ValueError("retrieval=clip_knn needs load_image")
    return clip_knn(queries, pool, n, class_of, settings, load_image, fingerprint)


def clip_knn(
    queries: Sequence[str],
    pool: Sequence[str],
    n: int,
    class_of: Callable[[str], Hashable],
    settings: RetrievalConfig,
    load_image: Callable[[str], Image.Image],
    fingerprint: str,
) -> dict[str, list[str]]:
    """UnsupPR: the ``n`` nearest pool images of each query by CLIP features (``clip_retrieval``).

    ``class_filter=none``: one row per pool image (its keys share one picture, hence one
    embedding); which of its keys a prompt uses, i.e. the class B shows, is
    ``settings.prompt_class`` (``prompt_key``). ``class_filter=query``: only pool keys of the
    query's class compete.
    """
    from sdvicl_bench.data.clip_retrieval import (
        ClipEmbedder,
        EmbeddingCache,
        clip_knn_episodes,
        knn,
    )

    queries, pool = list(queries), list(pool)
    source = settings.model_path or settings.model_id
    embedder = ClipEmbedder.load(source, revision=settings.revision)
    cache = EmbeddingCache(Path(settings.cache_dir).expanduser() / "clip")

    def embed(keys: list[str]):
        return cache.get_or_compute(
            keys,
            load_image,
            embedder,
            fingerprint=fingerprint,
            same_image=image_id_of,
            batch_size=settings.batch_size,
        )

    q_emb, p_emb = embed(queries), embed(pool)
    if settings.class_filter == "none":
        by_image = keys_by_image(pool)
        row = {k: i for i, k in enumerate(pool)}
        images = [keys[-1] for keys in by_image.values()]
        rows = [row[k] for k in images]
        picked = clip_knn_episodes(queries, images, q_emb, p_emb[rows], n)

        def use(key: str, query: str) -> str:
            keys = by_image[image_id_of(key)]
            return prompt_key(keys, settings.prompt_class, class_of(query), class_of)

        return {q: [use(k, q) for k in keys] for q, keys in picked.items()}
    out = {}
    for i, q in enumerate(queries):
        keep = [j for j, k in enumerate(pool) if class_of(k) == class_of(q)]
        out[q] = knn(q_emb[i], p_emb[keep], [pool[j] for j in keep], n, query_key=q)
    return out
