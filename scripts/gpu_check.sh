#!/usr/bin/env bash
# One-call GPU benchmark for a lent CUDA machine that lacks diffusers: install the carried
# wheels (.whl/, see docs/PERFORMANCE.md), then run the sampler benchmark on sd15-random.
#
# Usage: bash scripts/gpu_check.sh              the fused-kernel rows (two phases, below)
#        bash scripts/gpu_check.sh ARGS...      one bench_sampler.py run with these args
#        (make bench-gpu = ARGS "--memory-check --repeats 1": every variant at n = 1, 3, 5)
# Writes $OUT (default results/bench): gpu-eager.json, gpu-compile.json, logs, partial JSON.
#
# Without args it runs two phases, so a slow compile can never cost the eager rows:
#   1. eager: torch kernel vs fused Triton kernel at n = 1 and 5 (latency, K = 4 batched),
#      their one-step agreement and the one-layer attention check (memory, time, error);
#   2. compiled: the fused sampler under torch.compile at n = 5, cut off by COMPILE_LIMIT_S
#      (its rows land in gpu-compile.partial.json as they finish);
#   3. variant batching (scripts/bench_variants.py, 512 px, 20 steps): an ablation's
#      variants alone vs sharing A, B, C rows, n = 1 and 5, V = 2 and 4 (gpu-variants.json).
# About 4 + 4 + 3 minutes on one H100 (phase 3 not yet timed). A summary table is printed last.
# Dry run on CPU: MODEL=tiny DEVICE=cpu TRITON_INTERPRET=1 bash scripts/gpu_check.sh
set -uo pipefail
OUT=${OUT:-results/bench}
MODEL=${MODEL:-sd15-random}
DEVICE=${DEVICE:-cuda}
COMPILE_LIMIT_S=${COMPILE_LIMIT_S:-270}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
BENCH=("$PY" scripts/bench_sampler.py --model "$MODEL" --device "$DEVICE")
trap 'echo "gpu_check.sh: interrupted"; exit 130' INT  # Ctrl-C stops both phases

if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
if ! "$PY" -c "import torch, diffusers, triton; print('torch', torch.__version__, 'diffusers', \
diffusers.__version__, 'triton', triton.__version__)" 2>/dev/null; then
  echo "gpu_check.sh: $PY cannot import torch, diffusers and triton. Fix: run it in the" \
    "suite's environment (PY=<its python>), or carry their wheels in .whl/ (docs/PERFORMANCE.md)."
  exit 2
fi
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

if [ $# -gt 0 ]; then
  "${BENCH[@]}" --json "$OUT/gpu.json" "$@" 2>&1 | tee "$OUT/gpu.log"
  rc=${PIPESTATUS[0]}
  "$PY" scripts/bench_summary.py "$OUT"/gpu.json "$OUT"/gpu.partial.json
  exit "$rc"
fi

"${BENCH[@]}" --prompts 1 5 --variants optimized,fused --repeats 1 --batch 4 --memory-check \
  --json "$OUT/gpu-eager.json" 2>&1 | tee "$OUT/gpu-eager.log"
eager_rc=${PIPESTATUS[0]}
timeout --signal=INT "$COMPILE_LIMIT_S" "${BENCH[@]}" --prompts 5 --compile-prompts 5 \
  --variants compile-fused --repeats 1 --batch 4 --json "$OUT/gpu-compile.json" 2>&1 \
  | tee "$OUT/gpu-compile.log"
compile_rc=${PIPESTATUS[0]}
"$PY" scripts/bench_variants.py --model "$MODEL" --device "$DEVICE" --resolution 512 \
  --steps 20 --repeats 1 --json "$OUT/gpu-variants.json" 2>&1 | tee "$OUT/gpu-variants.log"
variants_rc=${PIPESTATUS[0]}
echo "phase exit codes: eager $eager_rc, compiled $compile_rc (124 or 130: cut off at ${COMPILE_LIMIT_S} s), variants $variants_rc"
"$PY" scripts/bench_summary.py "$OUT"/gpu-eager.json "$OUT"/gpu-eager.partial.json \
  "$OUT"/gpu-compile.json "$OUT"/gpu-compile.partial.json
[ "$eager_rc" -eq 0 ]
