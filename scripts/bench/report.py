"""Reporting: the record's machine info, the partial JSON written as rows finish, the final
JSON, and the tables printed at the end (rich if installed, plain text otherwise)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import ROOT

if TYPE_CHECKING:
    from .row import Row

# ----------------------------------------------------------------------------- record


def machine_info(device: torch.device) -> dict:
    import diffusers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    info = {
        "cpu": cpu,
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "git_commit": commit,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return info


# ----------------------------------------------------------------------------- output


def log(msg: str) -> None:
    print(msg, flush=True)


def fmt_bytes(b: int | None) -> str:
    if b is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return "n/a"  # pragma: no cover


def ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def tables(record: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, in print order."""
    out = []
    main = [
        [
            r["variant"],
            str(r["n"]),
            str(r["steps"]),
            fmt(r["latency_s"]),
            fmt(r["ms_per_step"], ".1f"),
            f"{fmt(r['batch_s_per_episode'])}" + (f" (K={r['batch']})" if r["batch"] else ""),
            fmt_bytes(r["peak_mem_latency"]),
            fmt_bytes(r["peak_mem_batch"]),
            f"{fmt(r['passes_per_step'], '.0f')}/{r['expected_passes_per_step']}",
            "yes" if r["finite"] else "NO",
            fmt(r["warmup_s"], ".1f"),
            r["note"],
        ]
        for r in record["rows"]
    ]
    out.append(
        (
            f"Sampler speed ({record['model']}, {record['resolution']} px, {record['device']})",
            [
                "variant",
                "n",
                "steps",
                "latency s",
                "ms/step",
                "batched s/ep",
                "peak mem",
                "peak mem batch",
                "passes/step (expected)",
                "finite",
                "warm-up s",
                "note",
            ],
            main,
        )
    )
    if record["speedups"]:
        out.append(
            (
                "Optimized vs naive (same dtype, same steps)",
                ["n", "dtype", "steps", "naive s", "optimized s", "speedup", "passes ratio"],
                [
                    [
                        str(s["n"]),
                        s["dtype"],
                        str(s["steps"]),
                        fmt(s["naive_s"]),
                        fmt(s["optimized_s"]),
                        f"{s['speedup']:.2f}x",
                        f"{s['passes_ratio']:.2f}x",
                    ]
                    for s in record["speedups"]
                ],
            )
        )
    if record["agreement"]:
        out.append(
            (
                "One-step noise-prediction agreement (relative error)",
                ["pair", "n", "eps_mod", "eps_def", "eps_c", "tolerance", "ok", "final latent"],
                [
                    [
                        a["pair"],
                        str(a["n"]),
                        fmt(a.get("rel_eps_mod"), ".1e"),
                        fmt(a.get("rel_eps_def"), ".1e"),
                        fmt(a.get("rel_eps_c"), ".1e"),
                        f"{a['tolerance']:.0e}",
                        "yes" if a["ok"] else "NO",
                        fmt(a.get("final_rel"), ".1e"),
                    ]
                    for a in record["agreement"]
                ],
            )
        )
    if record["memory_check"]:
        out.append(
            (
                "Attention memory and time, one 64x64 layer at n = 5 (fresh process each, warm)",
                [
                    "mode",
                    "shape",
                    "peak",
                    "one fp32 score buffer",
                    "peak/buffer",
                    "ms",
                    "rel err vs blocked",
                    "how",
                ],
                [
                    [
                        m["mode"]
                        + (f" (chunk {m['chunk_size']})" if m.get("chunk_size") else "")
                        + (" FELL BACK" if m.get("fell_back") else ""),
                        m.get("shape", "-"),
                        fmt_bytes(m.get("peak_bytes")),
                        fmt_bytes(m.get("theory_bytes")),
                        ratio(m.get("peak_bytes"), m.get("theory_bytes")),
                        fmt(1000 * m["seconds"] if m.get("seconds") else None, ".1f"),
                        fmt(m.get("rel_err_vs_blocked"), ".1e"),
                        m.get("how", m.get("error", "-")),
                    ]
                    for m in record["memory_check"]
                ],
            )
        )
    if record["notes"]:
        out.append(("Notes", ["note"], [[n] for n in record["notes"]]))
    return out


def print_tables(record: dict) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain fallback
        for title, header, rows in tables(record):
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
            print(f"\n{title}")
            print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    console = Console(width=max(150, Console().width))
    for title, header, rows in tables(record):
        table = Table(title=title, title_justify="left")
        for h in header:
            table.add_column(h, overflow="fold")
        for r in rows:
            table.add_row(*r)
        console.print(table)


def save_partial(args: argparse.Namespace, rows: list[Row], notes: list[str]) -> None:
    """The rows measured so far, so a run cut off by a time limit keeps them."""
    record = {
        "partial": True,
        "machine": machine_info(torch.device(args.device)),
        "rows": [dataclasses.asdict(r) for r in rows],
        "notes": notes,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    partial = args.json.with_suffix(".partial.json")
    tmp = partial.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(partial)  # atomic: a run killed mid-write leaves the previous rows whole


def write_record(path: Path, record: dict) -> None:
    """The full record as JSON at `path` (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
