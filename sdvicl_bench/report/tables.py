"""Result tables rebuilt from run folders alone (ARCHITECTURE.md rule 5; TASKS.md section 8).

A pure function of the `results.json` files: no model, no data set, no optional dependency
(Markdown and LaTeX are formatted by hand; pandas' own writers would need tabulate/jinja2).
Reading the run folders and a run's fields is `report.runs`; how numbers and cells print
(shared with the HTML report) is `report.formatting`.

The table is in long format, one row per (task, method, metric), with the columns

    task, method, metric, value, episode_mean, ci, folds, n, prompts, note, source, scale

- `value`: the task's headline number, already multiplied by the metric's `scale` (100 for
  IoU-like metrics, so it reads in points); NaN where there is none (printed "n/a"). For
  fgseg (`MEAN_OF_FOLDS_TASKS`) it is the mean of the per-fold means, as TASKS.md 1 and
  the reference numbers define Pascal-5i mIoU; elsewhere the mean over episodes (det's VP
  numbers are, TASKS.md 2), or the set-level value.
- `episode_mean`: the mean over all episodes (scaled), printed "per-episode mean", where
  the metric is per-episode (it has a bootstrap interval) and the row has a per-fold
  breakdown; NaN (printed "") elsewhere (pooled metrics such as class_miou) and for
  references.
- `ci`: the 95% bootstrap interval "[low, high]" of the per-episode mean (scaled,
  formatted); "" for set-level metrics and references.
- `folds`: per-fold means "a / b / c / d" (scaled, formatted) where the task has folds;
  the references' own per-fold numbers where they state them.
- `n`: episodes the mean is over (the metric's finite count); empty for references.
- `prompts`: n prompt pairs per episode; for references, the prompts of the source (empty
  where the source does not state it: printed "n/a", note "prompts not stated").
- `note`: "random weights" (a random test model), "toy model (docs/TOY.md)", "prompts not
  stated", "prompts inferred", "protocol differs: <what the source did>"
  (`protocol_differences`), the text of a relative claim, or (oracle rows) the sampler
  side the ceiling was computed at.
- `source`: "ours" (SD-VICL), "method" (another in-context learner run on the same
  episodes, `method=`), "baseline", "reference" or "ceiling" (the oracle: never a baseline).
- `scale`: the factor applied to `value` (kept for formatting: 2 decimals where it is not 1,
  4 significant digits otherwise). Not printed.

Rows are ordered by task (fgseg, det, semseg, keypoints, edges, colorization, then any other
task alphabetically), then ours and the other methods' runs side by side (SD-VICL first,
then by method, model, prompts, retrieval, folder), then the
baselines of each run in that order, then the references, then, last and set apart (LaTeX: a
rule above), each run's oracle row (`types.ORACLE`: the GT through the pipeline, the task's
ceiling, not a competitor). Within a row group, metrics keep the order of results.json (the
task YAML's order).

Methods: "SD-VICL (<model>, n=<prompts>, <retrieval>)" for a run, "<title> (<method>,
n=<prompts>, <retrieval>)" for another method's run (e.g. "SegGPT (seggpt, n=1, clip_knn)"),
"baseline: <name>" for
its baselines, `types.ORACLE_LABEL` ("oracle (GT through the pipeline: ceiling)") for its
oracle, the reference's `source` for an absolute reference. Where two rows of a task would
carry the same method and metric (e.g. ablation runs, or the same baseline under several
runs), the config values that differ among those runs are appended,
"SD-VICL (sd15, n=5, clip_knn; sampler.adain.enabled=False)"; baselines and oracles first
get their run's "(sd15, n=5, clip_knn)"; the run key where nothing (or too much) differs.

Relative claims (TASKS.md section 8: keypoints, edges, and the paper's deltas elsewhere)
have no absolute number: each is one row, method "paper: relative claim", metric empty (the
claim names its own), value n/a, the claim in `note`. A task with neither references nor
claims gets one row "reference: none known" with value n/a.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from sdvicl_bench.report.formatting import (
    PRINTED,
    fold_rank,
    format_number,
    latex_escape,
    num,
    printed_cells,
    shown,
)
from sdvicl_bench.report.reference import reference_numbers, references_for
from sdvicl_bench.report.runs import (
    SDVICL,
    flatten,
    ignored,
    learner_of,
    load_runs,
    method_of,
    metric_scale,
    model_of,
    prompts_of,
    retrieval_of,
    run_sort_key,
    task_rank,
)
from sdvicl_bench.types import ORACLE, ORACLE_LABEL, competitors

MEAN_OF_FOLDS_TASKS = frozenset({"fgseg"})
"""Tasks whose headline is the mean of the per-fold means (TASKS.md 1: Pascal-5i mIoU)."""
FOLDS_IN_FULL = {"fgseg": 4}
"""How many folds a complete run of a task has (Pascal-5i: 4); a task with folds not listed
here is complete with the folds its config names."""
COLUMNS = (
    "task",
    "method",
    "metric",
    "value",
    "episode_mean",
    "ci",
    "folds",
    "n",
    "prompts",
    "note",
    "source",
    "scale",
)
MODEL_NOTES = {"sd15": "", "sd21": "", "sdxl": "", "toy": "toy model (docs/TOY.md)"}
"""The note of an SD-VICL row by its model: none for real weights, "random weights" for any
model not listed (tiny, sd15-random, ...)."""
CEILING = "ceiling"
"""The `source` of oracle rows (a ceiling, not a baseline: never the best baseline)."""
RELATIVE_METHOD = "paper: relative claim"
NONE_METHOD = "reference: none known"


# ---------------------------------------------------------------------------------------
# Building


def build_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """The long-format table of `runs` (see the module docstring for columns and order)."""
    tasks = sorted({r["task"] for r in runs}, key=task_rank)
    rows: list[dict[str, Any]] = []
    for task in tasks:
        task_runs = sorted((r for r in runs if r["task"] == task), key=run_sort_key)
        ours: list[tuple[dict[str, Any], dict[str, Any]]] = []
        baselines: list[tuple[dict[str, Any], dict[str, Any]]] = []
        ceilings: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for run in task_runs:
            ours += [(run, row) for row in _run_rows(run)]
            baselines += [(run, row) for row in _baseline_rows(run)]
            ceilings += [(run, row) for row in _ceiling_rows(run)]
        for group in (ours, baselines, ceilings):
            _disambiguate(group)
        rows += [row for _, row in ours] + [row for _, row in baselines]
        rows += _reference_rows(task, task_runs)
        rows += [row for _, row in ceilings]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["n"] = df["n"].astype("Int64")
    df["prompts"] = df["prompts"].astype("Int64")
    df["value"] = df["value"].astype(float)
    df["episode_mean"] = df["episode_mean"].astype(float)
    df["scale"] = df["scale"].astype(float)
    return df


def _blocks_rows(
    run: dict[str, Any], blocks: dict[str, Any], method: str, source: str, note: str
) -> list[dict[str, Any]]:
    """One row per metric of a {metric: {"overall", "per_fold"?, ...}} block."""
    rows = []
    for metric, block in blocks.items():
        scale = metric_scale(run, metric)
        overall = block.get("overall") or {}
        mean = num(overall.get("mean"))
        low, high = num(overall.get("low")), num(overall.get("high"))
        ci = ""
        if not math.isnan(low) and not math.isnan(high):
            ci = f"[{format_number(scale * low, scale)}, {format_number(scale * high, scale)}]"
        per_fold = block.get("per_fold") or {}
        folds = " / ".join(
            format_number(scale * num(per_fold[g].get("mean")), scale)
            for g in sorted(per_fold, key=fold_rank)
        )
        value = mean_of_folds(block) if run["task"] in MEAN_OF_FOLDS_TASKS else mean
        n = overall.get("n", run.get("n"))
        rows.append(
            {
                "task": run["task"],
                "method": method,
                "metric": metric,
                "value": scale * value,
                "episode_mean": scale * mean if per_fold and "low" in overall else float("nan"),
                "ci": ci,
                "folds": folds,
                "n": n,
                "prompts": prompts_of(run),
                "note": note,
                "source": source,
                "scale": scale,
            }
        )
    return rows


def mean_of_folds(block: dict[str, Any]) -> float:
    """The mean of the per-fold means of a metric block (results.json's `mean_of_folds`, or
    computed from `per_fold` for older files); the overall mean where there are no folds."""
    stored = num(block.get("mean_of_folds"))
    if not math.isnan(stored):
        return stored
    means = [num(f.get("mean")) for f in (block.get("per_fold") or {}).values()]
    means = [m for m in means if not math.isnan(m)]
    if means:
        return sum(means) / len(means)
    return num((block.get("overall") or {}).get("mean"))


def count_phrase(results: dict[str, Any]) -> str:
    """How many episodes a run's numbers rest on: "n = 32", "n = 8 per fold (4 folds)" where
    every fold (keypoints: group) has the same count, else "n = 30 (fold 0: 8, 1: 7, ...)".
    Counts are the per_fold `n` of the first per-sample metric of results.json."""
    blocks = (results.get("metrics") or {}).values()
    per_fold = next((b["per_fold"] for b in blocks if b.get("per_fold")), {})
    counts = {g: int(per_fold[g].get("n", 0)) for g in sorted(per_fold, key=fold_rank)}
    if not counts:
        return f"n = {results['n']}"
    task = (results.get("config") or {}).get("task") or {}
    word = "fold" if task.get("folds") else "group"
    if len(set(counts.values())) == 1:
        plural = "s" if len(counts) > 1 else ""
        return f"n = {next(iter(counts.values()))} per {word} ({len(counts)} {word}{plural})"
    listed = ", ".join(f"{g}: {c}" for g, c in counts.items())
    return f"n = {results['n']} ({word} {listed})"


def partial_phrase(results: dict[str, Any]) -> str:
    """The partial-run marker of a task with folds (`config.task.folds`, `FOLDS_IN_FULL`).

    "partial: 1 of 4 folds" where episodes cover fewer folds than a complete run; "partial:
    unequal folds (0: 8, 1: 7)" where the folds hold different episode counts (the mean of
    folds then weighs episodes unequally); "" for a complete run and for tasks without folds
    (keypoints' clothes-type groups are breakdowns of the overall mean, not folds)."""
    task = (results.get("config") or {}).get("task") or {}
    if not task.get("folds") and results.get("task") not in FOLDS_IN_FULL:
        return ""
    blocks = (results.get("metrics") or {}).values()
    per_fold = next((b["per_fold"] for b in blocks if b.get("per_fold")), {})
    counts = {g: int(per_fold[g].get("n", 0)) for g in sorted(per_fold, key=fold_rank)}
    if not counts:
        return ""
    present = sum(1 for c in counts.values() if c > 0)
    total = max(
        FOLDS_IN_FULL.get(results.get("task", ""), 0), len(task.get("folds") or ()), present
    )
    if present < total:
        return f"partial: {present} of {total} folds"
    if len(set(counts.values())) > 1:
        return "partial: unequal folds (" + ", ".join(f"{g}: {c}" for g, c in counts.items()) + ")"
    return ""


def _notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _run_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    context = f"{learner_of(run)}, n={prompts_of(run)}, {retrieval_of(run)}"
    if method_of(run) == SDVICL:
        note = MODEL_NOTES.get(model_of(run), "random weights")
        source, title = "ours", "SD-VICL"
    else:
        record = run.get("method") or {}
        note = "random weights" if record.get("kind") == "random" else ""
        source, title = "method", str(record.get("title") or method_of(run))
    method, notes = f"{title} ({context})", _notes(note, partial_phrase(run))
    return _blocks_rows(run, run["metrics"], method, source, notes)


def _baseline_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    partial = partial_phrase(run)
    for name, blocks in competitors(run["baselines"]).items():
        rows += _blocks_rows(run, blocks, f"baseline: {name}", "baseline", partial)
    return rows


def _ceiling_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's oracle rows (none for a run made before the oracle existed)."""
    blocks = run["baselines"].get(ORACLE)
    if not blocks:
        return []
    side = (run["config"].get("sampler") or {}).get("resolution")
    note = f"GT at the sampler's {side} px, no VAE" if side else "no VAE"
    return _blocks_rows(run, blocks, ORACLE_LABEL, CEILING, _notes(note, partial_phrase(run)))


def _reference_rows(task: str, task_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task's absolute references, then one row per relative claim (value n/a)."""
    info = reference_numbers().get(task) or {}
    metric = info.get("metric") or (next(iter(task_runs[0]["metrics"]), "") if task_runs else "")
    scale = max((metric_scale(run, metric) for run in task_runs), default=1.0)
    base = {
        "task": task,
        "metric": metric,
        "episode_mean": float("nan"),
        "ci": "",
        "n": None,
        "source": "reference",
    }
    rows = []
    for entry in references_for(task):
        if "value" not in entry:
            continue
        notes = []
        if entry.get("prompts") is None:
            notes.append("prompts not stated")
        elif entry.get("prompts_inferred"):
            notes.append("prompts inferred")
        differs = protocol_note(entry, task_runs)
        if differs:
            notes.append(differs)
        folds = " / ".join(format_number(float(v), scale) for v in entry.get("folds") or [])
        rows.append(
            {
                **base,
                "method": str(entry["source"]),
                "value": num(entry["value"]),
                "folds": folds,
                "prompts": entry.get("prompts"),
                "note": "; ".join(notes),
                "scale": scale,
            }
        )
    for claim in info.get("relative") or []:
        rows.append(
            {
                **base,
                "metric": "",  # a claim may be about any metric: its text says which
                "method": RELATIVE_METHOD,
                "value": float("nan"),
                "folds": "",
                "prompts": None,
                "note": str(claim),
                "scale": scale,
            }
        )
    if not rows:
        rows.append(
            {
                **base,
                "method": NONE_METHOD,
                "value": float("nan"),
                "folds": "",
                "prompts": None,
                "note": "",
                "scale": scale,
            }
        )
    return rows


def protocol_differences(entry: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """What in a reference's protocol differs from one run's (reference_numbers.yaml).

    Its fixed `differs` reasons (what no run of this suite can match; `protocol_differs:
    true` alone gives "see reference_numbers.yaml"), then each `protocol` setting
    ({config path: the source's value}) the run's resolved config does not share, as
    "<name>=<the source's value>" (a path the config lacks reads as null).
    """
    reasons = [str(r) for r in entry.get("differs") or []]
    if entry.get("protocol_differs") and not reasons:
        reasons.append("see reference_numbers.yaml")
    for path, value in (entry.get("protocol") or {}).items():
        if _config_value(run["config"], path) != value:
            reasons.append(f"{_setting_name(path)}={shown(path, value)}")
    return reasons


def protocol_note(entry: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """A reference row's protocol note: "protocol differs: ..." where its protocol differs
    from every run of the table (the union of `protocol_differences`, in the yaml's order),
    "protocol differs from k of m runs: ..." where some runs match it, "" where all do."""
    per_run = [protocol_differences(entry, run) for run in runs]
    differing = [d for d in per_run if d]
    if not differing:
        return ""
    reasons = list(dict.fromkeys(r for d in differing for r in d))
    scope = "" if len(differing) == len(runs) else f" from {len(differing)} of {len(runs)} runs"
    return f"protocol differs{scope}: {', '.join(reasons)}"


def _config_value(cfg: dict[str, Any], path: str) -> Any:
    """A dotted path's value in a resolved config dict; None where any part is missing."""
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _setting_name(path: str) -> str:
    """A config path as a note names it: its last part ("score_size"), "retrieval" for
    "retrieval.name"."""
    parts = path.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def _disambiguate(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Append what tells runs apart to methods that repeat within one metric (in place).

    First (baselines) the run's "<model>, n=<prompts>, <retrieval>"; where that still
    repeats, the config values that differ (at most 3 keys present in every run's config),
    else the run key.
    """
    for group in _repeats(pairs):
        for run, row in group:
            if row["source"] in ("baseline", CEILING):
                context = f"{learner_of(run)}, n={prompts_of(run)}, {retrieval_of(run)}"
                row["method"] = f"{row['method']} ({context})"
    for group in _repeats(pairs):
        flats = [flatten(run["config"]) for run, _ in group]
        common = set.intersection(*(set(f) for f in flats))
        differing = [
            k
            for k in sorted(common)
            if not ignored(k) and len({json.dumps(f[k], sort_keys=True) for f in flats}) > 1
        ]
        for (run, row), flat in zip(group, flats, strict=True):
            if differing and len(differing) <= 3:
                extra = ", ".join(f"{k}={shown(k, flat[k])}" for k in differing)
            else:
                extra = f"run {run.get('key') or Path(run.get('run_dir', '')).name}"
            label = row["method"]
            if label.endswith(")"):
                row["method"] = f"{label[:-1]}; {extra})"
            else:
                row["method"] = f"{label} ({extra})"


def _repeats(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> list[list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Groups of (run, row) whose (method, metric) repeats."""
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for run, row in pairs:
        groups.setdefault((row["method"], row["metric"]), []).append((run, row))
    return [g for g in groups.values() if len(g) > 1]


# ---------------------------------------------------------------------------------------
# Formatting


def to_markdown(df: pd.DataFrame) -> str:
    """A Markdown pipe table of the printed columns (numbers right-aligned)."""
    right = {"value", "episode_mean", "n", "prompts"}
    header = "| " + " | ".join(h for _, h in PRINTED) + " |"
    rule = "|" + "|".join("---:" if c in right else "---" for c, _ in PRINTED) + "|"
    lines = [header, rule]
    for cells in printed_cells(df):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(df: pd.DataFrame) -> str:
    """CSV of every column with full-precision values; "n/a" where a value is missing."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in df.itertuples(index=False):
        r = row._asdict()
        cells = []
        for col in COLUMNS:
            value = r[col]
            if col in ("value", "episode_mean"):
                blank = "n/a" if col == "value" else ""
                cells.append(blank if math.isnan(value) else repr(float(value)))
            elif col in ("n", "prompts"):
                cells.append("" if pd.isna(value) else str(int(value)))
            elif col == "scale":
                cells.append(f"{value:g}")
            else:
                cells.append("" if value is None else str(value))
        writer.writerow(cells)
    return buf.getvalue()


def to_latex(df: pd.DataFrame) -> str:
    """A LaTeX tabular (no packages needed) of the printed columns."""
    right = {"value", "episode_mean", "n", "prompts"}
    spec = "".join("r" if c in right else "l" for c, _ in PRINTED)
    lines = [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\hline",
        " & ".join(latex_escape(h) for _, h in PRINTED) + " \\\\",
        "\\hline",
    ]
    previous = None
    for cells, task, source in zip(printed_cells(df), df["task"], df["source"], strict=True):
        new_task = previous is not None and task != previous[0]
        ceiling_starts = previous is not None and source == CEILING and previous[1] != CEILING
        if new_task or ceiling_starts:  # oracle rows set apart: a ceiling, not a competitor
            lines.append("\\hline")
        previous = (task, source)
        lines.append(" & ".join(latex_escape(c) for c in cells) + " \\\\")
    lines += ["\\hline", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_tables(runs_paths: list[Path], out_dir: Path) -> list[Path]:
    """Write tables.md, tables.csv and tables.tex (all tasks) into `out_dir`; their paths."""
    df = build_table(load_runs([Path(p) for p in runs_paths]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in (
        ("tables.md", to_markdown),
        ("tables.csv", to_csv),
        ("tables.tex", to_latex),
    ):
        path = out_dir / name
        path.write_text(render(df))
        written.append(path)
    return written
