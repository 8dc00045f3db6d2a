"""Prompt retrievers: seeded, distinct, never the query's own image."""

from __future__ import annotations

import pytest

from sdvicl_bench.config import RetrievalConfig
from sdvicl_bench.data.retrieval import (
    image_id_of,
    retrieve,
    retrieve_random,
    retrieve_same_class,
)
from sdvicl_bench.errors import DataError

# Keys in the HSNet list-line form `<image id>__<class>`, written out (no dataset type).
KEYS = [f"2008_{i:06d}__{c:02d}" for i in range(40) for c in (1, 3) if (i + c) % 3]
KEYS += ["2008_000007__02"]  # the query's own image, another class


def test_image_id_of() -> None:
    assert image_id_of("2007_000033__01") == "2007_000033"
    assert image_id_of("aachen_000000_000019") == "aachen_000000_000019"


def test_random_deterministic_distinct_and_not_the_query() -> None:
    query = "2008_000007__01"
    a = retrieve_random(query, KEYS, 5, seed=0)
    assert a == retrieve_random(query, KEYS, 5, seed=0)
    assert a == retrieve_random(query, list(reversed(KEYS)), 5, seed=0)  # order-free
    assert len(a) == len(set(a)) == 5 and set(a) <= set(KEYS)
    assert all(image_id_of(k) != "2008_000007" for k in a)
    assert retrieve_random(query, KEYS, 5, seed=1) != a
    assert retrieve_random("2008_000008__03", KEYS, 5, seed=0) != a
    assert retrieve_random(query, KEYS, 0, seed=0) == []


def test_random_never_returns_own_image_over_many_seeds() -> None:
    keys = ["img_a__01", "img_a__02", "img_b__01", "img_c__05"]
    for seed in range(50):
        got = retrieve_random("img_a__01", keys, 2, seed)
        assert sorted(got) == ["img_b__01", "img_c__05"]
    with pytest.raises(DataError) as err:
        retrieve_random("img_a__01", keys, 3, seed=0)
    assert "\n" not in str(err.value)


def test_random_is_roughly_uniform() -> None:
    keys = [f"img_{i:02d}" for i in range(10)]
    counts = dict.fromkeys(keys, 0)
    for seed in range(2000):
        (pick,) = retrieve_random("query", keys, 1, seed)
        counts[pick] += 1
    assert min(counts.values()) > 140 and max(counts.values()) < 260


def _pascal_class(key: str) -> int:
    return int(key.rpartition("__")[2])


def test_same_class() -> None:
    query = "2008_000007__01"
    a = retrieve_same_class(query, KEYS, 4, 0, _pascal_class)
    assert a == retrieve_same_class(query, KEYS, 4, 0, _pascal_class)
    assert a == retrieve_same_class(query, KEYS[::-1], 4, 0, _pascal_class)
    assert retrieve_same_class(query, KEYS, 4, 1, _pascal_class) != a
    assert len(set(a)) == 4
    assert all(_pascal_class(k) == 1 and image_id_of(k) != "2008_000007" for k in a)


def test_same_class_too_few() -> None:
    pool = ["x1__05", "x2__05", "x3__06", "q__05"]
    assert len(retrieve_same_class("q__05", pool, 2, 0, _pascal_class)) == 2
    with pytest.raises(DataError) as err:
        retrieve_same_class("q__05", pool, 3, 0, _pascal_class)
    msg = str(err.value)
    assert "\n" not in msg and "Fix:" in msg and "class 5" in msg


def test_same_class_with_string_classes() -> None:
    """Colorization's classes are wnids (strings): the class function decides, not a format."""
    pool = [f"n0000000{c}/img{i}" for c in (1, 2) for i in range(4)]
    wnid = lambda k: k.partition("/")[0]  # noqa: E731
    got = retrieve_same_class("n00000001/img0", pool, 3, 0, wnid)
    assert len(got) == 3 and all(k.startswith("n00000001/") and k != "n00000001/img0" for k in got)


def test_retrieve_stage_takes_keys_a_pool_and_a_class_function() -> None:
    """The stage gives every query what the per-query retriever gives, for any key form
    (here ImageNet-style `<wnid>/<file>` keys with the wnid as class)."""
    pool = [f"n{c:08d}/img{i}.JPEG" for c in range(3) for i in range(6)]
    queries = [pool[0], pool[7]]

    def wnid(key: str) -> str:
        return key.partition("/")[0]

    for name in ("random", "same_class"):
        got = retrieve(queries, pool, 2, 5, wnid, RetrievalConfig(name=name))
        for q in queries:
            want = (
                retrieve_random(q, pool, 2, 5)
                if name == "random"
                else retrieve_same_class(q, pool, 2, 5, wnid)
            )
            assert got[q] == want and q not in got[q]
    same = retrieve(queries, pool, 2, 5, wnid, RetrievalConfig(name="same_class"))
    assert all(wnid(p) == wnid(q) for q in queries for p in same[q])
