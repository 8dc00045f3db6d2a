"""Names a task YAML uses, resolved: dataset loaders, decoders, metrics and aggregations.

    dataset: pascal5i            -> DATASETS (a dataset family, protocols/<family>.py)
    decoder: fgseg               -> DECODERS (sdvicl_bench.tasks.<name>), or any importable
                                    module `pkg.module` / `pkg.module:attr` (a plugin)
    metrics:
      iou: {higher_is_better: true, scale: 100}          # aggregation: mean (the default)
      class_miou: {aggregation: pooled_class_miou, ...}  # set-level: AGGREGATIONS
      mse: {function: keypoint_mse, ...}                 # per-sample function, by name
      pck@*: {function: pck, ...}   # one metric pck@<alpha> per task.options.pck_thresholds
      ods: {aggregation: bsds_ods, when: {source: bsds500}}  # only with that option value

A per-sample metric's function is `METRICS[function or name]` (`pck@<alpha>`: PCK at that
threshold), called as fn(prediction, target) -> float. Every unknown name is a one-line
ConfigError with the valid names and a "did you mean".
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from sdvicl_bench.config import RunConfig, TaskConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.metrics import keypoints as kp
from sdvicl_bench.metrics.iou import foreground_iou
from sdvicl_bench.metrics.mse import mse, mse_vp
from sdvicl_bench.protocols.aggregations import AGGREGATIONS, Aggregation
from sdvicl_bench.protocols.family import DatasetFamily

TASK_CONF = Path(__file__).resolve().parent.parent / "conf" / "task"
"""The packaged task YAMLs."""

CONFIG_PATH_ENV = "SDVICL_CONFIG_PATH"
"""Extra config folders (os.pathsep-separated), searched after the packaged conf/: a folder
holding `task/<name>.yaml` adds task=<name> (README "Adding a task")."""


def config_dirs() -> list[Path]:
    """The folders `$SDVICL_CONFIG_PATH` names, made absolute (missing ones included: Hydra
    skips them, and `choices` lists nothing from them)."""
    raw = os.environ.get(CONFIG_PATH_ENV, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def _family(module: str, name: str) -> Callable[[RunConfig], DatasetFamily]:
    def build(cfg: RunConfig) -> DatasetFamily:
        return getattr(importlib.import_module(f"sdvicl_bench.protocols.{module}"), name)(cfg)

    return build


DATASETS: dict[str, Callable[[RunConfig], DatasetFamily]] = {
    "pascal5i": _family("pascal", "Pascal5iFamily"),
    "voc2012-det": _family("pascal", "VOCDetectionFamily"),
    "cityscapes": _family("cityscapes", "CityscapesFamily"),
    "deepfashion-fld": _family("deepfashion", "DeepFashionFamily"),
    "voc2012-canny": _family("edges", "edge_family"),
    "imagenet-val": _family("imagenet", "ImageNetFamily"),
}
"""Dataset loaders by the name a task YAML's `dataset:` gives (built lazily)."""

DECODERS: tuple[str, ...] = ("fgseg", "det", "semseg", "keypoints", "edges", "colorization")
"""Decoder modules in sdvicl_bench/tasks/ by name."""


def _landmarks(fn: Callable, pred: Any, truth: Any, **kw: Any) -> float:
    return fn(pred.xy, truth.xy, truth.visible, truth.size, **kw)


METRICS: dict[str, Callable[[Any, Any], float]] = {
    "iou": foreground_iou,
    "mse": mse,
    "mse_vp": mse_vp,
    "pck": partial(_landmarks, kp.pck),
    "keypoint_mse": partial(_landmarks, kp.normalized_mse),
    "ne": partial(_landmarks, kp.normalized_error),
}
"""Per-sample metric functions fn(prediction, target) -> float (metrics/), by name."""

DEFAULT_PCK_THRESHOLDS = (0.05, 0.1, 0.2)
"""`pck@*` without `task.options.pck_thresholds`: PCK at these fractions of max(W, H)."""

SPEC_KEYS = ("aggregation", "function", "higher_is_better", "scale", "when")


@dataclass(frozen=True)
class Metric:
    """One resolved metric: per-sample (`function`) or set-level (`aggregation`)."""

    name: str
    display: dict[str, Any]
    function: Callable[[Any, Any], float] | None = None
    aggregation: Aggregation | None = None


def _unknown(what: str, name: str, valid: list[str], fix: str) -> ConfigError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"Unknown {what} '{name}'. Fix: {fix} one of: {', '.join(valid)}.{hint}")


def resolve_dataset(name: str) -> Callable[[RunConfig], DatasetFamily]:
    """The dataset family a task YAML's `dataset:` names."""
    if name not in DATASETS:
        raise _unknown("dataset", name, sorted(DATASETS), "set the task YAML's dataset: to")
    return DATASETS[name]


def resolve_decoder(name: str) -> ModuleType | Any:
    """The decoder a task YAML's `decoder:` names: `sdvicl_bench.tasks.<name>`, or a module
    `pkg.module` (or `pkg.module:attr`) importable from the working directory or PYTHONPATH.
    It must have `render_gt` and `decode` (`visualize` optional)."""
    if name in DECODERS:
        module_name, attr = f"sdvicl_bench.tasks.{name}", ""
    elif "." in name or ":" in name:
        module_name, _, attr = name.partition(":")
    else:
        raise _unknown(
            "decoder", name, list(DECODERS), "set the task YAML's decoder: to a module path or"
        )
    if not module_name.startswith("sdvicl_bench.") and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # the console script's sys.path lacks the working dir
    try:
        decoder: Any = importlib.import_module(module_name)
        if attr:
            decoder = getattr(decoder, attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"decoder '{name}' cannot be imported ({err}). Fix: give an importable module "
            "(pkg.module or pkg.module:attr; run from the folder that holds pkg/)."
        ) from None
    missing = [f for f in ("render_gt", "decode") if not callable(getattr(decoder, f, None))]
    if missing:
        raise ConfigError(
            f"decoder '{name}' has no {' or '.join(missing)}. Fix: define "
            "render_gt(target) and decode(picture, target) there (README: Adding a task)."
        )
    return decoder


def resolve_function(name: str) -> Callable[[Any, Any], float]:
    """A per-sample metric function by name (`pck@<alpha>`: PCK at that threshold)."""
    if name in METRICS:
        return METRICS[name]
    head, at, alpha = name.partition("@")
    if at and head == "pck":
        return partial(_landmarks, kp.pck, alpha=_threshold(alpha, name))
    valid = [*METRICS, "pck@<alpha>"]
    raise _unknown("metric function", name, valid, "set the metric's function: to")


def _threshold(text: str, name: str) -> float:
    try:
        alpha = float(text)
    except ValueError:
        alpha = -1.0
    if not 0.0 < alpha <= 1.0:
        raise ConfigError(
            f"task.options.pck_thresholds holds {text}, not a fraction of the image size "
            f"({name}). Fix: use values in (0, 1], e.g. task.options.pck_thresholds=[0.05,0.1,0.2]."
        )
    return alpha


def resolve_metrics(task: TaskConfig) -> list[Metric]:
    """The metrics of `task`, in YAML order: `pck@*` expanded over the thresholds, entries
    whose `when` the options do not match left out, every name resolved."""
    out: list[Metric] = []
    for name, raw in current_metrics(task).items():
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(
                f"task={task.name}: metric '{name}' is {raw!r}, not a mapping. Fix: write "
                f"`{name}: {{higher_is_better: true}}` (or `{name}: {{}}`) in its task YAML."
            )
        spec = dict(raw or {})
        for key in spec:
            if key not in SPEC_KEYS:
                raise _unknown(f"key in task metric '{name}':", key, list(SPEC_KEYS), "use")
        when = spec.get("when") or {}
        if any(task.options.get(k) != v for k, v in when.items()):
            continue
        display = {k: v for k, v in spec.items() if k in ("higher_is_better", "scale")}
        names = _expanded(name, task.options)
        aggregation = str(spec.get("aggregation", "mean"))
        for metric in names:
            if aggregation == "mean":
                function = str(spec.get("function", name.removesuffix("@*")))
                if name.endswith("@*"):  # pck@0.1 -> function pck at alpha 0.1
                    function = f"{function}@{metric.partition('@')[2]}"
                out.append(Metric(metric, display, function=resolve_function(function)))
            elif aggregation in AGGREGATIONS:
                out.append(Metric(metric, display, aggregation=AGGREGATIONS[aggregation]))
            else:
                valid = ["mean", *AGGREGATIONS]
                raise _unknown(f"aggregation of metric '{metric}':", aggregation, valid, "use")
    return out


def _expanded(name: str, options: dict[str, Any]) -> list[str]:
    """`pck@*` -> one name per `task.options.pck_thresholds`; any other name -> itself."""
    if not name.endswith("@*"):
        return [name]
    head = name[:-2]
    values = options.get(f"{head}_thresholds", DEFAULT_PCK_THRESHOLDS)
    names = []
    for value in values:
        _threshold(str(value), f"{head}@{value}")
        names.append(kp.pck_name(float(value)) if head == "pck" else f"{head}@{value:g}")
    return names


def current_metrics(task: TaskConfig) -> dict[str, Any]:
    """`task.metrics`; for a run made before task YAMLs named aggregations and functions (no
    entry has `aggregation`, `function` or `when`), the packaged YAML's, so an old run folder
    is scored as its task is now (as protocols did when metrics lived in code)."""
    specs = dict(task.metrics or {})
    legacy = not any(
        isinstance(s, dict) and set(s) & {"aggregation", "function", "when"} for s in specs.values()
    )
    path = TASK_CONF / f"{task.name}.yaml"
    if legacy and path.is_file():
        packaged = yaml.safe_load(path.read_text()) or {}
        if packaged.get("dataset") == task.dataset:
            return dict(packaged.get("metrics") or specs)
    return specs
