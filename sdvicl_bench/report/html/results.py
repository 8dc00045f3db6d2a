"""The task's tables as HTML: its runs, the results (wide: a column per metric; long: as
tables.md) and the per-fold and per-class breakdowns."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from sdvicl_bench.report import tables
from sdvicl_bench.report.formatting import PRINTED, fold_rank, format_number, num, printed_cells
from sdvicl_bench.report.html.common import _attr, _color, _esc
from sdvicl_bench.report.runs import metric_scale
from sdvicl_bench.types import competitors


def render_runs(runs: list[dict[str, Any]], infos: list[dict[str, Any]]) -> str:
    """The task's runs: short id (R1 ...), label, folder, key, episodes, note."""
    head = "<tr><th>run</th><th>method</th><th>folder</th><th>episodes</th><th>note</th></tr>"
    body = []
    for i, (run, info) in enumerate(zip(runs, infos, strict=True)):
        note = " ".join(p for p in (str(run.get("note") or ""), tables.partial_phrase(run)) if p)
        body.append(
            f'<tr><td class="rid" style="color:{_color(i)}">'
            f"{_esc(info['id'].upper())}</td><td>{_esc(info['label'])}</td>"
            f'<td class="mono" title="{_attr(run["run_dir"])}">{_esc(info["folder"])}</td>'
            f"<td>{_esc(tables.count_phrase(run))}</td><td>{_esc(note)}</td></tr>"
        )
    return f'<table class="runs">{head}{"".join(body)}</table>'


def _cells(rows: pd.DataFrame) -> list[dict[str, str]]:
    """The printed cells of `rows` (tables' own formatting), by column name."""
    names = [c for c, _ in PRINTED]
    return [dict(zip(names, cells, strict=True)) for cells in printed_cells(rows)]


def render_wide_table(rows: pd.DataFrame) -> str:
    """One row per method, a value and 95% interval per metric; n, prompts, note, source."""
    cells = _cells(rows)
    metrics = list(dict.fromkeys(c["metric"] for c in cells if c["metric"]))
    methods: dict[str, dict[str, Any]] = {}
    for c in cells:
        m = methods.setdefault(c["method"], {"cells": {}, "notes": [], "c": c})
        if c["metric"]:
            m["cells"][c["metric"]] = c
        if c["note"] and c["note"] not in m["notes"]:
            m["notes"].append(c["note"])
    has_ci = {m: any(c["ci"] for c in cells if c["metric"] == m) for m in metrics}
    head = "".join(f'<th colspan="{1 + has_ci[m]}">{_esc(m)}</th>' for m in metrics)
    sub = "".join("<th>value</th>" + ("<th>95% CI</th>" if has_ci[m] else "") for m in metrics)
    lines = [
        '<table class="results wide"><thead>',
        f"<tr><th rowspan=2>method</th>{head}<th rowspan=2>n</th><th rowspan=2>prompts</th>"
        "<th rowspan=2>note</th><th rowspan=2>source</th></tr>",
        f"<tr>{sub}</tr></thead><tbody>",
    ]
    previous = ""
    for method, m in methods.items():
        first = m["c"]
        split = " split" if first["source"] == tables.CEILING and previous != tables.CEILING else ""
        previous = first["source"]
        tds = []
        for metric in metrics:
            c = m["cells"].get(metric)
            ci = f'<td class="ci">{_esc(c["ci"]) if c else ""}</td>' if has_ci[metric] else ""
            if c is None:
                tds.append(f'<td class="num"></td>{ci}')
                continue
            tds.append(
                f'<td class="num" data-metric="{_attr(metric)}" title="{_attr(_tip(c))}">'
                f"{_esc(c['value'])}</td>{ci}"
            )
        lines.append(
            f'<tr class="src-{_attr(first["source"])}{split}" data-method="{_attr(method)}">'
            f"<td>{_esc(method)}</td>{''.join(tds)}<td class=num>{_esc(first['n'])}</td>"
            f"<td class=num>{_esc(first['prompts'])}</td><td>{_esc('; '.join(m['notes']))}</td>"
            f"<td>{_esc(first['source'])}</td></tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _tip(cell: dict[str, str]) -> str:
    """A value cell's tooltip: per-episode mean and folds where there are."""
    parts = []
    if cell["episode_mean"]:
        parts.append(f"per-episode mean {cell['episode_mean']}")
    if cell["folds"]:
        parts.append(f"folds {cell['folds']}")
    return "; ".join(parts)


def render_long_table(rows: pd.DataFrame) -> str:
    """The long table of the task, every printed column (as tables.md)."""
    head = "".join(f"<th>{_esc(h)}</th>" for c, h in PRINTED if c != "task")
    body = []
    for c in _cells(rows):
        tds = "".join(
            f'<td class="{"num" if k in ("value", "episode_mean", "n", "prompts") else ""}">'
            f"{_esc(c[k])}</td>"
            for k, _ in PRINTED
            if k != "task"
        )
        body.append(f'<tr class="src-{_attr(c["source"])}">{tds}</tr>')
    return f'<table class="results long"><tr>{head}</tr>{"".join(body)}</table>'


# ---------------------------------------------------------------------------------------
# Breakdowns


def _blocks_of(run: dict[str, Any], label: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(row label, metric, block) of a run's metrics, then its baselines and oracle."""
    out = [(label, m, b) for m, b in run["metrics"].items() if isinstance(b, dict)]
    for name, blocks in run["baselines"].items():
        shown = f"baseline: {name}" if name in competitors(run["baselines"]) else "oracle"
        out += [(shown, m, b) for m, b in (blocks or {}).items() if isinstance(b, dict)]
    return out


def render_breakdowns(runs: list[dict[str, Any]], infos: list[dict[str, Any]]) -> str:
    """Per-fold and per-class tables of the task, where results.json has them. Rows the
    same in several runs (a baseline on the same episodes) are shown once, "R1, R2"."""
    fold_rows: dict[str, list[Any]] = {}
    class_rows: dict[str, list[Any]] = {}
    for run, info in zip(runs, infos, strict=True):
        rid = info["id"].upper()
        for label, metric, block in _blocks_of(run, "result"):
            scale = metric_scale(run, metric)
            for part, found in (("per_fold", fold_rows), ("per_class", class_rows)):
                if not block.get(part):
                    continue
                same = json.dumps([label, metric, scale, block], sort_keys=True, default=str)
                if same in found:
                    found[same][0].append(rid)
                else:
                    found[same] = [[rid], label, metric, block, scale]
    parts = []
    if fold_rows:
        parts.append(_fold_table(sorted(fold_rows.values(), key=_row_rank)))
    if class_rows:
        parts.append(_class_table(sorted(class_rows.values(), key=_row_rank)))
    if not parts:
        return ""
    return "<h3>Breakdowns</h3>" + "\n".join(parts)


def _row_rank(row: list[Any]) -> int:
    """Breakdown rows: the runs' results, then baselines, then the oracle (stable)."""
    label = row[1]
    return 0 if label == "result" else 2 if label == "oracle" else 1


def _fold_table(rows: list[list[Any]]) -> str:
    """Per-fold means (n in the tooltip), the mean of folds and the per-episode mean."""
    folds = sorted({g for *_, block, _ in rows for g in block["per_fold"]}, key=fold_rank)
    head = "".join(f"<th>fold {_esc(g)}</th>" for g in folds)
    body = []
    for rids, label, metric, block, scale in rows:
        rid = ", ".join(rids)
        tds = []
        for g in folds:
            b = block["per_fold"].get(g) or {}
            tip = f"n = {b.get('n', '')}"
            if "low" in b:
                low = format_number(scale * num(b.get("low")), scale)
                high = format_number(scale * num(b.get("high")), scale)
                tip += f", 95% CI [{low}, {high}]"
            value = format_number(scale * num(b.get("mean")), scale)
            tds.append(f'<td class="num" title="{_attr(tip)}">{value if b else ""}</td>')
        mof = format_number(scale * tables.mean_of_folds(block), scale)
        overall = num((block.get("overall") or {}).get("mean"))
        body.append(
            f"<tr><td>{_esc(rid)}</td><td>{_esc(label)}</td><td>{_esc(metric)}</td>"
            f"{''.join(tds)}<td class=num>{mof}</td>"
            f"<td class=num>{format_number(scale * overall, scale)}</td></tr>"
        )
    return (
        '<h4>Per fold (group)</h4><table class="breakdown folds"><tr><th>run</th><th>row</th>'
        f"<th>metric</th>{head}<th>mean of folds</th><th>all episodes</th></tr>"
        f"{''.join(body)}</table>"
    )


def _class_table(rows: list[list[Any]]) -> str:
    """Per-class values: one column per class, one row per (run, row, metric)."""
    classes = list(dict.fromkeys(c for *_, block, _ in rows for c in block["per_class"]))
    head = "".join(f"<th>{_esc(c)}</th>" for c in classes)
    body = []
    for rids, label, metric, block, scale in rows:
        rid = ", ".join(rids)
        tds = "".join(
            f'<td class="num">{_esc(_scaled(block["per_class"].get(c), scale))}</td>'
            for c in classes
        )
        body.append(
            f"<tr><td>{_esc(rid)}</td><td>{_esc(label)}</td><td>{_esc(metric)}</td>{tds}</tr>"
        )
    return (
        '<h4>Per class</h4><div class="scroll"><table class="breakdown classes"><tr><th>run'
        f"</th><th>row</th><th>metric</th>{head}</tr>{''.join(body)}</table></div>"
    )


def _scaled(value: Any, scale: float) -> str:
    """A stored value formatted as the tables do ("" where absent)."""
    if value is None:
        return ""
    return format_number(scale * num(value), scale)
