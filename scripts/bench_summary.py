"""One short table from one or more bench_sampler.py JSON files (full or *.partial.json).

    python scripts/bench_summary.py results/bench/gpu-eager.json results/bench/gpu-compile.json

Missing files are skipped; a partial file is skipped when its full file is also given and
exists. Prints the machine, then rows (variant, n, latency, batched s/episode, peak memory),
agreement checks, the one-layer attention check and the notes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GIB = 1024**3


def _f(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _gib(b: int | None) -> str:
    return "-" if b is None else f"{b / GIB:.1f}"


def load(paths: list[Path]) -> list[dict]:
    """The records to summarise: each existing full file, else its partial file."""
    chosen = []
    for p in paths:
        if not p.exists():
            continue
        if p.name.endswith(".partial.json"):
            full = p.with_name(p.name.replace(".partial.json", ".json"))
            if full in paths and full.exists():
                continue
        try:
            chosen.append((p, json.loads(p.read_text())))
        except (OSError, json.JSONDecodeError) as err:
            print(f"skipped {p}: not readable JSON ({type(err).__name__})", file=sys.stderr)
    return [dict(record, source=str(p)) for p, record in chosen]


def summary_lines(records: list[dict]) -> list[str]:
    """Plain-text lines (fixed width), one table per kind of result."""
    lines: list[str] = []
    if not records:
        return ["no benchmark results found"]
    machine = records[0].get("machine", {})
    lines.append(
        f"machine: {machine.get('gpu') or machine.get('cpu')}, torch {machine.get('torch')}, "
        f"commit {machine.get('git_commit')}"
    )
    rows = [(r["source"], row) for r in records for row in r.get("rows", [])]
    header = f"{'variant':<24}{'n':>3}{'latency s':>11}{'ms/step':>9}{'batched s/ep':>14}"
    header += f"{'K':>3}{'peak GiB':>12}{'warm-up s':>11}  finite  note"
    lines += ["", header]
    for source, row in rows:
        peak = f"{_gib(row.get('peak_mem_latency'))}/{_gib(row.get('peak_mem_batch'))}"
        partial = " (partial run)" if source.endswith(".partial.json") else ""
        lines.append(
            f"{row['variant']:<24}{row['n']:>3}{_f(row.get('latency_s')):>11}"
            f"{_f(row.get('ms_per_step'), '.1f'):>9}{_f(row.get('batch_s_per_episode')):>14}"
            f"{row.get('batch') or '-':>3}{peak:>12}{_f(row.get('warmup_s'), '.0f'):>11}"
            f"  {row.get('finite')!s:<6}  {row.get('note', '')}{partial}"
        )
    agreement = [a for r in records for a in r.get("agreement", [])]
    if agreement:
        lines += ["", f"{'agreement (one step)':<44}{'n':>3}{'max rel':>10}{'tol':>8}  ok"]
        for a in agreement:
            lines.append(
                f"{a['pair']:<44}{a['n']:>3}{a['max_rel']:>10.2e}{a['tolerance']:>8.0e}  {a['ok']}"
            )
    checks = [m for r in records for m in r.get("memory_check", [])]
    if checks:
        lines += ["", f"{'attention, one 64x64 layer, n=5':<34}{'peak GiB':>9}{'ms':>8}  rel err"]
        for m in checks:
            if "error" in m:
                lines.append(f"{m['mode']:<34}error: {m['error']}")
                continue
            ms = None if m.get("seconds") is None else 1000 * m["seconds"]
            fell_back = "  FELL BACK to torch" if m.get("fell_back") else ""
            lines.append(
                f"{m['mode']:<34}{_gib(m.get('peak_bytes')):>9}{_f(ms, '.2f'):>8}"
                f"  {_f(m.get('rel_err_vs_blocked'), '.1e')}{fell_back}"
            )
    notes = [n for r in records for n in r.get("notes", [])]
    if notes:
        lines += ["", "notes:"] + [f"- {n}" for n in dict.fromkeys(notes)]
    return lines


def main(argv: list[str]) -> int:
    print("\n".join(summary_lines(load([Path(a) for a in argv]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
