"""Pascal protocols: foreground segmentation (Pascal-5i) and single object detection (VOC).

TASKS.md 1-2. Queries come from val, prompts from the prompt pool through a retriever
(`clip_knn`, `same_class`, `random`; METHOD.md 7). B is the ground truth of the retrieved
entry itself (fgseg: the mask of that entry's own class; `class_filter=query` keeps only
pool entries of the query's class). Scores: foreground (box-mask) IoU per episode, per fold
of the query's class and the mean of folds; baselines all-black and copy of B.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data import retrieval as rt
from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.data.pascal import (
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
from sdvicl_bench.errors import DataError
from sdvicl_bench.metrics.iou import foreground_iou
from sdvicl_bench.protocols.base import QuerySet, RetrievalProtocol, Scored
from sdvicl_bench.sampler.pipeline import Episode
from sdvicl_bench.tasks import det, fgseg
from sdvicl_bench.types import EpisodeSpec


class PascalProtocol(RetrievalProtocol):
    """Shared by fgseg and det: the VOC root, pictures, IoU scoring."""

    metrics = ("iou",)
    baselines = ("black", "copy_b")

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
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
        gt = truth["mask"]
        size = (gt.shape[1], gt.shape[0])
        pred = self.decode(picture, size)
        copy_b = self.decode(truth["b"], size)
        return Scored(
            scores={"iou": foreground_iou(pred, gt)},
            baselines={
                "black": {"iou": foreground_iou(np.zeros_like(gt), gt)},
                "copy_b": {"iou": foreground_iou(copy_b, gt)},
            },
            gt_picture=fgseg.render_gt(gt),
        )


class FgsegProtocol(PascalProtocol):
    """Pascal-5i foreground segmentation: one pass over each fold's val list (TASKS.md 1).

    A third baseline, `all_objects`, segments every labelled object whatever its class (the
    best prompt-free answer a class-agnostic segmenter could give): it is perfect on
    one-object queries and fails where the query shows another class too.
    """

    baselines = ("black", "copy_b", "all_objects")

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
        scored.baselines["all_objects"] = {"iou": foreground_iou(truth["objects"], truth["mask"])}
        return scored


class DetProtocol(PascalProtocol):
    """Single object detection (TASKS.md 2): VP's filter, white box on black, box IoU."""

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


def _class_of_key(key: str) -> int:
    """Class id of a `<image id>__<class>` key."""
    return int(key.rpartition("__")[2])
