#!/usr/bin/env bash
# One-call GPU benchmark for a lent CUDA machine that lacks diffusers: install the carried
# wheels (.whl/, see docs/PERFORMANCE.md), then run the sampler benchmark on sd15-random.
# Usage: bash scripts/gpu_check.sh [bench_sampler.py args]; writes $OUT (default results/bench).
# Without args it runs the rows still missing from docs/PERFORMANCE.md, in about 6-7 minutes
# on one H100: eager torch kernel vs fused Triton kernel at n = 1 and 5, the compiled fused
# sampler at n = 5 (K = 4 batched), and the one-layer attention check (memory, time, error).
set -uo pipefail
OUT=${OUT:-results/bench}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
if [ $# -eq 0 ]; then
  set -- --prompts 1 5 --variants optimized,fused,compile-fused --compile-prompts 5 \
    --repeats 1 --batch 4 --memory-check
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers, triton; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'triton', triton.__version__)"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 scripts/bench_sampler.py --model sd15-random --device cuda --json "$OUT/gpu.json" "$@" \
  2>&1 | tee "$OUT/gpu.log"
