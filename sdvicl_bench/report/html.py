"""One self-contained static HTML page of run folders (`sdvicl-bench report`).

`write_report(run_dirs, out)` writes `out/index.html` and the thumbnails it shows under
`out/img/`; the folder opens from disk (file://), with no server and nothing fetched from the
network. The page holds, per task:

- the result table of `tables.build_table` (runs side by side, their baselines, the
  references and the oracle ceiling, with 95% intervals), as one row per method with a
  column per metric, and the full long table (as tables.md) below it;
- a dot-and-whisker plot of each metric's values and intervals;
- per-fold and per-class breakdowns where results.json has `per_fold` / `per_class` blocks;
- a histogram of each run's per-episode scores, and an n = 1/3/5 curve where the task's
  runs differ in prompts;
- an episode browser: one row per episode with A | B | C | prediction | decoded | GT
  thumbnails per run and every score and baseline; sorted by any score, or by the
  difference of two runs on the same episode, filtered by fold/group, class and id, 50 rows
  a page. The episodes are one JSON blob in the page; the page's own JavaScript (in
  `report_template.html`) sorts, filters and pages it, and reads its state from the URL hash
  (`index.html#sort=iou@r1-r2&dir=asc&fold=0`).

This module is a report stage: it reads run folders and never imports the orchestration
layer. A, B and C come from the dataset and the decoded prediction from the task's decoder;
for those the caller passes `protocol_of` (the CLI: `evaluate.protocol_of`), which gives a
run folder's `(config, protocol)`. Without it (or where the data set is not on this machine)
those columns stay empty and the page says why.

Thumbnails are cached: `out/img/sources.json` remembers what each one was made from, so a
second report into the same folder only makes the pictures that are new or changed.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import sha1
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sdvicl_bench.errors import DataError, UserError
from sdvicl_bench.report import records, tables
from sdvicl_bench.report.console import make_console
from sdvicl_bench.report.grids import to_rgb
from sdvicl_bench.types import EpisodeSpec, competitors

TEMPLATE = "report_template.html"
"""The page's HTML, CSS and JavaScript (package data beside this module)."""
TILE = 160
"""Longest side of a thumbnail, in pixels."""
PAGE_SIZE = 50
"""Episodes per page of the browser."""
DIGITS = 6
"""Significant digits of the scores in the page's episode data."""
BINS = 20
"""Bars of a score histogram."""
IMG_DIR = "img"
SOURCES = "sources.json"
"""The thumbnail cache's record (under out/img/): {relative path: what it was made from}."""
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
SOURCE_COLORS = {
    "ours": "#1f77b4",
    "method": "#9467bd",
    "baseline": "#7f7f7f",
    "reference": "#2ca02c",
    "ceiling": "#d62728",
}

ProtocolOf = Callable[[Path], tuple[Any, Any]]
"""`protocol_of(run_dir) -> (config, protocol)`: `evaluate.protocol_of`."""


# ---------------------------------------------------------------------------------------
# Entry point


def write_report(
    run_dirs: list[Path],
    out: Path,
    *,
    quiet: bool = False,
    protocol_of: ProtocolOf | None = None,
    console: Console | None = None,
    tile: int = TILE,
) -> Path:
    """Write the report of `run_dirs` (run folders or folders of them) into `out`.

    Returns `out/index.html`. Raises DataError (one line) where a path is not a run folder
    nor holds any. `protocol_of` gives a run's protocol for the A, B, C and decoded
    thumbnails and the episode classes (None: those are left out). Prints a progress bar
    while it makes thumbnails and one warning line per run whose data set cannot be read
    (none when `quiet`).
    """
    console = console or make_console()
    runs = tables.load_runs([Path(p) for p in run_dirs])
    df = tables.build_table(runs)
    out = Path(out)
    _check_out(out)
    labels = run_labels(runs, df)
    thumbs = Thumbs(out, tile)
    if protocol_of is None and not quiet:
        console.print(
            "note: no protocol given: the A, B, C and decoded columns stay empty "
            "(sdvicl-bench report fills them from the data set).",
            markup=False,
            highlight=False,
        )
    tasks = []
    try:
        with _progress(console, quiet) as progress:
            for task in _tasks_of(runs):
                task_runs = [r for r in runs if r["task"] == task]
                tasks.append(
                    collect_task(
                        task, task_runs, labels, thumbs, protocol_of, progress, console, quiet
                    )
                )
    finally:
        thumbs.save()  # also after Ctrl-C: the thumbnails made so far are kept for next time
    page = render_page(runs, df, labels, tasks)
    index = out / "index.html"
    tmp = index.with_name(f"index.html.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index


def _check_out(out: Path) -> None:
    """Create `out`; a one-line DataError where it is a file or cannot be made."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file. Fix: pass a folder for the report.")
    try:
        (out / IMG_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"Cannot create the report folder {out}: {err.strerror or err}. "
            "Fix: pass a writable folder with --out."
        ) from err


def _tasks_of(runs: list[dict[str, Any]]) -> list[str]:
    """The tasks of `runs` in the tables' order."""
    return sorted({r["task"] for r in runs}, key=tables._task_rank)


# ---------------------------------------------------------------------------------------
# Run labels


def run_labels(runs: list[dict[str, Any]], df: pd.DataFrame) -> dict[str, str]:
    """{run_dir: the method label its rows carry in `df`} ("SD-VICL (tiny, n=1, ...;
    sampler.adain.enabled=False)"), so the page names a run as the table does.

    `build_table` writes each task's runs in `tables._run_sort_key` order, one row per metric
    of results.json, so the k-th block of a task's "ours"/"method" rows is its k-th run."""
    labels: dict[str, str] = {}
    for task in _tasks_of(runs):
        task_runs = sorted((r for r in runs if r["task"] == task), key=tables._run_sort_key)
        own = df[(df["task"] == task) & df["source"].isin(["ours", "method"])]
        methods = list(own["method"])
        if len(methods) != sum(len(r["metrics"]) for r in task_runs):
            methods = []  # a table laid out otherwise: the runs are named by their folders
        start = 0
        for run in task_runs:
            count = len(run["metrics"])
            found = methods[start] if count and methods else Path(run["run_dir"]).name
            labels[run["run_dir"]] = found
            start += count
    return labels


# ---------------------------------------------------------------------------------------
# Thumbnails


def safe_name(text: str) -> str:
    """`text` as a file name: itself where it only holds [A-Za-z0-9._-], else those kept
    (others as "_") and 8 hex chars of its hash appended (so two names never collide)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "_"
    if cleaned == text and len(text) <= 120:
        return text
    return f"{cleaned[:100]}-{sha1(text.encode()).hexdigest()[:8]}"


class Thumbs:
    """Thumbnails under `out/img/`, made once per source (`out/img/sources.json`)."""

    def __init__(self, out: Path, tile: int) -> None:
        self.out = out
        self.tile = tile
        self.record_path = out / IMG_DIR / SOURCES
        self.sources: dict[str, str] = {}
        self.classes: dict[str, str | None] = {}
        if self.record_path.is_file():
            try:
                saved = json.loads(self.record_path.read_text())
                self.sources = dict(saved.get("files") or {})
                self.classes = dict(saved.get("classes") or {})
            except (OSError, ValueError, AttributeError):
                self.sources, self.classes = {}, {}

    def fresh(self, rel: str, source: str) -> bool:
        """Whether `rel` exists and was made from `source` at this tile size."""
        return self.sources.get(rel) == f"{source}|{self.tile}" and (self.out / rel).is_file()

    def write(self, rel: str, source: str, picture: Image.Image) -> str:
        """Save `picture` shrunk to the tile size as `rel` (JPEG or PNG by suffix)."""
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        small = to_rgb(picture)
        small.thumbnail((self.tile, self.tile), Image.Resampling.BILINEAR)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        if rel.endswith(".jpg"):
            small.save(tmp, format="JPEG", quality=85)
        else:
            small.save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
        self.sources[rel] = f"{source}|{self.tile}"
        return rel

    def save(self) -> None:
        """Write the cache record."""
        payload = {"files": self.sources, "classes": self.classes}
        tmp = self.record_path.with_name(f"{SOURCES}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, self.record_path)


def file_source(path: Path) -> str:
    """What a file thumbnail was made from: its path, size and modification time."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


@contextmanager
def _progress(console: Console, quiet: bool) -> Iterator[Progress]:
    """The rich progress bar of the thumbnail copying (disabled when quiet or in a log)."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )
    with bar:
        yield bar


# ---------------------------------------------------------------------------------------
# Episodes


@dataclass
class RunSource:
    """A run's protocol, loaded on first need (None where it cannot be: `problem` says why)."""

    run_dir: Path
    protocol_of: ProtocolOf | None
    loaded: bool = False
    protocol: Any = None
    problem: str = ""
    failures: list[str] = field(default_factory=list)
    data_root: str = ""

    def get(self) -> Any:
        """The protocol, or None (`problem` set)."""
        if not self.loaded:
            self.loaded = True
            if self.protocol_of is not None:  # None: write_report said so once
                try:
                    self.protocol = self.protocol_of(self.run_dir)[1]
                except (UserError, OSError) as err:
                    self.problem = _one_line(err)
                family = getattr(self.protocol, "family", None)
                if family is not None:
                    self.data_root = str(Path(getattr(family, "root", "")).resolve())
        return self.protocol

    def root(self) -> str:
        """The data root the run's dataset family reads ("" where unknown)."""
        self.get()
        return self.data_root


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def collect_task(
    task: str,
    task_runs: list[dict[str, Any]],
    labels: dict[str, str],
    thumbs: Thumbs,
    protocol_of: ProtocolOf | None,
    progress: Progress,
    console: Console,
    quiet: bool = False,
) -> dict[str, Any]:
    """The browser's data of one task: its runs and one entry per episode id, with every
    run's scores, baselines and thumbnails (made here, with `progress`)."""
    task_runs = sorted(task_runs, key=tables._run_sort_key)
    per_run = [_samples_of(Path(r["run_dir"])) for r in task_runs]
    episodes: dict[str, dict[str, Any]] = {}
    for samples in per_run:
        for s in samples:
            episodes.setdefault(s["id"], _episode_entry(s, len(task_runs)))
    total = sum(len(s) for s in per_run)
    bar = progress.add_task(f"{task}: pictures", total=total)
    started = time.monotonic()
    missing: list[str] = []
    for i, (run, samples) in enumerate(zip(task_runs, per_run, strict=True)):
        source = RunSource(Path(run["run_dir"]), protocol_of)
        slug = f"{IMG_DIR}/{safe_name(task)}/{safe_name(Path(run['run_dir']).name)}"
        for sample in samples:
            entry = episodes[sample["id"]]
            entry["r"][i] = _run_cell(sample, run, source, slug, entry, thumbs, i)
            progress.advance(bar)
        line = _missing_line(source)
        if line:
            missing.append(f"R{i + 1}: {line}")
            if not quiet:
                console.print(f"warning: {run['run_dir']}: {line}", markup=False, highlight=False)
    if not quiet and not console.is_terminal:  # a log: one line instead of the bar
        console.print(
            f"{task}: pictures of {total} samples ({len(task_runs)} runs) in "
            f"{time.monotonic() - started:.1f} s",
            markup=False,
            highlight=False,
        )
    return {
        "task": task,
        "runs": [_run_info(r, labels, i) for i, r in enumerate(task_runs)],
        "metrics": _episode_metrics(task_runs, per_run),
        "baselines": _episode_baselines(per_run),
        "episodes": list(episodes.values()),
        "missing": missing,
    }


def _samples_of(run_dir: Path) -> list[dict[str, Any]]:
    """A run folder's finished samples, once per episode id (the first record kept)."""
    seen: set[str] = set()
    out = []
    for s in records.read_run_samples(run_dir):
        if s["id"] not in seen:
            seen.add(s["id"])
            out.append(s)
    return out


def _episode_entry(sample: dict[str, Any], n_runs: int) -> dict[str, Any]:
    """A new browser entry for an episode: id, query, fold/group, and one slot per run."""
    return {
        "id": sample["id"],
        "query": sample["query"],
        "group": None if sample.get("group") is None else str(sample["group"]),
        "class": None,
        "c": None,
        "gt": None,
        "prompts": [],
        "r": [None] * n_runs,
    }


def _run_cell(
    sample: dict[str, Any],
    run: dict[str, Any],
    source: RunSource,
    slug: str,
    entry: dict[str, Any],
    thumbs: Thumbs,
    index: int,
) -> dict[str, Any]:
    """One run's cell of an episode: thumbnails of its prediction and decoded prediction,
    its scores and baselines; fills the episode's shared C, GT, prompts and class."""
    run_dir = Path(run["run_dir"])
    stem = safe_name(sample["id"])
    pred_file = _run_file(run_dir, sample.get("pred"))
    gt_file = _run_file(run_dir, sample.get("gt"))
    cell: dict[str, Any] = {
        "pred": None,
        "dec": None,
        "s": _clean(sample.get("scores") or {}),
        "b": _clean(sample.get("baselines") or {}),
    }
    if pred_file is not None:
        cell["pred"] = _file_thumb(thumbs, pred_file, f"{slug}/{stem}.pred.jpg")
    if entry["gt"] is None and gt_file is not None:
        entry["gt"] = _file_thumb(thumbs, gt_file, f"{slug}/{stem}.gt.png")
    dec_rel = f"{slug}/{stem}.dec.png"
    dec_source = f"decoded|{file_source(pred_file)}" if pred_file is not None else ""
    prompts = _prompt_set(entry, sample, index)
    data_todo = _dataset_todo(thumbs, source, sample, entry, prompts)
    dec_todo = pred_file is not None and not thumbs.fresh(dec_rel, dec_source)
    if data_todo or dec_todo:
        _from_dataset(thumbs, source, sample, entry, prompts, pred_file, dec_rel, dec_source)
    if pred_file is not None and thumbs.fresh(dec_rel, dec_source):
        cell["dec"] = dec_rel
    return cell


def _run_file(run_dir: Path, rel: Any) -> Path | None:
    """A picture a sample names in its run folder, None where not saved or gone."""
    if not isinstance(rel, str) or not rel:
        return None
    path = run_dir / rel
    return path if path.is_file() else None


def _file_thumb(thumbs: Thumbs, path: Path, rel: str) -> str | None:
    """The thumbnail of a picture file (made unless fresh); None where it cannot be read."""
    source = file_source(path)
    if thumbs.fresh(rel, source):
        return rel
    try:
        with Image.open(path) as im:
            return thumbs.write(rel, source, im)
    except OSError:
        return None


def _prompt_set(entry: dict[str, Any], sample: dict[str, Any], index: int) -> dict[str, Any]:
    """The episode's entry for this run's prompts (runs with the same prompts share one)."""
    keys = [str(k) for k in sample["prompts"]]
    for prompts in entry["prompts"]:
        if prompts["keys"] == keys:
            prompts["runs"].append(index)
            return prompts
    prompts = {"keys": keys, "runs": [index], "a": [None] * len(keys), "b": [None] * len(keys)}
    entry["prompts"].append(prompts)
    return prompts


def _data_rels(root: str, task: str, key: str, kind: str) -> tuple[str, str]:
    """(relative path, source) of a dataset picture's thumbnail: A, B or C of `key`."""
    name = safe_name(key)
    digest = sha1(f"{root}|{key}".encode()).hexdigest()[:8]
    suffix = "png" if kind == "b" else "jpg"
    rel = f"{IMG_DIR}/{safe_name(task)}/data/{name}-{digest}.{kind}.{suffix}"
    return rel, f"{kind}|{root}|{key}"


def _dataset_todo(
    thumbs: Thumbs,
    source: RunSource,
    sample: dict[str, Any],
    entry: dict[str, Any],
    prompts: dict[str, Any],
) -> bool:
    """Fill the dataset thumbnails (A, B, C) and class that are already made; whether any
    is still missing (then the protocol has to load the episode)."""
    protocol = source.get()
    if protocol is None:
        return False
    root, task = source.root(), str(protocol.cfg.task.name)
    todo = False
    for kind, key, slot in _dataset_slots(sample, prompts):
        rel, origin = _data_rels(root, task, key, kind)
        if thumbs.fresh(rel, origin):
            _place(entry, prompts, kind, slot, rel)
        else:
            todo = True
    class_key = f"{root}|{sample['query']}"
    if class_key in thumbs.classes:
        entry["class"] = thumbs.classes[class_key]
    else:
        entry["class"] = thumbs.classes[class_key] = _class_name(protocol, sample["query"])
    return todo


def _dataset_slots(sample: dict[str, Any], prompts: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(kind, key, slot) of every dataset picture of an episode: A_i, B_i, C."""
    slots = [(kind, key, i) for kind in ("a", "b") for i, key in enumerate(prompts["keys"])]
    return [*slots, ("c", str(sample["query"]), 0)]


def _place(entry: dict[str, Any], prompts: dict[str, Any], kind: str, slot: int, rel: str):
    """Put a dataset thumbnail's path where the page looks for it."""
    if kind == "c":
        entry["c"] = rel
    else:
        prompts[kind][slot] = rel


def _from_dataset(
    thumbs: Thumbs,
    source: RunSource,
    sample: dict[str, Any],
    entry: dict[str, Any],
    prompts: dict[str, Any],
    pred_file: Path | None,
    dec_rel: str,
    dec_source: str,
) -> None:
    """Load the episode through the protocol: make A, B, C and the decoded prediction."""
    protocol = source.get()
    if protocol is None:
        return
    spec = EpisodeSpec(
        str(sample["id"]), str(sample["query"]), tuple(sample["prompts"]), int(sample["seed"])
    )
    root, task = source.root(), str(protocol.cfg.task.name)
    try:
        episode, truth = protocol.sampler_input(spec)
        pictures = {"a": list(episode.prompts), "b": list(episode.targets), "c": [episode.query]}
        for kind, key, slot in _dataset_slots(sample, prompts):
            rel, origin = _data_rels(root, task, key, kind)
            if not thumbs.fresh(rel, origin) and slot < len(pictures[kind]):
                thumbs.write(rel, origin, pictures[kind][slot])
            if thumbs.fresh(rel, origin):
                _place(entry, prompts, kind, slot, rel)
        if pred_file is not None and not thumbs.fresh(dec_rel, dec_source):
            with Image.open(pred_file) as im:
                thumbs.write(dec_rel, dec_source, protocol.visualize(im.copy(), truth))
    except (UserError, OSError, ValueError) as err:
        source.failures.append(f"{sample['id']}: {_one_line(err)}")


def _class_name(protocol: Any, query: str) -> str | None:
    """The class a query shows, by name where the dataset names its classes; None where the
    dataset has no classes (`class_of` gives 0)."""
    family = getattr(protocol, "family", None)
    if family is None:
        return None
    try:
        found = family.class_of(query)
    except (UserError, OSError, KeyError, ValueError):
        return None
    if found is None or found == 0 or found == "":
        return None
    names = tuple(getattr(family, "class_names", ()) or ())
    if isinstance(found, int) and 1 <= found <= len(names):
        return str(names[found - 1])
    return str(found)


def _missing_line(source: RunSource) -> str:
    """What a run's dataset pictures lack and why ("" where none is missing)."""
    if source.problem:
        return f"no A, B, C or decoded pictures ({source.problem})"
    if source.failures:
        count = len(source.failures)
        return (
            f"{count} episode{'s' if count > 1 else ''} without A, B, C or decoded pictures "
            f"(first: {source.failures[0]})"
        )
    return ""


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null (JSON has no NaN); floats keep
    `DIGITS` significant digits (the page shows at most 4; it keeps the blob small)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}") if math.isfinite(value) else None
    return value


def _run_info(run: dict[str, Any], labels: dict[str, str], index: int) -> dict[str, Any]:
    """What the page needs about one run: id, label, folder, scales, direction of metrics."""
    specs = tables._metric_specs(run)
    return {
        "id": f"r{index + 1}",
        "label": labels.get(run["run_dir"], Path(run["run_dir"]).name),
        "folder": Path(run["run_dir"]).name,
        "prompts": tables._prompts_of(run),
        "scale": {m: float((specs.get(m) or {}).get("scale", 1)) for m in specs},
        "higher": {m: bool((specs.get(m) or {}).get("higher_is_better", True)) for m in specs},
    }


def _episode_metrics(runs: list[dict[str, Any]], per_run: list[list[dict]]) -> list[str]:
    """The per-episode metrics of a task's samples, in results.json's order."""
    seen = {name for samples in per_run for s in samples for name in (s.get("scores") or {})}
    ordered = [m for r in runs for m in r["metrics"] if m in seen]
    return list(dict.fromkeys([*ordered, *sorted(seen)]))


def _episode_baselines(per_run: list[list[dict]]) -> list[str]:
    """The baseline names of a task's samples, in record order (the oracle last)."""
    names: dict[str, None] = {}
    for samples in per_run:
        for s in samples:
            names.update(dict.fromkeys(s.get("baselines") or {}))
    return list(names)


# ---------------------------------------------------------------------------------------
# The page


def render_page(
    runs: list[dict[str, Any]],
    df: pd.DataFrame,
    labels: dict[str, str],
    tasks: list[dict[str, Any]],
) -> str:
    """The whole page: the template with the task sections and the episode JSON filled in."""
    template = resources.files("sdvicl_bench.report").joinpath(TEMPLATE).read_text("utf-8")
    sections = "\n".join(
        render_task([r for r in runs if r["task"] == t["task"]], df, t) for t in tasks
    )
    nav = " ".join(f'<a href="#task-{_attr(t["task"])}">{_esc(t["task"])}</a>' for t in tasks)
    data = {"pageSize": PAGE_SIZE, "tasks": tasks}
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    stamp = time.strftime("%Y-%m-%d %H:%M")
    count = sum(len(t["episodes"]) for t in tasks)
    subtitle = f"{len(runs)} run{'s' if len(runs) != 1 else ''}, {count} episodes, made {stamp}"
    return (
        template.replace("<!--NAV-->", nav)
        .replace("<!--SUBTITLE-->", _esc(subtitle))
        .replace("<!--SECTIONS-->", sections)
        .replace("__REPORT_DATA__", blob)
    )


def render_task(task_runs: list[dict[str, Any]], df: pd.DataFrame, data: dict[str, Any]) -> str:
    """One task's section (`data`: `collect_task`'s): runs, tables, plots and breakdowns
    (the episode browser is one for all tasks)."""
    task = data["task"]
    rows = df[df["task"] == task].reset_index(drop=True)
    runs = sorted(task_runs, key=tables._run_sort_key)
    parts = [
        f'<section class="task" id="task-{_attr(task)}"><h2>{_esc(task)}</h2>',
        render_runs(runs, data["runs"]),
        *(f'<p class="warn">{_esc(line)}</p>' for line in data.get("missing") or []),
        "<h3>Results</h3>",
        render_wide_table(rows),
        render_plots(rows, runs, data),
        render_breakdowns(runs, data["runs"]),
        "<details><summary>Every column (as tables.md)</summary>",
        render_long_table(rows),
        "</details>",
        f'<p><a href="#browser" data-task="{_attr(task)}" class="to-browser">'
        f"Browse the {len(data['episodes'])} episodes of {_esc(task)}</a></p>",
        "</section>",
    ]
    return "\n".join(parts)


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
    names = [c for c, _ in tables.PRINTED]
    return [dict(zip(names, cells, strict=True)) for cells in tables._cells(rows)]


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
    head = "".join(f"<th>{_esc(h)}</th>" for c, h in tables.PRINTED if c != "task")
    body = []
    for c in _cells(rows):
        tds = "".join(
            f'<td class="{"num" if k in ("value", "episode_mean", "n", "prompts") else ""}">'
            f"{_esc(c[k])}</td>"
            for k, _ in tables.PRINTED
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
            scale = tables._scale(run, metric)
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
    folds = sorted({g for *_, block, _ in rows for g in block["per_fold"]}, key=tables._fold_rank)
    head = "".join(f"<th>fold {_esc(g)}</th>" for g in folds)
    body = []
    for rids, label, metric, block, scale in rows:
        rid = ", ".join(rids)
        tds = []
        for g in folds:
            b = block["per_fold"].get(g) or {}
            tip = f"n = {b.get('n', '')}"
            if "low" in b:
                low = tables.format_number(scale * tables._num(b.get("low")), scale)
                high = tables.format_number(scale * tables._num(b.get("high")), scale)
                tip += f", 95% CI [{low}, {high}]"
            value = tables.format_number(scale * tables._num(b.get("mean")), scale)
            tds.append(f'<td class="num" title="{_attr(tip)}">{value if b else ""}</td>')
        mof = tables.format_number(scale * tables.mean_of_folds(block), scale)
        overall = tables._num((block.get("overall") or {}).get("mean"))
        body.append(
            f"<tr><td>{_esc(rid)}</td><td>{_esc(label)}</td><td>{_esc(metric)}</td>"
            f"{''.join(tds)}<td class=num>{mof}</td>"
            f"<td class=num>{tables.format_number(scale * overall, scale)}</td></tr>"
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
    return tables.format_number(scale * tables._num(value), scale)


# ---------------------------------------------------------------------------------------
# Plots (inline SVG)


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
    low, high = tables._num(match.group(1)), tables._num(match.group(2))
    return None if math.isnan(low) or math.isnan(high) else (low, high)


def forest_plot(rows: pd.DataFrame, metric: str) -> str:
    """Dots (value) and whiskers (95% interval of the per-episode mean) of every row of
    `metric` with a value, coloured by source (ours, method, baseline, reference,
    ceiling)."""
    points = []
    for r in rows[rows["metric"] == metric].itertuples(index=False):
        value = tables._num(r.value)
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
                scale = tables._scale(run, metric)
                if run["task"] in tables.MEAN_OF_FOLDS_TASKS:
                    value = tables.mean_of_folds(block)
                else:
                    value = tables._num((block.get("overall") or {}).get("mean"))
                overall = block.get("overall") or {}
                low, high = tables._num(overall.get("low")), tables._num(overall.get("high"))
                ci = None if math.isnan(low) else (scale * low, scale * high)
                if not math.isnan(value):
                    points.append((tables._prompts_of(run) or 0, scale * value, ci))
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
        flat = tables._flatten(run["config"])
        kept = {
            k: v
            for k, v in flat.items()
            if k not in ("prompts", "task.prompts") and not tables._ignored(k)
        }
        groups.setdefault(json.dumps(kept, sort_keys=True, default=str), []).append(run)
    named: dict[str, list[dict[str, Any]]] = {}
    for members in groups.values():
        if len({tables._prompts_of(r) for r in members}) < 2:
            continue
        first = members[0]
        name = f"{tables._learner_of(first)}, {tables._retrieval_of(first)}"
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
    v = tables._num(value)
    return None if math.isnan(v) or math.isinf(v) else v


def _middle(text: str, n: int) -> str:
    """`text` cut to `n` characters in the middle (labels differ at their ends)."""
    if len(text) <= n:
        return text
    head = (n - 1) // 2
    return text[:head] + "…" + text[len(text) - (n - 1 - head) :]


def _color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=False)


def _attr(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)
