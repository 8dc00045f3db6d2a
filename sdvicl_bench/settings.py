"""What each setting of the run config changes, and which values it takes: one declaration each.

Every leaf of `config.RunConfig` (dotted, e.g. `sampler.attention.chunk_size`) is declared
once in `SETTINGS` with its effect:

- `result`: changes a number; enters the run key and results.json.
- `speed`: only how fast it runs or how much memory it takes (results agree within float
  error); left out of the run key, so a run resumes across it.
- `scope`: which episodes run, not their numbers (`limit`, `shard`).
- `output`: where or what is written (folders, pictures, the experiment's label).
- `scoring`: how the samples are scored and shown (`task.metrics`).

A free-form subtree is declared once by its prefix (`task.options.*`). Every numeric setting
has a valid range (`Range`); `check_values` refuses a value outside it, and every non-finite
one, with one line naming the setting, the range and the fix. The run key (`key_view`),
`validate`, the tables (`report.runs.ignored`) and docs/SETTINGS.md (`settings_markdown`) read these
declarations; tests/test_settings.py fails when a setting of the config is not declared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from sdvicl_bench.config import RunConfig, to_dict
from sdvicl_bench.errors import ConfigError

Effect = Literal["result", "speed", "scope", "output", "scoring"]

EFFECTS: dict[str, str] = {
    "result": "changes a number: enters the run key and results.json",
    "speed": "changes only speed or memory: results agree within float error",
    "scope": "changes which episodes run, not their numbers",
    "output": "changes where or what is written",
    "scoring": "changes how samples are scored and shown (`rescore` applies it to old runs)",
}
"""Each effect in words (docs/SETTINGS.md, `validate`)."""


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric setting (of each item of a list setting).

    [low, high] closed unless `low_open` (low itself refused: `> 0`); `below` names another
    setting whose value is an open upper end (`skip` < `sampler.steps`); `multiple_of` asks
    for a multiple. Non-finite values are always refused; null passes (it means the default
    or "no limit", as the setting's own docs say).
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    below: str | None = None
    multiple_of: int | None = None

    def text(self) -> str:
        """The range in words: `[0, sampler.steps)`, `(0, inf)`, `[8, inf), a multiple of 8`."""
        left = "(" if self.low_open else "["
        high = self.below if self.below else _number(self.high)
        right = ")" if self.below or math.isinf(self.high) else "]"
        multiple = f", a multiple of {self.multiple_of}" if self.multiple_of else ""
        return f"{left}{_number(self.low)}, {high}{right}{multiple}"

    def admits(self, value: float, tree: dict[str, Any]) -> bool:
        """Whether `value` is finite and inside the range (`tree`: the flat config, for `below`)."""
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        limit = tree.get(self.below) if self.below else None
        under = value < limit if isinstance(limit, (int, float)) else True
        fits = not self.multiple_of or value % self.multiple_of == 0
        return above and value <= self.high and under and fits


def _number(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"


@dataclass(frozen=True)
class Setting:
    """One setting (or, with a trailing `.*`, a free-form subtree) and what it changes."""

    name: str
    effect: Effect
    doc: str
    range: Range | None = None


AT_LEAST_0 = Range(low=0)
AT_LEAST_1 = Range(low=1)
POSITIVE = Range(low=0, low_open=True)

SETTINGS: tuple[Setting, ...] = (
    # task (conf/task/<name>.yaml)
    Setting("task.name", "result", "the task (TASKS.md)"),
    Setting("task.version", "result", "the task's scoring version", AT_LEAST_1),
    Setting("task.dataset", "result", "dataset family (protocols.registry)"),
    Setting("task.root_subdir", "result", "the dataset's folder under data.root"),
    Setting("task.splits_subdir", "result", "its split lists' folder"),
    Setting("task.folds", "result", "folds run (each)", AT_LEAST_0),
    Setting("task.split", "result", "the split queries come from"),
    Setting("task.prompt_pool", "result", "the split prompts come from"),
    Setting("task.decoder", "result", "turns a picture into a prediction"),
    Setting("task.prompts", "result", "the task's default n prompts", AT_LEAST_1),
    Setting("task.metrics.*", "scoring", "metric entries (rescore scores old runs anew)"),
    Setting("task.options.*", "result", "options its decoder and dataset declare, with ranges"),
    # data
    Setting("data.name", "result", "real or demo data"),
    Setting("data.root", "result", "where the datasets live"),
    Setting("data.splits", "result", "Pascal-5i split-list folder"),
    # retrieval (METHOD.md 7)
    Setting("retrieval.name", "result", "how prompts are chosen"),
    Setting("retrieval.model_id", "result", "CLIP model of clip_knn"),
    Setting("retrieval.revision", "result", "its hub revision"),
    Setting("retrieval.model_path", "result", "a local CLIP folder instead"),
    Setting("retrieval.class_filter", "result", "keep pool entries of the query's class"),
    Setting("retrieval.prompt_class", "result", "class of a multi-class prompt image"),
    Setting("retrieval.cache_dir", "output", "where CLIP features are cached"),
    Setting("retrieval.batch_size", "speed", "images per CLIP batch", AT_LEAST_1),
    # sampler (METHOD.md 2-6)
    Setting("sampler.steps", "result", "DDIM steps T", AT_LEAST_1),
    Setting("sampler.skip", "result", "leading steps not run", Range(low=0, below="sampler.steps")),
    Setting("sampler.resolution", "result", "side in px", Range(low=8, multiple_of=8)),
    Setting("sampler.init", "result", "D starts from C's inversion or noise"),
    Setting("sampler.inversion", "result", "fused or separate inversion (agree within float)"),
    Setting("sampler.last_z_zero", "result", "D's last step adds no noise"),
    Setting("sampler.batch_episodes", "speed", "episodes per U-Net batch", AT_LEAST_1),
    Setting("sampler.row_budget", "speed", "most U-Net rows per call (null: none)", AT_LEAST_1),
    Setting("sampler.attention.temperature", "result", "tau (> 0)", POSITIVE),
    Setting(
        "sampler.attention.contrast",
        "result",
        "beta: P' = clip(mu + beta (P - mu), 0, 1); 1 is off, 0 uniform, < 0 inverts",
        AT_LEAST_0,
    ),
    Setting("sampler.attention.ensemble", "result", "iwpe or mean over prompts"),
    Setting("sampler.attention.qkv", "result", "streams giving Q, K, V to D_mod"),
    Setting("sampler.attention.layers", "result", "modified attn1 layers"),
    Setting("sampler.attention.steps", "result", "loop-index window [start, stop)", AT_LEAST_0),
    Setting("sampler.attention.chunk_size", "speed", "query rows per block (exact)", AT_LEAST_1),
    Setting("sampler.attention.kernel", "speed", "torch, triton or auto (exact)"),
    Setting("sampler.swap.enabled", "result", "swap guidance on"),
    Setting(
        "sampler.swap.gamma",
        "result",
        "eps_def + gamma w (eps_mod - eps_def): 0 ignores D_mod, < 0 pushes away from it",
        AT_LEAST_0,
    ),
    Setting("sampler.swap.schedule", "result", "w(i): decay, ramp, constant"),
    Setting("sampler.adain.enabled", "result", "AdaIN to B's statistics on"),
    Setting("sampler.adain.steps", "result", "loop-index window [start, stop)", AT_LEAST_0),
    # model (docs/MODELS.md)
    Setting("model.name", "result", "the backbone"),
    Setting("model.hub_id", "result", "hub weights"),
    Setting("model.revision", "result", "their revision"),
    Setting("model.path", "result", "a local weights folder instead"),
    Setting("model.dtype", "result", "compute precision (changes numbers)"),
    Setting("model.device", "speed", "where it runs"),
    Setting("model.seed", "result", "weights of the random builds", AT_LEAST_0),
    Setting("model.memory_format", "speed", "NHWC or NCHW tensors"),
    Setting("model.compile", "speed", "torch.compile the U-Net"),
    # method (docs/METHODS.md)
    Setting("method.name", "result", "the in-context learner (sdvicl: model and sampler)"),
    Setting("method.hub_id", "result", "its hub weights"),
    Setting("method.revision", "result", "their revision"),
    Setting("method.path", "result", "a local weights folder instead"),
    Setting("method.dtype", "result", "compute precision"),
    Setting("method.device", "speed", "where it runs"),
    Setting("method.seed", "result", "weights of the tiny random builds", AT_LEAST_0),
    Setting("method.options.*", "result", "the method's own settings (docs/METHODS.md)"),
    # the run
    Setting("seed", "result", "run seed: episodes, retrieval, noise", AT_LEAST_0),
    Setting("prompts", "result", "n prompt pairs (null: task.prompts)", AT_LEAST_1),
    Setting("episodes", "result", "a count (>= 1) or a frozen episodes.jsonl", AT_LEAST_1),
    Setting("limit", "scope", "only the first `limit` episodes", AT_LEAST_1),
    Setting("shard", "scope", "i/K: every K-th episode from i"),
    Setting("output_dir", "output", "where run folders go"),
    Setting("save_pictures", "output", "keep the pictures (rescore, grid need them)"),
    Setting("experiment.*", "output", "the paper table a run belongs to (reproduce)"),
    Setting("plugins", "result", "modules imported first; they register parts"),
)
"""Every setting of `RunConfig`, in the order of config.py and the YAMLs."""

KEY_KEPT: dict[str, str] = {
    "sampler.attention.chunk_size": (
        "speed only, but run keys have always held it: dropping it would move every "
        "existing run folder's key (a key change needs a migration)"
    ),
}
"""Settings the run key keeps although their effect is not `result`, and why."""

KEY_PINNED: dict[str, Any] = {"sampler.batch_episodes": 1}
"""Speed settings the run key holds at one fixed value (the payload keeps its shape, so the
keys of runs made before these declarations stay the same)."""

KEY_OMITTED: dict[str, str] = {}
"""`result` settings the run key does not hold today, and why (see docs/SETTINGS.md)."""

KEY_RESOLVED: dict[str, str] = {
    "model.dtype": (
        "held as resolved for the device (`auto`: bfloat16 on CUDA, float32 on a CPU), and "
        "left out for float32, so float32 runs keep the keys they had before the dtype "
        "entered the key (2026-12-04); a bfloat16 or float16 run takes over its old key's "
        "folders whose records were all made at its dtype (`running.legacy`)"
    ),
}
"""`result` settings the run key holds in another form than their value, and how."""


def declaration(name: str) -> Setting | None:
    """The declaration of dotted setting `name`: its own, else its subtree's (`x.*`)."""
    for setting in SETTINGS:
        if setting.name == name:
            return setting
    for setting in SETTINGS:
        base = setting.name.removesuffix(".*")
        if setting.name.endswith(".*") and (name == base or name.startswith(f"{base}.")):
            return setting
    return None


def effect_of(name: str) -> Effect | None:
    """What setting `name` changes (None: not declared)."""
    setting = declaration(name)
    return setting.effect if setting else None


def names_with(effect: Effect) -> list[str]:
    """The declared settings (subtrees without `.*`) with `effect`, in declaration order."""
    return [s.name.removesuffix(".*") for s in SETTINGS if s.effect == effect]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{dotted name: value} of a config dict's leaves (an empty group is one leaf)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def undeclared(tree: dict[str, Any]) -> list[str]:
    """The leaves of config dict `tree` that no declaration covers."""
    return [name for name in flatten(tree) if declaration(name) is None]


# ----------------------------------------------------------------------------- ranges


def check_values(tree: dict[str, Any]) -> None:
    """Raise a one-line ConfigError for the first numeric value of config dict `tree` outside
    its setting's range (or non-finite). Values of another type are left to `from_dict`."""
    flat = flatten(tree)
    for name, value in flat.items():
        setting = declaration(name)
        if setting is None or setting.range is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if _is_number(item) and not setting.range.admits(float(item), flat):
                raise ConfigError(_out_of_range(name, value, setting.range))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _out_of_range(name: str, value: Any, valid: Range) -> str:
    """One line: the setting, its value, its range, and the fix."""
    several = isinstance(value, (list, tuple))
    each, wanted = ("each value ", "values each") if several else ("", "a value")
    return (
        f"{name}={value!r} is out of range: {each}must lie in {valid.text()}. "
        f"Fix: pass {name}=<{wanted} in {valid.text()}>, or leave it out for its default."
    )


def check_config(cfg: RunConfig) -> None:
    """`check_values` of a typed RunConfig."""
    check_values(to_dict(cfg))


# ----------------------------------------------------------------------------- run key


def key_view(tree: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Config dict `tree` (the group `prefix`, e.g. "sampler") as the run key holds it.

    Drops every setting whose effect is not `result`, except `KEY_KEPT`, and sets
    `KEY_PINNED` to their value, so runs resume across speed settings and the payload keeps
    the shape it always had.
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        if name in KEY_PINNED:
            out[key] = KEY_PINNED[name]
        elif isinstance(value, dict) and value and declaration(name) is None:
            out[key] = key_view(value, name)
        elif effect_of(name) in ("result", None) or name in KEY_KEPT:
            out[key] = value
    return out


def top_level_with(effect: Effect) -> tuple[str, ...]:
    """Top-level settings (and subtrees) declared with `effect` (e.g. `output_dir`)."""
    return tuple(n for n in names_with(effect) if "." not in n)


# ----------------------------------------------------------------------------- docs


def settings_markdown() -> str:
    """docs/SETTINGS.md: every setting with its effect, valid values and default."""
    defaults = flatten(to_dict(RunConfig()))
    lines = [
        "# Settings: what each one changes",
        "",
        "Generated by `python -m sdvicl_bench.settings > docs/SETTINGS.md` from the declarations",
        "in `sdvicl_bench/settings.py` (tests/test_settings.py checks it is up to date).",
        "",
        "Effects:",
        "",
        *[f"- `{effect}`: {words}" for effect, words in EFFECTS.items()],
        "",
        "A value outside its range (or nan, inf) is refused with one line, exit code 2.",
        "",
        "| setting | effect | valid range | default | what |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        valid = s.range.text() if s.range else ""
        default = "" if s.name.endswith(".*") else _shown(defaults.get(s.name))
        lines.append(f"| `{s.name}` | {s.effect} | {valid} | {default} | {s.doc} |")
    lines += [
        "",
        "The run key (the run folder's name) holds the `result` settings (the model by its",
        "weights: `model_identity`), with these exceptions kept for existing folders' keys.",
        "",
        "The run key keeps, although not `result`:",
        "",
    ]
    lines += [f"- `{name}`: {why}." for name, why in KEY_KEPT.items()]
    lines += [f"- `{name}`: held at {value}." for name, value in KEY_PINNED.items()]
    lines += ["", "The run key holds in another form than the value:", ""]
    lines += [f"- `{name}`: {why}." for name, why in KEY_RESOLVED.items()]
    if KEY_OMITTED:
        lines += ["", "The run key leaves out, although `result`:", ""]
        lines += [f"- `{name}`: {why}." for name, why in KEY_OMITTED.items()]
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    """A default as YAML would write it (null, true, a list)."""
    return f"`{json.dumps(value)}`"


if __name__ == "__main__":  # pragma: no cover
    print(settings_markdown(), end="")
