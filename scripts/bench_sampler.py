#!/usr/bin/env python
"""Speed benchmark: the fused SD-VICL sampler against the naive reference (METHOD.md 9).

For each number of prompts n and each variant, in one process:
- latency of one episode alone (warm-up first, then the median of R runs);
- batched throughput: K episodes in one `batch_episodes=K` run, seconds per episode;
- peak memory (CUDA: `torch.cuda.max_memory_allocated`, reset per measurement, the
  variant's weights included; CPU: the rise of the peak resident set, VmHWM, over the RSS
  before, after resetting it through /proc/self/clear_refs);
- U-Net image-passes per step (from the samplers' counters) against 2n+3 / 6n+5;
- that every output is finite.
Then one-step noise-prediction agreement between paths (`first_step_eps`), optionally the
attention memory check (`--memory-check`: blocked vs materialised `vicl_attention` for one
64x64 layer at n = 5, each in a fresh subprocess), the tables last, and a JSON record.

Variants (`--variants`): `naive` (NaiveSampler at --dtype), `optimized` (Sampler at
--dtype, torch attention kernel), `bf16` / `fp32` (the same in that dtype), `channels-last`,
`fused` (Sampler at --dtype with the fused Triton attention kernel, `attention.kernel=triton`;
CUDA, or Triton's CPU interpreter under TRITON_INTERPRET=1), `compile` (Sampler, bfloat16,
`torch.compile(unet, dynamic=False)`, one compilation per batch shape, paid in the warm-up
column; only for `--compile-prompts`) and `compile-fused` (the same with the fused kernel).
`fused` and `compile*` rows are skipped with a note where they cannot run. The speedup row
compares naive and optimized at the same dtype and the same number of steps (with
`--naive-steps` below --steps, the optimized sampler is re-timed at naive's steps). Naive
runs one episode at a time, so it has no batched row.

GPU defaults (sd15-random, 512 px, 70 steps, n = 1 3 5, K = 4, 3 repeats, naive 1 repeat)
took about 200 s for naive + optimized + --memory-check on one H100, plus about 75 s
for compile at n = 1 without batching (about 60 s of it compiling).

Examples:
    python scripts/bench_sampler.py --model tiny --device cpu
    python scripts/bench_sampler.py --model sd15-random --device cuda --memory-check
    python scripts/bench_sampler.py --model sd15-random --device cuda --prompts 1 5 \
        --variants optimized,fused,compile-fused --compile-prompts 5 --repeats 1

Layout: this file is the command line (flags, per-model defaults, exit code); the
measuring is in scripts/bench/measure.py, the JSON and tables in scripts/bench/report.py.
Imports only torch, diffusers, numpy, PIL, sdvicl_bench.sampler.* / sdvicl_bench.config,
and rich if present.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

from diffusers.utils import logging as diffusers_logging

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
for _path in (ROOT, SCRIPTS):  # run from a checkout without installing the package
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench.measure import DTYPES, probe_attention, run  # noqa: E402
from bench.report import log, print_tables, write_record  # noqa: E402

from sdvicl_bench.config import AttentionConfig  # noqa: E402

# Defaults per (model, device): resolution, steps, repeats, batch, naive repeats.
DEFAULTS = {
    ("tiny", "cpu"): dict(resolution=64, steps=20, repeats=3, batch=4, naive_repeats=3),
    ("tiny", "cuda"): dict(resolution=64, steps=20, repeats=3, batch=4, naive_repeats=3),
    ("sd15-random", "cpu"): dict(resolution=128, steps=4, repeats=1, batch=2, naive_repeats=1),
    ("sd15-random", "cuda"): dict(resolution=512, steps=70, repeats=3, batch=4, naive_repeats=1),
}


# ----------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--model", choices=["tiny", "sd15-random"], default="tiny")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default=None,
        help="dtype of the naive and optimized rows (default: float32 on CPU, bfloat16 on CUDA)",
    )
    p.add_argument("--prompts", type=int, nargs="+", default=[1, 3, 5], help="values of n")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default per model)")
    p.add_argument("--naive-steps", type=int, default=None, help="steps of the naive rows")
    p.add_argument("--resolution", type=int, default=None, help="image side in pixels")
    p.add_argument("--repeats", type=int, default=None, help="timed latency runs (median)")
    p.add_argument("--naive-repeats", type=int, default=None, help="timed naive latency runs")
    p.add_argument("--batch", type=int, default=None, help="episodes per batched run (K)")
    p.add_argument(
        "--variants",
        default=None,
        help="comma list of naive, optimized, bf16, fp32, channels-last, fused, compile,\n"
        "compile-fused (default: naive,optimized,bf16 on CPU;\n"
        "naive,optimized,fused,compile-fused on CUDA)",
    )
    p.add_argument(
        "--compile-prompts",
        type=int,
        nargs="+",
        default=None,
        help="n values for the compile variants (default: the largest of --prompts)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=AttentionConfig().chunk_size,
        help="query rows per attention block of the optimized path",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="output JSON path")
    p.add_argument(
        "--memory-check",
        action="store_true",
        help="peak memory of blocked vs materialised vicl_attention, 64x64 layer, n = 5",
    )
    p.add_argument(
        "--probe-attention", choices=["blocked", "materialised", "fused"], help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    if args.probe_attention:
        args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
        return args
    for key, value in DEFAULTS[(args.model, args.device)].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.naive_steps = args.naive_steps or args.steps
    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    if args.variants is None:
        args.variants = (
            "naive,optimized,fused,compile-fused"
            if args.device == "cuda"
            else "naive,optimized,bf16"
        )
    # Compiling is slow (about a minute per batch shape): by default only at the largest n,
    # where the throughput target is hardest.
    args.compile_prompts = args.compile_prompts or [max(args.prompts)]
    if args.json is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        args.json = ROOT / "results" / "bench" / f"sampler-{args.model}-{args.device}-{stamp}.json"
    return args


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    diffusers_logging.set_verbosity_error()  # silence the per-cast "keep in float32" notices
    if args.probe_attention:
        print(json.dumps(probe_attention(args)))
        return 0
    t0 = time.perf_counter()
    record = run(args)
    record["total_s"] = time.perf_counter() - t0
    write_record(args.json, record)
    log(f"wrote {args.json} ({record['total_s']:.0f} s)")
    print_tables(record)
    failed = [a for a in record["agreement"] if not a["ok"]]
    finite = all(r["finite"] for r in record["rows"])
    return 1 if failed or not finite else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C, or gpu_check.sh's time limit: the rows are kept
        print("interrupted: the rows measured so far are in the *.partial.json", file=sys.stderr)
        sys.exit(130)
