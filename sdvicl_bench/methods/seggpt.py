"""SegGPT (Wang et al., ICCV 2023) as a method: transformers' SegGptForImageSegmentation.

How it takes an episode (as the official SegGPT_inference engine does): A_i and C are
resized to one square cell (448 px) and stacked, A_i over C, into a 2x1 canvas; B_i over an
empty cell is the target canvas, whose lower half the model masks out and paints in. All
of it is normalised with ImageNet's mean and std. The B pictures are RGB already (masks,
palette maps, discs, edges, photos, boxes), so they go in as RGB prompt masks with their
colours unchanged; they reach the cell side the way the episode says (`target_resample`).
With n > 1 prompts the query is repeated once per prompt and, by default, the model's
feature ensemble averages the query's features over the n pairs (the paper's way of using
several prompts). The prediction is the painted lower half, un-normalised to an RGB picture.

`seggpt` loads BAAI/seggpt-vit-large at a pinned revision (or a local folder,
`method.path`); `seggpt-tiny` is the same code on a small random model built in code, for
tests (no download, CPU, well under a second per episode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from PIL import Image

from sdvicl_bench.config import MethodConfig
from sdvicl_bench.errors import ConfigError, ModelError
from sdvicl_bench.methods import base
from sdvicl_bench.methods.base import Method, MethodInfo
from sdvicl_bench.sampler.backbones.device import resolve_device, resolve_dtype
from sdvicl_bench.sampler.pipeline import RESAMPLE, Episode, EpisodeResult

if TYPE_CHECKING:
    from transformers import SegGptConfig, SegGptForImageSegmentation

HUB = "seggpt"
TINY = "seggpt-tiny"

DEFAULT_HUB_ID = "BAAI/seggpt-vit-large"
DEFAULT_REVISION: str | None = "75cfa51ad31561cd2a8fb02964e93aeb9a544b45"
"""The hub repo's `main` as of this writing ("Update config.json": the config names its
decoder's layers `intermediate_hidden_state_indices`, as transformers reads them)."""

HUB_SIDE = 448  # the real model's cell: a 896 x 448 canvas of 16 px patches
TINY_SIDE = 32  # the tiny model's cell: a 64 x 32 canvas of 8 px patches

INFO: dict[str, MethodInfo] = {
    HUB: MethodInfo(
        name=HUB,
        title="SegGPT",
        source='Wang et al., "SegGPT: Segmenting Everything In Context", ICCV 2023 '
        "(code: baaivision/Painter); transformers' SegGptForImageSegmentation, hub "
        f"{DEFAULT_HUB_ID}",
        licence="Apache-2.0 (the BAAI/seggpt-vit-large model card; the original code, "
        "baaivision/Painter, is MIT)",
        trained_for=("fgseg", "semseg"),
        gpu_seconds_per_episode=0.05,
        estimate_basis="estimate from FLOPs, not measured: ~1.6 TFLOP per forward at n = 1 "
        "(ViT-L, 24 global-attention layers over a 896x448 canvas = 1,568 tokens, the first "
        "3 for both canvases; the decoder's 4096 -> 16384 projection), ~5 ms of H100 bf16 "
        "compute at ~30% of peak, padded to 0.05 s for CPU preprocessing and launch overhead; "
        "about n times that at n prompts",
        memory_gib=2.0,
        kind="hub",
    ),
    TINY: MethodInfo(
        name=TINY,
        title="SegGPT",
        source="seggpt's code on a small random SegGptConfig built in code (tests only)",
        licence="none needed (random weights)",
        trained_for=(),
        gpu_seconds_per_episode=None,
        estimate_basis="not measured: a test model, well under 0.1 s per episode on a CPU",
        memory_gib=None,
        kind="random",
    ),
}

OPTIONS: dict[str, Any] = {
    "feature_ensemble": bool | None,
    "embedding_type": Literal["instance", "semantic"],
}
"""`method.options` SegGPT reads. feature_ensemble: average the query's features over the n
prompt pairs inside the model (None, the default: on when n > 1, as the official inference
does; off with n > 1: the n predictions are averaged instead). embedding_type: the type token
added to every patch, "instance" (default, as in transformers and the official inference)
or "semantic"."""


@dataclass(frozen=True)
class Settings:
    """The options, checked. feature_ensemble None: on when n > 1."""

    feature_ensemble: bool | None = None
    embedding_type: str = "instance"


def settings_of(options: dict[str, Any]) -> Settings:
    """`method.options` as Settings; a one-line ConfigError for a value SegGPT cannot take."""
    ensemble = options.get("feature_ensemble")
    if ensemble is not None and not isinstance(ensemble, bool):
        raise ConfigError(
            f"method.options.feature_ensemble={ensemble!r}: must be true, false or null. "
            "Fix: pass method.options.feature_ensemble=true (or false, or drop it)."
        )
    kind = options.get("embedding_type", "instance")
    if kind not in ("instance", "semantic"):
        raise ConfigError(
            f"method.options.embedding_type={kind!r}: SegGPT knows instance and semantic. "
            "Fix: pass method.options.embedding_type=instance or semantic."
        )
    return Settings(feature_ensemble=ensemble, embedding_type=kind)


# ----------------------------------------------------------------------------- the method


class SegGpt(Method):
    """A loaded SegGPT: one forward pass per episode (all its prompts in one batch).

    model: a SegGptForImageSegmentation on `device` in `dtype`; processor: its image
    processor (only resizing and normalising are used). side: the cell side.
    """

    def __init__(
        self,
        info: MethodInfo,
        model: SegGptForImageSegmentation,
        processor: Any,
        device: torch.device,
        dtype: torch.dtype,
        options: Settings,
    ) -> None:
        self.info = info
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.options = options
        self.side = cell_side(model.config)
        self.mean = tuple(float(m) for m in processor.image_mean)
        self.std = tuple(float(s) for s in processor.image_std)
        self.calls = 0

    def run(self, episodes: list[Episode]) -> list[EpisodeResult]:
        """One picture per episode; SegGPT draws nothing at random, so the seed is unused."""
        return [EpisodeResult(picture=self.predict(episode)) for episode in episodes]

    def predict(self, episode: Episode) -> Image.Image:
        """C's answer to one episode: a side x side RGB picture."""
        inputs = model_inputs(self.processor, episode, self.side)
        ensemble = use_ensemble(self.options.feature_ensemble, episode.num_prompts)
        with torch.inference_mode():
            out = self.model(
                **{k: v.to(self.device, self.dtype) for k, v in inputs.items()},
                bool_masked_pos=masked_positions(self.model.config).to(self.device),
                feature_ensemble=ensemble,
                embedding_type=self.options.embedding_type,
            )
        self.calls += 1
        pred = out.pred_masks[0] if ensemble else out.pred_masks.float().mean(dim=0)
        return query_picture(pred, self.mean, self.std)


def use_ensemble(option: bool | None, num_prompts: int) -> bool:
    """Whether the forward pass averages features over the prompts: the option, or n > 1."""
    return num_prompts > 1 if option is None else option


def model_inputs(processor: Any, episode: Episode, side: int) -> dict[str, torch.Tensor]:
    """The processor's tensors for one episode, each (n, 3, side, side) float32, normalised:
    pixel_values (C, once per prompt), prompt_pixel_values (the A_i) and prompt_masks (the
    B_i). The model stacks them into its canvases itself (A_i over C; B_i over B_i, whose
    lower half `masked_positions` hides).

    A_i and C are resized by the processor (bicubic); the B_i first reach the side the way
    the episode says (`target_resample`; the processor's own nearest resize then changes
    nothing). do_convert_rgb=False: the B_i are RGB pictures, not label maps (with True the
    processor would read one channel as class ids and lose B's colours).
    """
    resample = RESAMPLE[episode.target_resample]
    targets = [t.convert("RGB").resize((side, side), resample) for t in episode.targets]
    out = processor(
        images=[episode.query.convert("RGB")] * episode.num_prompts,
        prompt_images=[a.convert("RGB") for a in episode.prompts],
        prompt_masks=targets,
        size={"height": side, "width": side},
        do_convert_rgb=False,
        return_tensors="pt",
    )
    return {k: out[k] for k in ("pixel_values", "prompt_pixel_values", "prompt_masks")}


def masked_positions(config: SegGptConfig) -> torch.Tensor:
    """(1, patches) bool: True on the target canvas's lower half (C's answer, painted in),
    so whatever the model's own canvas holds there never reaches it."""
    rows, cols = (s // config.patch_size for s in config.image_size)
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    mask[rows // 2 :] = True
    return mask.reshape(1, -1)


def query_picture(pred: torch.Tensor, mean: tuple, std: tuple) -> Image.Image:
    """A predicted canvas (3, 2 side, side), normalised, -> its lower half (C's answer) as an
    8-bit RGB picture: times std plus mean, clipped to [0, 1], rounded."""
    half = pred[:, pred.shape[1] // 2 :, :].detach().float().cpu()
    rgb = half * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    arr = (rgb.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def cell_side(config: SegGptConfig) -> int:
    """The side of one square cell of the model's 2x1 canvas."""
    return int(config.image_size[1])


# ----------------------------------------------------------------------------- the registry


def build(cfg: MethodConfig, task: str | None = None) -> SegGpt:
    """The method `cfg.name` (seggpt or seggpt-tiny) on `cfg.device` in `cfg.dtype`.

    task: unused (SegGPT answers every task the same way). Options are checked first, so a
    bad value fails before any weights load.
    """
    options = settings_of(cfg.options)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.name == TINY:
        model, processor = build_tiny(cfg.seed)
    elif cfg.name == HUB:
        model, processor = load_pretrained(cfg)
    else:
        raise ConfigError(f"method={cfg.name}: not a SegGPT method. Fix: method={HUB} or {TINY}.")
    model = model.to(device=device, dtype=dtype).eval()
    return SegGpt(INFO[cfg.name], model, processor, device, dtype, options)


def output_side(cfg: MethodConfig) -> int:
    """The side of the square prediction picture (one cell), without loading the weights."""
    return TINY_SIDE if cfg.name == TINY else HUB_SIDE


def weights_identity(cfg: MethodConfig) -> dict[str, Any]:
    """The run key's weights: hub id + revision, a local folder's digest, or the tiny seed."""
    return base.weights_identity(
        cfg.name,
        cfg.hub_id or DEFAULT_HUB_ID,
        cfg.revision or DEFAULT_REVISION,
        cfg.path,
        INFO[cfg.name].kind if cfg.name in INFO else "hub",
        cfg.seed,
    )


# ----------------------------------------------------------------------------- weights


def seggpt_classes() -> tuple[type, type, type]:
    """(SegGptConfig, SegGptForImageSegmentation, its image processor class), imported on
    first use (transformers is slow to import; `ls` needs only INFO). The PIL processor
    where transformers has one (5.x; the same numbers with or without torchvision, and no
    fallback warning), else the numpy one (4.x)."""
    from transformers import SegGptConfig, SegGptForImageSegmentation

    try:
        from transformers import SegGptImageProcessorPil as processor_class
    except ImportError:
        from transformers import SegGptImageProcessor as processor_class
    return SegGptConfig, SegGptForImageSegmentation, processor_class


def tiny_config() -> SegGptConfig:
    """A small SegGptConfig: 4 layers of width 32, 8 px patches on a 64 x 32 canvas (cells
    of TINY_SIDE), the merge after layer 1 and the decoder reading layers 1 and 3."""
    config_class, _, _ = seggpt_classes()
    return config_class(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        mlp_dim=64,
        image_size=(2 * TINY_SIDE, TINY_SIDE),
        patch_size=8,
        pretrain_image_size=TINY_SIDE,
        decoder_hidden_size=8,
        merge_index=1,
        intermediate_hidden_state_indices=(1, 3),
        drop_path_rate=0.0,
    )


def build_tiny(seed: int = 0) -> tuple[SegGptForImageSegmentation, Any]:
    """The tiny random model (weights from `seed`, private RNG: the global one is left
    alone) and a processor for its cell size."""
    _, model_class, processor_class = seggpt_classes()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(tiny_config()).eval()
    return model, processor_class(size={"height": TINY_SIDE, "width": TINY_SIDE})


LOAD_ERRORS = (OSError, ValueError, RuntimeError)
"""What a failed `from_pretrained` raises: missing files or cache entries, an invalid id or
revision, weights that do not fit the architecture."""

DOWNLOAD = (
    f"`huggingface-cli download {DEFAULT_HUB_ID} --revision {DEFAULT_REVISION} "
    "--local-dir <folder>`"
)
FOLDER_FIX = (
    f"download it once on a machine with internet ({DOWNLOAD}), copy the folder here and "
    "pass method.path=<folder>"
)


def load_pretrained(cfg: MethodConfig) -> tuple[SegGptForImageSegmentation, Any]:
    """The model and processor of `method.path` (a local folder), else of the hub id at its
    revision: from the local cache first, then the hub if it answers. Every failure is a
    one-line ModelError naming the cause and the fix."""
    if cfg.path:
        return _load_folder(cfg.path)
    source, revision = cfg.hub_id or DEFAULT_HUB_ID, cfg.revision or DEFAULT_REVISION
    at = f" at revision {revision}" if revision else ""
    try:
        return _from_pretrained(source, revision, offline=True)
    except LOAD_ERRORS:
        pass
    if not _hub_reachable():
        raise ModelError(
            f"Cannot load SegGPT: the Hugging Face hub cannot be reached (offline?) and "
            f"'{source}'{at} is not in the local cache. Fix: {FOLDER_FIX}."
        )
    try:
        return _from_pretrained(source, revision, offline=False)
    except LOAD_ERRORS as err:
        raise ModelError(
            f"Cannot load SegGPT from hub id '{source}'{at}: {_first_line(err)}. Fix: check "
            f"method.hub_id and method.revision, or {FOLDER_FIX}."
        ) from None


def _load_folder(path: str) -> tuple[SegGptForImageSegmentation, Any]:
    """Model and processor from a local folder (never the network)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelError(
            f"method.path={path}: no such folder. Fix: point method.path at the SegGPT folder "
            f"made by {DOWNLOAD}, or drop method.path to load method.hub_id."
        )
    try:
        return _from_pretrained(str(folder), None, offline=True)
    except LOAD_ERRORS as err:
        raise ModelError(
            f"Cannot load SegGPT from method.path={path}: {_first_line(err)}. Fix: point "
            "method.path at a folder with config.json, model.safetensors and "
            f"preprocessor_config.json, as made by {DOWNLOAD}."
        ) from None


def _from_pretrained(
    source: str, revision: str | None, *, offline: bool
) -> tuple[SegGptForImageSegmentation, Any]:
    """Model and processor of a folder or hub id; `offline`: local files and cache only."""
    _, model_class, processor_class = seggpt_classes()
    kw: dict[str, Any] = {"local_files_only": offline}
    if revision:
        kw["revision"] = revision
    model = model_class.from_pretrained(source, **kw)
    processor = processor_class.from_pretrained(source, **kw)
    return model, processor


def _hub_reachable() -> bool:
    """Whether the Hugging Face hub answers (imported late: it brings diffusers along)."""
    from sdvicl_bench.sampler.backbones.pretrained import hub_reachable

    return hub_reachable()


def _first_line(err: Exception) -> str:
    """An exception's first line, at most 200 characters, no final dot."""
    text = str(err).strip()
    return text.splitlines()[0][:200].rstrip(".") if text else type(err).__name__
