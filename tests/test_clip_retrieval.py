"""UnsupPR retrieval (CLIP k-NN): preprocessing, a tiny random CLIP vision tower, the k-NN
rules against a brute-force reference, and the on-disk embedding cache. Offline."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel

from sdvicl_bench.data.clip_retrieval import (
    CLIP_MEAN,
    CLIP_MODEL_ID,
    CLIP_STD,
    ClipEmbedder,
    EmbeddingCache,
    clip_knn_episodes,
    clip_preprocess,
    knn,
)
from sdvicl_bench.data.retrieval import image_id_of
from sdvicl_bench.errors import DataError, ModelError

TINY = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 224,
    "patch_size": 32,
}


def _tiny_model(seed: int = 0) -> CLIPVisionModel:
    torch.manual_seed(seed)
    return CLIPVisionModel(CLIPVisionConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def embedder() -> ClipEmbedder:
    return ClipEmbedder(_tiny_model(), model_id="tiny-clip-test")


def _images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(240, 180), (200, 300), (224, 224), (320, 250), (150, 260)]
    out = []
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        out.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return out


def brute_force(query: np.ndarray, pool: np.ndarray, keys: list[str], n: int, qkey: str):
    """Reference: cosine per pool row in a loop, sort by (-score, key), skip own image and
    repeated image ids."""
    scored = []
    for row, key in zip(pool, keys, strict=True):
        cos = float(np.dot(query, row) / (np.linalg.norm(query) * np.linalg.norm(row)))
        scored.append((-cos, key))
    out, seen = [], {image_id_of(qkey)}
    for _, key in sorted(scored):
        if image_id_of(key) not in seen:
            seen.add(image_id_of(key))
            out.append(key)
    return out[:n]


# --- preprocessing ---------------------------------------------------------------------------


def test_preprocess_shape_and_grey_constant() -> None:
    for size in [(300, 200), (200, 301), (224, 224), (100, 150)]:
        x = clip_preprocess(Image.new("RGB", size, (128, 128, 128)))
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        for c in range(3):
            expected = (128 / 255 - CLIP_MEAN[c]) / CLIP_STD[c]
            assert torch.allclose(x[c], torch.full((224, 224), expected), atol=1e-5)


def test_preprocess_short_side_and_centre_crop() -> None:
    # 448x224, left half red, right half blue: the crop keeps columns 112..335
    arr = np.zeros((224, 448, 3), dtype=np.uint8)
    arr[:, :224, 0] = 255
    arr[:, 224:, 2] = 255
    x = clip_preprocess(Image.fromarray(arr))
    red = (1 - CLIP_MEAN[0]) / CLIP_STD[0]
    assert torch.allclose(x[0, :, :112], torch.full((224, 112), red), atol=1e-5)
    assert torch.allclose(x[2, :, 112:], torch.full((224, 112), (1 - CLIP_MEAN[2]) / CLIP_STD[2]))
    # grey-level 'L' image becomes RGB
    assert clip_preprocess(Image.new("L", (50, 80), 7)).shape == (3, 224, 224)


def test_preprocess_matches_hf_pil_processor() -> None:
    try:
        from transformers import CLIPImageProcessorPil
    except ImportError:
        pytest.skip("transformers has no CLIPImageProcessorPil")
    proc = CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    )
    for im in _images(5, seed=3):  # even crop offsets: HF's floor == torchvision's round
        ref = proc(images=im, return_tensors="pt").pixel_values[0]
        assert torch.allclose(clip_preprocess(im), ref, atol=1e-5)


# --- embedder --------------------------------------------------------------------------------


def test_embed_is_normalised_pooler_output(embedder: ClipEmbedder) -> None:
    images = _images(5)
    emb = embedder.embed(images, batch_size=2)
    assert emb.shape == (5, 32) and emb.dtype == torch.float32 and emb.device.type == "cpu"
    assert torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)
    with torch.no_grad():
        pooled = embedder.model(
            pixel_values=torch.stack([clip_preprocess(im) for im in images])
        ).pooler_output
    assert torch.allclose(emb, torch.nn.functional.normalize(pooled, dim=1), atol=1e-5)
    assert embedder.embed([]).shape == (0, 32)


def test_load_local_clipmodel_folder_gives_vision_tower(tmp_path) -> None:
    torch.manual_seed(1)
    text = {"hidden_size": 16, "intermediate_size": 20, "num_hidden_layers": 1}
    full = CLIPModel(
        CLIPConfig(text_config={**text, "num_attention_heads": 2}, vision_config=TINY)
    ).eval()
    full.save_pretrained(tmp_path / "clip")
    loaded = ClipEmbedder.load(str(tmp_path / "clip"))
    x = torch.stack([clip_preprocess(im) for im in _images(2)])
    with torch.no_grad():
        ref = full.vision_model(pixel_values=x).pooler_output
    assert torch.allclose(loaded.embed(_images(2)), torch.nn.functional.normalize(ref, dim=1))


def test_load_failure_is_one_line_model_error(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError) as info:
        ClipEmbedder.load(str(tmp_path / "empty"))
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path / "empty") in msg
    assert "retrieval.model_path=" in msg and f"huggingface-cli download {CLIP_MODEL_ID}" in msg


def test_load_failure_at_a_pinned_revision_names_it_and_the_way_out(monkeypatch) -> None:
    asked = {}

    def unreachable(source, **kw):  # what an offline machine or a wrong hash gives
        asked.update(kw, source=source)
        raise OSError(f"{source} is not a local folder and the hub cannot be reached.")

    monkeypatch.setattr(CLIPVisionModel, "from_pretrained", unreachable)
    source, revision = "some-org/some-clip", "0" * 40
    with pytest.raises(ModelError) as info:
        ClipEmbedder.load(source, revision=revision)
    assert asked == {"source": source, "revision": revision}
    msg = str(info.value)
    assert "\n" not in msg and f"(revision {revision})" in msg
    assert f"huggingface-cli download {source} --revision {revision}`" in msg
    assert "retrieval.revision=null" in msg


def test_default_retrieval_config_pins_a_full_commit_hash() -> None:
    conf = Path(__file__).resolve().parents[1] / "sdvicl_bench" / "conf" / "retrieval"
    cfg = OmegaConf.load(conf / "clip_knn.yaml")
    assert cfg.model_id == CLIP_MODEL_ID
    assert re.fullmatch(r"[0-9a-f]{40}", str(cfg.revision))


# --- k-NN ------------------------------------------------------------------------------------


def test_knn_matches_brute_force(embedder: ClipEmbedder) -> None:
    images = _images(12, seed=1)
    keys = [f"img{i:02d}__{(i % 3) + 1:02d}" for i in range(12)]
    emb = embedder.embed(images)
    pool = emb.numpy()
    for q in range(0, 12, 3):
        got = knn(emb[q], emb, keys, 5, query_key=keys[q])
        assert got == brute_force(pool[q], pool, keys, 5, keys[q])
        assert keys[q] not in got and len(got) == 5
        assert got == knn(emb[q], emb, keys, 5, query_key=keys[q])  # deterministic
        # the order of the pool does not matter
        perm = np.random.default_rng(q).permutation(12)
        assert got == knn(emb[q], emb[perm], [keys[i] for i in perm], 5, query_key=keys[q])


def test_knn_never_returns_query_image_and_dedups() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 8))
    query = base[0]
    pool = np.stack(
        [
            query,  # the query itself (a1__01)
            query + 0.01,  # the query's image, other class: still excluded
            base[1],  # b__01
            base[1] * 0.5 + query,  # b__02: same image as b__01, closer to the query
            base[2],  # c
            base[3],  # d
        ]
    )
    keys = ["a1__01", "a1__02", "b__01", "b__02", "c", "d"]
    got = knn(torch.tensor(query), torch.tensor(pool), keys, 3, query_key="a1__01")
    assert "a1__01" not in got and "a1__02" not in got
    assert [image_id_of(k) for k in got].count("b") == 1
    assert "b__02" in got and "b__01" not in got  # best rank of image b kept
    assert got == brute_force(query, pool, keys, 3, "a1__01")


def test_knn_ties_broken_by_key() -> None:
    query = np.array([1.0, 0.0])
    pool = np.array([[1.0, 1.0], [2.0, 2.0], [1.0, 1.0], [0.0, 1.0]])
    keys = ["z", "m__02", "m__01", "a"]  # m__01 and m__02 equal: m__01 kept; z ties with m
    assert knn(query, pool, keys, 3, query_key="q") == ["m__01", "z", "a"]


def test_knn_too_few_candidates_is_one_line_data_error() -> None:
    pool = np.eye(3)
    keys = ["q__01", "x__01", "x__02"]
    with pytest.raises(DataError) as info:
        knn(np.ones(3), pool, keys, 2, query_key="q__05")
    assert "\n" not in str(info.value) and "q__05" in str(info.value)
    assert knn(np.ones(3), pool, keys, 1, query_key="q__05") in (["x__01"], ["x__02"])
    assert knn(np.ones(3), pool, keys, 0, query_key="q__05") == []


def test_clip_knn_episodes_equals_knn(embedder: ClipEmbedder) -> None:
    emb = embedder.embed(_images(10, seed=2))
    pool_keys = [f"p{i}__01" for i in range(7)]
    query_keys = ["q0__02", "q1__03", "p3__04"]  # the last one shares an image with the pool
    out = clip_knn_episodes(query_keys, pool_keys, emb[7:], emb[:7], 4)
    assert list(out) == query_keys
    for i, q in enumerate(query_keys):
        assert out[q] == knn(emb[7 + i], emb[:7], pool_keys, 4, query_key=q)
    assert "p3__01" not in out["p3__04"]


# --- cache -----------------------------------------------------------------------------------


class SpyEmbedder:
    """Counts the images it is asked to embed."""

    def __init__(self, inner: ClipEmbedder) -> None:
        self.inner = inner
        self.cache_id = inner.cache_id
        self.calls: list[int] = []

    def embed(self, images, batch_size: int = 32) -> torch.Tensor:
        self.calls.append(len(images))
        return self.inner.embed(images, batch_size=batch_size)


def test_cache_hit_miss_and_corrupt(embedder: ClipEmbedder, tmp_path) -> None:
    images = dict(zip([f"k{i}" for i in range(4)], _images(4, seed=5), strict=True))
    spy = SpyEmbedder(embedder)
    cache = EmbeddingCache(tmp_path / "cache")
    keys = list(images)
    first = cache.get_or_compute(keys, images.__getitem__, spy)
    assert first.shape == (4, 32) and spy.calls == [4]
    again = cache.get_or_compute(keys, images.__getitem__, spy)
    assert torch.equal(first, again) and spy.calls == [4]  # hit: the model is not called
    # a changed key list (order included) misses
    cache.get_or_compute(keys[::-1], images.__getitem__, spy)
    assert spy.calls == [4, 4]
    cache.get_or_compute(keys[:3], images.__getitem__, spy)
    assert spy.calls == [4, 4, 3]
    # another fingerprint misses too
    cache.get_or_compute(keys, images.__getitem__, spy, fingerprint="other root")
    assert spy.calls == [4, 4, 3, 4]
    # a corrupt file is recomputed (and rewritten)
    path = cache.path_for(keys, spy)
    path.write_bytes(b"not a torch file")
    fixed = cache.get_or_compute(keys, images.__getitem__, spy)
    assert torch.allclose(fixed, first) and spy.calls == [4, 4, 3, 4, 4]
    assert torch.equal(cache.get_or_compute(keys, images.__getitem__, spy), fixed)
    assert spy.calls == [4, 4, 3, 4, 4]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]


def test_cache_same_image_embeds_once(embedder: ClipEmbedder, tmp_path) -> None:
    pics = dict(zip(["a", "b", "c"], _images(3, seed=6), strict=True))
    keys = ["a__01", "b__02", "a__03", "c__01"]
    loaded: list[str] = []

    def load(key: str) -> Image.Image:
        loaded.append(key)
        return pics[image_id_of(key)]

    spy = SpyEmbedder(embedder)
    emb = EmbeddingCache(tmp_path).get_or_compute(keys, load, spy, same_image=image_id_of)
    assert spy.calls == [3] and loaded == ["a__01", "b__02", "c__01"]
    assert torch.equal(emb[0], emb[2])
    assert torch.allclose(emb, embedder.embed([pics[image_id_of(k)] for k in keys]), atol=1e-6)
