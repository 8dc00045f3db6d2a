"""The toy model (`toy`): a small pixel-space diffusion model trained by this project.

32 x 32 px, an identity "VAE" (factor 1), SD1.5's block layout at toy width (sdvicl_bench/toy,
docs/TOY.md). Its diffusers folder ships inside the package (`sdvicl_bench/weights/toy`) and is
checked against the sha256 its training recorded, then loaded by `load_pretrained` like sd15.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sdvicl_bench.errors import ModelError
from sdvicl_bench.sampler.backbones.base import Backbone, DiffusionModel
from sdvicl_bench.sampler.backbones.pretrained import load_pretrained

TOY_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "toy"
"""The toy model's diffusers folder, shipped inside the package (scripts/train_toy.py)."""

TOY_RECORD = "training.json"


def load_toy(folder: Path) -> DiffusionModel:
    """The toy model (sdvicl_bench/toy): its folder's weights checked, then `load_pretrained`."""
    check_weights(folder)
    return load_pretrained("toy", str(folder), None)


def check_weights(folder: Path) -> dict[str, str]:
    """Check every weights file against the sha256 recorded in `<folder>/training.json`.

    Returns {file: sha256}. A missing folder, record or file, or a changed file, raises a
    one-line ModelError naming it and the fix.
    """
    fix = (
        "Fix: reinstall sdvicl-bench (git checkout sdvicl_bench/weights/toy) or retrain it "
        "with `make toy-model`."
    )
    record_path = Path(folder) / TOY_RECORD
    try:
        recorded = json.loads(record_path.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelError(f"Toy model record missing or unreadable: {record_path}. {fix}") from None
    for rel, expected in recorded.items():
        path = Path(folder) / rel
        if not path.is_file():
            raise ModelError(f"Toy model weights missing: {path}. {fix}")
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise ModelError(
                f"Toy model weights corrupt: {path} does not match the sha256 in "
                f"{record_path}. {fix}"
            )
    return dict(recorded)


def weights_digest(folder: Path) -> str:
    """12 hex chars of sha256 over the canonical JSON of the folder's checked sha256 record.

    The same digest `report.records.run_key` makes of it, so toy runs keep the keys they had
    before the backbones moved here (the sampler stage may not import report/).
    """
    blob = json.dumps(check_weights(folder), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def toy_folder(path: str | None) -> Path:
    """`model.path` (another training of the toy model) or the shipped weights."""
    return Path(path).expanduser() if path else TOY_WEIGHTS


def toy_unet_config() -> dict:
    """The shipped U-Net's config.json (its layout; no weights read)."""
    return json.loads((TOY_WEIGHTS / "unet" / "config.json").read_text(encoding="utf-8"))


BACKBONES = (
    Backbone(
        name="toy",
        kind="toy",
        resolution=32,
        load=lambda cfg: load_toy(toy_folder(cfg.path)),
        unet_config=toy_unet_config,
        summary="toy model trained here on the demo worlds (pixel space, not SD)",
    ),
)
