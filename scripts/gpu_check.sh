#!/usr/bin/env bash
# One-call GPU benchmark for a lent CUDA machine that lacks diffusers: install the carried
# wheels (.whl/, see docs/PERFORMANCE.md), then run the sampler benchmark on sd15-random.
# Usage: bash scripts/gpu_check.sh [extra bench_sampler.py args]; writes $OUT (default results/bench).
set -uo pipefail
OUT=${OUT:-results/bench}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 scripts/bench_sampler.py --model sd15-random --device cuda --json "$OUT/gpu.json" "$@" \
  2>&1 | tee "$OUT/gpu.log"
