"""Typed configuration: frozen dataclasses the stages below the CLI receive.

Only `commands/hydra_config.py` (reached as `cli.load_config`) sees Hydra/OmegaConf. It
turns the composed config into plain dicts and calls `from_dict`, which checks every key
and type and raises `ConfigError` with one line naming the field, the valid choices and a
"did you mean" where one is close.

Every [choice] of METHOD.md is a field here, so a user can flip it from the command line.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin

from sdvicl_bench import registry
from sdvicl_bench.errors import ConfigError

Window = tuple[int | None, int | None]
"""A window of loop indices [start, stop) (None = open end): i = 0..T-1 as in METHOD.md."""

BACKBONE_NAMES: tuple[str, ...] = registry.names("backbone")
"""The packaged backbones `model.name` accepts, real weights first, then the ones built in
code (`sdvicl_bench.registry` lists them as module paths, so `ModelConfig` checks a name
without importing the sampler; a plugin may register more)."""


def check_backbone_name(name: str) -> str:
    """`name` if it is a registered backbone, else a one-line ConfigError with the choices."""
    valid = registry.names("backbone")
    if name in valid:
        return name
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" Did you mean model={close[0]}?" if close else ""
    raise ConfigError(f"Unknown model '{name}'. Choose one of: {', '.join(valid)}.{hint}")


@dataclass(frozen=True)
class ModelConfig:
    """Which U-Net/VAE to run (METHOD.md 2; the backbones are in docs/MODELS.md).

    name: a backbone of `BACKBONE_NAMES`: `sd15`, `sd21`, `sdxl` (weights from
    `hub_id`@`revision` or a local folder `path`), `toy` (a small pixel-space model trained
    by this project on the demo worlds; weights in the package, or `path`), `tiny`,
    `tiny-sd21`, `tiny-sdxl` (small random stacks with each family's layout, built in code,
    for tests), `tiny-vpred` (tiny read as v-prediction, for tests), `sd15-random` (full
    SD1.5 architecture, random weights, for speed and memory work). Checked when the config
    is built (one-line ConfigError with "did you mean").
    """

    name: str = "sd15"
    hub_id: str | None = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    revision: str | None = "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"
    path: str | None = None
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = "auto"
    seed: int = 0
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"  # auto: NHWC on CUDA
    compile: bool = False  # torch.compile the U-Net (one graph per batch shape; slow warm-up)

    def __post_init__(self) -> None:
        check_backbone_name(self.name)


@dataclass(frozen=True)
class AttentionConfig:
    """The modified self-attention of D_mod (METHOD.md 5 and 6).

    layers: selectors of attn1 layers: `up` (decoder, default), `down`, `mid`, `all`, `none`,
    `<block>.<side>` / `<side>` where side is the token grid side the layer sees at the
    model's default resolution (SD1.5: 64, 32, 16, 8; SDXL: 64, 32; `sdvicl-bench ls` lists
    each model's), e.g. `[up.64]` for "the decoder's 64x64 block only", or
    `<block>.finest` (the block's largest side: `[up.finest]` on any model).
    steps: the loop-index window in which the attention is modified.
    chunk_size: query rows per block of the torch kernel (exact; bounds memory at
        chunk_size x n*Nk per head).
    kernel: `torch` (the readable reference, `attention.vicl_attention`), `triton` (one fused
        kernel that stores no scores, `fused_attention.py`; CUDA only) or `auto` (triton on
        CUDA when Triton is installed, torch otherwise). Exact: same numbers within float error.
    """

    temperature: float = 0.4
    contrast: float = 1.67
    ensemble: Literal["iwpe", "mean"] = "iwpe"
    qkv: Literal["CAB", "DAB", "CBB", "DBB"] = "CAB"
    layers: tuple[str, ...] = ("up",)
    steps: Window = (None, None)
    chunk_size: int | None = 1024
    kernel: Literal["auto", "torch", "triton"] = "auto"


@dataclass(frozen=True)
class SwapGuidanceConfig:
    """eps_D = eps_def + gamma * w(i) * (eps_mod - eps_def) (METHOD.md 4)."""

    enabled: bool = True
    gamma: float = 3.5
    schedule: Literal["decay", "ramp", "constant"] = "decay"


@dataclass(frozen=True)
class AdaINConfig:
    """Align D's per-channel latent mean/std with B's after each step (METHOD.md 4)."""

    enabled: bool = True
    steps: Window = (None, None)


@dataclass(frozen=True)
class SamplerConfig:
    """Everything that changes what the sampler computes (METHOD.md 2-6, defaults of 8).

    Exactness switches (`inversion`, `attention.chunk_size`, `batch_episodes`) change how,
    not what: results agree within float error. `row_budget` caps the rows of one U-Net
    call (batch_episodes x rows per episode, see `sampler/variants.py`).
    """

    steps: int = 70
    skip: int = 0
    resolution: int = 512
    init: Literal["inversion", "noise"] = "inversion"
    inversion: Literal["fused", "separate"] = "fused"
    last_z_zero: bool = True
    batch_episodes: int = 1
    row_budget: int | None = None  # most U-Net rows per call (variants.py); None: no limit
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    swap: SwapGuidanceConfig = field(default_factory=SwapGuidanceConfig)
    adain: AdaINConfig = field(default_factory=AdaINConfig)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"sampler.steps={self.steps}: must be >= 1.")
        if not 0 <= self.skip < self.steps:
            raise ConfigError(f"sampler.skip={self.skip}: must be in [0, sampler.steps).")
        if self.resolution % 8:
            raise ConfigError(f"sampler.resolution={self.resolution}: must be a multiple of 8.")
        if self.batch_episodes < 1:
            raise ConfigError(f"sampler.batch_episodes={self.batch_episodes}: must be >= 1.")
        if self.row_budget is not None and self.row_budget < 1:
            raise ConfigError(f"sampler.row_budget={self.row_budget}: must be >= 1 or null.")
        chunk = self.attention.chunk_size
        if chunk is not None and chunk < 1:
            raise ConfigError(f"sampler.attention.chunk_size={chunk}: must be >= 1 or null.")
        if self.attention.temperature <= 0:
            raise ConfigError("sampler.attention.temperature must be > 0.")


T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass `cls` from a plain dict, checking keys and types.

    Raises ConfigError (one line) for an unknown key (with "did you mean"), a wrong type
    (naming the field) or a value outside a Literal's choices.
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown config key '{prefix}{key}'. Valid keys: {', '.join(names)}.{hint}"
            )
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """Check/convert one value against a type hint; raise ConfigError naming `name`."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a group of fields, got {value!r}.")
        return from_dict(tp, value, prefix=f"{name}.")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            valid = ", ".join(str(c) for c in choices)
            raise ConfigError(f"{name}={value!r} is not valid. Choose one of: {valid}.{hint}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, name)
            except ConfigError as err:
                errors.append(err)
        raise (
            errors[0] if len(errors) == 1 else ConfigError(_wrong_type(name, value, _type_name(tp)))
        )
    if origin is tuple:
        args = get_args(tp)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(_wrong_type(name, value, "a list"))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, name) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{name}={value!r} must have {len(args)} entries.")
        return tuple(_coerce(a, v, name) for a, v in zip(args, value, strict=True))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(_wrong_type(name, value, "true or false"))
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(_wrong_type(name, value, "an integer"))
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(_wrong_type(name, value, "a number"))
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(_wrong_type(name, value, "a string"))
    if tp is Any or origin is dict:
        if origin is dict and not isinstance(value, dict):
            raise ConfigError(_wrong_type(name, value, "a mapping"))
        return value
    raise ConfigError(f"{name}: unsupported config type {tp!r}.")  # pragma: no cover


def _wrong_type(name: str, value: Any, expected: str) -> str:
    """One line for a value of the wrong type, with the fix (the default is always valid)."""
    return (
        f"{name}={value!r} has the wrong type: expected {expected}. "
        f"Fix: pass {name}=<{expected}>, or leave {name} out for its default."
    )


def _type_name(tp: Any) -> str:
    args = [a for a in get_args(tp) if a is not type(None)]
    names = [getattr(a, "__name__", str(a)) for a in args]
    return " or ".join(names) + (" or null" if type(None) in get_args(tp) else "")


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(dataclasses.asdict(obj))


@dataclass(frozen=True)
class TaskConfig:
    """A task as its YAML names it (ARCHITECTURE.md rule 1; TASKS.md; README "Adding a task").

    `dataset`, `decoder` and the `metrics` entries ({aggregation, function, higher_is_better,
    scale, when}) are names `protocols.registry` resolves. `options` are checked against
    the options its decoder and dataset family declare (`protocols.registry.check_task_options`,
    called by `cli.load_config` and `TaskProtocol`).
    """

    name: str = "fgseg"
    version: int = 1
    dataset: str = "pascal5i"
    root_subdir: str = "VOC2012"
    splits_subdir: str = "splits/pascal5i"
    folds: tuple[int, ...] = (0, 1, 2, 3)
    split: str = "val"
    prompt_pool: str = "trn"
    decoder: str = "fgseg"
    prompts: int = 1
    metrics: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # task-specific (palette, fid ...)


@dataclass(frozen=True)
class RetrievalConfig:
    """How prompts are chosen (METHOD.md 7).

    clip_knn (UnsupPR): cosine nearest neighbours of the query by CLIP ViT-L/14 LAION image
    features among the prompt pool; same_class (Visual Prompting): random entries of the
    query's class; random: random entries of the pool. class_filter=query keeps only pool
    entries of the query's class (clip_knn). prompt_class (clip_knn): the class a retrieved
    image listed under several classes shows, `last_listed` (UnsupPR) or `query`.
    """

    name: Literal["clip_knn", "same_class", "random"] = "clip_knn"
    model_id: str = "laion/CLIP-ViT-L-14-laion2B-s32B-b82K"
    revision: str | None = None
    model_path: str | None = None
    class_filter: Literal["none", "query"] = "none"
    prompt_class: Literal["last_listed", "query"] = "last_listed"
    cache_dir: str = ".cache/sdvicl"
    batch_size: int = 32


@dataclass(frozen=True)
class DataConfig:
    """Where the datasets live. `demo` writes small data in the real layouts on first use."""

    name: Literal["real", "demo"] = "real"
    root: str = "data"
    splits: str | None = None  # Pascal-5i split-list folder (default <dataset>/<splits_subdir>)


@dataclass(frozen=True)
class MethodConfig:
    """The visual in-context learner that answers each episode (docs/METHODS.md).

    name: a method of the registry: `sdvicl` (this suite's SD-VICL; `model` and `sampler`
    configure it, and the fields below are unused), `seggpt`, `visualcloze`, or the tiny
    random variants built in code for tests (`seggpt-tiny`, `visualcloze-tiny`).
    hub_id@revision or path (a local folder): the method's weights. dtype, device: as
    `model`'s. seed: a tiny variant's initial weights. options: the method's own settings
    (each method declares its `OPTIONS`; docs/METHODS.md).
    """

    name: str = "sdvicl"
    hub_id: str | None = None
    revision: str | None = None
    path: str | None = None
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = "auto"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in registry.names("method"):
            raise registry.unknown(
                "method", self.name, registry.names("method"), "pass method= with"
            )


@dataclass(frozen=True)
class RunConfig:
    """Everything `sdvicl-bench run` needs, typed."""

    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    seed: int = 0
    prompts: int | None = None
    limit: int | None = None
    episodes: int | str | None = None
    output_dir: str = "results/runs"
    save_pictures: bool = True
    experiment: dict[str, Any] | None = None  # set by experiment=<name>; read by `reproduce`
    shard: str | None = None  # "i/K": this process runs episodes i, i+K, ... (see sharding.py)
    plugins: tuple[str, ...] = ()  # modules imported first; they register parts (registry.py)

    @property
    def num_prompts(self) -> int:
        """n: `prompts` if given, else the task's default."""
        return self.task.prompts if self.prompts is None else self.prompts

    def __post_init__(self) -> None:
        if self.num_prompts < 1:
            raise ConfigError(f"prompts={self.num_prompts}: must be >= 1.")
        if isinstance(self.episodes, int) and self.episodes < 1:
            raise ConfigError(f"episodes={self.episodes}: a count must be >= 1.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit={self.limit}: must be >= 1 or null.")
