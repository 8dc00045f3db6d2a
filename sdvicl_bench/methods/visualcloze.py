"""VisualCloze (Li et al. 2025) answering the suite's episodes, through diffusers' pipelines.

VisualCloze casts a task as infilling a grid: one row per in-context pair [A_i, B_i] and the
query row [C, None]; a FLUX.1-Fill-dev based transformer (12B) fills the empty cell, steered
by a layout prompt (the pipeline writes it from the grid's shape), a task prompt
(``TASK_PROMPTS``) and a content prompt (a caption of the answer; none here, see
``_call_kwargs``). Each cell is resized to an area of ``resolution``^2 (C's aspect ratio,
sides a multiple of 16) before the rows are concatenated, so the answer is made at about
``resolution`` x ``resolution`` (``output_side``); the task decoders resize it to C's size.

Generation alone (``VisualClozeGenerationPipeline``) is the method. ``upsampling=True`` adds
VisualCloze's second stage (``VisualClozePipeline``: FLUX Fill SDEdit of the answer at
``upsampling_strength``) at C's own size, capped at 1024^2 pixels as the authors'
``VisualClozeModel.upsampling`` does (their repo's ``visualcloze.py``).

Names: ``visualcloze`` (the released weights, ``DEFAULT_HUB_ID``) and ``visualcloze-tiny``
(the same pipeline classes around tiny random parts built in code, for tests: no download).
Randomness: one CPU ``torch.Generator`` seeded with ``episode.seed`` per episode (initial
noise and the VAE's latent samples), so a picture depends on its episode alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from sdvicl_bench.config import MethodConfig
from sdvicl_bench.errors import ConfigError, ModelError
from sdvicl_bench.methods import base
from sdvicl_bench.methods.base import Method, MethodInfo
from sdvicl_bench.sampler.backbones.device import resolve_device, resolve_dtype
from sdvicl_bench.sampler.pipeline import Episode, EpisodeResult

DEFAULT_HUB_ID = "VisualCloze/VisualClozePipeline-384"
DEFAULT_REVISION: str | None = None
"""No commit sha of the hub repo could be verified from here (no hub access, and no stored
copy of its commit list was found), so the default is unpinned: set `method.revision=<sha>`
to pin one, or `method.path=<downloaded folder>` (whose content digest keys the runs)."""

TASKS = ("fgseg", "det", "semseg", "keypoints", "edges", "colorization")

# ----------------------------------------------------------------------------- prompts

_PHOTO = "[IMAGE1] a high-quality image"
"""The condition phrase for a photo A (their image prompt list for "target", first entry)."""


def _instruction(target: str, condition: str = _PHOTO) -> str:
    """VisualCloze's task instruction, the 10th template of their `get_task_instruction`
    (lzyhha/VisualCloze data/prefix_instruction.py; the one diffusers' docstring uses)."""
    return f"In each row, a logical task is demonstrated to achieve {target} based on {condition}."


TASK_PROMPTS: dict[str, str] = {
    # ours: a binary mask (Graph200K's foreground is an RGB cut-out, used only as a condition)
    "fgseg": _instruction(
        "[IMAGE2] a binary foreground mask with the object in white on a black background"
    ),
    # ours, after their qwen_bbox phrases ("Bbox-detected objects on uniform background")
    "det": _instruction("[IMAGE2] a filled white bounding box of the object on a black background"),
    # theirs: a "uniformer" semantic segmentation phrase (first of that list)
    "semseg": _instruction("[IMAGE2] color-coded objects in uniformer segmentation"),
    # ours, after their openpose phrases ("body keypoints linked by bright colored lines")
    "keypoints": _instruction(
        "[IMAGE2] clothing landmarks as bright colored dots on a black background"
    ),
    # theirs: a "canny" phrase (fourth of that list); the edges task's truth is Canny
    "edges": _instruction("[IMAGE2] edge map with clean white lines on a dark background"),
    # theirs: the "gray" degradation (first phrase) restored to a "target" photo
    "colorization": _instruction(
        "[IMAGE2] a high-quality image", "[IMAGE1] a grayscale image with varying shades of gray"
    ),
}
"""One task prompt per task in VisualCloze's wording; `method.options.task_prompt` replaces it."""

# ----------------------------------------------------------------------------- options

OPTIONS: dict[str, Any] = {
    "steps": int,  # denoising steps (their README and VisualClozeModel: 30)
    "guidance_scale": float,  # FLUX's embedded guidance (theirs: 30)
    "resolution": int,  # cell side the grid is built at (384 for the -384 weights)
    "upsampling": bool,  # False: generation alone; True: + the SDEdit upsampling stage
    "upsampling_strength": float,  # SDEdit strength of that stage (diffusers' examples: 0.4)
    "cpu_offload": bool,  # diffusers' enable_model_cpu_offload (~23 GiB peak instead of ~33)
    "task_prompt": str | None,  # replaces TASK_PROMPTS[task]
}
"""`method.options` of visualcloze and visualcloze-tiny, with the type of each."""


@dataclass(frozen=True)
class Settings:
    """The options of one method instance, defaults filled in (``settings``).

    max_sequence_length: T5 tokens of the prompt (512, as in their README). Not an option.
    """

    steps: int = 30
    guidance_scale: float = 30.0
    resolution: int = 384
    upsampling: bool = False
    upsampling_strength: float = 0.4
    cpu_offload: bool = False
    task_prompt: str | None = None
    max_sequence_length: int = 512

    @property
    def upsamples(self) -> bool:
        """Whether the upsampling stage runs (strength 0 is generation alone, as in diffusers)."""
        return self.upsampling and self.upsampling_strength > 0


TINY_SETTINGS = Settings(steps=2, resolution=32)
"""visualcloze-tiny's defaults: 32 px cells (16 x 16 tokens with its 1x VAE), 2 steps."""

UPSAMPLING_MAX_AREA = 1024 * 1024
"""The upsampled answer's largest area in pixels (the authors' cap)."""


def settings(cfg: MethodConfig) -> Settings:
    """The method's defaults overridden by `cfg.options`; an unknown option: ConfigError."""
    unknown = sorted(set(cfg.options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"method.options.{unknown[0]}: not an option of {cfg.name}. "
            f"Fix: use one of {', '.join(OPTIONS)}."
        )
    start = TINY_SETTINGS if cfg.name == "visualcloze-tiny" else Settings()
    values = {f.name: getattr(start, f.name) for f in fields(Settings)}
    values.update(cfg.options)
    return Settings(**values)


# ----------------------------------------------------------------------------- registry

_SOURCE = (
    "Li et al., VisualCloze: A Universal Image Generation Framework via Visual In-Context "
    "Learning (ICCV 2025, arXiv:2504.07960), github.com/lzyhha/VisualCloze; diffusers "
    "VisualClozeGenerationPipeline / VisualClozePipeline"
)

INFO: dict[str, MethodInfo] = {
    "visualcloze": MethodInfo(
        name="visualcloze",
        title="VisualCloze",
        source=f"{_SOURCE}; weights: hub {DEFAULT_HUB_ID}",
        licence=(
            "weights derived from black-forest-labs/FLUX.1-Fill-dev: FLUX.1 [dev] "
            "Non-Commercial License (non-commercial use only; its restrictions carry over to "
            "Derivatives); VisualCloze's code: Apache-2.0"
        ),
        # Their training tasks (data/prefix_instruction.py `task_dicts`, docs/DATASET.md):
        # dense prediction photo -> canny, hed, mlsd (edges), uniformer / sam2 segmentation
        # maps (semseg); restoration gray -> photo (colorization). Not covered: binary
        # foreground masks (fgseg: "foreground" is only a condition), filled boxes (det:
        # qwen_bbox is only a condition), clothing landmarks (keypoints: their pose target is
        # an OpenPose body skeleton). The released weights also saw undisclosed internal
        # data (their README).
        trained_for=("semseg", "edges", "colorization"),
        gpu_seconds_per_episode=6.0,
        estimate_basis=(
            "estimate, not measured: 12B FLUX transformer over 1152 (n+1) image tokens "
            "(384 px cells, 2x2 latent patches) + 512 T5 tokens, ~73 TFLOP per step at n = 1, "
            "30 steps at ~40% of an H100's bf16 peak, plus T5-XXL and VAE passes; generation "
            "only (upsampling adds its own steps)"
        ),
        memory_gib=33.0,
        kind="hub",
    ),
    "visualcloze-tiny": MethodInfo(
        name="visualcloze-tiny",
        title="VisualCloze",
        source=f"{_SOURCE}; tiny random parts built in code (tests)",
        licence="none: random weights built in code",
        trained_for=(),
        gpu_seconds_per_episode=None,
        estimate_basis="tiny random model for tests (about a second per episode on a CPU)",
        memory_gib=None,
        kind="random",
    ),
}
"""What `ls` and docs/METHODS.md show for each name this module registers."""


def output_side(cfg: MethodConfig) -> int:
    """The side of the generated query cell: the `resolution` option (for a square C; other
    aspect ratios keep its area), without loading weights."""
    return settings(cfg).resolution


def weights_identity(cfg: MethodConfig) -> dict[str, Any]:
    """The run-key entry of the weights: hub id + revision, the folder's digest, or the tiny
    model's name + seed (``base.weights_identity``)."""
    return base.weights_identity(
        cfg.name,
        cfg.hub_id or DEFAULT_HUB_ID,
        cfg.revision or DEFAULT_REVISION,
        cfg.path,
        _info(cfg.name).kind,
        cfg.seed,
    )


def build(cfg: MethodConfig, task: str) -> Method:
    """Load `cfg.name` (hub weights or the tiny random model) ready to answer `task`."""
    info = _info(cfg.name)
    opts = settings(cfg)
    prompt = task_prompt(task, opts)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    pipeline_class = _pipeline_class(opts.upsamples)
    if info.kind == "random":
        pipe = pipeline_class(**tiny_components(cfg.seed), resolution=opts.resolution)
        if dtype == torch.float32:  # built in float32 (casting to it would only warn)
            pipe.to(device)
        else:
            pipe.to(device, dtype)
    else:
        pipe = load_pipeline(pipeline_class, cfg, opts.resolution, dtype)
        if opts.cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
    _hide_progress_bars(pipe)
    return VisualCloze(info, pipe, opts, prompt, device)


def _hide_progress_bars(pipe: Any) -> None:
    """No tqdm bars from the pipeline or its two stages (VisualClozePipeline has both)."""
    stages = (pipe, getattr(pipe, "generation_pipe", None), getattr(pipe, "upsampling_pipe", None))
    for stage in stages:
        if stage is not None:
            stage.set_progress_bar_config(disable=True)


def task_prompt(task: str, opts: Settings) -> str:
    """The `task_prompt` option if set, else the task's own; neither: ConfigError."""
    if opts.task_prompt is not None:
        return opts.task_prompt
    if task not in TASK_PROMPTS:
        raise ConfigError(
            f"VisualCloze has no task prompt for task {task!r}. "
            "Fix: pass method.options.task_prompt='<instruction>'."
        )
    return TASK_PROMPTS[task]


def _info(name: str) -> MethodInfo:
    """INFO[name], or a ConfigError naming the choices."""
    if name not in INFO:
        raise ConfigError(f"method.name={name}: not a VisualCloze name ({', '.join(INFO)}).")
    return INFO[name]


def _pipeline_class(upsampling: bool) -> type:
    """VisualClozePipeline (generation + upsampling) or VisualClozeGenerationPipeline."""
    from diffusers import VisualClozeGenerationPipeline, VisualClozePipeline

    return VisualClozePipeline if upsampling else VisualClozeGenerationPipeline


# ----------------------------------------------------------------------------- the method


class VisualCloze(Method):
    """A loaded VisualCloze pipeline answering one task's episodes.

    `calls` counts transformer forward passes (one per denoising step and stage), through a
    forward pre-hook on the pipeline's transformer.
    """

    def __init__(
        self, info: MethodInfo, pipe: Any, opts: Settings, prompt: str, device: torch.device
    ) -> None:
        self.info = info
        self.pipe = pipe
        self.opts = opts
        self.prompt = prompt
        self.device = device
        self.calls = 0
        pipe.transformer.register_forward_pre_hook(self._count)

    def _count(self, module: torch.nn.Module, args: tuple) -> None:
        """Forward pre-hook of the transformer: one more pass."""
        self.calls += 1

    def run(self, episodes: list[Episode]) -> list[EpisodeResult]:
        """One answer picture per episode, each from its own seeded generator."""
        with torch.inference_mode():
            return [EpisodeResult(picture=self.answer(ep)) for ep in episodes]

    def answer(self, episode: Episode) -> Image.Image:
        """The generated (and, if asked, upsampled) query cell, RGB."""
        return query_target(self.pipe(**self._call_kwargs(episode)))

    def _call_kwargs(self, episode: Episode) -> dict[str, Any]:
        """The pipeline's arguments for one episode.

        content_prompt None: the pipeline then adds no content sentence. Their training adds
        one only when the answer is a captioned photo (data/dataset.py); here none is.
        """
        kwargs: dict[str, Any] = dict(
            task_prompt=self.prompt,
            content_prompt=None,
            image=episode_grid(episode),
            num_inference_steps=self.opts.steps,
            guidance_scale=self.opts.guidance_scale,
            generator=torch.Generator("cpu").manual_seed(episode.seed),
            max_sequence_length=self.opts.max_sequence_length,
        )
        if self.opts.upsamples:
            multiple = 2 * self.pipe.upsampling_pipe.vae_scale_factor
            width, height = upsampling_size(episode.query, multiple)
            kwargs.update(
                upsampling_width=width,
                upsampling_height=height,
                upsampling_strength=self.opts.upsampling_strength,
            )
        return kwargs


def episode_grid(episode: Episode) -> list[list[Image.Image | None]]:
    """[[A_1, B_1], ..., [A_n, B_n], [C, None]]: the in-context rows, then the query row."""
    rows: list[list[Image.Image | None]] = [
        [_rgb(a), _rgb(b)] for a, b in zip(episode.prompts, episode.targets, strict=True)
    ]
    rows.append([_rgb(episode.query), None])
    return rows


def query_target(output: Any) -> Image.Image:
    """The query row's generated target of a pipeline output (its `images[0][0]`: sample 0,
    the query row's only empty cell), RGB."""
    return _rgb(output.images[0][0])


def upsampling_size(query: Image.Image, multiple: int) -> tuple[int, int]:
    """(width, height) of the upsampled answer: C's size, scaled down to at most
    ``UPSAMPLING_MAX_AREA`` pixels, sides floored to a multiple of `multiple` (at least one)."""
    width, height = query.size
    scale = min(1.0, (UPSAMPLING_MAX_AREA / (width * height)) ** 0.5)
    return tuple(max(int(side * scale) // multiple, 1) * multiple for side in (width, height))


def _rgb(picture: Image.Image) -> Image.Image:
    """The picture itself when RGB, else its RGB conversion."""
    return picture if picture.mode == "RGB" else picture.convert("RGB")


# ----------------------------------------------------------------------------- loading

FOLDER_FIX = (
    f"download it once with `huggingface-cli download {DEFAULT_HUB_ID} --local-dir <folder>` "
    "on a machine with internet (its FLUX.1 [dev] licence must be accepted on the hub) and "
    "pass method.path=<folder>"
)


def load_pipeline(pipeline_class: type, cfg: MethodConfig, resolution: int, dtype: torch.dtype):
    """`pipeline_class.from_pretrained` from `cfg.path`, or the hub id at its revision (the
    local cache first, then the hub if it answers); failures are one-line ModelErrors."""
    from sdvicl_bench.sampler.backbones.pretrained import hub_reachable

    source, revision = _source(cfg)
    kwargs: dict[str, Any] = {"resolution": resolution, "torch_dtype": dtype}
    if revision:
        kwargs["revision"] = revision
    if cfg.path and not Path(cfg.path).expanduser().is_dir():
        raise ModelError(f"method.path={cfg.path}: no such folder. Fix: {FOLDER_FIX}.")
    try:
        return pipeline_class.from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as err:
        if cfg.path:
            raise ModelError(
                f"Cannot load VisualCloze from method.path={cfg.path}: {_reason(err)}. "
                f"Fix: {FOLDER_FIX}."
            ) from None
    at = f" at revision {revision}" if revision else ""
    if not hub_reachable():
        raise ModelError(
            f"Cannot load VisualCloze: '{source}'{at} is not in the local Hugging Face cache "
            f"and the hub cannot be reached (offline?). Fix: {FOLDER_FIX}."
        )
    try:
        return pipeline_class.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(
            f"Cannot load VisualCloze from hub id '{source}'{at}: {_reason(err)}. "
            f"Fix: {FOLDER_FIX}."
        ) from None


def _source(cfg: MethodConfig) -> tuple[str, str | None]:
    """(method.path, no revision) if a folder is given, else (hub id, revision)."""
    if cfg.path:
        return str(Path(cfg.path).expanduser()), None
    return cfg.hub_id or DEFAULT_HUB_ID, cfg.revision or DEFAULT_REVISION


def _reason(err: Exception) -> str:
    """The first line of an exception's text, at most 200 characters, no final dot."""
    text = str(err).strip()
    return text.splitlines()[0][:200].rstrip(".") if text else type(err).__name__


# ----------------------------------------------------------------------------- tiny parts

TINY_WIDTH = 32
"""Width of the tiny text encoders' states (the transformer's joint and pooled dimensions)."""

TINY_TEXT_LENGTH = 512
"""Tokens of the tiny tokenizers (one per character, so a whole prompt fits: no truncation)."""


def tiny_components(seed: int) -> dict[str, Any]:
    """The pipeline's parts at toy size, random weights drawn from `seed` (a private RNG).

    Sizes as diffusers' own VisualCloze tests: a one-block VAE (scale factor 1, one latent
    channel), so the Fill transformer takes 4 + 4 + 4 = 12 channels per token (noisy
    latents, masked-image latents, mask, each in 2 x 2 patches) and predicts 4.
    """
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=12,
            out_channels=4,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=6,
            num_attention_heads=2,
            joint_attention_dim=TINY_WIDTH,
            pooled_projection_dim=TINY_WIDTH,
            guidance_embeds=True,
            axes_dims_rope=(2, 2, 2),
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(4,),
            layers_per_block=1,
            latent_channels=1,
            norm_num_groups=1,
            use_quant_conv=False,
            use_post_quant_conv=False,
            mid_block_add_attention=False,  # attention over every pixel: the slowest part
            shift_factor=0.0609,
            scaling_factor=1.5035,
        )
        text_encoder = CLIPTextModel(_tiny_clip_config(CLIPTextConfig, tokenizer))
        text_encoder_2 = T5EncoderModel(_tiny_t5_config(T5Config, tokenizer_2))
    scheduler = FlowMatchEulerDiscreteScheduler(  # FLUX's schedule, as the real folder's
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15
    )
    return dict(
        scheduler=scheduler,
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2.eval(),
        tokenizer_2=tokenizer_2,
        transformer=transformer.eval(),
    )


def _tiny_clip_config(config_class: type, tokenizer: Any) -> Any:
    """A two-layer CLIP text encoder over the tiny tokenizer's vocabulary."""
    return config_class(
        vocab_size=len(tokenizer),
        hidden_size=TINY_WIDTH,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        projection_dim=TINY_WIDTH,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _tiny_t5_config(config_class: type, tokenizer: Any) -> Any:
    """A two-layer T5 encoder over the tiny tokenizer's vocabulary."""
    return config_class(
        vocab_size=len(tokenizer),
        d_model=TINY_WIDTH,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def tiny_clip_tokenizer() -> Any:
    """A byte-level CLIP tokenizer with no merges (every byte its own token), in memory."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*alphabet, *(c + "</w>" for c in alphabet), "<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_TEXT_LENGTH)


def tiny_t5_tokenizer() -> Any:
    """A character-level T5 (Unigram) tokenizer over printable ASCII, in memory."""
    from transformers import T5TokenizerFast

    chars = [chr(c) for c in range(33, 127)]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in chars] + [("\u2581" + c, -3.0) for c in chars]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=TINY_TEXT_LENGTH)
