#!/usr/bin/env python
"""Compile the fused attention kernel ahead of time for NVIDIA GPUs, no GPU needed.

For each target architecture (default sm_80 A100, sm_89 L40/RTX 4090, sm_90 H100), each
SD1.5 head width (40, 80, 160) and dtype, builds `fused_attention._vicl_attention_kernel`
with the tile sizes that `fused_attention._blocks` picks, through Triton's own compiler and
the ptxas that ships with Triton, then reads registers, spilled bytes (stack) and shared
memory from the cubin with cuobjdump. Exit status 1 if a bf16/fp16 build fails or spills
registers (slow on the GPU).

    python scripts/kernel_report.py [--arch 80 89 90] [--dims 40 80 160] [--json out.json]

Uses Triton's ahead-of-time API (triton.compile of an ASTSource; Triton >= 3.3).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "0"  # a real JIT kernel, not the interpreter's stand-in
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from sdvicl_bench.sampler import fused_attention  # noqa: E402

POINTERS = ("Q", "K", "V", "Out")
FLOATS = ("scale", "mu", "contrast")
TRITON_DTYPE = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"}


def build(dim: int, dtype: str, arch: int) -> dict:
    """Compile one kernel variant; returns its resources (or the error)."""
    kernel = fused_attention._vicl_attention_kernel
    names = list(kernel.arg_names)
    blocks = fused_attention._blocks(dim, dim, arch)
    consts = {
        "DIM": dim,
        "DIM_V": dim,
        "UPCAST": False,
        "IEEE_DOT": dtype == "fp32",
        **{k: v for k, v in blocks.items() if k.startswith("BLOCK_")},
    }
    signature = {
        name: "constexpr"
        if name in consts
        else f"*{TRITON_DTYPE[dtype]}"
        if name in POINTERS
        else "fp32"
        if name in FLOATS
        else "i32"
        for name in names
    }
    row = {"arch": f"sm_{arch}", "dim": dim, "dtype": dtype, **blocks}
    try:
        source = ASTSource(
            kernel, signature, constexprs={(names.index(k),): v for k, v in consts.items()}
        )
        options = {"num_warps": blocks["num_warps"], "num_stages": blocks["num_stages"]}
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    except Exception as err:  # report it, do not crash the table
        row["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
        return row
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        usage = subprocess.run(
            [str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True
        ).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+)", usage)
    row["registers"] = int(found[1]) if found else None
    row["spill_bytes"] = int(found[2]) if found else None
    row["shared_bytes"] = compiled.metadata.shared
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", type=int, nargs="+", default=[80, 89, 90])
    p.add_argument("--dims", type=int, nargs="+", default=[40, 80, 160])
    p.add_argument("--dtypes", nargs="+", default=["bf16", "fp16"], choices=sorted(TRITON_DTYPE))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = [build(d, t, a) for a in args.arch for d in args.dims for t in args.dtypes]
    print(f"triton {triton.__version__}")
    print("arch   dim dtype tiles (M x N, warps)  registers spill shared   error")
    for r in rows:
        tiles = f"{r['BLOCK_M']}x{r['BLOCK_N']}, {r['num_warps']}"
        print(
            f"{r['arch']:6} {r['dim']:3} {r['dtype']:5} {tiles:20} {r.get('registers', '-')!s:9} "
            f"{r.get('spill_bytes', '-')!s:5} {r.get('shared_bytes', '-')!s:8} {r.get('error', '')}"
        )
    if args.json:
        args.json.write_text(json.dumps({"triton": triton.__version__, "rows": rows}, indent=2))
    bad = [r for r in rows if r["dtype"] != "fp32" and ("error" in r or r["spill_bytes"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
