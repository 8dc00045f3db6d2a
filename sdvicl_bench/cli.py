"""The command line: `sdvicl-bench run | validate | ablate | sweep | reproduce | tables |
merge | rescore | grid | ls`.

It only parses and prints. It is the only module that sees Hydra/OmegaConf: it composes
`conf/` with the user's overrides, turns the result into typed dataclasses
(`config.RunConfig`) and hands them to `evaluate` (one run), `workflows/` (ablate, sweep,
reproduce), `sharding.merge`, `rescore` or `report/`. Every `UserError` becomes one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from sdvicl_bench.config import RunConfig, from_dict, to_dict
from sdvicl_bench.errors import ConfigError, UserError, disk_error_line
from sdvicl_bench.report.console import make_console

CONF_DIR = Path(__file__).resolve().parent / "conf"
GROUPS = ("task", "data", "sampler", "model", "method", "debug", "experiment")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Visual in-context learning with Stable Diffusion (SD-VICL), as a benchmark suite.",
)
console = make_console()  # full width in logs and pipes: no table cut at 80 columns


WRITE_FIXES = {
    "run": "choose output_dir=<writable folder> (finished samples are kept: rerun to resume)",
    "ablate": "choose output_dir=<writable folder> and run it from a writable folder",
    "reproduce": "pass --out <writable folder> and run it from a writable folder",
    "tables": "pass --out <writable folder>",
    "grid": "copy the run folder somewhere writable and pass that copy",
    "merge": "copy the run folders somewhere writable and merge the copies",
    "rescore": "copy the run folder somewhere writable and rescore the copy",
    "report": "pass --out <writable folder>",
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
    """Run (or resume) a task: episodes -> SD-VICL (or method=) -> decoded predictions -> scores."""
    from sdvicl_bench import evaluate

    cfg = load_config(overrides or [])
    outcome = evaluate.run(cfg, quiet=quiet, console=console)
    if quiet:
        typer.echo(str(outcome.run_dir))


def _effect_notes(cfg: RunConfig) -> list[str]:
    """YAML comments naming the settings that change no number (`settings.py`): speed only,
    which episodes run, where output goes, how scores are shown."""
    from sdvicl_bench.settings import EFFECTS, declaration, flatten

    found: dict[str, set[str]] = {}
    for name in flatten(to_dict(cfg)):
        setting = declaration(name)
        if setting is not None and setting.effect != "result":
            found.setdefault(setting.effect, set()).add(setting.name.removesuffix(".*"))
    return [
        f"# {effect}: {', '.join(sorted(found[effect]))} ({EFFECTS[effect]})"
        for effect in ("speed", "scope", "output", "scoring")
        if effect in found
    ]


@app.command(epilog="Example:\n\n  sdvicl-bench validate task=fgseg prompts=5 model=tiny")
@user_errors
def validate(overrides: Overrides = None) -> None:
    """Check a config as `run` would, short of sampling; print it resolved. Runs nothing."""
    import yaml

    from sdvicl_bench import preflight

    cfg = load_config(overrides or [])
    note = preflight.check_inputs(cfg)
    typer.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True).rstrip())
    for line in _effect_notes(cfg):
        typer.echo(line)
    if cfg.prompts is not None and cfg.prompts != cfg.task.prompts:
        typer.echo(
            f"# n = {cfg.num_prompts} prompts: prompts={cfg.prompts} overrides task.prompts "
            f"(the task's default, {cfg.task.prompts})."
        )
    if note:
        typer.echo(f"note: {note}", err=True)


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
    from sdvicl_bench.workflows.ablate import run_ablation

    args = list(overrides or [])
    chosen = [a.split("=", 1)[1] for a in args if a.startswith("component=")]
    if not chosen:
        raise ConfigError(
            f"ablate needs component=<name>. Choose one of: {', '.join(ablations.COMPONENTS)}."
        )
    rest = [a for a in args if not a.startswith("component=")]
    comparison = run_ablation(chosen[-1], rest, load_config, quiet=quiet, console=console)
    if not quiet:
        console.print(comparison.table.read_text())
    typer.echo(str(comparison.table))


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


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=(
        "Examples:\n\n"
        "  sdvicl-bench sweep task=fgseg sampler.attention.temperature=0.2,0.4,0.8 "
        "sampler.swap.gamma=1,3.5\n\n"
        "  sdvicl-bench sweep data=demo model=toy limit=16 sampler.attention.contrast=1,1.67,2.5"
    ),
)
@user_errors
def sweep(
    overrides: Overrides = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """A grid of settings (k=a,b,c) on the same episodes: one run folder per variant, and a
    comparison table and grid. D-side settings share one U-Net batch per step."""
    from sdvicl_bench.workflows.sweep import run_sweep

    base, sweeps = split_sweeps(list(overrides or []))
    comparison = run_sweep(base, sweeps, load_config, quiet=quiet, console=console)
    if not quiet:
        console.print(comparison.table.read_text())
    typer.echo(str(comparison.table))


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
    from sdvicl_bench.workflows.reproduce import reproduce as run_experiments

    extra = ["debug=smoke"] if smoke else []
    for path in run_experiments(
        names, load_config, extra=extra, out=out, quiet=quiet, console=console
    ):
        typer.echo(str(path))


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
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No summary table: only the merged folder.")
    ] = False,
) -> None:
    """Merge the shards of one run (same key) into the first folder; results.json anew."""
    from sdvicl_bench.sharding.merge import merge as merge_runs

    outcome = merge_runs(list(run_dirs), quiet=quiet, console=console)
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
        if quiet:  # otherwise the summary has already named the folder
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


@app.command(
    epilog=(
        "Examples:\n\n  sdvicl-bench report results/runs --out results/report\n\n"
        "  sdvicl-bench report results/runs/fgseg/<run> results/runs/fgseg/<other run>"
    )
)
@user_errors
def report(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="run folders or folders of them")
    ] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("results/report"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """One self-contained HTML page (open it from disk): tables with intervals and
    references, plots, per-fold and per-class breakdowns, and an episode browser (A | B | C |
    prediction | decoded | GT, sortable by score and by the difference between two runs)."""
    from sdvicl_bench import evaluate
    from sdvicl_bench.report.html import write_report

    page = write_report(
        paths or [Path("results/runs")],
        out,
        quiet=quiet,
        protocol_of=evaluate.protocol_of,
        console=console,
    )
    typer.echo(str(page))


data_app = typer.Typer(
    no_args_is_help=True,
    help="Is the data in place (`data check`), and convert other layouts (`data prepare`).",
)
app.add_typer(data_app, name="data")


@data_app.command(
    name="check",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=(
        "Examples:\n\n  sdvicl-bench data check\n\n  sdvicl-bench data check task=fgseg\n\n"
        "  sdvicl-bench data check task=fgseg data=demo"
    ),
)
@user_errors
def data_check(overrides: Overrides = None) -> None:
    """Whether each task's data is in place under data.root, without loading a model: folders,
    lists, counts against the official ones, a sample of files opened; one line per problem
    with its fix. Exit 0 when every checked task can run, 2 otherwise."""
    from sdvicl_bench.workflows import data_check as checks

    reports = checks.check_tasks(list(overrides or []), compose)
    checks.render(reports, console)
    raise typer.Exit(checks.exit_code(reports))


@data_app.command(
    name="prepare",
    epilog=(
        "Examples:\n\n  sdvicl-bench data prepare sbd ~/Downloads/benchmark_RELEASE\n\n"
        "  sdvicl-bench data prepare imagenet-val ~/Downloads/ILSVRC2012_img_val "
        "--labels LOC_val_solution.csv"
    ),
)
@user_errors
def data_prepare(
    dataset: Annotated[str, typer.Argument(help="sbd or imagenet-val")],
    source: Annotated[Path, typer.Argument(help="the downloaded, unpacked source folder")],
    labels: Annotated[
        Path | None, typer.Option(help="imagenet-val: the labels file (found if left out)")
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(help="data.root to write into (default: $SDVICL_DATA_ROOT or data)"),
    ] = None,
) -> None:
    """Convert a dataset from the layout it is published in to the one the loaders read
    (SBD's .mat masks -> VOC2012/SegmentationClassAug; a flat ImageNet val folder -> class
    folders). Resumable: finished files are skipped."""
    import os

    from sdvicl_bench.workflows.data_prepare import prepare

    root = root or Path(os.environ.get("SDVICL_DATA_ROOT", "data"))
    result = prepare(dataset, source, root, labels=labels, console=console)
    typer.echo(result.summary())
    for note in result.notes:
        typer.echo(note)


@app.command(name="ls", epilog="Example:\n\n  sdvicl-bench ls")
@user_errors
def list_things() -> None:
    """List tasks, methods, models, components, experiments (with GPU-hours) and past runs."""
    from sdvicl_bench.ablations import COMPONENTS
    from sdvicl_bench.sampler.backbones.registry import layer_table
    from sdvicl_bench.workflows.reproduce import estimate, experiments, jobs_of

    for group in ("task", "method", "model", "data", "retrieval", "sampler", "debug"):
        typer.echo(f"{group}: {', '.join(choices(group))}")
    typer.echo("models: default side, self-attention layers by <block>.<side> (count):")
    for line in layer_table():
        typer.echo(f"  {line}")
    typer.echo(f"components (ablate): {', '.join(COMPONENTS)}")
    typer.echo(
        "experiments (reproduce), H100-hours from U-Net passes (shared pass / each run alone):"
    )
    known = experiments()
    every = []
    for name, exp in known.items():
        jobs = jobs_of(name, exp)
        every += jobs
        hours = estimate(jobs, load_config)
        typer.echo(f"  {name:<16} ~{hours['shared']:.1f} / {hours['separate']:.1f}  {exp['title']}")
    hours = estimate(every, load_config)
    typer.echo(
        f"  {'all (reproduce)':<16} ~{hours['shared']:.1f} / {hours['separate']:.1f}  "
        "identical runs once, D-side variants in one pass"
    )
    for line in method_lines(queries_by_task(every)):
        typer.echo(line)
    runs = sorted(Path("results/runs").glob("*/*-*"))
    typer.echo(f"runs ({len(runs)}):")
    for r in runs[-20:]:
        typer.echo(f"  {r}")


def queries_by_task(jobs) -> dict[str, int]:
    """The most queries any experiment job runs per task (the size of a full run)."""
    out: dict[str, int] = {}
    for job in jobs:
        task = next((o.split("=", 1)[1] for o in job.overrides if o.startswith("task=")), None)
        if task and job.queries:
            out[task] = max(out.get(task, 0), job.queries)
    return out


def method_lines(queries: dict[str, int]) -> list[str]:
    """`ls`'s methods: licence, the tasks each was trained for, and GPU-hours of one full
    run of every task at n = 1 (its seconds per episode x the queries of `queries`)."""
    from sdvicl_bench import methods, registry

    total = sum(queries.values())
    lines = [f"methods (method=), GPU-hours of all six tasks at n = 1 ({total} queries):"]
    for name in registry.names("method"):
        info = methods.info(name)
        trained = ", ".join(info.trained_for) or (
            "none (training-free)" if name == methods.SDVICL else "none (random weights)"
        )
        if info.gpu_seconds_per_episode is None:
            cost = "no GPU estimate"
        else:
            hours = total * info.gpu_seconds_per_episode / 3600
            cost = f"~{hours:.1f} GPU-h ({info.gpu_seconds_per_episode:g} s/episode, "
            cost += f"{info.estimate_basis.split(':')[0]})"
        memory = f", ~{info.memory_gib:g} GiB" if info.memory_gib else ""
        lines.append(f"  {name:<16} {info.title}: {cost}{memory}; trained for: {trained}")
        lines.append(f"  {'':<16} licence: {info.licence}")
    return lines


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
