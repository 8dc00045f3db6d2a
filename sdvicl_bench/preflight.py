"""Checks a run makes before any work, so bad input fails in one line before the model loads.

`check_setup`: what this process needs (a valid shard, a device torch can use here, layer
selectors this backbone has, an existing model folder); every command that loads a config
runs it. `check_inputs`: what `validate` checks short of sampling (a frozen episodes file,
then the task's protocol, which opens the dataset).
"""

from __future__ import annotations

from pathlib import Path

from sdvicl_bench.config import RunConfig


def check_setup(cfg: RunConfig) -> None:
    """What `run` needs of this process, checked before any work: a valid `shard`, a device
    torch can use here (`model.device`), an existing `model.path` folder."""
    from sdvicl_bench import sharding
    from sdvicl_bench.sampler.backbones.device import resolve_device
    from sdvicl_bench.sampler.backbones.pretrained import missing_folder_error
    from sdvicl_bench.sampler.backbones.registry import check_layer_selectors, get_backbone

    sharding.resolve_shard(cfg.shard)
    resolve_device(cfg.model.device)
    check_layer_selectors(cfg.model, cfg.sampler.attention.layers)
    path = cfg.model.path
    loads_folder = get_backbone(cfg.model.name).kind != "random"
    if loads_folder and path and not Path(path).expanduser().is_dir():
        raise missing_folder_error(path, hub=get_backbone(cfg.model.name).kind == "hub")


def check_inputs(cfg: RunConfig) -> str | None:
    """What `run` checks before its first episode, short of loading the model: a frozen
    episodes file, then the task's protocol (dataset root and files it opens first; data=demo
    writes the demo data). Returns a note instead when the real dataset is not there (or
    comes from the hub), so its files were not checked."""
    from sdvicl_bench.protocols import make_protocol
    from sdvicl_bench.report.records import read_episodes
    from sdvicl_bench.workflows.data_check import require_data

    if isinstance(cfg.episodes, str):
        read_episodes(Path(cfg.episodes))
    if cfg.task.options.get("source") == "hub":
        return "the hub dataset is not checked here (run downloads it)."
    root = Path(cfg.data.root).expanduser() / cfg.task.root_subdir
    if cfg.data.name == "real" and not root.exists():
        return f"{root} not found, so the data was not checked (run needs it; or use data=demo)."
    make_protocol(cfg)
    require_data(cfg)
    return None
