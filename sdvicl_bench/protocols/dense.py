"""Protocols of the other four tasks (TASKS.md 3-6): Cityscapes semantic segmentation,
DeepFashion keypoints, edges (VOC + Canny) and ImageNet colorization.

Each follows the Pascal pattern: a dataset root (written by the demo generator for
`data=demo`), query and pool keys, a retriever, GT pictures, a decoder back to the image's
own size, per-sample metrics and trivial baselines; semseg, colorization and edges on
BSDS500 add set-level metrics (one confusion matrix over all episodes; FID over all pictures;
the BSDS benchmark's ODS / OIS from per-threshold counts kept in each record).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data.cityscapes import NUM_CLASSES, TRAIN_CLASSES, CityscapesDataset
from sdvicl_bench.data.deepfashion import CLOTHES_TYPES, FLDDataset, make_demo_fld
from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.data.demo_cityscapes import make_demo_cityscapes
from sdvicl_bench.data.imagenet import (
    ImageFolderDataset,
    grey,
    make_demo_imagenet,
    sample_queries,
)
from sdvicl_bench.data.pascal import VOCDataset
from sdvicl_bench.data.voc_det import read_image_set
from sdvicl_bench.errors import ConfigError, DataError
from sdvicl_bench.metrics import boundaries, confusion
from sdvicl_bench.metrics.iou import mean_with_ci
from sdvicl_bench.metrics.keypoints import normalized_error, normalized_mse, pck, pck_name
from sdvicl_bench.metrics.mse import mse, mse_vp
from sdvicl_bench.protocols.base import QuerySet, RetrievalProtocol, Scored
from sdvicl_bench.sampler.pipeline import Episode
from sdvicl_bench.tasks import colorization, edges, keypoints, semseg
from sdvicl_bench.types import EpisodeSpec


def _dataset_root(cfg: RunConfig, make_demo) -> Path:
    root = Path(cfg.data.root).expanduser() / cfg.task.root_subdir
    if cfg.data.name == "demo":
        make_demo(root)
    if not root.is_dir():
        raise DataError(
            f"Dataset root not found: {root}. Fix: put the {cfg.task.dataset} data there (see "
            f"README, task {cfg.task.name}), pass data.root=<folder holding "
            f"{cfg.task.root_subdir}/>, or try data=demo."
        )
    return root


DEFAULT_PCK_THRESHOLDS = (0.05, 0.1, 0.2)
"""PCK thresholds reported besides `pck` (task.options.pck_thresholds), x max(W, H)."""


def pck_thresholds_of(options: dict[str, Any]) -> tuple[float, ...]:
    """`task.options.pck_thresholds` (default DEFAULT_PCK_THRESHOLDS), each in (0, 1]."""
    values = tuple(float(a) for a in options.get("pck_thresholds", DEFAULT_PCK_THRESHOLDS))
    bad = [a for a in values if not 0.0 < a <= 1.0]
    if bad:
        raise ConfigError(
            f"task.options.pck_thresholds holds {bad[0]:g}, not a fraction of the image size. "
            "Fix: use values in (0, 1], e.g. task.options.pck_thresholds=[0.05,0.1,0.2]."
        )
    return values


def _size(arr: np.ndarray) -> tuple[int, int]:
    return arr.shape[1], arr.shape[0]


def _sparse(conf: np.ndarray) -> list[list[int]]:
    """Nonzero entries [gt, pred, count] of a confusion matrix (compact in samples.jsonl)."""
    rows, cols = np.nonzero(conf)
    return [[int(r), int(c), int(conf[r, c])] for r, c in zip(rows, cols, strict=True)]


def _dense(entries: list[list[int]]) -> np.ndarray:
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), dtype=np.int64)
    for r, c, n in entries:
        conf[r, c] += n
    return conf


# ----------------------------------------------------------------------------- semseg


class SemsegProtocol(RetrievalProtocol):
    """Cityscapes (TASKS.md 3): val queries, train prompts, palette pictures, dataset mIoU.

    Each record keeps its confusion matrices (ours and each baseline's); `miou` and
    `accuracy` come from them. `task.options.miou`: `dataset` (default, the Cityscapes
    convention: one matrix over all episodes) or `per_image` (the mean of each image's mIoU,
    with a bootstrap interval). The `miou` block lists the IoU of each class (`per_class`).
    """

    dataset_metrics = ("miou", "accuracy")
    baselines = ("black", "copy_b")
    record_fields = ("confusion",)

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.root = _dataset_root(cfg, make_demo_cityscapes)
        self.city = CityscapesDataset(self.root)
        self.palette = str(cfg.task.options.get("palette", "official"))
        self.miou_mode = str(cfg.task.options.get("miou", "dataset"))

    @staticmethod
    def _split(key: str) -> tuple[str, str]:
        split, _, image_id = key.partition("/")
        return split, image_id

    def load_image(self, key: str) -> Image.Image:
        split, image_id = self._split(key)
        return self.city.image(image_id, split)

    def labels(self, key: str) -> np.ndarray:
        split, image_id = self._split(key)
        return self.city.train_ids(image_id, split)

    def query_sets(self) -> list[QuerySet]:
        t = self.cfg.task
        return [
            QuerySet(
                queries=[f"{t.split}/{i}" for i in self.city.ids(t.split)],
                pool=[f"{t.prompt_pool}/{i}" for i in self.city.ids(t.prompt_pool)],
                class_of=lambda _k: 0,
                fold_of=lambda _k: None,
            )
        ]

    def key_inputs(self) -> dict[str, Any]:
        return {"palette": self.palette}

    def sampler_input(self, spec: EpisodeSpec) -> tuple[Episode, Any]:
        episode = Episode(
            prompts=[self.load_image(k) for k in spec.prompts],
            targets=[semseg.render_gt(self.labels(k), self.palette) for k in spec.prompts],
            query=self.load_image(spec.query),
            seed=spec.seed,
            prompt_ids=list(spec.prompts),
            target_ids=[f"{k}#gt-{self.palette}" for k in spec.prompts],
            query_id=spec.query,
        )
        return episode, {"labels": self.labels(spec.query), "b": episode.targets[0]}

    def visualize(self, picture: Image.Image, truth: Any) -> Image.Image:
        labels = semseg.decode(picture, _size(truth["labels"]), self.palette)
        return semseg.render_gt(labels, self.palette)

    def score(self, spec: EpisodeSpec, truth: Any, picture: Image.Image) -> Scored:
        gt = truth["labels"]
        size = _size(gt)
        preds = {
            None: semseg.decode(picture, size, self.palette),
            "black": np.full_like(gt, 255),
            "copy_b": semseg.decode(truth["b"], size, self.palette),
        }
        confs = {k: _sparse(confusion.confusion_matrix(p, gt)) for k, p in preds.items()}
        return Scored(
            scores={},
            baselines={"black": {}, "copy_b": {}},
            gt_picture=semseg.render_gt(gt, self.palette),
            extra={"confusion": {str(k): v for k, v in confs.items()}},
        )

    def dataset_metric(
        self, name: str, samples: list[dict], baseline: str | None
    ) -> float | dict[str, Any]:
        """`accuracy`: a number; `miou`: a block with `per_class` (TRAIN_CLASSES names).

        NaN where a record lacks its confusion matrix (none can be rebuilt from scores).
        """
        key = str(baseline)
        confs = [_dense(s["confusion"][key]) for s in samples if key in s.get("confusion", {})]
        nan = float("nan")
        if len(confs) < len(samples):
            return nan if name == "accuracy" else {"overall": {"mean": nan, "n": 0}}
        total = sum(confs, np.zeros((NUM_CLASSES, NUM_CLASSES + 1), dtype=np.int64))
        if name == "accuracy":
            return confusion.pixel_accuracy(total)
        if self.miou_mode == "per_image" and confs:
            values = [v for v in confusion.per_image_miou(confs) if v == v]
            overall = mean_with_ci(values) if values else {"mean": nan, "n": 0}
            per_class = confusion.per_image_class_iou(confs)
        else:
            overall = {"mean": confusion.miou(total), "n": len(samples)}
            per_class = confusion.per_class_iou(total)
        return {
            "overall": overall,
            "per_class": {c: float(v) for c, v in zip(TRAIN_CLASSES, per_class, strict=True)},
        }


# ----------------------------------------------------------------------------- keypoints


class KeypointsProtocol(RetrievalProtocol):
    """DeepFashion FLD (TASKS.md 4): test queries, train prompts, PCK@0.1 and normalised MSE.

    Extras: `ne`, FLD's normalised error (metrics.keypoints.normalized_error), and PCK at each
    of `task.options.pck_thresholds` (default 0.05, 0.1, 0.2), named `pck@<alpha>`; `pck` is
    PCK@0.1, the paper's. Breakdown by clothes type; `same_class` draws prompts of the query's
    clothes type.
    """

    metrics = ("pck", "mse", "ne")
    baselines = ("black", "copy_b")

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.pck_thresholds = pck_thresholds_of(cfg.task.options)
        names = [pck_name(a) for a in self.pck_thresholds]
        self.metrics = tuple(dict.fromkeys((*type(self).metrics, *names)))
        self.metric_specs = {
            "ne": {"higher_is_better": False},
            **{n: {"higher_is_better": True, "scale": 100} for n in names},
        }
        self.root = _dataset_root(cfg, make_demo_fld)
        self.fld = FLDDataset(self.root)
        self.by_image = {r.image: r for r in self.fld.all_records()}

    def load_image(self, key: str) -> Image.Image:
        return self.fld.image(self.by_image[key])

    def query_sets(self) -> list[QuerySet]:
        t = self.cfg.task
        return [
            QuerySet(
                queries=[r.image for r in self.fld.records(t.split)],
                pool=[r.image for r in self.fld.records(t.prompt_pool)],
                class_of=lambda k: self.by_image[k].clothes_type,
                fold_of=lambda k: CLOTHES_TYPES[self.by_image[k].clothes_type],
            )
        ]

    def key_inputs(self) -> dict[str, Any]:
        return {}

    def gt_picture(self, key: str) -> Image.Image:
        record = self.by_image[key]
        return keypoints.render_gt(record, self.load_image(key).size)

    def sampler_input(self, spec: EpisodeSpec) -> tuple[Episode, Any]:
        episode = Episode(
            prompts=[self.load_image(k) for k in spec.prompts],
            targets=[self.gt_picture(k) for k in spec.prompts],
            query=self.load_image(spec.query),
            seed=spec.seed,
            prompt_ids=list(spec.prompts),
            target_ids=[f"{k}#gt" for k in spec.prompts],
            query_id=spec.query,
        )
        return episode, {
            "record": self.by_image[spec.query],
            "b": episode.targets[0],
            "size": episode.query.size,
        }

    def visualize(self, picture: Image.Image, truth: Any) -> Image.Image:
        record, size = truth["record"], truth["size"]
        points = keypoints.decode(picture, record.names, size)
        found = {n: p for n, p in zip(record.names, points, strict=True) if not np.isnan(p).any()}
        return keypoints.render_gt(found, size)

    def score(self, spec: EpisodeSpec, truth: Any, picture: Image.Image) -> Scored:
        record, size = truth["record"], truth["size"]
        vis = record.visible

        def scores(pred: np.ndarray) -> dict[str, float]:
            out = {
                "pck": pck(pred, record.xy, vis, size),
                "mse": normalized_mse(pred, record.xy, vis, size),
                "ne": normalized_error(pred, record.xy, vis, size),
            }
            for alpha in self.pck_thresholds:
                out[pck_name(alpha)] = pck(pred, record.xy, vis, size, alpha)
            return out

        missing = np.full_like(record.xy, np.nan)
        return Scored(
            scores=scores(keypoints.decode(picture, record.names, size)),
            baselines={
                "black": scores(missing),
                "copy_b": scores(keypoints.decode(truth["b"], record.names, size)),
            },
            gt_picture=keypoints.render_gt(record, size),
        )


# ----------------------------------------------------------------------------- edges


class EdgesProtocol(RetrievalProtocol):
    """Edges (TASKS.md 5), MSE on [0, 1] at the image's own size.

    `task.options.source=voc` (default): VOC val queries, train prompts, GT = Canny
    (scikit-image, sigma 2). `source=bsds500`: BSDS500 test queries, train prompts, GT = the
    mean of the human boundary maps (data.root holds BSR/); also the BSDS benchmark's ODS and
    OIS F-measures against the individual annotators (metrics.boundaries), from the
    per-threshold counts each record keeps (`boundary_counts`).
    """

    metrics = ("mse",)
    baselines = ("black", "copy_b")

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.source = str(cfg.task.options.get("source", "voc"))
        if self.source == "bsds500":
            self.dataset_metrics = ("ods", "ois")
            self.record_fields = ("boundary_counts",)
            self.metric_specs = {m: {"higher_is_better": True} for m in self.dataset_metrics}
            from sdvicl_bench.data.bsds import BSDSDataset, make_demo_bsds

            root = Path(cfg.data.root).expanduser()
            if cfg.data.name == "demo":
                root = make_demo_bsds(root / "bsds")
            self.root, self.bsds = root, BSDSDataset(root)
        elif self.source == "voc":
            self.root = _dataset_root(cfg, make_demo_voc)
            self.voc = VOCDataset(self.root)
        else:
            raise ConfigError(f"task.options.source={self.source!r}: choose voc or bsds500.")

    def load_image(self, key: str) -> Image.Image:
        if self.source == "bsds500":
            split, _, image_id = key.partition("/")
            return self.bsds.image(image_id, split)
        return self.voc.image(key)

    def edge_map(self, key: str) -> np.ndarray:
        """GT edges float32 (H, W) in [0, 1]."""
        if self.source == "bsds500":
            split, _, image_id = key.partition("/")
            return self.bsds.boundaries(image_id, split)
        return edges.canny_edges(self.load_image(key)).astype(np.float32)

    def query_sets(self) -> list[QuerySet]:
        t = self.cfg.task
        if self.source == "bsds500":
            queries = [f"test/{i}" for i in self.bsds.ids("test")]
            pool = [f"train/{i}" for i in self.bsds.ids("train")]
        else:
            queries = read_image_set(self.root, t.split)
            pool = read_image_set(self.root, t.prompt_pool)
        return [QuerySet(queries, pool, class_of=lambda _k: 0, fold_of=lambda _k: None)]

    def key_inputs(self) -> dict[str, Any]:
        return {"source": self.source}

    def sampler_input(self, spec: EpisodeSpec) -> tuple[Episode, Any]:
        episode = Episode(
            prompts=[self.load_image(k) for k in spec.prompts],
            targets=[edges.render_gt(self.edge_map(k)) for k in spec.prompts],
            query=self.load_image(spec.query),
            seed=spec.seed,
            prompt_ids=list(spec.prompts),
            target_ids=[f"{k}#edges" for k in spec.prompts],
            query_id=spec.query,
        )
        truth = {"edges": self.edge_map(spec.query), "b": episode.targets[0]}
        if self.source == "bsds500":
            split, _, image_id = spec.query.partition("/")
            truth["annotators"] = self.bsds.annotator_boundaries(image_id, split)
        return episode, truth

    def visualize(self, picture: Image.Image, truth: Any) -> Image.Image:
        return edges.render_gt(edges.decode(picture, _size(truth["edges"])))

    def score(self, spec: EpisodeSpec, truth: Any, picture: Image.Image) -> Scored:
        gt = truth["edges"]
        size = _size(gt)
        preds = {
            None: edges.decode(picture, size),
            "black": np.zeros_like(gt),
            "copy_b": edges.decode(truth["b"], size),
        }
        extra = {}
        if "annotators" in truth:
            extra["boundary_counts"] = {
                str(k): boundaries.boundary_counts(p, truth["annotators"]).tolist()
                for k, p in preds.items()
            }
        return Scored(
            scores={"mse": mse(preds[None], gt)},
            baselines={k: {"mse": mse(p, gt)} for k, p in preds.items() if k is not None},
            gt_picture=edges.render_gt(gt),
            extra=extra,
        )

    def dataset_metric(self, name: str, samples: list[dict], baseline: str | None) -> float:
        """ODS or OIS (BSDS500) from the records' per-threshold counts; NaN where a record
        lacks them (made before they were kept: `sdvicl-bench rescore` adds them)."""
        key = str(baseline)
        counts = [s["boundary_counts"][key] for s in samples if key in s.get("boundary_counts", {})]
        if len(counts) < len(samples) or not counts:
            return float("nan")
        table = np.asarray(counts, dtype=np.int64)
        return boundaries.ods(table) if name == "ods" else boundaries.ois(table)


# ----------------------------------------------------------------------------- colorization


class ColorizationProtocol(RetrievalProtocol):
    """Colorization (TASKS.md 6): seeded ImageNet val queries shown grey, colour GT.

    A_i is the grey prompt, B_i its colour image; retrieval sees grey pictures only (the
    query's colours are what is asked). mse / mse_vp per image; FID over all pictures.
    """

    metrics = ("mse", "mse_vp")
    dataset_metrics = ("fid",)
    baselines = ("black", "copy_b", "grey")

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        if cfg.task.options.get("source", "folder") == "hub":  # ImageNet through `datasets`
            from sdvicl_bench.data.imagenet_hub import load_hub_imagenet

            name = str(cfg.task.options.get("hub_name", "imagenet-1k"))
            self.root = Path(cfg.data.root).expanduser()
            self.folder = load_hub_imagenet(name, split="validation")
        else:
            self.root = _dataset_root(cfg, make_demo_imagenet)
            self.folder = ImageFolderDataset(self.root)
        self.fid_weights = cfg.task.options.get("fid_weights")
        if cfg.task.options.get("fid", True):
            from sdvicl_bench.metrics.fid import resolve_weights

            if not cfg.save_pictures:  # FID reads the saved pictures back (dataset_metric)
                raise ConfigError(
                    "task=colorization computes FID from the saved pictures, and "
                    "save_pictures=false keeps none. Fix: drop save_pictures=false, or add "
                    "task.options.fid=false."
                )

            self.fid_weights = resolve_weights(self.fid_weights)  # fail before the run, not after
        self.run_dir: Path | None = None

    def load_image(self, key: str) -> Image.Image:
        return grey(self.folder.image(key))

    def query_sets(self) -> list[QuerySet]:
        ids = self.folder.ids()
        count = int(self.cfg.task.options.get("queries", 1000))
        return [
            QuerySet(
                queries=sample_queries(ids, count=count, seed=self.cfg.seed),
                pool=ids,
                class_of=type(self.folder).label,
                fold_of=lambda _k: None,
            )
        ]

    def key_inputs(self) -> dict[str, Any]:
        return {"images": len(self.folder.ids())}

    def sampler_input(self, spec: EpisodeSpec) -> tuple[Episode, Any]:
        colour = self.folder.image(spec.query)
        episode = Episode(
            prompts=[self.load_image(k) for k in spec.prompts],
            targets=[self.folder.image(k) for k in spec.prompts],
            query=colorization.query_picture(colour),
            seed=spec.seed,
            prompt_ids=[f"{k}#grey" for k in spec.prompts],
            target_ids=list(spec.prompts),
            query_id=f"{spec.query}#grey",
        )
        return episode, {"colour": colour, "b": episode.targets[0]}

    def visualize(self, picture: Image.Image, truth: Any) -> Image.Image:
        rgb = colorization.decode(picture, truth["colour"].size)
        return Image.fromarray((rgb * 255).round().astype(np.uint8))

    def score(self, spec: EpisodeSpec, truth: Any, picture: Image.Image) -> Scored:
        colour = truth["colour"]
        gt = np.asarray(colour, dtype=np.float32) / 255.0
        size = colour.size

        def scores(pred: np.ndarray) -> dict[str, float]:
            return {"mse": mse(pred, gt), "mse_vp": mse_vp(pred, gt)}

        grey_query = np.asarray(grey(colour), dtype=np.float32) / 255.0
        return Scored(
            scores=scores(colorization.decode(picture, size)),
            baselines={
                "black": scores(np.zeros_like(gt)),
                "copy_b": scores(colorization.decode(truth["b"], size)),
                "grey": scores(grey_query),
            },
            gt_picture=colorization.render_gt(colour),
        )

    def dataset_metric(self, name: str, samples: list[dict], baseline: str | None) -> float:
        """FID of the predictions (or of the grey-query baseline) against the GT pictures.

        Read back from the run folder: NaN when a sample's pictures are missing (a run with
        save_pictures=false is refused up front; deleted files get the run's warning line).
        """
        if not self.cfg.task.options.get("fid", True) or self.run_dir is None:
            return float("nan")
        if baseline not in (None, "grey"):
            return float("nan")  # black and copy-of-B pictures are not kept
        from sdvicl_bench.metrics.fid import fid_score
        from sdvicl_bench.report.records import missing_pictures

        if missing_pictures(self.run_dir, samples):
            return float("nan")

        def load(rel: str, as_grey: bool = False) -> np.ndarray:
            im = Image.open(self.run_dir / rel).convert("RGB")
            return np.asarray(grey(im) if as_grey else im, dtype=np.float32) / 255.0

        targets = [load(s["gt"]) for s in samples]
        preds = [load(s["gt"], True) if baseline else load(s["pred"]) for s in samples]
        if len(samples) < 2:
            return float("nan")
        return fid_score(preds, targets, weights=self.fid_weights)
