"""The visual in-context learners a run can use (`method=<name>`, docs/METHODS.md).

`sdvicl` (default) is this suite's SD-VICL, configured by `model=` and `sampler.`; the others
(`seggpt`, `visualcloze` and their tiny random variants for tests) are modules of this
package registered in `registry` as kind "method". Each gives `INFO`, `OPTIONS`,
`build(cfg, task)`, `output_side(cfg)` and `weights_identity(cfg)` (`methods.base`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from sdvicl_bench import registry
from sdvicl_bench.config import MethodConfig, RunConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.methods.base import Method, MethodInfo

SDVICL = "sdvicl"


def module_of(name: str) -> ModuleType:
    """The module that implements method `name`."""
    return registry.get("method", name)


def info(name: str) -> MethodInfo:
    """What `ls`, the tables and the docs say about method `name`."""
    return module_of(name).INFO[name]


def is_sdvicl(cfg: RunConfig) -> bool:
    return cfg.method.name == SDVICL


def build(cfg: RunConfig) -> Method:
    """Load (or build) a method other than SD-VICL for `cfg`'s task."""
    return module_of(cfg.method.name).build(cfg.method, cfg.task.name)


def output_side(cfg: RunConfig) -> int:
    """The side of the square picture the run's method predicts at: SD-VICL's
    `sampler.resolution`, another method's own (the oracle row goes through it)."""
    if is_sdvicl(cfg):
        return cfg.sampler.resolution
    return module_of(cfg.method.name).output_side(cfg.method)


def identity(cfg: MethodConfig) -> dict[str, Any]:
    """The run key's entry of a method other than SD-VICL: its name, weights and options."""
    return {
        "name": cfg.name,
        "weights": module_of(cfg.name).weights_identity(cfg),
        "dtype": cfg.dtype,
        "options": dict(sorted(cfg.options.items())),
    }


def check_options(cfg: MethodConfig) -> None:
    """A one-line ConfigError for a `method.options` key the method does not read."""
    declared = module_of(cfg.name).OPTIONS
    for key in cfg.options:
        if key not in declared:
            valid = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"method.options.{key}: method={cfg.name} has no such option. "
                f"Fix: use one of: {valid}."
            )


__all__ = ["Method", "MethodInfo", "build", "identity", "info", "is_sdvicl", "output_side"]
