"""Pascal VOC dataset families: Pascal-5i (fgseg) and VOC single objects (det).

TASKS.md 1-2. Queries come from val, prompts from the prompt pool through a retriever
(`clip_knn`, `same_class`, `random`; METHOD.md 7). B is the ground truth of the retrieved
entry itself (fgseg: the mask of that entry's own class; `class_filter=query` keeps only
pool entries of the query's class). Per-episode groups are the Pascal-5i folds of the
query's class.

Scoring resolution (`task.options.score_size`): null (default) scores at the query image's
own size (the decoded prediction mapped back, METHOD.md 2). An integer S scores on an S x S
cell as Visual Prompting and UnsupPR do (S = 111: their 224 px canvas of 2 x 2 cells with
1 px padding; `calculate_metric` crops the query's cell [113:, 113:]):
  * a picture (the prediction; B for copy_b) is resized to S x S with PIL bicubic, aspect
    ratio not kept (VP squashes the query the same way), and decoded there (each pixel
    white or black by the rule `task.options.binarize` names: `nearest`, mean RGB > 127.5,
    or `vp`, VP's `round_image` on uint8, `tasks.fgseg.vp_white`; det: then the largest
    8-connected white component's box, VP's `to_rectangle`);
  * a truth mask (GT; all objects) becomes an 8-bit 0/255 picture resized to S x S, fgseg
    with bicubic (VP's mask transform, torchvision `Resize(111, interpolation=3)` on the PIL
    mask), det with bilinear (VP's det loader resizes the box picture with DETR's transforms,
    torchvision's default bilinear), then rounded by the same rule: `nearest`, grey >= 128;
    `vp`, the levels VP's canvas holds after its float round trip (ToTensor, normalise,
    denormalise, `.int()`: unchanged for fgseg, many one lower for det's float32
    normalisation; `tasks.fgseg.vp_canvas_levels`) rounded with `round_image`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
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
from sdvicl_bench.metrics.fewshot import void_rule
from sdvicl_bench.protocols.episodes import QuerySet
from sdvicl_bench.protocols.family import DatasetFamily
from sdvicl_bench.tasks.fgseg import binarize_label_cell


class VOCFamily(DatasetFamily):
    """Shared by Pascal-5i and VOC detection: the VOC root, photos, score_size cells."""

    cycle_per_fold = True  # episodes=N: N per Pascal-5i fold, as VP (1000 per fold)
    class_names = VOC_CLASSES
    gt_resample = Image.Resampling.BICUBIC
    """How a truth mask goes to the score_size cell (VP's fgseg mask transform)."""
    vp_normalize: type[np.floating] = np.float64
    """The precision VP normalises the truth cell in (`tasks.fgseg.vp_canvas_levels`)."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.score_size = score_size_of(cfg.task.options)
        self.binarize = str(cfg.task.options.get("binarize", "nearest"))
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

    def image(self, key: str) -> Image.Image:
        return self.voc.image(rt.image_id_of(key))

    def prompt_id(self, key: str) -> str:
        return rt.image_id_of(key)

    def target_id(self, key: str) -> str:
        return key

    def query_id(self, key: str) -> str:
        return rt.image_id_of(key)

    def scored_target(self, target: np.ndarray) -> np.ndarray:
        """A truth mask bool (H, W) at the scoring size: itself, or its score_size cell."""
        if self.score_size is None:
            return target
        return cell_mask(
            target, self.score_size, self.gt_resample, self.binarize, self.vp_normalize
        )

    def scored_picture(self, picture: Image.Image) -> Image.Image:
        """A picture as decoded for scoring: itself, or resized to the score_size cell."""
        return picture if self.score_size is None else cell_picture(picture, self.score_size)


class Pascal5iFamily(VOCFamily):
    """Pascal-5i: one pass over each fold's val list (TASKS.md 1); keys `<image>__<class>`.

    Extra baseline `all_objects` segments every labelled object whatever its class (the
    best prompt-free answer a class-agnostic segmenter could give): it is perfect on
    one-object queries and fails where the query shows another class too.
    """

    baseline_names = ("all_objects",)

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        splits = cfg.data.splits
        self.splits_dir = (
            Path(splits).expanduser() if splits else self.root / cfg.task.splits_subdir
        )
        real = cfg.data.name != "demo"
        ensure_split_lists(self.splits_dir, verify=real, fetch=real)

    def query_sets(self) -> list[QuerySet]:
        t = self.cfg.task
        sets = []
        for fold in t.folds:
            queries = read_split_list(split_list_path(self.splits_dir, t.split, fold))
            pool_split = t.split if self.cfg.retrieval.name == "same_class" else t.prompt_pool
            pool = read_split_list(split_list_path(self.splits_dir, pool_split, fold))
            sets.append(
                QuerySet(
                    queries=[e.key for e in queries],
                    pool=[e.key for e in pool],
                    class_of=class_of_key,
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

    def class_of(self, key: str) -> int:
        return class_of_key(key)

    def target(self, key: str) -> np.ndarray:
        """bool (H, W): the key's class pixels (void counts as background; the class mIoU
        and FB-IoU counts leave it out by default: `extras`)."""
        return self.voc.class_mask(rt.image_id_of(key), class_of_key(key))

    def extra_baselines(self, key: str, target: Any) -> dict[str, Any]:
        labels = self.voc.label_map(rt.image_id_of(key))
        return {"all_objects": self.scored_target((labels != 0) & (labels != VOID_LABEL))}

    def extras(self, key: str) -> dict[str, Any]:
        """`void`: the query's void (255) pixels at the scoring size, which the class mIoU
        and FB-IoU counts leave out (`task.options.void=ignore`, the default; HSNet's rule);
        nothing with `void=background`."""
        if void_rule(self.options) != "ignore":
            return {}
        void = self.voc.label_map(rt.image_id_of(key)) == VOID_LABEL
        return {"void": void if self.score_size is None else void_cell(void, self.score_size)}


class VOCDetectionFamily(VOCFamily):
    """Single objects (TASKS.md 2): VP's filter; truth = the object's box mask."""

    gt_resample = Image.Resampling.BILINEAR  # VP's det loader (DETR transforms' default)
    vp_normalize = np.float32  # DETR's Normalize on float32 tensors

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

    def target(self, key: str) -> np.ndarray:
        return box_mask(self.annotation(key))


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
    mask: np.ndarray,
    size: int,
    resample: Image.Resampling = Image.Resampling.BICUBIC,
    binarize: str = "nearest",
    normalize: type[np.floating] = np.float64,
) -> np.ndarray:
    """bool (H, W) -> bool (size, size) as VP scores a truth mask: an 8-bit picture (True 255,
    False 0) resized with ``resample``, then white by the ``binarize`` rule
    (`tasks.fgseg.binarize_label_cell`: `nearest` >= 128; `vp` VP's canvas levels for
    ``normalize``, rounded with `round_image`)."""
    grey = Image.fromarray(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8))
    if grey.size != (size, size):
        grey = grey.resize((size, size), resample)
    return binarize_label_cell(np.asarray(grey), binarize, normalize)


def void_cell(void: np.ndarray, size: int) -> np.ndarray:
    """bool (H, W) -> bool (size, size): void pixels on the score_size cell, resized as HSNet
    resizes a label map to its 400 x 400 (`F.interpolate(mode="nearest")`: source index
    floor(j x H / size))."""
    grid = torch.from_numpy(np.asarray(void, dtype=np.float32))[None, None]
    return F.interpolate(grid, size=(size, size), mode="nearest")[0, 0].numpy() > 0.5


def class_of_key(key: str) -> int:
    """Class id of a `<image id>__<class>` key."""
    return int(key.rpartition("__")[2])
