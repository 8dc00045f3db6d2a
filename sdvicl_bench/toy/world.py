"""The toy model's training pictures: every task's photos and ground-truth pictures.

The pictures come from the demo generators (the same worlds `data=demo` writes), at other
seeds than the demo's own (seed 0), through the real loaders and the tasks' own GT
renderers, resized as the sampler resizes them (``pipeline.picture_tensor``: photos bicubic,
GT pictures NEAREST). So the model learns the distribution the sampler shows it, and has never
seen a demo evaluation picture. The model is unconditional: it sees single pictures, never
(photo, GT) pairs; in-context learning is left to SD-VICL's attention.

Kinds and their share of a training batch (``MIXTURE``): VOC photos, fgseg masks, det boxes,
edge maps (fgseg, det, edges); Cityscapes photos and palette maps (semseg); DeepFashion photos
and landmark pictures (keypoints); ImageNet-like colour photos and their grey versions
(colorization).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdvicl_bench.data.cityscapes import CityscapesDataset
from sdvicl_bench.data.deepfashion import FLDDataset, make_demo_fld
from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.data.demo_cityscapes import make_demo_cityscapes
from sdvicl_bench.data.imagenet import ImageFolderDataset, grey, make_demo_imagenet
from sdvicl_bench.data.pascal import VOCDataset
from sdvicl_bench.data.voc_det import (
    annotation_path,
    box_mask,
    parse_annotation,
    passes_vp_filter,
)
from sdvicl_bench.sampler.pipeline import picture_tensor
from sdvicl_bench.tasks import det, edges, fgseg, keypoints, semseg

MIXTURE: dict[str, float] = {
    "voc_photo": 0.16,
    "fgseg": 0.16,
    "det": 0.10,
    "edges": 0.08,
    "city_photo": 0.07,
    "semseg": 0.09,
    "fashion_photo": 0.06,
    "keypoints": 0.09,
    "colour_photo": 0.10,
    "grey_photo": 0.09,
}
"""Share of each kind of picture in a training batch (sums to 1)."""

NO_FLIP = frozenset({"fashion_photo", "keypoints"})
"""Kinds never h-flipped: a flipped landmark picture would swap the meaning of the left and
right landmark colours (and the demo garments' two tones mark their left and right)."""

WORLD_SIZES = {"voc": 3000, "cityscapes": 600, "fashion": 1000, "imagenet": (20, 30)}
"""Images generated per world for training (imagenet: classes x per class)."""


def build_worlds(root: Path, seed: int, sizes: dict | None = None) -> dict[str, Path]:
    """Write the training worlds under ``root`` (idempotent, like every demo writer)."""
    sizes = {**WORLD_SIZES, **(sizes or {})}
    base = 1000 + 10 * int(seed)  # never the demo's seed 0
    classes, per_class = sizes["imagenet"]
    return {
        "voc": make_demo_voc(root / "VOC2012", seed=base + 1, num_images=sizes["voc"]),
        "cityscapes": make_demo_cityscapes(
            root / "cityscapes", seed=base + 2, num_train=sizes["cityscapes"], num_val=1
        ),
        "fashion": make_demo_fld(root / "deepfashion", seed=base + 3, num_images=sizes["fashion"]),
        "imagenet": make_demo_imagenet(
            root / "imagenet" / "val", seed=base + 4, classes=classes, per_class=per_class
        ),
    }


def demo_task(task: str) -> tuple[dict, str]:
    """A task's ``task.options`` and B-picture resize under ``data=demo`` (conf/task_data/),
    composed exactly as ``sdvicl-bench run task=<task> data=demo`` composes them."""
    from sdvicl_bench.cli import load_config
    from sdvicl_bench.protocols import make_protocol

    cfg = load_config([f"task={task}", "data=demo", "model=toy"])
    return dict(cfg.task.options), make_protocol(cfg).target_resample


def picture_bank(
    worlds: dict[str, Path], size: int, progress: Callable[[str], None] | None = None
) -> dict[str, torch.Tensor]:
    """Every kind's pictures as (N, 3, size, size) float32 in [-1, 1], in a fixed order.

    GT pictures are rendered with the demo's task options and resized the way the sampler
    resizes that task's B pictures (``demo_task``)."""
    bank: dict[str, list[torch.Tensor]] = {kind: [] for kind in MIXTURE}
    edge_options, edge_resize = demo_task("edges")
    resize = {"edges": edge_resize}
    edge_width = int(edge_options.get("edge_width", 1))
    thresholds = edge_options.get("canny_thresholds")
    palette = demo_task("semseg")[0]["palette"]
    marker = demo_task("keypoints")[0].get("marker_radius")

    def add(kind: str, picture: Image.Image, *, gt: bool) -> None:
        resample = resize.get(kind, "nearest") if gt else "bicubic"
        bank[kind].append(picture_tensor(picture, size, resample=resample))

    voc = VOCDataset(worlds["voc"])
    for image_id in _voc_ids(worlds["voc"]):
        photo = voc.image(image_id)
        add("voc_photo", photo, gt=False)
        edge_map = edges.thicken(edges.canny_edges(photo, thresholds), edge_width)
        add("edges", edges.render_gt(edge_map), gt=True)
        for class_id in sorted(set(np.unique(voc.label_map(image_id))) - {0, 255}):
            add("fgseg", fgseg.render_gt(voc.class_mask(image_id, int(class_id))), gt=True)
        ann = parse_annotation(annotation_path(worlds["voc"], image_id))
        if passes_vp_filter(ann):
            add("det", det.render_gt(box_mask(ann)), gt=True)
    if progress:
        progress("voc")

    city = CityscapesDataset(worlds["cityscapes"])
    for image_id in city.ids("train"):
        add("city_photo", city.image(image_id, "train"), gt=False)
        train_ids = city.train_ids(image_id, "train")
        add("semseg", semseg.render_gt(train_ids, palette), gt=True)
    fld = FLDDataset(worlds["fashion"])
    for record in fld.all_records():
        photo = fld.image(record)
        add("fashion_photo", photo, gt=False)
        add("keypoints", keypoints.render_gt(record, photo.size, marker_radius=marker), gt=True)
    folder = ImageFolderDataset(worlds["imagenet"])
    for image_id in folder.ids():
        photo = folder.image(image_id)
        add("colour_photo", photo, gt=False)
        add("grey_photo", grey(photo), gt=False)
    if progress:
        progress("others")
    return {kind: torch.stack(pics) for kind, pics in bank.items()}


def _voc_ids(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "JPEGImages").glob("*.jpg"))


def batches(
    bank: dict[str, torch.Tensor],
    batch_size: int,
    generator: torch.Generator,
    mixture: dict[str, float] | None = None,
) -> Iterator[torch.Tensor]:
    """Endless batches: kinds drawn by ``mixture`` (default ``MIXTURE``), pictures uniformly,
    random h-flips (except ``NO_FLIP`` kinds)."""
    mixture = MIXTURE if mixture is None else mixture
    if set(mixture) != set(MIXTURE):
        raise ValueError(f"a mixture names every kind of {sorted(MIXTURE)}, got {sorted(mixture)}")
    kinds = list(MIXTURE)
    weights = torch.tensor([float(mixture[k]) for k in kinds], dtype=torch.float64)
    while True:
        picks = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        rows = []
        for k in picks.tolist():
            pictures = bank[kinds[k]]
            rows.append(pictures[torch.randint(len(pictures), (1,), generator=generator)[0]])
        batch = torch.stack(rows)
        flip = torch.rand(batch_size, generator=generator) < 0.5
        flip &= torch.tensor([kinds[k] not in NO_FLIP for k in picks.tolist()])
        batch[flip] = batch[flip].flip(-1)
        yield batch
