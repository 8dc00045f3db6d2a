"""One registry of the named parts a config picks: tasks, dataset families, decoders, metric
functions, aggregations, backbones and methods.

    register("decoder", "shapes", "my_pkg.shapes")        # lazy: a module path
    register("dataset", "shapes", "my_pkg.data:Shapes")   # lazy: module:attribute
    register("metric", "dice", dice)                      # the object itself
    get("decoder", "shapes")  -> the module; names("decoder") -> the names, in order

A lazy part is a string `module` or `module:attr` (imported on first `get`; an attribute
that is a table, a dict or a tuple of records with `.name`, yields its entry of the part's
name) or `Lazy(fn)` (called once). The built-in parts are registered here as strings, so
importing this leaf stays cheap. Each part may declare its `task.options` beside itself:
`options=` / `ranges=` here, else the loaded object's `OPTIONS` / `OPTION_RANGES`.

Plugins (docs/ARCHITECTURE.md "Plugins"): the modules `plugins=[...]` names are imported,
and so is every entry point of the group `sdvicl_bench.plugins` (a module, or a callable
that is then called); each registers its parts with `register`. An unknown name is a
one-line ConfigError naming the valid ones, with a "did you mean".
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sdvicl_bench.errors import ConfigError

KINDS = ("task", "dataset", "decoder", "metric", "aggregation", "backbone", "method")
"""The kinds of part a config names."""

ENTRY_POINT_GROUP = "sdvicl_bench.plugins"
"""The Python entry-point group whose entries register parts when a config is loaded."""


@dataclass(frozen=True)
class Lazy:
    """A part built on first use by calling `load()` (for parts that are not module attributes)."""

    load: Callable[[], Any]


@dataclass
class _Entry:
    """A registered part: what gives it, its options and ranges (None: read from the part)."""

    source: Any
    options: dict[str, Any] | None = None
    ranges: dict[str, tuple[float, float]] | None = None
    loaded: bool = False
    value: Any = None


_TABLE: dict[str, dict[str, _Entry]] = {kind: {} for kind in KINDS}
_LOADED_PLUGINS: set[str] = set()
_ENTRY_POINTS_LOADED: list[bool] = [False]


def register(
    kind: str,
    name: str,
    part: Any,
    options: dict[str, Any] | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> None:
    """Register `part` (an object, a `module[:attr]` string or `Lazy`) as `kind` `name`.

    A later registration of the same name replaces the earlier one (a plugin may override a
    built-in). `options` ({option: type or Literal}) and `ranges` ({option: (low, high)}) are
    the `task.options` the part reads; None: its `OPTIONS` / `OPTION_RANGES`, if any.
    """
    _check_kind(kind)
    _TABLE[kind][name] = _Entry(part, options, ranges)


def get(kind: str, name: str) -> Any:
    """The part `kind` `name`, loaded on first use; one-line ConfigError for an unknown name."""
    entry = _entry(kind, name)
    if not entry.loaded:
        entry.value = _load(entry.source, name)
        entry.loaded = True
    return entry.value


def names(kind: str) -> tuple[str, ...]:
    """The names registered as `kind`, in registration order."""
    _check_kind(kind)
    return tuple(_TABLE[kind])


def has(kind: str, name: str) -> bool:
    """Whether `name` is registered as `kind` (nothing is loaded)."""
    _check_kind(kind)
    return name in _TABLE[kind]


def options_of(kind: str, name: str) -> tuple[dict[str, Any] | None, dict[str, tuple]]:
    """(options, ranges) the part declares: given at `register`, else its `OPTIONS` /
    `OPTION_RANGES` attributes. options None: the part declares none (left unchecked)."""
    entry = _entry(kind, name)
    part = get(kind, name)
    options = entry.options if entry.options is not None else getattr(part, "OPTIONS", None)
    ranges = entry.ranges if entry.ranges is not None else getattr(part, "OPTION_RANGES", {})
    return (None if options is None else dict(options)), dict(ranges or {})


def unknown(what: str, name: str, valid: Iterable[str], fix: str) -> ConfigError:
    """The one-line error for an unknown name: the valid ones, and the closest as a hint."""
    valid = [str(v) for v in valid]
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"Unknown {what} '{name}'. Fix: {fix} one of: {', '.join(valid)}.{hint}")


def _check_kind(kind: str) -> None:
    if kind not in _TABLE:
        raise unknown("registry kind", kind, KINDS, "use")


def _entry(kind: str, name: str) -> _Entry:
    _check_kind(kind)
    if name not in _TABLE[kind]:
        raise unknown(kind, name, _TABLE[kind], f"name a registered {kind}:")
    return _TABLE[kind][name]


def _load(source: Any, name: str) -> Any:
    """The object a registration gives: `Lazy` called, a `module[:attr]` string imported (a
    table attribute yields its entry `name`), anything else itself."""
    if isinstance(source, Lazy):
        return source.load()
    if not isinstance(source, str):
        return source
    module_name, _, attr = source.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        value = getattr(value, part)
    if isinstance(value, (tuple, list)):
        value = {getattr(v, "name", None): v for v in value}
    if not isinstance(value, dict):
        return value
    if name not in value:
        raise ConfigError(f"{source} has no entry '{name}'. Fix: register the part by its name.")
    return value[name]


# ----------------------------------------------------------------------------- plugins


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import each module of `plugins=[...]` once (it registers its parts), after the
    entry points of `ENTRY_POINT_GROUP`; one-line ConfigError for one that cannot be imported."""
    load_entry_points()
    for module in modules:
        if module in _LOADED_PLUGINS:
            continue
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())  # the console script's sys.path lacks the working dir
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(
                f"plugin '{module}' cannot be imported ({err}). Fix: list importable modules "
                "in plugins=[...] (run from the folder that holds it, or add it to PYTHONPATH)."
            ) from None
        _LOADED_PLUGINS.add(module)


def load_entry_points() -> None:
    """Load every entry point of `ENTRY_POINT_GROUP` once: a module is imported; a callable
    it names is called (with no arguments) to register its parts."""
    if _ENTRY_POINTS_LOADED[0]:
        return
    _ENTRY_POINTS_LOADED[0] = True
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except ImportError as err:
            raise ConfigError(
                f"plugin entry point '{point.name}' ({point.value}) cannot be imported ({err}). "
                f"Fix: reinstall or uninstall the package that declares it."
            ) from None
        if callable(loaded):
            loaded()


# ----------------------------------------------------------------------------- built-ins

_BUILTINS: dict[str, dict[str, str]] = {
    "dataset": {
        "pascal5i": "sdvicl_bench.protocols.pascal:Pascal5iFamily",
        "voc2012-det": "sdvicl_bench.protocols.pascal:VOCDetectionFamily",
        "cityscapes": "sdvicl_bench.protocols.cityscapes:CityscapesFamily",
        "deepfashion-fld": "sdvicl_bench.protocols.deepfashion:DeepFashionFamily",
        "voc2012-canny": "sdvicl_bench.protocols.edges:edge_family",
        "imagenet-val": "sdvicl_bench.protocols.imagenet:ImageNetFamily",
    },
    "decoder": {
        name: f"sdvicl_bench.tasks.{name}"
        for name in ("fgseg", "det", "semseg", "keypoints", "edges", "colorization")
    },
    "metric": {
        "iou": "sdvicl_bench.metrics.iou:foreground_iou",
        "mse": "sdvicl_bench.metrics.mse:mse",
        "mse_vp": "sdvicl_bench.metrics.mse:mse_vp",
        "pck": "sdvicl_bench.protocols.registry:landmark_pck",
        "keypoint_mse": "sdvicl_bench.protocols.registry:landmark_mse",
        "ne": "sdvicl_bench.protocols.registry:landmark_ne",
    },
    "aggregation": {
        name: "sdvicl_bench.protocols.aggregations:AGGREGATIONS"
        for name in (
            "pooled_class_miou",
            "pooled_fb_iou",
            "confusion_miou",
            "confusion_accuracy",
            "bsds_ods",
            "bsds_ois",
            "fid",
        )
    },
    "backbone": {
        "sd15": "sdvicl_bench.sampler.backbones.sd15:BACKBONES",
        "sd21": "sdvicl_bench.sampler.backbones.sd21:BACKBONES",
        "sdxl": "sdvicl_bench.sampler.backbones.sdxl:BACKBONES",
        "toy": "sdvicl_bench.sampler.backbones.toy:BACKBONES",
        "tiny": "sdvicl_bench.sampler.backbones.sd15:BACKBONES",
        "tiny-sd21": "sdvicl_bench.sampler.backbones.sd21:BACKBONES",
        "tiny-sdxl": "sdvicl_bench.sampler.backbones.sdxl:BACKBONES",
        "tiny-vpred": "sdvicl_bench.sampler.backbones.tiny_vpred:BACKBONES",
        "sd15-random": "sdvicl_bench.sampler.backbones.sd15:BACKBONES",
    },
    "method": {
        "sdvicl": "sdvicl_bench.methods.sdvicl",
        "seggpt": "sdvicl_bench.methods.seggpt",
        "seggpt-tiny": "sdvicl_bench.methods.seggpt",
        "visualcloze": "sdvicl_bench.methods.visualcloze",
        "visualcloze-tiny": "sdvicl_bench.methods.visualcloze",
    },
}
"""The packaged parts, as module paths (imported on first use); the packaged tasks are
registered by `protocols.registry` from conf/task/*.yaml."""

for _kind, _parts in _BUILTINS.items():
    for _name, _source in _parts.items():
        register(_kind, _name, _source)
