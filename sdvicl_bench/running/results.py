"""Records -> results.json: metrics and baselines over a run folder's finished samples.

The one place results.json is computed: `run` after sampling, `merge` after folding shards,
`rescore` after scoring again, `results_on` over common episodes. Per-sample metrics get a
mean with a bootstrap interval per group (`metrics.aggregate.metric_block`); set-level
metrics come whole from the protocol. Beside the numbers: the model's note, the resolved
config, versions, the git commit, the devices and this session's timing.
"""

from __future__ import annotations

import platform
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sdvicl_bench
from sdvicl_bench import methods
from sdvicl_bench.config import RunConfig, to_dict
from sdvicl_bench.metrics.aggregate import metric_block
from sdvicl_bench.protocols import TaskProtocol
from sdvicl_bench.sampler.backbones.registry import get_backbone

RANDOM_WEIGHTS_NOTE = (
    "{setting} has random weights: its numbers say nothing about the method. "
    "Only the baseline and oracle rows are meaningful."
)
TOY_NOTE = (
    "model=toy is a small model (1.5 M parameters, 32 px) trained here on synthetic demo "
    "data, not SD1.5: it shows the method working at toy scale; its numbers do not predict "
    "SD1.5's (docs/TOY.md)."
)


def model_note(name: str) -> str | None:
    """The one line a summary shows about what the model's numbers can mean: none for a
    model with real weights (sd15, sd21, sdxl), a warning for the toy and random ones."""
    kind = get_backbone(name).kind
    if kind == "hub":
        return None
    return TOY_NOTE if kind == "toy" else RANDOM_WEIGHTS_NOTE.format(setting=f"model={name}")


def run_note(cfg: RunConfig) -> str | None:
    """`model_note` of SD-VICL's model, or the same line for another method's weights."""
    if methods.is_sdvicl(cfg):
        return model_note(cfg.model.name)
    info = methods.info(cfg.method.name)
    if info.kind != "random":
        return None
    return RANDOM_WEIGHTS_NOTE.format(setting=f"method={cfg.method.name}")


def method_record(cfg: RunConfig) -> dict[str, Any]:
    """results.json's `method`: which in-context learner made the predictions, by what
    weights (SD-VICL: `model.name`; the full identities are in `config` and the run key)."""
    info = methods.info(cfg.method.name)
    record = {"name": cfg.method.name, "title": info.title, "kind": info.kind}
    if methods.is_sdvicl(cfg):
        return {**record, "model": cfg.model.name}
    weights = {"hub_id": cfg.method.hub_id, "revision": cfg.method.revision}
    return {
        **record,
        **(weights if not cfg.method.path else {"path": cfg.method.path}),
        "licence": info.licence,
    }


def stale_samples(protocol: TaskProtocol, samples: list[dict]) -> list[str]:
    """Ids of the records that lack a metric's score, a baseline row (e.g. the oracle) or a
    field the protocol's set-level metrics read (`record_fields`): made by an older version,
    their numbers show as NaN or leave the mean until `sdvicl-bench rescore` recomputes them."""
    fields = protocol.record_fields
    return [
        s["id"]
        for s in samples
        if any(m not in s.get("scores", {}) for m in protocol.metrics)
        or any(b not in (s.get("baselines") or {}) for b in protocol.baselines)
        or any(f not in s for f in fields)
    ]


def results_of(
    cfg: RunConfig,
    protocol: TaskProtocol,
    key: str,
    samples: list[dict],
    elapsed: float,
    new: int,
    *,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """results.json: metrics and baselines over `samples` (every finished sample of the
    folder), the devices that produced them, versions and this session's timing (`elapsed`
    seconds, `new` samples).

    Per-sample metrics: the mean with a bootstrap interval over the records that have the
    score (n says how many), per group and the mean of groups. Set-level metrics: the
    protocol's `dataset_metric` (which may read the run folder `run_dir`, e.g. FID's
    pictures), a number or a whole block (`_dataset_block`).
    """
    metrics, baselines = _scores(protocol, samples, run_dir)
    devices = _device_counts(samples)
    seconds = [s["seconds"] for s in samples if isinstance(s.get("seconds"), (int, float))]
    return {
        "key": key,
        "task": cfg.task.name,
        "task_version": cfg.task.version,
        "n": len(samples),
        "metrics": metrics,
        "baselines": baselines,
        "note": run_note(cfg),
        "method": method_record(cfg),
        "config": _reported_config(cfg, protocol),
        "versions": _versions(),
        "git": _git_hash(),
        "device": ", ".join(devices) or "n/a",
        "devices": devices,
        "timing": {
            "seconds_this_session": round(elapsed, 2),
            "new_samples": new,
            "mean_seconds_per_episode": round(float(np.mean(seconds)), 4) if seconds else None,
        },
    }


def _scores(
    protocol: TaskProtocol, samples: list[dict], run_dir: Path | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """({metric: block} of ours, {baseline: {metric: block}}): per-sample metrics first,
    then the set-level ones (one value from all samples)."""
    groups = [s.get("group") for s in samples]

    def block(get) -> dict[str, Any]:
        return metric_block([get(s) for s in samples], groups)

    metrics = {m: block(lambda s, m=m: _score_of(s, None, m)) for m in protocol.metrics}
    baselines = {
        name: {m: block(lambda s, n=name, m=m: _score_of(s, n, m)) for m in protocol.metrics}
        for name in protocol.baselines
    }
    for m in protocol.dataset_metrics:
        value = protocol.dataset_metric(m, samples, None, run_dir)
        metrics[m] = _dataset_block(value, len(samples))
        for name in protocol.baselines:
            value = protocol.dataset_metric(m, samples, name, run_dir)
            baselines[name][m] = _dataset_block(value, len(samples))
    return metrics, baselines


def _score_of(sample: dict, baseline: str | None, metric: str) -> float:
    """A record's score of ours (baseline None) or a baseline; NaN where the record lacks it
    (made before the metric existed: `sdvicl-bench rescore` adds it)."""
    scores = sample.get("scores") if baseline is None else sample.get("baselines", {}).get(baseline)
    value = (scores or {}).get(metric)
    return float("nan") if value is None else value


def _dataset_block(value: float | dict[str, Any], n: int) -> dict[str, Any]:
    """A set-level metric's results.json block: a number over `n` samples, or the block a
    protocol gives (`overall`, and any of `per_fold`, `mean_of_folds`, `per_class`)."""
    return dict(value) if isinstance(value, dict) else {"overall": {"mean": value, "n": n}}


def _reported_config(cfg: RunConfig, protocol: TaskProtocol) -> dict[str, Any]:
    """The resolved config for results.json, with `task.metrics` completed by the protocol's
    `metric_specs` (direction and scale of metrics the task YAML does not list, e.g. ones
    added since; the YAML's own entries win). Tables and summaries read them from here; the
    run key is computed from the config itself, so it does not change."""
    config = to_dict(cfg)
    specs = config["task"].get("metrics") or {}
    defaults = protocol.metric_specs
    config["task"]["metrics"] = {**specs, **{k: v for k, v in defaults.items() if k not in specs}}
    return config


def _device_counts(samples: list[dict]) -> dict[str, int]:
    """How many samples each device produced ("unknown": records from before the field)."""
    return dict(Counter(str(s.get("device") or "unknown") for s in samples))


def device_name(device: torch.device) -> str:
    """The device a record names: `cuda: <GPU name>` or `cpu: <processor>`."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}"


def _versions() -> dict[str, str | None]:
    return {
        "sdvicl_bench": sdvicl_bench.__version__,
        "torch": torch.__version__,
        "diffusers": _version("diffusers"),
        "python": platform.python_version(),
    }


def _version(pkg: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def _git_hash() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
