"""The run summary printed after `run`, `merge` and `rescore`: ours and the baselines.

One rich table per run: each metric's mean (scaled as the task YAML says), its 95%
bootstrap interval where the metric is per-sample, the mean of folds where the task has
folds; then the note (random or toy weights), the run folder and the picture grid. The
oracle (the GT through the pipeline) is the last row, set apart and dim: a ceiling, not a
competitor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sdvicl_bench.report.tables import count_phrase, partial_phrase
from sdvicl_bench.settings import effect_of, flatten
from sdvicl_bench.types import ORACLE, ORACLE_LABEL, competitors


def print_summary(results: dict[str, Any], run_dir: Path, console: Console) -> None:
    """A table of ours and the baselines, with n and the 95% interval; where the files are.

    Per metric: the mean (scaled as the task YAML says), its 95% bootstrap interval where the
    metric is per-sample, and the mean of folds where the task has folds. The title gives the
    episode count, per fold where the run has folds (`count_phrase`).
    """
    specs = results["config"]["task"].get("metrics") or {}
    title_of_method = (results.get("method") or {}).get("title") or "SD-VICL"
    rows = [(title_of_method, results["metrics"])] + [
        (f"baseline: {k}", v) for k, v in competitors(results["baselines"]).items()
    ]
    ceiling = results["baselines"].get(ORACLE)
    partial = partial_phrase(results)
    title = f"{results['task']} (v{results['task_version']}), {count_phrase(results)}"
    table = Table(title=title + (f" [bold yellow]{partial}[/]" if partial else ""))
    table.add_column("method")
    columns = []
    for metric in results["metrics"]:
        spec = specs.get(metric) or {}
        arrow = "↑" if spec.get("higher_is_better", True) else "↓"
        has_ci = "low" in results["metrics"][metric]["overall"]
        folds = results["metrics"][metric].get("mean_of_folds", float("nan"))
        has_folds = folds == folds
        table.add_column(f"{metric} {arrow}", justify="right")
        if has_ci:
            table.add_column("95% CI", justify="right")
        if has_folds:
            table.add_column("mean of folds", justify="right")
        columns.append((metric, float(spec.get("scale", 1)), has_ci, has_folds))

    def cells_of(name: str, block: dict[str, Any]) -> list[str]:
        cells = [name]
        for metric, scale, has_ci, has_folds in columns:
            o = (block.get(metric) or {}).get("overall") or {"mean": float("nan")}
            cells.append("n/a" if o["mean"] != o["mean"] else f"{scale * o['mean']:.4g}")
            if has_ci:
                ci = f"[{scale * o['low']:.3g}, {scale * o['high']:.3g}]" if "low" in o else "n/a"
                cells.append(ci)
            if has_folds:
                folds = (block.get(metric) or {}).get("mean_of_folds", float("nan"))
                cells.append("n/a" if folds != folds else f"{scale * folds:.4g}")
        return cells

    for name, block in rows:
        table.add_row(*cells_of(name, block))
    if ceiling is not None:  # last, below a rule and dim: a ceiling, not a competitor
        table.add_section()
        table.add_row(*cells_of(ORACLE_LABEL, ceiling), style="dim")
    console.print(table)
    if partial:
        console.print(
            f"[bold yellow]Note:[/] {partial}: the mean of folds is not the benchmark's number "
            "(run every fold with the same episode count for it)."
        )
    if results["note"]:
        console.print(f"[bold yellow]Note:[/] {results['note']}")
    speed = speed_only(results.get("config") or {})
    if speed:
        console.print(f"How it ran (speed only, no number depends on it): {speed}", style="dim")
    console.print(f"Run folder: {run_dir}")
    if (run_dir / "grid.png").exists():
        console.print(f"Pictures: {run_dir / 'grid.png'} (A | B | C | prediction | decoded | GT)")


def speed_only(config: dict[str, Any]) -> str:
    """The run's settings that change only speed (`settings.py`), as `name=value, ...`; of
    the groups its method uses (SD-VICL: sampler and model; another method: its own)."""
    sdvicl = (config.get("method") or {}).get("name", "sdvicl") == "sdvicl"
    unused = ("method.",) if sdvicl else ("sampler.", "model.")
    leaves = flatten(config)
    return ", ".join(
        f"{k}={v}"
        for k, v in leaves.items()
        if effect_of(k) == "speed" and not k.startswith(unused)
    )
