"""UnsupPR prompt retrieval: nearest neighbours of the query by CLIP image features.

METHOD.md §7 (Zhang et al., NeurIPS 2023): the ``n`` nearest neighbours of the query by cosine
similarity of CLIP image features among the task's prompt pool, never the query image itself,
de-duplicated by image id (best rank kept). Features: CLIP ViT-L/14 LAION-2B
(``CLIP_MODEL_ID``), the vision tower's pooled output BEFORE the projection (1024-d), bicubic
resize of the short side to 224, centre crop 224, CLIP mean/std.

Keys follow ``sdvicl_bench.data.keys``: ``<image id>__<suffix>`` names one use of an image (the
HSNet list-line form), any other key is an image id itself (``image_id_of``). The keys of
one image share its embedding, so they tie and ``knn`` would keep the lowest (e.g. the lowest
class id); ``retrieval.clip_knn`` therefore ranks one key per image and then picks the key a
prompt uses, hence the class its mask B shows, by ``retrieval.prompt_class``
(``retrieval.prompt_key``: UnsupPR's last-listed class by default).

Pieces:
  * ``clip_preprocess``: PIL image -> float32 (3, 224, 224), PIL/numpy only.
  * ``ClipEmbedder``: a ``transformers.CLIPVisionModel`` -> L2-normalised (N, hidden) features.
  * ``EmbeddingCache``: embeddings of an ordered key list, on disk, keyed by model and keys.
  * ``knn`` / ``clip_knn_episodes``: cosine top-n with the exclusions and tie rules above.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from sdvicl_bench.data.keys import image_id_of
from sdvicl_bench.errors import DataError, ModelError

if TYPE_CHECKING:
    from transformers import CLIPVisionModel

CLIP_MODEL_ID = "laion/CLIP-ViT-L-14-laion2B-s32B-b82K"
CLIP_SIZE = 224
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

CACHE_FORMAT = 1
"""Bumped whenever preprocessing or the stored layout changes (part of every cache key)."""


# ----------------------------------------------------------------------------- preprocessing


def clip_preprocess(image: Image.Image, size: int = CLIP_SIZE) -> torch.Tensor:
    """CLIP/UnsupPR preprocessing of one image -> float32 tensor (3, size, size).

    RGB; the SHORT side resized to ``size`` with PIL BICUBIC (the long side
    ``int(size * long / short)``, as torchvision's ``Resize(size)`` on a PIL image); centre crop
    ``size`` x ``size`` (offsets rounded as torchvision's ``CenterCrop``); scaled to [0, 1];
    normalised per channel with ``CLIP_MEAN`` / ``CLIP_STD``.
    """
    image = image.convert("RGB")
    w, h = image.size
    if w <= h:
        new_w, new_h = size, max(size, int(size * h / w))
    else:
        new_w, new_h = max(size, int(size * w / h)), size
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left = round((new_w - size) / 2.0)  # Python round, as torchvision
    top = round((new_h - size) / 2.0)
    image = image.crop((left, top, left + size, top + size))
    arr = np.asarray(image, dtype=np.float32) / 255.0  # (size, size, 3)
    arr = (arr - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


# ----------------------------------------------------------------------------- embedder


class ClipEmbedder:
    """CLIP image features: the vision tower's ``pooler_output`` (post-LayerNorm CLS token,
    BEFORE the visual projection; 1024-d for ViT-L/14), L2-normalised.

    ``model_id`` and ``revision`` name the weights; they are part of the embedding cache key,
    so a model passed in directly (tests) must be given a distinct ``model_id``.
    """

    def __init__(
        self, model: CLIPVisionModel, *, model_id: str, revision: str | None = None
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.model_id = model_id
        self.revision = revision

    @classmethod
    def load(
        cls,
        source: str = CLIP_MODEL_ID,
        *,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> ClipEmbedder:
        """Load a ``CLIPVisionModel`` from a hub id (at ``revision``) or a local folder.

        A full ``CLIPModel`` checkpoint (as the LAION repo ships) loads its vision tower only.
        Any failure raises a one-line ModelError naming the source and the fix.
        """
        from transformers import CLIPVisionModel
        from transformers.utils import logging as hf_logging

        is_local = Path(source).expanduser().exists()
        source = str(Path(source).expanduser()) if is_local else source
        kw = {"revision": revision} if revision and not is_local else {}
        old_level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the text tower's unused weights are expected
        hf_logging.disable_progress_bar()
        try:
            model = CLIPVisionModel.from_pretrained(source, **kw)
        except Exception as err:  # offline, missing, corrupt: all user-fixable
            text = " ".join(str(err).split()) or type(err).__name__
            where = f"local folder '{source}'" if is_local else f"hub id '{source}'"
            raise ModelError(
                f"Cannot load the CLIP retrieval model from {where}"
                + (f" (revision {revision})" if kw else "")
                + f": {text[:200].rstrip('.')}. Fix: download it once with "
                f"`huggingface-cli download {CLIP_MODEL_ID if is_local else source}"
                + (f" --revision {revision}" if kw else "")
                + "` on a machine with internet, "
                "or pass retrieval.model_path=<folder with config.json and the weights>"
                + (" (or retrieval.revision=null for the newest weights)." if kw else ".")
            ) from None
        finally:
            hf_logging.set_verbosity(old_level)
            hf_logging.enable_progress_bar()
        model.to(device=device, dtype=dtype)
        return cls(model, model_id=source, revision=revision if kw else None)

    @property
    def cache_id(self) -> str:
        """What identifies these features in a cache key: model id, revision, width."""
        width = getattr(self.model.config, "hidden_size", "?")
        return f"{self.model_id}@{self.revision or '-'}#{width}"

    @torch.no_grad()
    def embed(self, images: Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
        """Images -> features float32 (N, hidden) on CPU, each row L2-normalised.

        ``hidden`` is the vision tower's width (1024 for ViT-L/14). N = 0 gives (0, hidden).
        """
        width = int(self.model.config.hidden_size)
        if len(images) == 0:
            return torch.zeros(0, width)
        param = next(self.model.parameters())
        out = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([clip_preprocess(im) for im in images[start : start + batch_size]])
            pooled = self.model(pixel_values=batch.to(param.device, param.dtype)).pooler_output
            out.append(pooled.float().cpu())
        feats = torch.cat(out)
        return torch.nn.functional.normalize(feats, dim=1)


# ----------------------------------------------------------------------------- cache


class EmbeddingCache:
    """Embeddings of an ordered key list, one ``<digest>.pt`` file per (model, keys) in
    ``folder``.

    The digest is sha256 of (``CACHE_FORMAT``, ``embedder.cache_id`` = model id + revision or
    local path + width, the ordered key list, the caller's ``fingerprint``). Image contents are
    NOT hashed: pass a ``fingerprint`` (e.g. the dataset root, or split-list hashes) when the
    same keys could name different pictures. The file holds ``{"keys", "embeddings",
    "cache_id"}``; it is read with ``weights_only=True`` and any unreadable, mismatched or
    non-finite file is recomputed and overwritten (atomic write).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path_for(self, keys: Sequence[str], embedder: Any, fingerprint: str = "") -> Path:
        """The cache file for this (model, ordered keys, fingerprint)."""
        payload = json.dumps(
            [CACHE_FORMAT, embedder.cache_id, list(keys), fingerprint], ensure_ascii=True
        )
        return self.folder / f"clip-{hashlib.sha256(payload.encode()).hexdigest()[:32]}.pt"

    def get_or_compute(
        self,
        keys: Sequence[str],
        load_image: Callable[[str], Image.Image],
        embedder: Any,
        *,
        fingerprint: str = "",
        same_image: Callable[[str], str] | None = None,
        batch_size: int = 32,
    ) -> torch.Tensor:
        """Embeddings float32 (N, d) of ``keys`` in order, from the cache or computed.

        ``embedder`` needs ``embed(images, batch_size) -> (M, d)`` and ``cache_id``.
        ``same_image`` (e.g. ``image_id_of``) maps keys that show the same picture to one id,
        so each picture is loaded and embedded once (with the first key of its group);
        ``None`` embeds every distinct key.
        """
        keys = list(keys)
        path = self.path_for(keys, embedder, fingerprint)
        cached = self._read(path, keys, embedder.cache_id)
        if cached is not None:
            return cached
        group = same_image or (lambda k: k)
        first: dict[str, str] = {}
        for k in keys:
            first.setdefault(group(k), k)
        groups = list(first)
        feats = embedder.embed([load_image(first[g]) for g in groups], batch_size=batch_size)
        feats = torch.as_tensor(feats, dtype=torch.float32).cpu()
        if feats.shape[0] != len(groups):
            raise ValueError(f"embedder returned {feats.shape[0]} rows for {len(groups)} images")
        row = {g: i for i, g in enumerate(groups)}
        emb = feats[[row[group(k)] for k in keys]] if keys else feats
        self._write(path, {"keys": keys, "embeddings": emb, "cache_id": embedder.cache_id})
        return emb.clone()

    @staticmethod
    def _read(path: Path, keys: list[str], cache_id: str) -> torch.Tensor | None:
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            emb = data["embeddings"]
            ok = (
                data["keys"] == keys
                and data["cache_id"] == cache_id
                and isinstance(emb, torch.Tensor)
                and emb.dtype == torch.float32
                and emb.ndim == 2
                and emb.shape[0] == len(keys)
                and bool(torch.isfinite(emb).all())
            )
        except Exception:  # corrupt, truncated, foreign: recompute
            return None
        return emb if ok else None

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(data, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# ----------------------------------------------------------------------------- k-NN


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _as_matrix(emb: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = emb.detach().cpu().double().numpy() if isinstance(emb, torch.Tensor) else emb
    return np.asarray(arr, dtype=np.float64)


def _pick(
    scores: np.ndarray, key_rank: np.ndarray, pool_keys: Sequence[str], n: int, query_key: str
) -> list[str]:
    """Top-n pool keys by (score desc, key asc), skipping the query's image and repeats."""
    order = np.lexsort((key_rank, -scores))
    own = image_id_of(query_key)
    seen: set[str] = {own}
    chosen: list[str] = []
    for i in order:
        if len(chosen) == n:
            break
        key = pool_keys[i]
        image_id = image_id_of(key)
        if image_id in seen:
            continue
        seen.add(image_id)
        chosen.append(key)
    if len(chosen) < n:
        raise DataError(
            f"only {len(chosen)} prompt pool images other than the query's for query "
            f"{query_key}, {n} prompts asked. Fix: lower the number of prompts or use a "
            "larger prompt pool."
        )
    return chosen


def _check(pool: np.ndarray, pool_keys: Sequence[str], n: int) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if pool.ndim != 2 or pool.shape[0] != len(pool_keys):
        raise ValueError(f"pool_emb {pool.shape} does not match {len(pool_keys)} pool keys")


def _key_rank(pool_keys: Sequence[str]) -> np.ndarray:
    """Rank of each pool key in sorted order: the deterministic tie-break."""
    rank = np.empty(len(pool_keys), dtype=np.int64)
    rank[sorted(range(len(pool_keys)), key=pool_keys.__getitem__)] = np.arange(len(pool_keys))
    return rank


def knn(
    query_emb: torch.Tensor | np.ndarray,
    pool_emb: torch.Tensor | np.ndarray,
    pool_keys: Sequence[str],
    n: int,
    *,
    query_key: str,
) -> list[str]:
    """The ``n`` pool keys most cosine-similar to the query, best first.

    ``query_emb`` (d,), ``pool_emb`` (N, d) (normalised here, in float64), ``pool_keys`` N keys.
    Never returns a key with the query's image id; of several keys with one image id only the
    best-ranked stays; equal scores are ordered by key (ascending). Fewer than ``n`` eligible
    images raises a one-line DataError.
    """
    pool = _as_matrix(pool_emb)
    _check(pool, pool_keys, n)
    query = _as_matrix(query_emb).reshape(-1)
    if query.shape[0] != pool.shape[1]:
        raise ValueError(f"query_emb has {query.shape[0]} dims, pool_emb {pool.shape[1]}")
    scores = _unit_rows(pool) @ _unit_rows(query)
    return _pick(scores, _key_rank(pool_keys), pool_keys, n, query_key)


def clip_knn_episodes(
    query_keys: Sequence[str],
    pool_keys: Sequence[str],
    query_emb: torch.Tensor | np.ndarray,
    pool_emb: torch.Tensor | np.ndarray,
    n: int,
) -> dict[str, list[str]]:
    """``knn`` for every query: ``{query key: [n pool keys, best first]}``.

    ``query_emb`` (Q, d) rows follow ``query_keys``; ``pool_emb`` (N, d) rows follow
    ``pool_keys``. Same rules and errors as ``knn``; one matrix product for all queries.
    """
    pool = _as_matrix(pool_emb)
    _check(pool, pool_keys, n)
    queries = _as_matrix(query_emb)
    if queries.ndim != 2 or queries.shape[0] != len(query_keys):
        raise ValueError(f"query_emb {queries.shape} does not match {len(query_keys)} query keys")
    if queries.shape[1] != pool.shape[1]:
        raise ValueError(f"query_emb has {queries.shape[1]} dims, pool_emb {pool.shape[1]}")
    scores = _unit_rows(queries) @ _unit_rows(pool).T  # (Q, N)
    rank = _key_rank(pool_keys)
    return {q: _pick(scores[i], rank, pool_keys, n, q) for i, q in enumerate(query_keys)}
