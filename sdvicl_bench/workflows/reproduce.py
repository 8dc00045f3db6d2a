"""`sdvicl-bench reproduce`: the paper's tables (conf/experiment/), in as few passes as possible.

Every job of the chosen experiments becomes one or more run configs (an `ablate` job one per
variant). Identical configs run once (the full method at n = 5 is in three tables), and
configs that differ only in what happens to D share one pass (`evaluate.run_many`): the
paper's fgseg runs at n = 5 (full, no AdaIN, finest decoder level only) are one pass of
17 rows per step instead of three of 13. Then each experiment's table is written from its
run folders.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console

from sdvicl_bench.config import RunConfig, to_dict
from sdvicl_bench.errors import ConfigError

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "conf" / "experiment"
"""The packaged experiments (the paper's tables)."""

Load = Callable[[list[str]], RunConfig]


@dataclass
class Job:
    """One run of an experiment: its label, overrides, the ablation it belongs to (if any)
    and the query count the estimate assumes."""

    experiment: str
    label: str
    overrides: list[str]
    ablate: str | None
    queries: int


def experiment_dirs() -> list[Path]:
    """Where experiments are looked for: conf/experiment/, then `<folder>/experiment/` of each
    `$SDVICL_CONFIG_PATH` folder, the order Hydra searches the config groups in."""
    from sdvicl_bench.protocols.registry import config_dirs

    return [EXPERIMENTS_DIR, *(d / "experiment" for d in config_dirs())]


def experiments() -> dict[str, dict]:
    """Every experiment YAML by name: {name, title, jobs}; a name found twice is the first
    folder's (`experiment_dirs`), as Hydra would compose it."""
    found: dict[str, dict] = {}
    for folder in experiment_dirs():
        for path in sorted(folder.glob("*.yaml")):
            if path.stem not in found:
                found[path.stem] = yaml.safe_load(path.read_text())["experiment"]
    return found


def check_names(names: list[str]) -> None:
    """A one-line ConfigError (with "did you mean") for an experiment that does not exist."""
    known = experiments()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown experiment '{name}'. Choose from: {', '.join(known)}.{hint} "
                f"For your own, put {name}.yaml in a folder <dir>/experiment/ and <dir> on "
                "$SDVICL_CONFIG_PATH."
            )


def jobs_of(name: str, experiment: dict, extra: list[str] | None = None) -> list[Job]:
    """An experiment's runs, an `ablate` job expanded into its variants (full method first)."""
    from sdvicl_bench import ablations

    jobs = []
    for job in experiment["jobs"]:
        base = [*job["overrides"], *(extra or [])]
        queries = int(job.get("queries", 0))
        if "ablate" in job:
            for label, more in ablations.variants(job["ablate"]):
                jobs.append(Job(name, label, [*base, *more], job["ablate"], queries))
        else:
            jobs.append(Job(name, job["run"], base, None, queries))
    return jobs


def _identity(cfg: RunConfig) -> str:
    """Configs that make the same run folder (up to how-settings) have the same identity."""
    data = to_dict(cfg)
    data.pop("experiment", None)
    return json.dumps(data, sort_keys=True)


def plan(jobs: list[Job], load: Load) -> tuple[list[RunConfig], list[int]]:
    """(unique configs, index into them for each job): identical runs happen once."""
    unique: dict[str, int] = {}
    cfgs: list[RunConfig] = []
    index = []
    for job in jobs:
        cfg = load(job.overrides)
        ident = _identity(cfg)
        if ident not in unique:
            unique[ident] = len(cfgs)
            cfgs.append(cfg)
        index.append(unique[ident])
    return cfgs, index


def estimate(jobs: list[Job], load: Load) -> dict[str, float]:
    """H100-hours of `jobs`: `shared` (identical runs once, D-side variants in one pass, as
    `reproduce` runs them) and `separate` (every job on its own, as before variant batching)."""
    from sdvicl_bench.evaluate import sharing_groups
    from sdvicl_bench.workflows import estimate as est

    cfgs, index = plan(jobs, load)
    queries = {i: job.queries for job, i in zip(jobs, index, strict=True)}
    groups = [(max(queries[i] for i in g), [cfgs[i] for i in g]) for g in sharing_groups(cfgs)]
    separate = [(job.queries, [cfgs[i]]) for job, i in zip(jobs, index, strict=True)]
    return {"shared": est.hours(groups), "separate": est.hours(separate)}


def reproduce(
    names: list[str] | None,
    load: Load,
    *,
    extra: list[str] | None = None,
    out: Path = Path("results/tables"),
    quiet: bool = False,
    console: Console | None = None,
) -> list[Path]:
    """Run experiments (default: all) and write `<out>/<name>.md` for each; returns them.

    extra: overrides added to every job (e.g. debug=smoke).
    """
    from sdvicl_bench import evaluate
    from sdvicl_bench.report import tables
    from sdvicl_bench.workflows.ablate import ABLATIONS_DIR, write_comparison

    known = experiments()
    check_names(names or [])
    chosen = names or list(known)
    jobs = [job for name in chosen for job in jobs_of(name, known[name], extra)]
    cfgs, index = plan(jobs, load)
    outcomes = evaluate.run_many(cfgs, quiet=quiet, console=console)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in chosen:
        mine = [(job, outcomes[i].run_dir) for job, i in zip(jobs, index, strict=True)]
        mine = [(job, d) for job, d in mine if job.experiment == name]
        parts = [f"# {known[name]['title']}", ""]
        for component in dict.fromkeys(job.ablate for job, _ in mine if job.ablate):
            rows = [(job.label, d) for job, d in mine if job.ablate == component]
            key = json.loads((rows[0][1] / "run.json").read_text())["key"]
            table = ABLATIONS_DIR / f"{component}-{key}.md"
            write_comparison(component, [r[0] for r in rows], [r[1] for r in rows], table)
            parts.append(table.read_text())
        run_dirs = list(dict.fromkeys(d for _, d in mine))
        parts.append(tables.to_markdown(tables.build_table(tables.load_runs(run_dirs))))
        target = out / f"{name}.md"
        target.write_text("\n".join(parts))
        written.append(target)
    return written
