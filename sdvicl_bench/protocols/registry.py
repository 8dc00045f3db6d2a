"""Names a task YAML uses, resolved: dataset loaders, decoders, metrics and aggregations.

    dataset: pascal5i            -> a registered dataset family (protocols/<family>.py)
    decoder: fgseg               -> a registered decoder (sdvicl_bench.tasks.<name>), or any
                                    importable module `pkg.module` / `pkg.module:attr`
    metrics:
      iou: {higher_is_better: true, scale: 100}          # aggregation: mean (the default)
      class_miou: {aggregation: pooled_class_miou, ...}  # set-level: AGGREGATIONS
      mse: {function: keypoint_mse, ...}                 # per-sample function, by name
      pck@*: {function: pck, ...}   # one metric pck@<alpha> per task.options.pck_thresholds
      ods: {aggregation: bsds_ods, when: {source: bsds500}}  # only with that option value

Every name is looked up in `sdvicl_bench.registry` (kinds dataset, decoder, metric,
aggregation; plugins add their own). A per-sample metric's function is the registered
metric `function or name` (`pck@<alpha>`: PCK at that threshold), called as
fn(prediction, target) -> float. Every unknown name is a one-line ConfigError with the valid
names and a "did you mean". The packaged tasks (conf/task/*.yaml) are registered as tasks;
`check_task_options` checks `task.options` against what a task's decoder and dataset family
declare (`OPTIONS`, `OPTION_RANGES`).
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_args, get_origin

import yaml

from sdvicl_bench import registry as parts
from sdvicl_bench.config import RunConfig, TaskConfig, _coerce
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.metrics import keypoints as kp
from sdvicl_bench.protocols.aggregations import AGGREGATIONS as AGGREGATIONS  # public name
from sdvicl_bench.protocols.aggregations import Aggregation
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


def _landmarks(fn: Callable, pred: Any, truth: Any, **kw: Any) -> float:
    return fn(pred.xy, truth.xy, truth.visible, truth.size, **kw)


landmark_pck = partial(_landmarks, kp.pck)
"""PCK of predicted landmarks (metric `pck`; `pck@<alpha>` at that threshold)."""
landmark_mse = partial(_landmarks, kp.normalized_mse)
"""Normalised MSE of predicted landmarks (metric `keypoint_mse`)."""
landmark_ne = partial(_landmarks, kp.normalized_error)
"""Normalised error of predicted landmarks (metric `ne`)."""

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


_unknown = parts.unknown


def resolve_dataset(name: str) -> Callable[[RunConfig], DatasetFamily]:
    """The dataset family (called with the RunConfig) a task YAML's `dataset:` names."""
    if not parts.has("dataset", name):
        valid = sorted(parts.names("dataset"))
        raise _unknown("dataset", name, valid, "set the task YAML's dataset: to")
    return parts.get("dataset", name)


def resolve_decoder(name: str) -> ModuleType | Any:
    """The decoder a task YAML's `decoder:` names: a registered one (`sdvicl_bench.tasks.<name>`
    or a plugin's), or a module `pkg.module` (or `pkg.module:attr`) importable from the
    working directory or PYTHONPATH. It must have `render_gt` and `decode` (`visualize`
    optional)."""
    if parts.has("decoder", name):
        return _checked_decoder(name, _imported(name, lambda: parts.get("decoder", name)))
    if "." not in name and ":" not in name:
        raise _unknown(
            "decoder",
            name,
            parts.names("decoder"),
            "set the task YAML's decoder: to a module path or",
        )
    module_name, _, attr = name.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # the console script's sys.path lacks the working dir

    def load() -> Any:
        module = importlib.import_module(module_name)
        return getattr(module, attr) if attr else module

    return _checked_decoder(name, _imported(name, load))


def _imported(name: str, load: Callable[[], Any]) -> Any:
    """`load()`, an import or attribute failure turned into one line naming decoder `name`."""
    try:
        return load()
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"decoder '{name}' cannot be imported ({err}). Fix: give an importable module "
            "(pkg.module or pkg.module:attr; run from the folder that holds pkg/)."
        ) from None


def _checked_decoder(name: str, decoder: Any) -> Any:
    """`decoder` if it has `render_gt` and `decode`, else one line naming what is missing."""
    missing = [f for f in ("render_gt", "decode") if not callable(getattr(decoder, f, None))]
    if missing:
        raise ConfigError(
            f"decoder '{name}' has no {' or '.join(missing)}. Fix: define "
            "render_gt(target) and decode(picture, target) there (README: Adding a task)."
        )
    return decoder


def resolve_function(name: str) -> Callable[[Any, Any], float]:
    """A per-sample metric function by name (`pck@<alpha>`: PCK at that threshold)."""
    if parts.has("metric", name):
        return parts.get("metric", name)
    head, at, alpha = name.partition("@")
    if at and head == "pck":
        return partial(_landmarks, kp.pck, alpha=_threshold(alpha, name))
    valid = [*parts.names("metric"), "pck@<alpha>"]
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
            elif parts.has("aggregation", aggregation):
                found = parts.get("aggregation", aggregation)
                out.append(Metric(metric, display, aggregation=found))
            else:
                valid = ["mean", *parts.names("aggregation")]
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


# ----------------------------------------------------------------------------- task options


def _task_parts(path: Path) -> dict[str, str]:
    """{dataset, decoder} a task YAML names (the parts a registered task is made of)."""
    spec = yaml.safe_load(path.read_text()) or {}
    return {"dataset": str(spec.get("dataset", "")), "decoder": str(spec.get("decoder", ""))}


def register_packaged_tasks() -> None:
    """Register conf/task/*.yaml as tasks (lazily: a YAML is read when its task is asked for),
    leaving any task a plugin registered under the same name."""
    decoders = parts.names("decoder")  # the packaged tasks in their decoders' order

    def order(path: Path) -> tuple[int, str]:
        return (decoders.index(path.stem) if path.stem in decoders else len(decoders), path.stem)

    for path in sorted(TASK_CONF.glob("*.yaml"), key=order):
        if not parts.has("task", path.stem):
            parts.register("task", path.stem, parts.Lazy(partial(_task_parts, path)))


register_packaged_tasks()


def task_options(task: TaskConfig | str) -> tuple[dict[str, Any] | None, dict[str, tuple]]:
    """(options, ranges) the task's decoder and dataset family declare, gathered from the
    registry; options None when neither declares any (or a part does not resolve, which
    `make_protocol` reports), so the task's options are left unchecked."""
    if isinstance(task, str):
        if not parts.has("task", task):
            return None, {}
        found = parts.get("task", task)
        dataset, decoder = found["dataset"], found["decoder"]
    else:
        dataset, decoder = task.dataset, task.decoder
    try:
        family = resolve_dataset(dataset)
        module = resolve_decoder(decoder)
    except ConfigError:
        return None, {}
    options: dict[str, Any] | None = None
    ranges: dict[str, tuple] = {}
    for kind, name, part in (("dataset", dataset, family), ("decoder", decoder, module)):
        if parts.has(kind, name):
            declared, bounds = parts.options_of(kind, name)
        else:
            declared, bounds = getattr(part, "OPTIONS", None), getattr(part, "OPTION_RANGES", {})
        if declared is not None:
            options = {**(options or {}), **declared}
        ranges.update(bounds or {})
    return options, ranges


def check_task_options(task: TaskConfig | str, options: dict[str, Any]) -> None:
    """Raise a one-line ConfigError for an option `task` does not have or a value it rejects.

    The options are those its decoder and dataset family declare (`task_options`); the
    message names them (or the choices of the option). A task whose parts declare none is
    left unchecked (`make_protocol` names an unknown task, dataset or decoder).
    """
    name = task if isinstance(task, str) else task.name
    known, ranges = task_options(task)
    if known is None:
        return
    for key, value in options.items():
        option = f"task.options.{key}"
        if key not in known:
            raise ConfigError(f"{option}: {_unknown_option(name, key, known)}")
        spec = known[key]
        if get_origin(spec) is Literal and value not in get_args(spec):
            close = difflib.get_close_matches(str(value), get_args(spec), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            choices = ", ".join(str(c) for c in get_args(spec))
            raise ConfigError(
                f"Unknown {key} {value!r} for task={name}. Fix: choose one of: {choices} "
                f"(e.g. {option}={get_args(spec)[0]}).{hint}"
            )
        _check_range(ranges.get(key), _coerce(spec, value, option), option)


def _check_range(bounds: tuple | None, value: Any, name: str) -> None:
    """One line naming the option and its range for a value (or list item) outside `bounds`,
    non-finite ones included; None and unranged options pass."""
    if bounds is None or value is None:
        return
    low, high = bounds
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if not (math.isfinite(float(item)) and low <= float(item) <= high):
            raise ConfigError(
                f"{name}={value!r} is out of range: each value must lie in [{low:g}, {high:g}]. "
                f"Fix: pass {name}=<a value in that range>, or drop it for the default."
            )


def _unknown_option(task: str, key: str, known: dict[str, Any]) -> str:
    """Why `key` is not an option of `task`, naming its options and any task that has `key`."""
    owners = []
    for other in parts.names("task"):
        declared = task_options(other)[0] if other != task else None
        if declared and key in declared:
            owners.append(f"task={other} has {key}={_describe(declared[key])}")
    elsewhere = f" ({'; '.join(owners)})" if owners else ""
    if not known:
        return f"task={task} has no options{elsewhere}. Fix: drop task.options.{key}."
    listed = ", ".join(f"{k}={_describe(v)}" for k, v in known.items())
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean 'task.options.{close[0]}'?" if close else ""
    return f"task={task} has no option '{key}'{elsewhere}. Fix: use one of {listed}.{hint}"


def _describe(spec: Any) -> str:
    """An option's values in words: `official|spread`, `<integer>`, `true|false` ..."""
    if get_origin(spec) is Literal:
        return "|".join(str(c) for c in get_args(spec))
    if get_origin(spec) is tuple:  # tuple[float, ...]: a list
        return f"[{_describe(get_args(spec)[0])},...]"
    words = {
        bool: "true|false",
        int: "<integer>",
        float: "<number>",
        str: "<text>",
        type(None): "null",
    }
    return "|".join(words[a] for a in (get_args(spec) or (spec,)))
