"""The command line: `sdvicl-bench run | validate | ls`.

The only module that sees Hydra/OmegaConf: it composes `conf/` with the user's overrides,
turns the result into typed dataclasses (`config.RunConfig`) and hands them down. Every
`UserError` becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import difflib
import functools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from sdvicl_bench.config import RunConfig, from_dict, to_dict
from sdvicl_bench.errors import ConfigError, UserError

CONF_DIR = Path(__file__).resolve().parent / "conf"
GROUPS = ("task", "data", "sampler", "model", "debug", "experiment")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Visual in-context learning with Stable Diffusion (SD-VICL), as a benchmark suite.",
)
console = Console(stderr=True)


def user_errors(fn):
    """Turn UserError into one stderr line + exit 2; Ctrl-C into a resume hint + exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo(
                "interrupted: finished samples are saved; rerun the same command to resume.",
                err=True,
            )
            raise typer.Exit(130) from None

    return wrapper


# ----------------------------------------------------------------------------- config


def choices(group: str) -> list[str]:
    """Config names available in a group folder of conf/."""
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def compose(overrides: list[str]) -> dict[str, Any]:
    """Compose conf/config.yaml with Hydra overrides; one-line ConfigError on any problem."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        bad = next((o for o in overrides if "=" not in o), overrides[-1] if overrides else "")
        raise ConfigError(
            f"Malformed override '{bad}': {_first_line(err)}. Fix: write key=value, e.g. prompts=5."
        ) from None
    for o in parsed:
        key = o.key_or_group
        if key in GROUPS and o.value_type is not None and isinstance(o.value(), str):
            _check_choice(key, o.value())
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = hydra_compose("config", overrides=overrides)
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_explain_override_error(err, parsed)) from None


def _check_choice(group: str, value: str) -> None:
    valid = choices(group)
    if value not in valid and value != "null":
        close = difflib.get_close_matches(value, valid, n=1)
        hint = f" Did you mean '{group}={close[0]}'?" if close else ""
        raise ConfigError(f"Unknown {group} '{value}'. Choose one of: {', '.join(valid)}.{hint}")


def _explain_override_error(err: Exception, parsed) -> str:
    """One line for Hydra's multi-line errors, with a 'did you mean' for unknown keys."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    groups_only = [o.input_line for o in parsed if o.key_or_group in GROUPS]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            base = OmegaConf.to_container(hydra_compose("config", overrides=groups_only))
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
    """Compose + type-check: the RunConfig `run` executes."""
    raw = compose(overrides)
    return from_dict(RunConfig, raw)


# ----------------------------------------------------------------------------- commands

Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Hydra overrides: task=fgseg prompts=5 model=tiny data=demo limit=8 ..."),
]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=(
        "Examples:\n\n"
        "  sdvicl-bench run task=fgseg prompts=5\n\n"
        "  sdvicl-bench run task=fgseg data=demo model=tiny limit=8\n\n"
        "  sdvicl-bench run task=fgseg sampler.attention.contrast=1.0 seed=1"
    ),
)
@user_errors
def run(
    overrides: Overrides = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Run (or resume) a task: episodes -> SD-VICL -> decoded predictions -> scores."""
    from sdvicl_bench import evaluate

    cfg = load_config(overrides or [])
    outcome = evaluate.run(cfg, quiet=quiet, console=console)
    if quiet:
        typer.echo(str(outcome.run_dir))


@app.command(epilog="Example:\n\n  sdvicl-bench validate task=fgseg prompts=5 model=tiny")
@user_errors
def validate(overrides: Overrides = None) -> None:
    """Compose and check a config; print it resolved, with its sampler settings. Runs nothing."""
    import yaml

    cfg = load_config(overrides or [])
    typer.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip())


@app.command(name="ls", epilog="Example:\n\n  sdvicl-bench ls")
@user_errors
def list_things() -> None:
    """List tasks, models, samplers, data sources and past runs."""
    for group in ("task", "model", "data", "sampler", "debug"):
        typer.echo(f"{group}: {', '.join(choices(group))}")
    runs = sorted(Path("results/runs").glob("*/*-*"))
    typer.echo(f"runs ({len(runs)}):")
    for r in runs[-20:]:
        typer.echo(f"  {r}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
