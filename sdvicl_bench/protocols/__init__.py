"""Task protocols: every task is its YAML (conf/task/<name>.yaml) run by `TaskProtocol`.

`protocols.registry` resolves the YAML's names (dataset family, decoder module, metrics);
the dataset families (pascal.py, cityscapes.py, deepfashion.py, edges.py, imagenet.py) hold
what differs between datasets.
"""

from __future__ import annotations

from sdvicl_bench.config import RunConfig
from sdvicl_bench.protocols.base import Scored
from sdvicl_bench.protocols.task import TaskProtocol


def task_names() -> list[str]:
    """The packaged tasks (conf/task/*.yaml)."""
    from sdvicl_bench.protocols.registry import TASK_CONF

    return sorted(p.stem for p in TASK_CONF.glob("*.yaml"))


def make_protocol(cfg: RunConfig) -> TaskProtocol:
    """The protocol of `cfg.task`: its YAML's dataset, decoder and metrics resolved (a
    one-line ConfigError with "did you mean" for an unknown name)."""
    return TaskProtocol(cfg)


__all__ = ["Scored", "TaskProtocol", "make_protocol", "task_names"]
