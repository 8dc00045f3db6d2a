"""Task protocols by name: each wires one task's data, episodes, decoder and metrics."""

from __future__ import annotations

import difflib

from sdvicl_bench.config import RunConfig
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.protocols.base import Scored, TaskProtocol


def _registry() -> dict[str, type[TaskProtocol]]:
    from sdvicl_bench.protocols.dense import (
        ColorizationProtocol,
        EdgesProtocol,
        KeypointsProtocol,
        SemsegProtocol,
    )
    from sdvicl_bench.protocols.pascal import DetProtocol, FgsegProtocol

    return {
        "fgseg": FgsegProtocol,
        "det": DetProtocol,
        "semseg": SemsegProtocol,
        "keypoints": KeypointsProtocol,
        "edges": EdgesProtocol,
        "colorization": ColorizationProtocol,
    }


def task_names() -> list[str]:
    return sorted(_registry())


def make_protocol(cfg: RunConfig) -> TaskProtocol:
    """The protocol of `cfg.task.name`; a ConfigError with "did you mean" for an unknown one."""
    registry = _registry()
    name = cfg.task.name
    if name not in registry:
        close = difflib.get_close_matches(name, registry, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"task={name} has no protocol yet. Available: {', '.join(sorted(registry))}.{hint}"
        )
    return registry[name](cfg)


__all__ = ["Scored", "TaskProtocol", "make_protocol", "task_names"]
