"""Pascal protocols: foreground segmentation (Pascal-5i) and single object detection (VOC).

TASKS.md 1-2. Queries come from val, prompts from the prompt pool through a retriever
(`clip_knn`, `same_class`, `random`; METHOD.md 7). B is the ground truth of the retrieved
entry itself (fgseg: the mask of that entry's own class; `class_filter=query` keeps only
pool entries of the query's class). Scores: foreground (box-mask) IoU per episode, per fold
of the query's class and the mean of folds; baselines all-black and copy of B.

Scoring resolution (`task.options.score_size`): null (default) scores at the query image's
own size (the decoded prediction mapped back, METHOD.md 2). An integer S scores on an S x S
cell as Visual Prompting and UnsupPR do (S = 111: their 224 px canvas of 2 x 2 cells with
1 px padding; `calculate_metric` crops the query's cell [113:, 113:]):
  * a picture (the prediction; B for copy_b) is resized to S x S with PIL bicubic, aspect
    ratio not kept (VP squashes the query the same way), and decoded there (fgseg: the
    nearer of white/black, VP's `round_image`; det: then the largest 8-connected white
    component's box, VP's `to_rectangle`);
  * a truth mask (GT; all objects) becomes an 8-bit 0/255 picture resized to S x S, fgseg
    with bicubic (VP's mask transform, torchvision `Resize(111, interpolation=3)` on the PIL
    mask), det with bilinear (VP's det loader resizes the box picture with DETR's transforms,
    torchvision's default bilinear), then rounded to the nearer of white/black (> 127.5).
    VP's float round trip (ToTensor, normalise, denormalise, `.int()`) can truncate a value
    of exactly 128 to 127; that one grey level is not copied.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data import retrieval as rt
from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.data.pascal import (
    VOC_CLASSES,
    VOID_LABEL,
    VOCDataset,
    file_sha256,
    fold_of_class,
    read_split_list,
    split_list_path,
)
from sdvicl_bench.data.splits import ensure_split_lists
from sdvicl_bench.data.voc_det import (
    annotation_path,
    box_mask,
    parse_annotation,
    single_object_entries,
)
from sdvicl_bench.errors import ConfigError, DataError
from sdvicl_bench.metrics import fewshot
from sdvicl_bench.metrics.fewshot import binary_counts
from sdvicl_bench.metrics.iou import foreground_iou
from sdvicl_bench.protocols.base import QuerySet, RetrievalProtocol, Scored
from sdvicl_bench.sampler.pipeline import Episode
from sdvicl_bench.tasks import det, fgseg
from sdvicl_bench.types import EpisodeSpec


class PascalProtocol(RetrievalProtocol):
    """Shared by fgseg and det: the VOC root, pictures, IoU scoring."""

    metrics = ("iou",)
    baselines = ("black", "copy_b")
    cycle_per_fold = True  # episodes=N: N per Pascal-5i fold, as VP (1000 per fold)
    gt_resample = Image.Resampling.BICUBIC
    """How a truth mask goes to the score_size cell (VP's fgseg mask transform)."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.score_size = score_size_of(cfg.task.options)
        root = Path(cfg.data.root).expanduser() / cfg.task.root_subdir
        if cfg.data.name == "demo":
            make_demo_voc(root)
        if not root.is_dir():
            raise DataError(
                f"Dataset root not found: {root}. Fix: put VOC2012 (JPEGImages/, "
                "SegmentationClassAug/, Annotations/, ImageSets/) there, or pass "
                f"data.root=<folder holding {cfg.task.root_subdir}/>, or try data=demo."
            )
        self.root = root
        self.voc = VOCDataset(root)

    def load_image(self, key: str) -> Image.Image:
        return self.voc.image(rt.image_id_of(key))

    def target_picture(self, key: str) -> Image.Image:
        """B for a pool key (and the GT picture for a query key)."""
        raise NotImplementedError

    def truth_mask(self, key: str) -> np.ndarray:
        raise NotImplementedError

    def decode(self, picture: Image.Image, size: tuple[int, int]) -> np.ndarray:
        raise NotImplementedError

    # -- sampler inputs and scores
    def sampler_input(self, spec: EpisodeSpec) -> tuple[Episode, Any]:
        episode = Episode(
            prompts=[self.voc.image(rt.image_id_of(k)) for k in spec.prompts],
            targets=[self.target_picture(k) for k in spec.prompts],
            query=self.voc.image(rt.image_id_of(spec.query)),
            seed=spec.seed,
            prompt_ids=[rt.image_id_of(k) for k in spec.prompts],
            target_ids=list(spec.prompts),
            query_id=rt.image_id_of(spec.query),
        )
        truth = {"mask": self.truth_mask(spec.query), "b": episode.targets[0]}
        return episode, truth

    def visualize(self, picture: Image.Image, truth: Any) -> Image.Image:
        gt = truth["mask"]
        return fgseg.render_gt(self.decode(picture, (gt.shape[1], gt.shape[0])))

    def score(self, spec: EpisodeSpec, truth: Any, picture: Image.Image) -> Scored:
        gt = self.score_mask(truth["mask"])
        pred = self.score_decode(picture, truth["mask"])
        copy_b = self.score_decode(truth["b"], truth["mask"])
        return Scored(
            scores={"iou": foreground_iou(pred, gt)},
            baselines={
                "black": {"iou": foreground_iou(np.zeros_like(gt), gt)},
                "copy_b": {"iou": foreground_iou(copy_b, gt)},
            },
            gt_picture=fgseg.render_gt(truth["mask"]),
        )

    def score_mask(self, mask: np.ndarray) -> np.ndarray:
        """A truth mask bool (H, W) at the scoring size: itself, or its score_size cell."""
        if self.score_size is None:
            return mask
        return cell_mask(mask, self.score_size, self.gt_resample)

    def score_decode(self, picture: Image.Image, mask: np.ndarray) -> np.ndarray:
        """A picture (prediction, B) decoded at the scoring size: the truth mask's (H, W), or
        the score_size cell (the picture resized there with bicubic, then decoded)."""
        if self.score_size is None:
            return self.decode(picture, (mask.shape[1], mask.shape[0]))
        size = self.score_size
        return self.decode(cell_picture(picture, size), (size, size))


class FgsegProtocol(PascalProtocol):
    """Pascal-5i foreground segmentation: one pass over each fold's val list (TASKS.md 1).

    A third baseline, `all_objects`, segments every labelled object whatever its class (the
    best prompt-free answer a class-agnostic segmenter could give): it is perfect on
    one-object queries and fails where the query shows another class too.

    Besides the per-episode `iou`, the few-shot segmentation literature's pooled numbers
    (HSNet): `class_miou` (per class, summed intersections over summed unions; mean over a
    fold's classes; mean of folds) and `fb_iou` (mean of pooled foreground and background
    IoU), from pixel counts each record keeps (`counts`).
    """

    baselines = ("black", "copy_b", "all_objects")
    dataset_metrics = ("class_miou", "fb_iou")  # pooled over a fold, as HSNet (pooled_block)
    record_fields = ("counts",)
    metric_specs: ClassVar[dict] = {  # shown x100, as few-shot papers report them
        "class_miou": {"higher_is_better": True, "scale": 100},
        "fb_iou": {"higher_is_better": True, "scale": 100},
    }

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        splits = cfg.data.splits
        self.splits_dir = (
            Path(splits).expanduser() if splits else self.root / cfg.task.splits_subdir
        )
        real = cfg.data.name != "demo"
        ensure_split_lists(self.splits_dir, verify=real, fetch=real)

    def query_sets(self) -> list[QuerySet]:
        sets = []
        for fold in self.cfg.task.folds:
            queries = read_split_list(split_list_path(self.splits_dir, self.cfg.task.split, fold))
            pool_split = (
                self.cfg.task.split
                if self.cfg.retrieval.name == "same_class"
                else self.cfg.task.prompt_pool
            )
            pool = read_split_list(split_list_path(self.splits_dir, pool_split, fold))
            sets.append(
                QuerySet(
                    queries=[e.key for e in queries],
                    pool=[e.key for e in pool],
                    class_of=_class_of_key,
                    fold_of=lambda _k, f=fold: f,
                    id_prefix=f"f{fold}-",
                )
            )
        return sets

    def key_inputs(self) -> dict[str, Any]:
        return {
            f"{s}{f}": file_sha256(split_list_path(self.splits_dir, s, f))
            for f in self.cfg.task.folds
            for s in ("trn", "val")
        }

    def target_picture(self, key: str) -> Image.Image:
        return fgseg.render_gt(self.truth_mask(key))

    def truth_mask(self, key: str) -> np.ndarray:
        return self.voc.class_mask(rt.image_id_of(key), _class_of_key(key))

    def decode(self, picture: Image.Image, size: tuple[int, int]) -> np.ndarray:
        return fgseg.decode(picture, size)

    def sampler_input(self, spec: EpisodeSpec) -> tuple[Episode, Any]:
        episode, truth = super().sampler_input(spec)
        labels = self.voc.label_map(rt.image_id_of(spec.query))
        truth["objects"] = (labels != 0) & (labels != VOID_LABEL)
        return episode, truth

    def score(self, spec: EpisodeSpec, truth: Any, picture: Image.Image) -> Scored:
        scored = super().score(spec, truth, picture)
        objects, gt = self.score_mask(truth["objects"]), self.score_mask(truth["mask"])
        scored.baselines["all_objects"] = {"iou": foreground_iou(objects, gt)}
        masks = {  # the masks the scores above compare with gt, for class_miou and fb_iou
            None: self.score_decode(picture, truth["mask"]),
            "black": np.zeros_like(gt),
            "copy_b": self.score_decode(truth["b"], truth["mask"]),
            "all_objects": objects,
        }
        scored.extra["counts"] = {str(k): list(binary_counts(m, gt)) for k, m in masks.items()}
        return scored

    def dataset_metric(self, name: str, samples: list[dict], baseline: str | None) -> dict:
        """class_miou or fb_iou from the records' pixel counts (`pooled_block`)."""
        return pooled_block(name, samples, baseline)


class DetProtocol(PascalProtocol):
    """Single object detection (TASKS.md 2): VP's filter, white box on black, box IoU."""

    gt_resample = Image.Resampling.BILINEAR  # VP's det loader (DETR transforms' default)

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self._ann: dict[str, Any] = {}
        self.queries = single_object_entries(self.root, "val")
        self.pool = single_object_entries(self.root, "train")
        if not self.queries or not self.pool:
            raise DataError(
                f"No image passes the single-object filter under {self.root} "
                "(Annotations/, ImageSets/Main/{train,val}.txt). Fix: check data.root."
            )

    def annotation(self, image_id: str):
        if image_id not in self._ann:
            self._ann[image_id] = parse_annotation(annotation_path(self.root, image_id))
        return self._ann[image_id]

    def class_of(self, key: str) -> int:
        return self.annotation(key).objects[0].class_id

    def query_sets(self) -> list[QuerySet]:
        folds = set(self.cfg.task.folds)
        queries = [q for q in self.queries if fold_of_class(self.class_of(q)) in folds]
        return [
            QuerySet(
                queries=queries,
                pool=self.pool,
                class_of=self.class_of,
                fold_of=lambda k: fold_of_class(self.class_of(k)),
            )
        ]

    def key_inputs(self) -> dict[str, Any]:
        blob = "\n".join(self.queries) + "\n--\n" + "\n".join(self.pool)
        return {"det_lists": hashlib.sha256(blob.encode()).hexdigest()}

    def target_picture(self, key: str) -> Image.Image:
        return det.render_gt(self.truth_mask(key))

    def truth_mask(self, key: str) -> np.ndarray:
        return box_mask(self.annotation(key))

    def decode(self, picture: Image.Image, size: tuple[int, int]) -> np.ndarray:
        return det.decode(picture, size)


def score_size_of(options: dict[str, Any]) -> int | None:
    """`task.options.score_size`: None (score at the image's size) or a side in pixels."""
    size = options.get("score_size")
    if size is not None and size < 1:
        raise ConfigError(
            f"task.options.score_size={size} is not a size. Fix: pass task.options.score_size="
            "111 (VP's and UnsupPR's cell) or null (the image's own size)."
        )
    return size


def cell_picture(picture: Image.Image, size: int) -> Image.Image:
    """A picture as RGB, resized to size x size with PIL bicubic (aspect ratio not kept)."""
    rgb = picture.convert("RGB")
    if rgb.size == (size, size):
        return rgb
    return rgb.resize((size, size), Image.Resampling.BICUBIC)


def cell_mask(
    mask: np.ndarray, size: int, resample: Image.Resampling = Image.Resampling.BICUBIC
) -> np.ndarray:
    """bool (H, W) -> bool (size, size) as VP scores a truth mask: an 8-bit picture (True 255,
    False 0) resized with ``resample``, then the nearer of white/black (>= 128)."""
    grey = Image.fromarray(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8))
    if grey.size != (size, size):
        grey = grey.resize((size, size), resample)
    return np.asarray(grey) >= 128


def _class_of_key(key: str) -> int:
    """Class id of a `<image id>__<class>` key."""
    return int(key.rpartition("__")[2])


def pooled_block(name: str, samples: list[dict], baseline: str | None) -> dict[str, Any]:
    """`class_miou` or `fb_iou` (metrics.fewshot) of fgseg records, as a results.json block.

    From each record's `counts` (ours under "None", or the baseline's): `per_fold` pools
    the records of a fold (their `group`), `mean_of_folds` averages the folds (the number
    few-shot papers report), `overall` pools every record; class_miou adds `per_class`
    (VOC names, each class pooled over its records). NaN where a record lacks its counts (a
    record from before they were kept: `sdvicl-bench rescore` adds them).
    """
    key = str(baseline)
    nan = float("nan")
    if not samples or any(key not in s.get("counts", {}) for s in samples):
        return {"overall": {"mean": nan, "n": 0}, "mean_of_folds": nan}
    counts = np.asarray([s["counts"][key] for s in samples], dtype=np.int64)
    classes = [_class_of_key(s["query"]) for s in samples]
    groups = [s.get("group") for s in samples]

    def value(rows: list[int]) -> float:
        if name == "fb_iou":
            return fewshot.fb_iou(counts[rows])
        return fewshot.class_miou(counts[rows], [classes[i] for i in rows])

    per_fold = {}
    for g in sorted({g for g in groups if g is not None}):
        rows = [i for i, x in enumerate(groups) if x == g]
        per_fold[g] = {"mean": value(rows), "n": len(rows)}
    means = [v["mean"] for v in per_fold.values()]
    block: dict[str, Any] = {
        "overall": {"mean": value(list(range(len(samples)))), "n": len(samples)},
        "per_fold": per_fold,
        "mean_of_folds": float(np.mean(means)) if means else nan,
    }
    if name == "class_miou":
        per_class = fewshot.class_iou(counts, classes)
        block["per_class"] = {VOC_CLASSES[c - 1]: v for c, v in per_class.items()}
    return block
