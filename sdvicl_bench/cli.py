"""The command line: `sdvicl-bench run | validate | ls`.

The only module that sees Hydra/OmegaConf: it composes `conf/` with the user's overrides,
turns the result into typed dataclasses (`config.RunConfig`) and hands them down. Every
`UserError` becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from sdvicl_bench.config import RunConfig, from_dict, to_dict
from sdvicl_bench.errors import ConfigError, UserError, disk_error_line

CONF_DIR = Path(__file__).resolve().parent / "conf"
GROUPS = ("task", "data", "sampler", "model", "debug", "experiment")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Visual in-context learning with Stable Diffusion (SD-VICL), as a benchmark suite.",
)
console = Console(stderr=True)


WRITE_FIXES = {
    "run": "choose output_dir=<writable folder> (finished samples are kept: rerun to resume)",
    "ablate": "choose output_dir=<writable folder> and run it from a writable folder",
    "reproduce": "pass --out <writable folder> and run it from a writable folder",
    "tables": "pass --out <writable folder>",
    "grid": "copy the run folder somewhere writable and pass that copy",
    "merge": "copy the run folders somewhere writable and merge the copies",
    "rescore": "copy the run folder somewhere writable and rescore the copy",
}
"""A command's way out of a full disk or read-only folder (errors.disk_error_line)."""


def user_errors(fn):
    """Turn UserError (and a full disk, read-only or forbidden folder) into one stderr line +
    exit 2; Ctrl-C into a resume hint + exit 130."""
    fix = WRITE_FIXES.get(fn.__name__, "choose a writable folder")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            fail(str(err))
        except OSError as err:
            line = disk_error_line(err, fix)
            if line is None:
                raise
            fail(line)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM during a run (evaluate.Terminated)
            code = getattr(err, "exit_code", 130)
            what = "terminated (SIGTERM)" if code == 143 else "interrupted"
            typer.echo(
                f"{what}: finished samples are saved; rerun the same command to resume.",
                err=True,
            )
            raise typer.Exit(code) from None

    return wrapper


def fail(message: str) -> NoReturn:
    """Print `error: <message>` on stderr and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2) from None


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

    overrides = [_prepare(o) for o in overrides]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(_malformed(overrides, err)) from None
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


def _prepare(override: str) -> str:
    """An override as Hydra should read it.

    `task.options.<key>=v` becomes `++task.options.<key>=v` (set or add: the options a task
    has are checked by config.check_task_options, with a message naming them); a plain value
    with non-ASCII characters (data.root=/tmp/dätä), which Hydra's grammar only takes quoted,
    is quoted.
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
    """Compose + type-check + `check_setup`: the RunConfig `run` executes."""
    cfg = from_dict(RunConfig, compose(overrides))
    check_setup(cfg)
    return cfg


def check_setup(cfg: RunConfig) -> None:
    """What `run` needs of this process, checked before any work: a valid `shard`, a device
    torch can use here (`model.device`), an existing `model.path` folder."""
    from sdvicl_bench import sharding
    from sdvicl_bench.sampler.models import missing_folder_error, resolve_device

    sharding.resolve_shard(cfg.shard)
    resolve_device(cfg.model.device)
    path = cfg.model.path
    if cfg.model.name in ("sd15", "toy") and path and not Path(path).expanduser().is_dir():
        raise missing_folder_error(path)


def check_inputs(cfg: RunConfig) -> str | None:
    """What `run` checks before its first episode, short of loading the model: a frozen
    episodes file, then the task's protocol (dataset root and files it opens first; data=demo
    writes the demo data). Returns a note instead when the real dataset is not there (or
    comes from the hub), so its files were not checked."""
    from sdvicl_bench.protocols import make_protocol
    from sdvicl_bench.report.records import read_episodes

    if isinstance(cfg.episodes, str):
        read_episodes(Path(cfg.episodes))
    if cfg.task.options.get("source") == "hub":
        return "the hub dataset is not checked here (run downloads it)."
    root = Path(cfg.data.root).expanduser() / cfg.task.root_subdir
    if cfg.data.name == "real" and not root.exists():
        return f"{root} not found, so the data was not checked (run needs it; or use data=demo)."
    make_protocol(cfg)
    return None


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
    """Check a config as `run` would, short of sampling; print it resolved. Runs nothing."""
    import yaml

    cfg = load_config(overrides or [])
    note = check_inputs(cfg)
    typer.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True).rstrip())
    if cfg.prompts is not None and cfg.prompts != cfg.task.prompts:
        typer.echo(
            f"# n = {cfg.num_prompts} prompts: prompts={cfg.prompts} overrides task.prompts "
            f"(the task's default, {cfg.task.prompts})."
        )
    if note:
        typer.echo(f"note: {note}", err=True)


def _ablate(component: str, overrides: list[str], quiet: bool) -> tuple[Path, list[Path]]:
    """Run the full method, then each variant on its frozen episodes; write the table."""
    from sdvicl_bench import ablations, evaluate

    variants = ablations.variants(component)
    label, extra = variants[0]
    first = evaluate.run(load_config(overrides + extra), quiet=quiet, console=console)
    frozen = first.run_dir / "episodes.jsonl"
    rows, dirs = [(label, first.results)], [first.run_dir]
    for label, extra in variants[1:]:
        cfg = load_config([*overrides, *extra, f"episodes={frozen}"])
        outcome = evaluate.run(cfg, quiet=quiet, console=console)
        rows.append((label, outcome.results))
        dirs.append(outcome.run_dir)
    out_dir = Path("results/ablations")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{component}-{first.results['key']}.md"
    same = evaluate.results_on(dirs)  # every variant on the same finished episodes
    rows = [(label, results) for (label, _), results in zip(rows, same, strict=True)]
    path.write_text(ablations.comparison_markdown(component, rows))
    if first.results["n"]:
        from sdvicl_bench.report.grids import compare_grid

        _, protocol = evaluate.protocol_of(first.run_dir)
        load_pictures, _ = evaluate._grid_loaders(protocol)
        labels = [label for label, _ in rows]
        compare_grid(dirs, labels, load_pictures, out=path.with_suffix(".png"))
    return path, dirs


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=(
        "Examples:\n\n"
        "  sdvicl-bench ablate component=adain\n\n"
        "  sdvicl-bench ablate component=qkv task=fgseg prompts=5\n\n"
        "  sdvicl-bench ablate component=layers data=demo model=tiny limit=4"
    ),
)
@user_errors
def ablate(
    overrides: Overrides = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Full method vs the ablated variant(s) on the same frozen episodes; a comparison table.

    component: adain, contrast, swap_guidance, temperature, iwpe, layers, qkv, inversion.
    """
    from sdvicl_bench import ablations

    args = list(overrides or [])
    chosen = [a.split("=", 1)[1] for a in args if a.startswith("component=")]
    if not chosen:
        raise ConfigError(
            f"ablate needs component=<name>. Choose one of: {', '.join(ablations.COMPONENTS)}."
        )
    rest = [a for a in args if not a.startswith("component=")]
    path, _ = _ablate(chosen[-1], rest, quiet)
    if not quiet:
        console.print(path.read_text())
    typer.echo(str(path))


def experiments() -> dict[str, dict]:
    """conf/experiment/*.yaml by name: {name, title, gpu_hours, jobs}."""
    import yaml

    out = {}
    for name in choices("experiment"):
        data = yaml.safe_load((CONF_DIR / "experiment" / f"{name}.yaml").read_text())
        out[name] = data["experiment"]
    return out


@app.command(
    epilog=(
        "Examples:\n\n"
        "  sdvicl-bench reproduce                  # every paper table (CUDA, SD1.5)\n\n"
        "  sdvicl-bench reproduce ablation_adain\n\n"
        "  sdvicl-bench reproduce --smoke          # every experiment, tiny model, demo data"
    )
)
@user_errors
def reproduce(
    names: Annotated[list[str] | None, typer.Argument(help="experiments (default: all)")] = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="debug=smoke: tiny model, demo data, 2 episodes")
    ] = False,
    out: Annotated[Path, typer.Option(help="where the tables go")] = Path("results/tables"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run paper-table experiments (conf/experiment/) and write results/tables/<name>.md."""
    from sdvicl_bench import evaluate
    from sdvicl_bench.report import tables

    known = experiments()
    for name in names or []:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown experiment '{name}'. Choose from: {', '.join(known)}.{hint}"
            )
    out.mkdir(parents=True, exist_ok=True)
    extra = ["debug=smoke"] if smoke else []
    for name in names or list(known):
        exp = known[name]
        parts = [f"# {exp['title']}", ""]
        run_dirs = []
        for job in exp["jobs"]:
            overrides = [*job["overrides"], *extra]
            if "ablate" in job:
                path, dirs = _ablate(job["ablate"], overrides, quiet)
                parts.append(path.read_text())
                run_dirs += dirs
            else:
                outcome = evaluate.run(load_config(overrides), quiet=quiet, console=console)
                run_dirs.append(outcome.run_dir)
        parts.append(tables.to_markdown(tables.build_table(tables.load_runs(run_dirs))))
        target = out / f"{name}.md"
        target.write_text("\n".join(parts))
        typer.echo(str(target))


@app.command(
    epilog=(
        "Examples:\n\n"
        "  sdvicl-bench tables results/runs\n\n"
        "  sdvicl-bench tables results/runs/fgseg --out results/tables"
    )
)
@user_errors
def tables(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="run folders or folders of them")
    ] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("results/tables"),
) -> None:
    """Markdown, CSV and LaTeX tables rebuilt from run folders alone, references beside."""
    from sdvicl_bench.report import tables as report_tables

    written = report_tables.write_tables(paths or [Path("results/runs")], out)
    typer.echo(written[0].read_text())
    for path in written:
        typer.echo(str(path))


@app.command(
    epilog=(
        "Examples:\n\n"
        "  sdvicl-bench merge results/runs/fgseg/*-3f2a9c1b7e44\n\n"
        "  (after a SLURM array of: sdvicl-bench run task=fgseg shard=$SLURM_ARRAY_TASK_ID/8)"
    )
)
@user_errors
def merge(
    run_dirs: Annotated[list[Path], typer.Argument(help="run folders of one run (same key)")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Merge the shards of one run (same key) into the first folder; results.json anew."""
    from sdvicl_bench import evaluate

    outcome = evaluate.merge(list(run_dirs), quiet=quiet, console=console)
    typer.echo(str(outcome.run_dir))


@app.command(
    epilog=(
        "Examples:\n\n"
        "  sdvicl-bench rescore results/runs/fgseg/20261126-101500-3f2a9c1b7e44\n\n"
        "  sdvicl-bench rescore results/runs/keypoints/*   (every keypoints run)"
    )
)
@user_errors
def rescore(
    run_dirs: Annotated[list[Path], typer.Argument(help="run folders (finished or partial)")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Recompute every score, baseline, results.json and grid of runs from their saved
    pictures, without the model (after a task version or metric change). The old
    results.json is kept as results.<timestamp>.json."""
    from sdvicl_bench.rescore import rescore as rescore_run

    for run_dir in run_dirs:
        outcome = rescore_run(run_dir, quiet=quiet, console=console)
        typer.echo(str(outcome.run_dir))


@app.command(
    epilog="Example:\n\n  sdvicl-bench grid results/runs/fgseg/20261126-101500-3f2a9c1b7e44"
)
@user_errors
def grid(
    run_dir: Annotated[Path, typer.Argument(help="a run folder")],
    limit: Annotated[int, typer.Option(help="episodes (rows)")] = 8,
) -> None:
    """Picture grid of a run: A.. | B.. | C | prediction | decoded | GT, with scores."""
    from sdvicl_bench import evaluate

    if limit < 1:
        raise ConfigError(
            f"--limit {limit}: a grid needs at least one row. Fix: --limit 1 or more."
        )
    _, protocol = evaluate.protocol_of(run_dir)
    typer.echo(str(evaluate.write_grid(protocol, run_dir, limit=limit)))


@app.command(name="ls", epilog="Example:\n\n  sdvicl-bench ls")
@user_errors
def list_things() -> None:
    """List tasks, models, components, experiments (with GPU-hours) and past runs."""
    from sdvicl_bench.ablations import COMPONENTS

    for group in ("task", "model", "data", "retrieval", "sampler", "debug"):
        typer.echo(f"{group}: {', '.join(choices(group))}")
    typer.echo(f"components (ablate): {', '.join(COMPONENTS)}")
    typer.echo("experiments (reproduce):")
    for name, exp in experiments().items():
        typer.echo(f"  {name:<18} ~{exp['gpu_hours']} H100-hours  {exp['title']}")
    runs = sorted(Path("results/runs").glob("*/*-*"))
    typer.echo(f"runs ({len(runs)}):")
    for r in runs[-20:]:
        typer.echo(f"  {r}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
