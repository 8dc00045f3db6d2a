"""What every dataset check shares: the sample size and `sample`, the official counts, the
fix sentences, and the context (`_Ctx`: config, dataset root, demo parameters) built for a
task, demo data written first."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data.bsds import make_demo_bsds
from sdvicl_bench.data.deepfashion import make_demo_fld
from sdvicl_bench.data.demo import MARKER, make_demo_voc
from sdvicl_bench.data.demo_cityscapes import make_demo_cityscapes
from sdvicl_bench.data.imagenet import make_demo_imagenet
from sdvicl_bench.data.splits import SPLITS_SOURCE

SAMPLE_SIZE = 8
"""Files opened per dataset by `check_task` (evenly spaced over the sorted needed ones)."""

# Official counts of the releases the loaders read.
VOC_JPEG_IMAGES = 17_125  # VOCtrainval_11-May-2012: JPEGImages/ (and Annotations/)
VOC_MAIN = {"train": 5_717, "val": 5_823}  # ImageSets/Main/{train,val}.txt
SBD_AUG_MASKS = 12_031  # HSNet's SegmentationClassAug: SBD (11,355) + VOC (2,913), union
CITYSCAPES_IMAGES = {"train": 2_975, "val": 500, "test": 1_525}
IMAGENET_VAL_IMAGES = 50_000
IMAGENET_CLASSES = 1_000
BSDS_IMAGES = {"train": 200, "val": 100, "test": 200}
CITYSCAPES_MAX_LABEL = 33  # labelIds 0..33 (license plate, -1, is never stored)

# Fixes, one sentence each ({root}: the dataset root the task reads).
FIX_VOC = (
    "Fix: download VOCtrainval_11-May-2012.tar (host.robots.ox.ac.uk/pascal/VOC/voc2012/) and "
    "unpack its VOCdevkit/VOC2012/ folder as {root}"
)
FIX_SBD = (
    "Fix: download SBD (benchmark.tgz, Berkeley 'semantic contours') and run `sdvicl-bench data "
    "prepare sbd <folder holding benchmark_RELEASE/dataset/cls>` (writes "
    "{root}/SegmentationClassAug/, VOC's own masks included), or unpack HSNet's "
    "SegmentationClassAug.zip into {root}"
)
FIX_SPLITS = (
    "Fix: run any fgseg command online once (it fetches them from "
    + SPLITS_SOURCE.split("/{")[0]
    + "), or put the published lists there, or pass data.splits=<folder holding trn/ and val/>"
)
FIX_CITYSCAPES = (
    "Fix: download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip "
    "(cityscapes-dataset.com) and unpack both into {root}"
)
FIX_FLD = (
    'Fix: download DeepFashion "Fashion Landmark Detection" (Anno/, Eval/, Img/img.zip) and '
    "unpack it as {root} (Anno/, Eval/, Img/img/)"
)
FIX_IMAGENET = (
    "Fix: download ILSVRC2012_img_val.tar and its labels (devkit ILSVRC2012_devkit_t12.tar.gz, "
    "or Kaggle's LOC_val_solution.csv), unpack the images into one folder and run "
    "`sdvicl-bench data prepare imagenet-val <that folder>` (writes {root}/<wnid>/)"
)
FIX_BSDS = "Fix: download BSR_bsds500.tgz (Berkeley) and unpack it into {root} (BSR/BSDS500/data/)"


def sample(items: Iterable[Any], k: int = SAMPLE_SIZE) -> list[Any]:
    """Up to `k` items, evenly spaced over the sorted distinct items (first and last
    included): the same files on every machine."""
    pool = sorted(set(items))
    if k <= 0 or not pool:
        return []
    if len(pool) <= k:
        return pool
    if k == 1:
        return [pool[0]]
    return [pool[round(i * (len(pool) - 1) / (k - 1))] for i in range(k)]


# ----------------------------------------------------------------------------- context


@dataclass(frozen=True)
class _Ctx:
    """What every dataset check reads: the config, the dataset root, the demo writer's
    parameters (data=demo; {} when its marker is unreadable), the sample size, quick mode."""

    cfg: RunConfig
    root: Path
    demo: dict[str, Any] | None
    sample: int
    quick: bool

    def expected(self, official: int | None, demo: Callable[[dict], int] | None) -> int | None:
        """The count to expect: the demo writer's (data=demo) or the official one."""
        if self.demo is None:
            return official
        try:
            return int(demo(self.demo)) if demo is not None else None
        except (KeyError, TypeError, ValueError):
            return None

    def label(self, count: int | None) -> str:
        """A count as shown in the expected column: "17,125", "400 (demo)", "demo"."""
        if count is None:
            return "demo" if self.demo is not None else "-"
        return f"{count:,} (demo)" if self.demo is not None else f"{count:,}"

    def fix(self, text: str) -> str:
        """A fix sentence with {root} filled in; for demo data, how to rewrite it too."""
        line = text.format(root=self.root)
        if self.demo is not None:
            line += f" (demo data: delete {self.root / MARKER} and data=demo rewrites the set)"
        return line


def _demo_writer(cfg: RunConfig) -> Callable[[Path], Any] | None:
    """The demo writer of the task's dataset (None: none, or a hub source)."""
    dataset, options = cfg.task.dataset, cfg.task.options
    if dataset == "voc2012-canny" and options.get("source", "voc") == "bsds500":
        return make_demo_bsds
    if dataset == "imagenet-val" and options.get("source", "folder") == "hub":
        return None
    return DEMO_WRITERS.get(dataset)


def _root(cfg: RunConfig) -> Path:
    """The folder the task's loader reads (BSDS500: data.root, or data.root/bsds for demo)."""
    base = Path(cfg.data.root).expanduser()
    if cfg.task.dataset == "voc2012-canny" and cfg.task.options.get("source") == "bsds500":
        return base / "bsds" if cfg.data.name == "demo" else base
    return base / cfg.task.root_subdir


def _context(cfg: RunConfig, sample_size: int, quick: bool) -> _Ctx:
    """The check's context; for data=demo the demo is written first (as `run` would)."""
    root = _root(cfg)
    demo = None
    if cfg.data.name == "demo":
        writer = _demo_writer(cfg)
        if writer is not None:
            writer(root)
        demo = _marker_params(root)
    return _Ctx(cfg, root, demo, sample_size, quick)


def _marker_params(root: Path) -> dict[str, Any]:
    """The demo writer's parameters from `root/.demo_complete` ({} when unreadable)."""
    try:
        params = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return params if isinstance(params, dict) else {}


DEMO_WRITERS: dict[str, Callable[[Path], Any]] = {
    "pascal5i": make_demo_voc,
    "voc2012-det": make_demo_voc,
    "voc2012-canny": make_demo_voc,
    "cityscapes": make_demo_cityscapes,
    "deepfashion-fld": make_demo_fld,
    "imagenet-val": make_demo_imagenet,
}
"""What writes each family's demo set (data=demo), as its protocol does."""
