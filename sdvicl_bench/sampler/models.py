"""The models: `sd15` (real weights), `toy` (trained here), `tiny` and `sd15-random` (random).

All give a `DiffusionModel`: U-Net, VAE, SD1.5's DDIM schedule and the text embedding of the
empty prompt (METHOD.md 2: one embedding shared by every stream, no classifier-free
guidance). `sd15` and `toy` load a diffusers folder through the same `from_pretrained` calls
(`load_pretrained`); `toy`'s folder ships inside the package (`sdvicl_bench/weights/toy`,
checked against the sha256 its training recorded). Nothing here downloads a tokenizer for
`tiny` or `sd15-random`: their `prompt_embeds` are made in code.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from sdvicl_bench.config import ModelConfig
from sdvicl_bench.errors import ModelError

SD15_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="leading",
    prediction_type="epsilon",
)
"""SD1.5's scheduler config as METHOD.md 2 states it (used for every model)."""

SD15_VAE_SCALE = 0.18215


@dataclass
class DiffusionModel:
    """A loaded model, ready for the sampler.

    prompt_embeds: (1, L, D) text embedding of "" (broadcast to every stream).
    """

    name: str
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: DDIMScheduler
    prompt_embeds: torch.Tensor
    device: torch.device
    dtype: torch.dtype
    source: str
    revision: str | None = None

    @property
    def vae_scale(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", SD15_VAE_SCALE))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pictures (B, 3, H, W) in [-1, 1] -> latents (B, 4, H/8, W/8): posterior mean x scale."""
        images = images.to(self.device, self.dtype)
        return self.vae.encode(images).latent_dist.mean * self.vae_scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, 4, h, w) -> pictures (B, 3, 8h, 8w) in [0, 1], float32."""
        out = self.vae.decode(latents.to(self.device, self.dtype) / self.vae_scale).sample
        return ((out.float() + 1) / 2).clamp(0, 1)

    def attn1_names(self) -> list[str]:
        """Processor names of every self-attention (attn1) layer, in U-Net order."""
        return [n for n in self.unet.attn_processors if n.endswith("attn1.processor")]


def resolve_device(spec: str) -> torch.device:
    """`auto` -> cuda if available else cpu; else `cpu`, `cuda[:i]` or `mps` if this machine has it.

    Anything else (a type torch does not know, cuda without CUDA, an index past the GPU count,
    mps without MPS) raises a one-line ModelError naming the device and the valid choices.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        device = None
    problem = _device_problem(device)
    if problem:
        raise ModelError(
            f"model.device={spec}: {problem}. Fix: model.device=auto or one of: "
            f"{', '.join(device_choices()[1:])}."
        )
    return device


def device_choices() -> list[str]:
    """The `model.device` values this machine can run: auto, cpu, cuda, cuda:i, mps."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def _device_problem(device: torch.device | None) -> str | None:
    """Why torch cannot run the model on `device` here, or None when it can."""
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        return "not a device type sdvicl-bench can run on (cpu, cuda, mps)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"no CUDA device is visible (torch {torch.__version__})"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device{'s' if count != 1 else ''}"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS (Apple GPU) is not available here"
    return None


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """`auto` -> bfloat16 on CUDA (fp16 can overflow in SD's VAE), float32 on CPU."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[spec]


def load_model(cfg: ModelConfig) -> DiffusionModel:
    """Build or load the model `cfg.name` on its device and dtype, in eval mode."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()  # no per-load cast chatter on the console
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.name == "tiny":
        model = build_tiny(seed=cfg.seed)
    elif cfg.name == "sd15-random":
        model = build_sd15_random(seed=cfg.seed)
    elif cfg.name == "sd15":
        model = load_sd15(cfg.path or cfg.hub_id, None if cfg.path else cfg.revision)
    elif cfg.name == "toy":
        model = load_toy(Path(cfg.path).expanduser() if cfg.path else TOY_WEIGHTS)
    else:  # pragma: no cover - ModelConfig's Literal rejects it first
        raise ModelError(
            f"Unknown model '{cfg.name}'. Choose one of: sd15, toy, tiny, sd15-random."
        )
    channels_last = cfg.memory_format == "channels_last" or (
        cfg.memory_format == "auto" and device.type == "cuda"
    )
    return place_model(model, device, dtype, channels_last=channels_last, compile=cfg.compile)


def place_model(
    model: DiffusionModel,
    device: torch.device,
    dtype: torch.dtype,
    *,
    channels_last: bool = False,
    compile: bool = False,
) -> DiffusionModel:
    """Move a model to its device and dtype, in eval mode, with the speed settings.

    channels_last: NHWC convolutions (faster with bf16 on recent GPUs; same numbers up to
    kernel rounding). compile: `torch.compile(unet, dynamic=False)`.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.unet.to(device, dtype, memory_format=fmt).eval().requires_grad_(False)
    model.vae.to(device, dtype, memory_format=fmt).eval().requires_grad_(False)
    model.prompt_embeds = model.prompt_embeds.to(device, dtype)
    model.device, model.dtype = device, dtype
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels once
    if compile:
        model.unet = torch.compile(model.unet, dynamic=False)
    return model


def make_scheduler() -> DDIMScheduler:
    """SD1.5's DDIM scheduler (leading spacing, steps_offset 1, alphas_cumprod[0] at the end)."""
    return DDIMScheduler(**SD15_SCHEDULER)


# ----------------------------------------------------------------------------- sd15


def load_sd15(source: str, revision: str | None) -> DiffusionModel:
    """Load SD1.5 from a hub id (at `revision`) or a local diffusers folder."""
    return load_pretrained("sd15", source, revision)


def load_pretrained(name: str, source: str, revision: str | None) -> DiffusionModel:
    """Load a Stable Diffusion folder (hub id at `revision`, or local) as model `name`.

    U-Net, VAE, tokenizer and text encoder go through diffusers'/transformers'
    `from_pretrained`: from the local folder or the local Hugging Face cache first (no
    network), then, for a hub id not (fully) cached, from the hub if it can be reached. The
    empty-prompt embedding is computed once with the folder's own tokenizer and text encoder,
    which are then dropped. Every failure is a one-line ModelError naming the cause and fix.
    """
    unet, vae, tokenizer, text_encoder = _load_parts(name, source, revision)
    with torch.no_grad():
        ids = tokenizer(
            [""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
        ).input_ids
        embeds = text_encoder(ids)[0]
    return DiffusionModel(
        name=name,
        unet=unet,
        vae=vae,
        scheduler=make_scheduler(),
        prompt_embeds=embeds,
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


def _load_parts(name: str, source: str, revision: str | None) -> tuple:
    """(unet, vae, tokenizer, text_encoder): local folder or cache first, then the hub."""
    local = _is_local(source)
    if local and not Path(source).expanduser().is_dir():
        raise missing_folder_error(source)
    try:
        return _from_pretrained(source, revision, offline=True)
    except (OSError, ValueError) as err:
        if local:
            raise ModelError(
                f"Cannot load {name} from local folder '{source}': {_reason(err)}. "
                f"Fix: {FOLDER_FIX}"
            ) from None
    if not hub_reachable():
        raise ModelError(_offline_message(name, source, revision))
    try:
        return _from_pretrained(source, revision, offline=False)
    except (OSError, ValueError) as err:
        at = f" (revision {revision})" if revision else ""
        raise ModelError(
            f"Cannot load {name} from hub id '{source}'{at}: {_reason(err)}. Fix: download "
            f"it once with `huggingface-cli download {source}` on a machine with internet, "
            f"or {FOLDER_FIX}"
        ) from None


def _from_pretrained(source: str, revision: str | None, *, offline: bool) -> tuple:
    """(unet, vae, tokenizer, text_encoder) of a diffusers folder; `offline`: no network."""
    from transformers import CLIPTextModel, CLIPTokenizer

    kw: dict = {"local_files_only": offline}
    if revision:
        kw["revision"] = revision
    with warnings.catch_warnings():  # diffusers passes an argument huggingface_hub deprecated
        warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
        return (
            UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kw),
            AutoencoderKL.from_pretrained(source, subfolder="vae", **kw),
            CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kw),
            CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **kw),
        )


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


def missing_folder_error(path: str) -> ModelError:
    """A model folder (`model.path`, always local) that does not exist."""
    return ModelError(
        f"Model folder not found: {path} (model.path is always a local folder). "
        f"Fix: {FOLDER_FIX[:-1]}, or drop model.path to load model.hub_id."
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


# ----------------------------------------------------------------------------- toy

TOY_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "toy"
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


# ----------------------------------------------------------------------------- random models


SD15_DOWN_BLOCKS = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
SD15_UP_BLOCKS = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
"""SD1.5's U-Net block layout: attention at the three finer levels, down and up."""


def tiny_unet_config() -> dict:
    """SD1.5's block layout at toy width: self-attention at three resolutions, down and up."""
    return dict(
        sample_size=8,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        down_block_types=SD15_DOWN_BLOCKS,
        up_block_types=SD15_UP_BLOCKS,
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=8,
    )


def tiny_vae_config() -> dict:
    """A x8 VAE (three downsamplings) with 4 latent channels, at toy width."""
    return dict(
        block_out_channels=(16, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        scaling_factor=SD15_VAE_SCALE,
    )


def sd15_unet_config() -> dict:
    """SD1.5's U-Net config (diffusers' defaults are SD1.x; listed to be explicit)."""
    return dict(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
    )


def sd15_vae_config() -> dict:
    """SD1.5's VAE config."""
    return dict(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
        scaling_factor=SD15_VAE_SCALE,
    )


def _random_model(name: str, unet_cfg: dict, vae_cfg: dict, seed: int) -> DiffusionModel:
    """Random weights from a private generator state (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        embeds = torch.randn(1, 77, unet_cfg["cross_attention_dim"])
    return DiffusionModel(
        name=name,
        unet=unet,
        vae=vae,
        scheduler=make_scheduler(),
        prompt_embeds=embeds,
        device=torch.device("cpu"),
        dtype=torch.float32,
        source=f"random:{name}:seed{seed}",
    )


def build_tiny(seed: int = 0) -> DiffusionModel:
    """The test model: random, small, SD-shaped (4 levels, attn1 at 3 resolutions, x8 VAE)."""
    return _random_model("tiny", tiny_unet_config(), tiny_vae_config(), seed)


def build_sd15_random(seed: int = 0) -> DiffusionModel:
    """Full-size SD1.5 U-Net and VAE with random weights (no download; speed/memory only)."""
    return _random_model("sd15-random", sd15_unet_config(), sd15_vae_config(), seed)
