"""Set-level aggregations a task YAML names (`metrics.<name>.aggregation`).

A per-sample metric (`aggregation: mean`) is a number in each record, averaged by the
orchestrator. A set-level one needs all samples at once: each sample keeps what it needs in
a record field (`collect`, run on ours and on every baseline's prediction, the oracle's
too, stored under "None" / the baseline's name), and `reduce` turns the records into a
number or a results block (`overall`, and any of `per_fold`, `mean_of_folds`, `per_class`).
NaN where a record lacks its field (made by an older version: `sdvicl-bench rescore` adds
it).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.metrics import boundaries, confusion, fewshot
from sdvicl_bench.metrics.aggregate import mean_with_ci
from sdvicl_bench.types import NUM_CLASSES, ORACLE

NAN = float("nan")


@dataclass(frozen=True)
class Context:
    """What a reduction may read besides the records: the task's options, the run folder
    (None: none yet), the class of a query key, the class names (per-class blocks) and the
    raw oracle picture of a saved GT picture (`protocols.oracle`; None: no oracle)."""

    options: dict[str, Any]
    run_dir: Path | None
    class_of: Callable[[str], Hashable]
    class_names: tuple[str, ...]
    oracle: Callable[[Image.Image], Image.Image] | None = None


@dataclass(frozen=True)
class RecordRule:
    """A record field naming the rule that produced an aggregation's record field, so a
    record made under another rule is told apart (and `rescore` recomputes it): `field`, its
    value under a task's options (`of`), and `legacy`, the rule of records made before the
    field existed."""

    field: str
    of: Callable[[dict[str, Any]], str]
    legacy: str

    def of_record(self, record: dict) -> str:
        """The rule a record's field was made by (`legacy` where the record does not say)."""
        return str(record.get(self.field, self.legacy))


@dataclass(frozen=True)
class Aggregation:
    """A set-level metric: `reduce(records, baseline, context)`; `collect(prediction, target,
    extras)` fills record field `field` per sample (None: reads the saved pictures)."""

    reduce: Callable[[list[dict], str | None, Context], float | dict[str, Any]]
    field: str | None = None
    collect: Callable[[Any, Any, dict[str, Any]], Any] | None = None
    check: Callable[[Any], None] | None = None
    """Run when the protocol is built (fail before the run, not after); gets the RunConfig."""
    rule: RecordRule | None = None
    """The record field saying which rule filled `field` (fgseg's `counts_void`)."""


# ----------------------------------------------------------------------------- fgseg pooled

COUNTS_VOID = RecordRule("counts_void", fewshot.void_rule, legacy="background")
"""How a record's `counts` treat the 255 void pixels (`task.options.void`): `ignore` (left
out, HSNet's rule) or `background`; records from before the field counted them as
background."""


def _pooled(name: str) -> Callable[[list[dict], str | None, Context], dict[str, Any]]:
    def reduce(samples: list[dict], baseline: str | None, ctx: Context) -> dict[str, Any]:
        rule = COUNTS_VOID.of(ctx.options)
        return pooled_block(name, samples, baseline, ctx.class_of, ctx.class_names, rule)

    return reduce


def pooled_block(
    name: str,
    samples: list[dict],
    baseline: str | None,
    class_of: Callable[[str], Hashable],
    class_names: tuple[str, ...],
    void: str | None = None,
) -> dict[str, Any]:
    """`class_miou` or `fb_iou` (metrics.fewshot) of fgseg records, as a results.json block.

    From each record's `counts` (ours under "None", or the baseline's): `per_fold` pools
    the records of a fold (their `group`), `mean_of_folds` averages the folds (the number
    few-shot papers report), `overall` pools every record; class_miou adds `per_class`
    (`class_names[c - 1]`, each class pooled over its records). `void`: the void rule the
    counts must have been made by (`COUNTS_VOID`), named in the block as `void`; a record
    made by another (an older run's, void as background) makes the block NaN until
    `sdvicl-bench rescore`. None: records taken as they are.
    """
    key = str(baseline)
    stale = void is not None and any(COUNTS_VOID.of_record(s) != void for s in samples)
    if not samples or stale or any(key not in s.get("counts", {}) for s in samples):
        block: dict[str, Any] = {"overall": {"mean": NAN, "n": 0}, "mean_of_folds": NAN}
        return block if void is None else {**block, "void": void}
    counts = np.asarray([s["counts"][key] for s in samples], dtype=np.int64)
    classes = [class_of(s["query"]) for s in samples]
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
    block = {
        "overall": {"mean": value(list(range(len(samples)))), "n": len(samples)},
        "per_fold": per_fold,
        "mean_of_folds": float(np.mean(means)) if means else NAN,
    }
    if void is not None:
        block["void"] = void
    if name == "class_miou":
        per_class = fewshot.class_iou(counts, classes)
        block["per_class"] = {class_names[c - 1]: v for c, v in per_class.items()}
    return block


# ----------------------------------------------------------------------------- confusion


def _sparse_confusion(pred: np.ndarray, gt: np.ndarray, _extras: dict) -> list[list[int]]:
    """Nonzero entries [gt, pred, count] of the sample's confusion matrix (compact)."""
    conf = confusion.confusion_matrix(pred, gt)
    rows, cols = np.nonzero(conf)
    return [[int(r), int(c), int(conf[r, c])] for r, c in zip(rows, cols, strict=True)]


def _dense(entries: list[list[int]]) -> np.ndarray:
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), dtype=np.int64)
    for r, c, n in entries:
        conf[r, c] += n
    return conf


def _confusion(name: str):
    def reduce(samples: list[dict], baseline: str | None, ctx: Context) -> Any:
        """`accuracy`: a number; `miou`: a block with `per_class`. `task.options.miou`:
        `dataset` (one matrix over all episodes, the Cityscapes convention) or `per_image`
        (the mean of each image's mIoU, with a bootstrap interval)."""
        key = str(baseline)
        confs = [_dense(s["confusion"][key]) for s in samples if key in s.get("confusion", {})]
        if len(confs) < len(samples):
            return NAN if name == "accuracy" else {"overall": {"mean": NAN, "n": 0}}
        total = sum(confs, np.zeros((NUM_CLASSES, NUM_CLASSES + 1), dtype=np.int64))
        if name == "accuracy":
            return confusion.pixel_accuracy(total)
        if str(ctx.options.get("miou", "dataset")) == "per_image" and confs:
            values = [v for v in confusion.per_image_miou(confs) if v == v]
            overall = mean_with_ci(values) if values else {"mean": NAN, "n": 0}
            per_class = confusion.per_image_class_iou(confs)
        else:
            overall = {"mean": confusion.miou(total), "n": len(samples)}
            per_class = confusion.per_class_iou(total)
        return {
            "overall": overall,
            "per_class": {c: float(v) for c, v in zip(ctx.class_names, per_class, strict=True)},
        }

    return reduce


# ----------------------------------------------------------------------------- BSDS500


def _boundary_counts(pred: np.ndarray, _target: Any, extras: dict) -> list:
    return boundaries.boundary_counts(pred, extras["annotators"]).tolist()


def _bsds(name: str):
    def reduce(samples: list[dict], baseline: str | None, _ctx: Context) -> float:
        """ODS or OIS from the records' per-threshold counts."""
        key = str(baseline)
        counts = [s["boundary_counts"][key] for s in samples if key in s.get("boundary_counts", {})]
        if len(counts) < len(samples) or not counts:
            return NAN
        table = np.asarray(counts, dtype=np.int64)
        return boundaries.ods(table) if name == "ods" else boundaries.ois(table)

    return reduce


# ----------------------------------------------------------------------------- FID


def _check_fid(cfg: Any) -> None:
    """FID reads the saved pictures back, and needs its Inception weights: both checked up
    front (`task.options.fid=false` turns it off)."""
    from sdvicl_bench.errors import ConfigError
    from sdvicl_bench.metrics.fid import resolve_weights

    if not cfg.task.options.get("fid", True):
        return
    if not cfg.save_pictures:
        raise ConfigError(
            f"task={cfg.task.name} computes FID from the saved pictures, and "
            "save_pictures=false keeps none. Fix: drop save_pictures=false, or add "
            "task.options.fid=false."
        )
    resolve_weights(cfg.task.options.get("fid_weights"))


def _fid(samples: list[dict], baseline: str | None, ctx: Context) -> float:
    """FID of the predictions (or of the grey-query baseline, or of the oracle: each saved
    GT picture through `ctx.oracle`) against the GT pictures, read back from the run folder:
    NaN without a folder, with `task.options.fid=false`, for a baseline whose pictures are
    not kept, or when a sample's pictures are missing. `task.options.fid_preprocess`
    (default pytorch_fid) picks the resize and scaling (`metrics.fid`)."""
    if not ctx.options.get("fid", True) or ctx.run_dir is None:
        return NAN
    if baseline not in (None, "grey", ORACLE) or (baseline == ORACLE and ctx.oracle is None):
        return NAN  # black and copy-of-B pictures are not kept (the oracle's: from the GT's)
    from sdvicl_bench.metrics.fid import FID_PREPROCESS, fid_score, resolve_weights
    from sdvicl_bench.report.records import missing_pictures

    run_dir = ctx.run_dir
    if missing_pictures(run_dir, samples):
        return NAN

    def load(rel: str, as_grey: bool = False, as_oracle: bool = False) -> np.ndarray:
        im = Image.open(run_dir / rel).convert("RGB")
        if as_grey:
            im = im.convert("L").convert("RGB")
        if as_oracle:
            im = ctx.oracle(im)
        return np.asarray(im, dtype=np.float32) / 255.0

    if len(samples) < 2:
        return NAN
    targets = [load(s["gt"]) for s in samples]
    if baseline is None:
        preds = [load(s["pred"]) for s in samples]
    else:
        preds = [load(s["gt"], baseline == "grey", baseline == ORACLE) for s in samples]
    weights = resolve_weights(ctx.options.get("fid_weights"))
    preprocess = str(ctx.options.get("fid_preprocess", FID_PREPROCESS[0]))
    return fid_score(preds, targets, weights=weights, preprocess=preprocess)


def _binary_counts(pred: np.ndarray, gt: np.ndarray, extras: dict) -> list[int]:
    """A record's fgseg counts; the family's `void` extra (its void pixels at the scoring
    size, given under `void=ignore`) leaves those pixels out."""
    return list(fewshot.binary_counts(pred, gt, extras.get("void")))


AGGREGATIONS: dict[str, Aggregation] = {
    "pooled_class_miou": Aggregation(
        _pooled("class_miou"), "counts", _binary_counts, rule=COUNTS_VOID
    ),
    "pooled_fb_iou": Aggregation(_pooled("fb_iou"), "counts", _binary_counts, rule=COUNTS_VOID),
    "confusion_miou": Aggregation(_confusion("miou"), "confusion", _sparse_confusion),
    "confusion_accuracy": Aggregation(_confusion("accuracy"), "confusion", _sparse_confusion),
    "bsds_ods": Aggregation(_bsds("ods"), "boundary_counts", _boundary_counts),
    "bsds_ois": Aggregation(_bsds("ois"), "boundary_counts", _boundary_counts),
    "fid": Aggregation(_fid, check=_check_fid),
}
"""Set-level aggregations by name (`mean`, the per-sample average, is the orchestrator's)."""
