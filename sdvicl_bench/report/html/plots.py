"""The task's plots, as inline SVG: values with intervals, score histograms, and the
value against the number of prompts."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pandas as pd

from sdvicl_bench.report import tables
from sdvicl_bench.report.formatting import num
from sdvicl_bench.report.html.common import _attr, _color, _esc
from sdvicl_bench.report.runs import (
    flatten,
    ignored,
    learner_of,
    metric_scale,
    prompts_of,
    retrieval_of,
)

BINS = 20
"""Bars of a score histogram."""
SOURCE_COLORS = {
    "ours": "#1f77b4",
    "method": "#9467bd",
    "baseline": "#7f7f7f",
    "reference": "#2ca02c",
    "ceiling": "#d62728",
}


def render_plots(rows: pd.DataFrame, runs: list[dict[str, Any]], data: dict[str, Any]) -> str:
    """The task's plots: values with intervals, score histograms, the prompts curve."""
    parts = [forest_plot(rows, metric) for metric in _plotted_metrics(rows)]
    parts += [histograms(data, metric) for metric in data["metrics"]]
    curve = prompts_curve(runs, rows)
    if curve:
        parts.append(curve)
    parts = [p for p in parts if p]
    if not parts:
        return ""
    return '<h3>Plots</h3><div class="plots">' + "\n".join(parts) + "</div>"


def _plotted_metrics(rows: pd.DataFrame) -> list[str]:
    return [m for m in dict.fromkeys(rows["metric"]) if m]


def _ci_bounds(ci: str) -> tuple[float, float] | None:
    """(low, high) of a table's "[low, high]" cell; None where there is none."""
    match = re.fullmatch(r"\[(.+), (.+)\]", ci or "")
    if not match:
        return None
    low, high = num(match.group(1)), num(match.group(2))
    return None if math.isnan(low) or math.isnan(high) else (low, high)


def forest_plot(rows: pd.DataFrame, metric: str) -> str:
    """Dots (value) and whiskers (95% interval of the per-episode mean) of every row of
    `metric` with a value, coloured by source (ours, method, baseline, reference,
    ceiling)."""
    points = []
    for r in rows[rows["metric"] == metric].itertuples(index=False):
        value = num(r.value)
        if math.isnan(value):
            continue
        points.append((str(r.method), value, _ci_bounds(str(r.ci)), str(r.source)))
    if not points:
        return ""
    lo = min(min(v, *(ci or (v,))) for _, v, ci, _ in points)
    hi = max(max(v, *(ci or (v,))) for _, v, ci, _ in points)
    lo, hi = _nice_range(lo, hi)
    left, width, row_h = 390, 300, 18
    height = 34 + row_h * len(points)
    svg = [_svg_open(left + width + 20, height, f"{metric}: value and 95% CI")]
    svg.append(_text(left + width / 2, 12, f"{metric} (value, whiskers: 95% CI)", "middle", 11))
    svg += _x_axis(left, width, lo, hi, height - 16)
    for i, (label, value, ci, source) in enumerate(points):
        y = 24 + i * row_h + row_h / 2
        color = SOURCE_COLORS.get(source, "#333")
        short = _middle(label, 64)
        svg.append(f"<g><title>{_esc(label)}: {value:g}</title>")
        svg.append(_text(left - 6, y + 4, short, "end", 10))
        if ci is not None:
            x0, x1 = _x(ci[0], lo, hi, left, width), _x(ci[1], lo, hi, left, width)
            svg.append(
                f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        cx = _x(value, lo, hi, left, width)
        svg.append(f'<circle cx="{cx:.1f}" cy="{y:.1f}" r="4" fill="{color}"/></g>')
    svg.append("</svg>")
    return f'<figure class="plot">{"".join(svg)}</figure>'


def histograms(data: dict[str, Any], metric: str) -> str:
    """A histogram of each run's per-episode `metric` (same bins), with its mean."""
    runs = data["runs"]
    values = [
        [_finite(cell["s"].get(metric)) for e in data["episodes"] if (cell := e["r"][i])]
        for i in range(len(runs))
    ]
    values = [[v for v in vs if v is not None] for vs in values]
    if not any(values):
        return ""
    scale = next((r["scale"].get(metric, 1.0) for r in runs), 1.0)
    every = [v * scale for vs in values for v in vs]
    lo, hi = min(every), max(every)
    if scale == 100 and lo >= 0 and hi <= 100:
        lo, hi = 0.0, 100.0
    lo, hi = _nice_range(lo, hi)
    panels = []
    for i, vs in enumerate(values):
        if vs:
            panels.append(_histogram_panel(runs[i], [v * scale for v in vs], lo, hi, i, metric))
    return f'<figure class="plot hist">{"".join(panels)}</figure>'


def _histogram_panel(
    run: dict[str, Any], values: list[float], lo: float, hi: float, index: int, metric: str
) -> str:
    """One run's histogram: BINS bars over [lo, hi], the mean as a dashed line."""
    left, width, height, top = 30, 240, 150, 30
    counts = [0] * BINS
    for v in values:
        b = min(BINS - 1, max(0, int((v - lo) / (hi - lo) * BINS))) if hi > lo else 0
        counts[b] += 1
    peak = max(counts) or 1
    plot_h = height - top - 22
    color = _color(index)
    svg = [_svg_open(left + width + 10, height, f"{run['id']} {metric} histogram")]
    mean = sum(values) / len(values)
    title = f"{run['id'].upper()} {metric}: n={len(values)}, mean {mean:.4g}"
    svg.append(_text(left + width / 2, 12, title, "middle", 11))
    svg.append(_text(left + width / 2, 24, _middle(run["label"], 56), "middle", 9))
    bar_w = width / BINS
    for b, count in enumerate(counts):
        if count:
            h = plot_h * count / peak
            svg.append(
                f'<rect x="{left + b * bar_w + 0.5:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{count}</title></rect>"
            )
    mx = _x(mean, lo, hi, left, width)
    svg.append(
        f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#000" '
        'stroke-dasharray="3,2"/>'
    )
    svg.append(_text(left - 4, top + 8, str(peak), "end", 9))
    svg += _x_axis(left, width, lo, hi, top + plot_h)
    svg.append("</svg>")
    return "".join(svg)


def prompts_curve(runs: list[dict[str, Any]], rows: pd.DataFrame) -> str:
    """Value against n prompts per series of runs that differ only in prompts (one plot
    per metric with a per-episode interval); "" where no series has two prompt counts."""
    series = _prompt_series(runs)
    if not series:
        return ""
    metrics = [m for m in dict.fromkeys(m for r in runs for m in r["metrics"])]
    plots = []
    for metric in metrics:
        lines = []
        for name, members in series.items():
            points = []
            for run in members:
                block = run["metrics"].get(metric) or {}
                scale = metric_scale(run, metric)
                if run["task"] in tables.MEAN_OF_FOLDS_TASKS:
                    value = tables.mean_of_folds(block)
                else:
                    value = num((block.get("overall") or {}).get("mean"))
                overall = block.get("overall") or {}
                low, high = num(overall.get("low")), num(overall.get("high"))
                ci = None if math.isnan(low) else (scale * low, scale * high)
                if not math.isnan(value):
                    points.append((prompts_of(run) or 0, scale * value, ci))
            if len(points) > 1:
                lines.append((name, sorted(points)))
        if lines:
            plots.append(_curve_svg(metric, lines))
    return "".join(plots)


def _prompt_series(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs grouped by everything that changes a number but the prompt count; only groups
    with two or more prompt counts. Names: "<learner>, <retrieval>" (the run key's
    settings where two series would share one)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        flat = flatten(run["config"])
        kept = {
            k: v for k, v in flat.items() if k not in ("prompts", "task.prompts") and not ignored(k)
        }
        groups.setdefault(json.dumps(kept, sort_keys=True, default=str), []).append(run)
    named: dict[str, list[dict[str, Any]]] = {}
    for members in groups.values():
        if len({prompts_of(r) for r in members}) < 2:
            continue
        first = members[0]
        name = f"{learner_of(first)}, {retrieval_of(first)}"
        if name in named:
            name = f"{name} ({first.get('key', len(named))})"
        named[name] = members
    return named


def _curve_svg(metric: str, lines: list[tuple[str, list[tuple[int, float, Any]]]]) -> str:
    """Lines of value against n prompts, whiskers at the 95% interval."""
    xs = sorted({p for _, pts in lines for p, _, _ in pts})
    ys = [y for _, pts in lines for _, v, ci in pts for y in (v, *(ci or ()))]
    lo, hi = _nice_range(min(ys), max(ys))
    left, width, top, plot_h = 44, 300, 26, 160
    height = top + plot_h + 40 + 14 * len(lines)
    svg = [_svg_open(left + width + 30, height, f"{metric} against n prompts")]
    svg.append(_text(left + width / 2, 14, f"{metric} against n prompts", "middle", 11))

    def px(n: int) -> float:
        return left + (width * xs.index(n) / (len(xs) - 1) if len(xs) > 1 else width / 2)

    def py(v: float) -> float:
        return top + plot_h - (v - lo) / (hi - lo) * plot_h if hi > lo else top + plot_h / 2

    for tick in _ticks(lo, hi):
        svg.append(_text(left - 4, py(tick) + 3, f"{tick:.4g}", "end", 9))
        svg.append(
            f'<line x1="{left}" x2="{left + width}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" '
            'stroke="#ddd"/>'
        )
    for n in xs:
        svg.append(_text(px(n), top + plot_h + 14, f"n={n}", "middle", 10))
    for i, (name, pts) in enumerate(lines):
        color = _color(i)
        path = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v, _ in pts)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for n, v, ci in pts:
            if ci is not None:
                svg.append(
                    f'<line x1="{px(n):.1f}" x2="{px(n):.1f}" y1="{py(ci[0]):.1f}" '
                    f'y2="{py(ci[1]):.1f}" stroke="{color}"/>'
                )
            svg.append(
                f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3.5" fill="{color}">'
                f"<title>{_esc(name)}, n={n}: {v:.4g}</title></circle>"
            )
        y = top + plot_h + 32 + 14 * i
        svg.append(f'<rect x="{left}" y="{y - 8}" width="10" height="10" fill="{color}"/>')
        svg.append(_text(left + 14, y + 1, name, "start", 10))
    svg.append("</svg>")
    return f'<figure class="plot">{"".join(svg)}</figure>'


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    """[lo, hi] widened to round numbers (`_nice_step` apart); a unit around one value."""
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    step = _nice_step(hi - lo)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def _nice_step(span: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about 4 ticks over `span`."""
    raw = span / 4
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _ticks(lo: float, hi: float) -> list[float]:
    """Round tick values from lo to hi (both included when round)."""
    step = _nice_step(hi - lo)
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 10) for i in range(count)]


def _x(v: float, lo: float, hi: float, left: float, width: float) -> float:
    return left + (v - lo) / (hi - lo) * width if hi > lo else left + width / 2


def _x_axis(left: float, width: float, lo: float, hi: float, y: float) -> list[str]:
    """A horizontal axis at `y` with round ticks."""
    out = [f'<line x1="{left}" x2="{left + width}" y1="{y}" y2="{y}" stroke="#888"/>']
    for tick in _ticks(lo, hi):
        x = _x(tick, lo, hi, left, width)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 3}" stroke="#888"/>')
        out.append(_text(x, y + 13, f"{tick:.4g}", "middle", 9))
    return out


def _svg_open(width: float, height: float, label: str) -> str:
    # No xmlns: inline SVG in HTML needs none (and the page holds no http URL).
    return (
        f'<svg width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} '
        f'{height:.0f}" role="img" aria-label="{_attr(label)}">'
    )


def _text(x: float, y: float, text: str, anchor: str, size: int) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}">'
        f"{_esc(text)}</text>"
    )


def _finite(value: Any) -> float | None:
    v = num(value)
    return None if math.isnan(v) or math.isinf(v) else v


def _middle(text: str, n: int) -> str:
    """`text` cut to `n` characters in the middle (labels differ at their ends)."""
    if len(text) <= n:
        return text
    head = (n - 1) // 2
    return text[:head] + "…" + text[len(text) - (n - 1 - head) :]
