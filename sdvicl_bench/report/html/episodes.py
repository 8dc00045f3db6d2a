"""The episode browser's data of a task: one entry per episode with every run's scores,
baselines and thumbnails (prediction, decoded prediction, and A, B, C and GT from the run
folder and the data set, loaded through the run's protocol)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha1
from pathlib import Path
from typing import Any

from PIL import Image
from rich.console import Console
from rich.progress import Progress

from sdvicl_bench.errors import UserError
from sdvicl_bench.report import records
from sdvicl_bench.report.html.common import IMG_DIR
from sdvicl_bench.report.html.thumbs import Thumbs, file_source, safe_name
from sdvicl_bench.report.runs import metric_specs, prompts_of, run_sort_key
from sdvicl_bench.types import EpisodeSpec

DIGITS = 6
"""Significant digits of the scores in the page's episode data."""

ProtocolOf = Callable[[Path], tuple[Any, Any]]
"""`protocol_of(run_dir) -> (config, protocol)`: `evaluate.protocol_of`."""


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
    task_runs = sorted(task_runs, key=run_sort_key)
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
    todo = _place_slots(thumbs, root, task, sample, entry, prompts)
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


def _place_slots(
    thumbs: Thumbs,
    root: str,
    task: str,
    sample: dict[str, Any],
    entry: dict[str, Any],
    prompts: dict[str, Any],
    pictures: dict[str, list[Any]] | None = None,
) -> bool:
    """Place every dataset thumbnail (A, B, C) already made; with `pictures` (the loaded
    episode's, by kind) first make those still missing. Whether any is still missing."""
    todo = False
    for kind, key, slot in _dataset_slots(sample, prompts):
        rel, origin = _data_rels(root, task, key, kind)
        if pictures is not None and not thumbs.fresh(rel, origin) and slot < len(pictures[kind]):
            thumbs.write(rel, origin, pictures[kind][slot])
        if thumbs.fresh(rel, origin):
            _place(entry, prompts, kind, slot, rel)
        else:
            todo = True
    return todo


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
        _place_slots(thumbs, root, task, sample, entry, prompts, pictures)
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
    specs = metric_specs(run)
    return {
        "id": f"r{index + 1}",
        "label": labels.get(run["run_dir"], Path(run["run_dir"]).name),
        "folder": Path(run["run_dir"]).name,
        "prompts": prompts_of(run),
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
