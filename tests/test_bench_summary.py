"""scripts/bench_summary.py: the short table printed last by scripts/gpu_check.sh."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_summary.py"
spec = importlib.util.spec_from_file_location("bench_summary", SCRIPT)
bench_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_summary)

GIB = 1024**3


def _row(variant: str, n: int, latency: float, batched: float | None) -> dict:
    return {
        "variant": variant,
        "n": n,
        "latency_s": latency,
        "ms_per_step": 1000 * latency / 70,
        "batch": 4,
        "batch_s_per_episode": batched,
        "peak_mem_latency": 3 * GIB,
        "peak_mem_batch": 6 * GIB,
        "warmup_s": 12.0,
        "finite": True,
        "note": "",
    }


def _write(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record))
    return path


def test_full_file_wins_over_its_partial_and_missing_files_are_skipped(tmp_path):
    machine = {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.11.0", "git_commit": "abc1234"}
    full = _write(
        tmp_path / "gpu-eager.json",
        {
            "machine": machine,
            "rows": [_row("fused-bf16", 5, 4.594, 3.427)],
            "agreement": [
                {"pair": "optimized-bf16 vs fused-bf16", "n": 5, "max_rel": 0.0108}
                | {"tolerance": 0.05, "ok": True}
            ],
            "memory_check": [
                {"mode": "fused", "peak_bytes": 2 * 1024**2, "seconds": 0.00237}
                | {"rel_err_vs_blocked": 1.3e-4, "fell_back": []},
                {"mode": "blocked", "error": "CUDA out of memory"},
            ],
            "notes": ["a note", "a note"],
        },
    )
    stale = _write(
        tmp_path / "gpu-eager.partial.json",
        {"partial": True, "machine": machine, "rows": [_row("stale-row", 1, 9.0, None)]},
    )
    cut_off = _write(
        tmp_path / "gpu-compile.partial.json",
        {"partial": True, "machine": machine, "rows": [_row("compile-fused-bf16", 5, 3.28, None)]},
    )
    torn = tmp_path / "torn.json"
    torn.write_text('{"rows": [')  # a file cut off mid-write is skipped, not a crash
    records = bench_summary.load([full, stale, tmp_path / "gpu-compile.json", cut_off, torn])
    assert [Path(r["source"]).name for r in records] == ["gpu-eager.json", cut_off.name]

    text = "\n".join(bench_summary.summary_lines(records))
    assert "NVIDIA H100 80GB HBM3" in text and "abc1234" in text
    assert "stale-row" not in text
    fused = next(line for line in text.splitlines() if line.startswith("fused-bf16"))
    assert fused.split()[1:5] == ["5", "4.59", "65.6", "3.43"]
    assert "3.0/6.0" in fused
    compiled = next(line for line in text.splitlines() if line.startswith("compile-fused"))
    assert compiled.endswith("(partial run)") and " - " in compiled  # no batched value
    assert "1.08e-02" in text
    fused_check = next(line for line in text.splitlines() if line.startswith("fused "))
    assert "2.37" in fused_check and "1.3e-04" in fused_check  # seconds shown as ms
    assert "error: CUDA out of memory" in text
    assert text.count("- a note") == 1


def test_fallback_is_flagged_and_nothing_found_is_said(tmp_path):
    fell_back = {"mode": "fused", "peak_bytes": 0, "seconds": 0.01, "fell_back": ["no ptxas"]}
    empty = {"mode": "x", "peak_bytes": None, "seconds": None}
    record = {"machine": {"cpu": "x86"}, "rows": [], "memory_check": [fell_back, empty]}
    lines = bench_summary.summary_lines(bench_summary.load([_write(tmp_path / "a.json", record)]))
    assert any("FELL BACK" in line for line in lines)
    assert bench_summary.summary_lines([]) == ["no benchmark results found"]
