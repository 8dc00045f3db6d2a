"""The only module that sees Hydra/OmegaConf: it composes `conf/` with the user's overrides
(`compose`), turns the result into typed dataclasses (`load_config` -> `config.RunConfig`),
and splits a sweep's `k=a,b,c` overrides (`split_sweeps`). Every problem is one ConfigError
line naming its fix."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from sdvicl_bench.config import RunConfig, from_dict
from sdvicl_bench.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("task", "data", "sampler", "model", "method", "debug", "experiment")


def choices(group: str) -> list[str]:
    """Config names available in a group folder of conf/ or of a `$SDVICL_CONFIG_PATH` folder
    (`protocols.registry.config_dirs`)."""
    from sdvicl_bench.protocols.registry import config_dirs

    folders = [d / group for d in [CONF_DIR, *config_dirs()]]
    return sorted({p.stem for f in folders if f.is_dir() for p in f.glob("*.yaml")})


def compose(overrides: list[str]) -> dict[str, Any]:
    """Compose conf/config.yaml with Hydra overrides; one-line ConfigError on any problem.

    Folders in `$SDVICL_CONFIG_PATH` are searched after conf/ (a `task/<name>.yaml` there is
    `task=<name>`: README "Adding a task").
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = [_prepare(o) for o in overrides]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(_malformed(overrides, err)) from None
    for o in parsed:
        key = o.key_or_group
        if key in GROUPS and o.value_type is not None and isinstance(o.value(), str):
            _check_choice(key, o.value())
    import yaml

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = hydra_compose("config", overrides=_search_path() + overrides)
        composed = OmegaConf.to_container(cfg, resolve=True)
    except yaml.YAMLError as err:  # a config file that is not YAML (a user's task file)
        raise ConfigError(_yaml_error_line(err)) from None
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_explain_override_error(err, parsed)) from None
    _load_plugins(composed.get("plugins"))  # type: ignore[union-attr]
    _check_task_file(composed["task"])  # type: ignore[index]
    return composed  # type: ignore[return-value]


def _load_plugins(plugins: Any) -> None:
    """Import the `plugins=[...]` modules and the `sdvicl_bench.plugins` entry points once,
    so the parts they register are known before the config's names are checked."""
    from sdvicl_bench import registry

    if isinstance(plugins, str):
        plugins = [plugins]
    registry.load_plugins([str(p) for p in plugins or []])


TASK_KEYS = ("name", "dataset", "decoder")
"""What a task YAML must say itself (the dataclass defaults are fgseg's: without `decoder:`
a new task would silently be scored as fgseg)."""


def _yaml_error_line(err: Exception) -> str:
    """One line for a YAML syntax error: the file, line and column, what is wrong."""
    mark = getattr(err, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else "a file"
    problem = getattr(err, "problem", None) or _first_line(err)
    return (
        f"{where} is not valid YAML ({problem}). Fix: correct that line "
        "(the file is a config of conf/ or of a $SDVICL_CONFIG_PATH folder)."
    )


def _check_task_file(task: dict[str, Any]) -> None:
    """A task YAML must name its dataset and decoder (the available ones listed)."""
    from sdvicl_bench import registry
    from sdvicl_bench.protocols.registry import config_dirs

    missing = [k for k in TASK_KEYS if not task.get(k)]
    if not missing:
        return
    name = task.get("name") or "?"
    found = next(
        (
            d / "task" / f"{name}.yaml"
            for d in [CONF_DIR, *config_dirs()]
            if (d / "task" / f"{name}.yaml").is_file()
        ),
        f"the task YAML of task={name}",
    )
    fixes = {
        "name": f"name: {name}",
        "dataset": f"dataset: <one of {', '.join(registry.names('dataset'))}>",
        "decoder": (
            f"decoder: <one of {', '.join(registry.names('decoder'))}, or a module pkg.module>"
        ),
    }
    raise ConfigError(
        f"{found} has no {' or '.join(missing)}. Fix: add "
        + "; ".join(fixes[k] for k in missing)
        + " (README: Adding a task)."
    )


def _search_path() -> list[str]:
    """The Hydra override that adds `$SDVICL_CONFIG_PATH`'s folders after conf/ (or none)."""
    from sdvicl_bench.protocols.registry import config_dirs

    extra = config_dirs()
    return [f"hydra.searchpath=[{','.join(d.as_uri() for d in extra)}]"] if extra else []


def _prepare(override: str) -> str:
    """An override as Hydra should read it.

    `task.options.<key>=v` becomes `++task.options.<key>=v` (set or add: the options a task
    has are checked by protocols.registry.check_task_options, with a message naming them); a
    plain value with non-ASCII characters (data.root=/tmp/dätä), which Hydra's grammar only
    takes quoted, is quoted.
    """
    key, sep, value = override.partition("=")
    if not sep:
        return override
    if key.startswith("task.options."):
        override = f"++{override}"
    if value.isascii() or value[:1] in "'\"[{":
        return override
    return f"{override[: -len(value)]}{_quoted(value)}"


def _quoted(value: str) -> str:
    """`value` as one single-quoted Hydra string: its quotes escaped, and the backslashes
    Hydra would read as escapes (before a quote, at the end) doubled."""
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
    return f"'{body}'"


def _malformed(overrides: list[str], err: Exception) -> str:
    """One line for an override Hydra's grammar rejects: which one, and how to write it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    bad = overrides[-1] if overrides else ""
    for override in overrides:
        try:
            parser.parse_override(override)
        except HydraException:
            bad = override
            break
    bad = bad.removeprefix("++") if bad.startswith("++task.options.") else bad
    key, sep, value = bad.partition("=")
    if sep and not value.isascii():
        return (
            f"Malformed override '{bad}': Hydra takes a value with non-ASCII characters only "
            f"quoted. Fix: quote it inside the shell's quotes, e.g. {key}=\"'{value}'\"."
        )
    return f"Malformed override '{bad}': {_first_line(err)}. Fix: write key=value, e.g. prompts=5."


def _check_choice(group: str, value: str) -> None:
    valid = choices(group)
    if value not in valid and value != "null":
        close = difflib.get_close_matches(value, valid, n=1)
        hint = f" Did you mean '{group}={close[0]}'?" if close else ""
        more = " (or add a folder holding task/<name>.yaml to $SDVICL_CONFIG_PATH)"
        fix = more if group == "task" else ""
        raise ConfigError(
            f"Unknown {group} '{value}'. Choose one of: {', '.join(valid)}{fix}.{hint}"
        )


def _explain_override_error(err: Exception, parsed) -> str:
    """One line for Hydra's multi-line errors, with a 'did you mean' for unknown keys."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    if "Ambiguous value" in str(err):  # a=1,2: Hydra's multirun syntax, which `run` lacks
        several = [o.input_line for o in parsed if "," in o.input_line.partition("=")[2]]
        shown = several[0] if several else _first_line(err)
        return (
            f"{shown} gives several values, and a run takes one. Fix: pass one value, or use "
            "`sdvicl-bench sweep` with the same overrides (one run folder per value)."
        )
    groups_only = [o.input_line for o in parsed if o.key_or_group in GROUPS]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            composed = hydra_compose("config", overrides=_search_path() + groups_only)
            base = OmegaConf.to_container(composed)
    except Exception:
        return f"Bad override: {_first_line(err)}."
    for o in parsed:
        if o.key_or_group in GROUPS:
            continue
        node: Any = base
        path = o.key_or_group.split(".")
        for depth, part in enumerate(path):
            if not isinstance(node, dict) or part not in node:
                siblings = list(node) if isinstance(node, dict) else []
                close = difflib.get_close_matches(part, siblings, n=1)
                prefix = ".".join(path[:depth])
                full = f"{prefix}.{close[0]}" if prefix and close else (close[0] if close else "")
                hint = f" Did you mean '{full}'?" if close else ""
                if o.is_add():
                    continue
                return (
                    f"Unknown config key '{o.key_or_group}'. Valid keys here: "
                    f"{', '.join(siblings)}.{hint}"
                )
            node = node[part]
    return f"Bad override: {_first_line(err)}."


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0].rstrip(".") if text else type(err).__name__


def load_config(overrides: list[str]) -> RunConfig:
    """Compose + type-check + `preflight.check_setup`: the RunConfig `run` executes."""
    from sdvicl_bench import methods
    from sdvicl_bench.preflight import check_setup
    from sdvicl_bench.protocols.registry import check_task_options
    from sdvicl_bench.settings import check_values

    composed = compose(overrides)
    check_values(composed)  # each number in its declared range (settings.py), nan/inf refused
    cfg = from_dict(RunConfig, composed)
    check_task_options(cfg.task, cfg.task.options)
    methods.check_options(cfg.method)
    check_setup(cfg)
    return cfg


def split_sweeps(overrides: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(plain overrides, [(key, values)] of the swept ones): `k=a,b,c` or `k=range(0,3)`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(_malformed(overrides, err)) from None
    base, sweeps = [], []
    for raw, o in zip(overrides, parsed, strict=True):
        if o.is_sweep_override():
            sweeps.append((o.key_or_group, [str(v) for v in o.sweep_string_iterator()]))
        else:
            base.append(raw)
    return base, sweeps
