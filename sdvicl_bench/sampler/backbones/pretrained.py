"""Loading a diffusers folder (hub id at a revision, or local) the same way for every backbone.

`load_parts` fetches the named subfolders through diffusers'/transformers' `from_pretrained`:
from the local folder or the local Hugging Face cache first (no network), then, for a hub id
not (fully) cached, from the hub if it can be reached. Every failure is a one-line
ModelError naming the cause and the fix. `load_pretrained` is the SD1.x/2.x recipe on top
(one tokenizer and text encoder); sdxl.py adds its second encoder through the same call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from sdvicl_bench.config import ModelConfig
from sdvicl_bench.errors import ModelError
from sdvicl_bench.sampler.backbones.base import (
    DiffusionModel,
    check_prediction_type,
    make_scheduler,
)

Part = Callable[..., Any]
"""A loader `(source, subfolder=..., local_files_only=..., [revision=...]) -> object`."""


def sd_parts() -> dict[str, Part]:
    """The subfolders an SD1.x/2.x folder is loaded from: U-Net, VAE, CLIP tokenizer/encoder."""
    from transformers import CLIPTextModel, CLIPTokenizer

    return {
        "unet": UNet2DConditionModel.from_pretrained,
        "vae": AutoencoderKL.from_pretrained,
        "tokenizer": CLIPTokenizer.from_pretrained,
        "text_encoder": CLIPTextModel.from_pretrained,
    }


def source_of(cfg: ModelConfig) -> tuple[str, str | None]:
    """Where a hub backbone's weights come from: (model.path, no revision) if a folder is
    given, else (model.hub_id, model.revision)."""
    return (cfg.path, None) if cfg.path else (cfg.hub_id, cfg.revision)


def load_pretrained(
    name: str, source: str, revision: str | None, prediction_type: str = "epsilon"
) -> DiffusionModel:
    """Load an SD1.x/2.x folder (hub id at `revision`, or local) as model `name`.

    The empty-prompt embedding is the text encoder's last hidden state for "" (what
    diffusers' StableDiffusionPipeline conditions on), computed once with the folder's own
    tokenizer and encoder, which are then dropped. prediction_type: what backbone `name`
    reads the U-Net's output as; a folder whose scheduler says otherwise is refused.
    """
    parts = load_parts(name, source, revision, sd_parts())
    with torch.no_grad():
        embeds = parts["text_encoder"](empty_prompt_ids(parts["tokenizer"]))[0]
    return assemble(name, source, revision, parts, embeds, prediction_type=prediction_type)


def empty_prompt_ids(tokenizer) -> torch.Tensor:
    """(1, max_length) token ids of "" padded to the tokenizer's length."""
    return tokenizer(
        [""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids


def assemble(
    name: str,
    source: str,
    revision: str | None,
    parts: dict[str, Any],
    prompt_embeds: torch.Tensor,
    pooled_embeds: torch.Tensor | None = None,
    *,
    prediction_type: str = "epsilon",
) -> DiffusionModel:
    """A DiffusionModel on the CPU from loaded parts and the folder's betas; a folder whose
    scheduler predicts anything but `prediction_type` is refused (`check_prediction_type`)."""
    check_prediction_type(name, source, parts.get("scheduler"), prediction_type)
    return DiffusionModel(
        name=name,
        unet=parts["unet"],
        vae=parts["vae"],
        scheduler=make_scheduler(parts.get("scheduler"), prediction_type),
        prompt_embeds=prompt_embeds,
        pooled_embeds=pooled_embeds,
        device=torch.device("cpu"),
        dtype=torch.float32,
        source=source,
        revision=revision,
    )


FOLDER_FIX = (
    "pass model.path=<folder with unet/ vae/ tokenizer/ text_encoder/> (e.g. made by "
    "`huggingface-cli download <hub id> --local-dir <folder>`)."
)
HUB_TIMEOUT_S = 3.0
"""How long `hub_reachable` waits for the hub's answer."""


def load_parts(
    name: str, source: str, revision: str | None, parts: dict[str, Part]
) -> dict[str, Any]:
    """{subfolder: loaded object} plus "scheduler" (its config dict, or None if absent).

    Local folder or cache first, then the hub; one-line ModelErrors.
    """
    local = _is_local(source)
    if local and not Path(source).expanduser().is_dir():
        raise missing_folder_error(source)
    try:
        return _from_pretrained(source, revision, parts, offline=True)
    except (OSError, ValueError) as err:
        if local:
            raise ModelError(
                f"Cannot load {name} from local folder '{source}': {_reason(err)}. "
                f"Fix: {FOLDER_FIX}"
            ) from None
    if not hub_reachable():
        raise ModelError(_offline_message(name, source, revision))
    try:
        return _from_pretrained(source, revision, parts, offline=False)
    except (OSError, ValueError) as err:
        at = f" (revision {revision})" if revision else ""
        raise ModelError(
            f"Cannot load {name} from hub id '{source}'{at}: {_reason(err)}. Fix: download "
            f"it once with `huggingface-cli download {source}` on a machine with internet, "
            f"or {FOLDER_FIX}"
        ) from None


def _from_pretrained(
    source: str, revision: str | None, parts: dict[str, Part], *, offline: bool
) -> dict[str, Any]:
    """Every part of a diffusers folder; `offline`: no network."""
    kw: dict = {"local_files_only": offline}
    if revision:
        kw["revision"] = revision
    with warnings.catch_warnings():  # diffusers passes an argument huggingface_hub deprecated
        warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
        loaded = {sub: load(source, subfolder=sub, **kw) for sub, load in parts.items()}
        loaded["scheduler"] = _scheduler_config(source, kw)
    return loaded


def _scheduler_config(source: str, kw: dict) -> dict | None:
    """The folder's `scheduler/scheduler_config.json` as a dict, or None when it has none."""
    try:
        return dict(DDIMScheduler.load_config(source, subfolder="scheduler", **kw))
    except (OSError, ValueError):
        return None


def _is_local(source: str) -> bool:
    """A local folder: it exists, or it cannot be a hub id (`/x`, `./x`, `~/x`, `a/b/c`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(source).expanduser().exists():
        return True
    try:
        validate_repo_id(source)
    except HFValidationError:
        return True
    return False


def missing_folder_error(path: str, *, hub: bool = True) -> ModelError:
    """A model folder (`model.path`, always local) that does not exist; `hub`: the model
    also has hub weights to fall back on (not so for the toy model, whose default folder
    ships with the package)."""
    fallback = (
        "drop model.path to load model.hub_id" if hub else "drop model.path for the shipped weights"
    )
    return ModelError(
        f"Model folder not found: {path} (model.path is always a local folder). "
        f"Fix: {FOLDER_FIX[:-1]}, or {fallback}."
    )


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers within `timeout` s (False if HF_HUB_OFFLINE)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # any transport error (DNS, refused, timeout, proxy) means unreachable
        return False
    return True


def _offline_message(name: str, source: str, revision: str | None) -> str:
    """One line for a hub id that is neither cached nor downloadable: offline, and the ways out."""
    from huggingface_hub import constants

    at, flag = (f" at revision {revision}", f" --revision {revision}") if revision else ("", "")
    why = (
        "HF_HUB_OFFLINE is set"
        if constants.HF_HUB_OFFLINE
        else f"the Hugging Face hub ({constants.ENDPOINT}) cannot be reached (offline?)"
    )
    return (
        f"Cannot load {name}: {why} and '{source}'{at} is not in the local cache "
        f"({constants.HF_HUB_CACHE}). Fix: on a machine with internet run `huggingface-cli "
        f"download {source}{flag} --local-dir <folder>`, copy the folder here and pass "
        "model.path=<folder>; or copy a filled Hugging Face cache here and set HF_HUB_OFFLINE=1."
    )


def _reason(err: Exception) -> str:
    """The first line of an exception's text, at most 200 characters, no final dot."""
    text = str(err).strip()
    return text.splitlines()[0][:200].rstrip(".") if text else type(err).__name__
