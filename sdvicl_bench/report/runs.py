"""Run folders as the tables read them: each results.json, and what a row reads off a run
(its task's rank, method, model, prompts, retrieval, metric scales, flattened config).

Shared by `tables` and the HTML report (`report.html`), so both order and name runs alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sdvicl_bench.errors import DataError
from sdvicl_bench.report.records import merged_into
from sdvicl_bench.settings import effect_of

TASK_ORDER = ("fgseg", "det", "semseg", "keypoints", "edges", "colorization")
SDVICL = "sdvicl"
"""`method.name` of this suite's SD-VICL (the source "ours"; other methods' rows: "method")."""


# ---------------------------------------------------------------------------------------
# Loading


def load_runs(paths: list[Path]) -> list[dict[str, Any]]:
    """The results.json of each run folder under `paths`, each with `run_dir` added.

    A path may be a run folder, a results.json file, or a folder holding run folders at any
    depth. Each run is read once (by resolved path), in sorted path order; a folder `merge`
    folded into another one still there (`records.merged_into`) is skipped. Raises DataError
    (one line) where a path is missing, holds no results.json, or one is unreadable.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise DataError(
                f"Run folder not found: {path}. Fix: pass a run folder or a folder of them "
                "(e.g. results/runs)."
            )
        if path.is_file():
            found = [path]
        elif (path / "results.json").is_file():
            found = [path / "results.json"]
        else:
            found = sorted(path.rglob("results.json"))
        if not found:
            raise DataError(
                f"No results.json under {path}. Fix: run `sdvicl-bench run ...` first or "
                "pass the folder that holds the runs."
            )
        files += found
    seen: set[Path] = set()
    runs = []
    for file in sorted(files, key=lambda f: str(f.resolve())):
        resolved = file.resolve()
        if resolved in seen or merged_into(file.parent) is not None:
            continue  # read once; a shard folder merged into another is part of that run
        seen.add(resolved)
        runs.append(_read_run(file))
    return runs


def _read_run(file: Path) -> dict[str, Any]:
    """One results.json, checked for the keys the tables need."""
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"Unreadable results file {file}: {reason}. Fix: rerun the run "
            "(it rewrites results.json) or remove the folder."
        ) from exc
    missing = [
        k
        for k in ("task", "n", "metrics", "baselines", "config")
        if not isinstance(data, dict) or k not in data
    ]
    if missing:
        raise DataError(
            f"{file} is not a run's results.json (missing {', '.join(missing)}). "
            "Fix: rerun the run or remove the folder."
        )
    data["run_dir"] = str(file.parent)
    return data


# ---------------------------------------------------------------------------------------
# What a row reads off a run


def task_rank(task: str) -> tuple[int, str]:
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def prompts_of(run: dict[str, Any]) -> int | None:
    cfg = run["config"]
    prompts = cfg.get("prompts")
    return prompts if prompts is not None else (cfg.get("task") or {}).get("prompts")


def model_of(run: dict[str, Any]) -> str:
    return str((run["config"].get("model") or {}).get("name", "?"))


def method_of(run: dict[str, Any]) -> str:
    """The run's method (`method.name`; runs from before the method axis are SD-VICL's)."""
    return str((run["config"].get("method") or {}).get("name", SDVICL))


def learner_of(run: dict[str, Any]) -> str:
    """What a row label names the run by: SD-VICL's model, or the other method."""
    method = method_of(run)
    return model_of(run) if method == SDVICL else method


def retrieval_of(run: dict[str, Any]) -> str:
    return str((run["config"].get("retrieval") or {}).get("name", "?"))


def run_sort_key(run: dict[str, Any]) -> tuple[bool, str, str, int, str, str]:
    return (
        method_of(run) != SDVICL,
        method_of(run),
        model_of(run),
        prompts_of(run) or 0,
        retrieval_of(run),
        run.get("run_dir", ""),
    )


def metric_specs(run: dict[str, Any]) -> dict[str, Any]:
    return (run["config"].get("task") or {}).get("metrics") or {}


def metric_scale(run: dict[str, Any], metric: str) -> float:
    spec = metric_specs(run).get(metric) or {}
    return float(spec.get("scale", 1))


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(cfg, dict):
        out: dict[str, Any] = {}
        for k, v in cfg.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: cfg}


def ignored(key: str) -> bool:
    """Whether config leaf `key` never changes a number (its declared effect is not
    `result`: speed, scope, output, scoring), so it does not tell runs apart. A setting not
    declared (an old run's) counts as changing numbers."""
    return effect_of(key) not in ("result", None)
