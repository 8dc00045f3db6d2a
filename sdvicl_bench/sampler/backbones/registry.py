"""name -> Backbone, and what is asked of a backbone by name: load it, name its identity for
run keys, list its layers.

The names come from `sdvicl_bench.registry` (kind `backbone`). Adding a backbone: one
module with a `BACKBONES` tuple of `Backbone` records (its `load` returns a
`sampler.denoiser.Denoiser`), registered there (a packaged one: its line in
`registry._BUILTINS`; a plugin's: `register("backbone", name, backbone)`), and a YAML in
conf/model/ (docs/MODELS.md, docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from sdvicl_bench import registry as parts
from sdvicl_bench.config import ModelConfig
from sdvicl_bench.sampler.attention import count_layers, select_layers
from sdvicl_bench.sampler.backbones import toy
from sdvicl_bench.sampler.backbones.base import Backbone
from sdvicl_bench.sampler.backbones.device import place_model, resolve_device, resolve_dtype
from sdvicl_bench.sampler.backbones.names import BACKBONE_NAMES, check_backbone_name
from sdvicl_bench.sampler.backbones.pretrained import missing_folder_error
from sdvicl_bench.sampler.denoiser import Denoiser

BACKBONES: dict[str, Backbone] = {name: parts.get("backbone", name) for name in BACKBONE_NAMES}
"""The packaged backbones, in the documented order (a plugin's are in the registry only)."""


def get_backbone(name: str) -> Backbone:
    """The backbone `name`; one-line ConfigError with "did you mean" for an unknown one."""
    return parts.get("backbone", check_backbone_name(name))


def load_model(cfg: ModelConfig) -> Denoiser:
    """Build or load the model `cfg.name` on its device and dtype, in eval mode."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()  # no per-load cast chatter on the console
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    backbone = get_backbone(cfg.name)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    model = backbone.load(cfg)
    channels_last = cfg.memory_format == "channels_last" or (
        cfg.memory_format == "auto" and device.type == "cuda"
    )
    return place_model(model, device, dtype, channels_last=channels_last, compile=cfg.compile)


# ----------------------------------------------------------------------------- identity


def model_identity(cfg: ModelConfig) -> dict[str, Any]:
    """What names the model's weights in a run key: a changed model gets a new run folder.

    hub: hub id + revision (a moving revision such as `main` is the user's choice).
    local folder (`model.path`): `folder_digest`, the content of every file the loader can
    read (so two folders differing only in weights differ; the folder's path does not count,
    so a copied folder resumes the same runs). toy: the sha256 record its training wrote
    (each file checked). random: builder name and seed.
    """
    backbone = get_backbone(cfg.name)
    if backbone.kind == "random":
        return {"name": cfg.name, "seed": cfg.seed}
    if backbone.kind == "toy":
        return {"name": cfg.name, "weights": toy.weights_digest(toy.toy_folder(cfg.path))}
    if cfg.path:
        folder = Path(cfg.path).expanduser()
        if not folder.is_dir():
            raise missing_folder_error(cfg.path)
        return {"name": cfg.name, "folder": folder_digest(folder)}
    return {"name": cfg.name, "source": cfg.hub_id, "revision": cfg.revision}


MODEL_FOLDERS = (
    "unet",
    "vae",
    "text_encoder",
    "text_encoder_2",
    "tokenizer",
    "tokenizer_2",
    "scheduler",
)
"""The subfolders of a diffusers folder the loaders read (plus `model_index.json`)."""

_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}
"""sha256 of a file by (resolved path, size, mtime_ns): each weights file is read once per
process. SD1.5's U-Net alone is 3.4 GB (about 2 s per GB); a file rewritten in place gets a
new mtime and is hashed again."""


def folder_digest(folder: Path) -> str:
    """sha256 over (relative path, sha256 of content) of the files the loaders can read.

    Those are model_index.json and every file under `MODEL_FOLDERS` (configs, tokenizer
    files, every weights file and variant), hidden files left out. Hashing content, not
    names and sizes or safetensors headers, because two trainings can differ only in values.
    """
    files = [folder / "model_index.json"] if (folder / "model_index.json").is_file() else []
    for sub in MODEL_FOLDERS:
        if (folder / sub).is_dir():
            files += sorted(
                p
                for p in (folder / sub).rglob("*")
                if p.is_file() and not any(x.startswith(".") for x in p.relative_to(folder).parts)
            )
    return files_digest(folder, files)


def files_digest(folder: Path, files: list[Path]) -> str:
    """sha256 over (path relative to `folder`, sha256 of content) of `files`, in that order."""
    total = hashlib.sha256()
    for path in files:
        total.update(f"{path.relative_to(folder).as_posix()}\0{file_digest(path)}\n".encode())
    return total.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's content, cached by (path, size, mtime_ns)."""
    stat = os.stat(path)
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]


# ----------------------------------------------------------------------------- layers


def layer_counts(backbone: Backbone) -> dict[str, int]:
    """{"<block>.<side>": attn1 layers} at the default resolution, in network order.

    From the backbone's known config (`Backbone.layer_positions`, the meta device): no weights.
    """
    return count_layers(backbone.layer_positions())


def layer_table() -> list[str]:
    """One line per backbone: name, default resolution, selectable attn1 layers with counts."""
    lines = []
    for b in (parts.get("backbone", name) for name in parts.names("backbone")):
        layers = ", ".join(f"{sel} ({n})" for sel, n in layer_counts(b).items())
        lines.append(f"{b.name:<12} {b.resolution:>4} px  {layers}  - {b.summary}")
    return lines


def check_layer_selectors(cfg: ModelConfig, selectors: tuple[str, ...]) -> None:
    """One-line ConfigError now for a selector that matches no layer of model `cfg.name`.

    Uses the backbone's known config on the meta device (no weights). A hub backbone
    loaded from `model.path` may have another config: its selectors are checked at load.
    """
    backbone = get_backbone(cfg.name)
    if backbone.kind == "hub" and cfg.path:
        return
    select_layers(backbone.layer_positions(), selectors)
