#!/usr/bin/env bash
# Train toy-model candidates side by side on a lent GPU, in one call (docs/TOY.md).
#
# Usage (on the GPU machine, carrying .whl/ with diffusers, hydra-core, omegaconf, antlr4):
#   BUDGET_S=220 bash scripts/gpu_toy_train.sh "a:--layers-per-block 2" "b:--width 2" ...
# Each argument is NAME:ARGS for scripts/train_toy.py. The worlds are built once; then every
# candidate trains SMOKE_STEPS (150) steps at once to measure its rate beside the others, and the real runs
# get the steps that fit BUDGET_S seconds of training (rounded down to 250). Folders land in
# /tmp/toy-gpu/<NAME>/ with training.json and come back packed as $OUT/<NAME>.tgz (the device
# tool returns a few files per call, not a folder's dozen); logs in $OUT/<NAME>.log.
set -uo pipefail
OUT=${OUT:-results/toy-gpu}
BUDGET_S=${BUDGET_S:-220}
BATCH=${BATCH:-64}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
SMOKE_STEPS=${SMOKE_STEPS:-150}
ROUND=${ROUND:-250}  # steps are a multiple of this
WORLD=${WORLD:-/tmp/toy-world}
FOLDERS=${FOLDERS:-/tmp/toy-gpu}
mkdir -p "$OUT" "$FOLDERS"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
t0=$(date +%s)
"$PY" -c "
from pathlib import Path; from sdvicl_bench.toy import world
world.build_worlds(Path('$WORLD'), 0)" || exit 1
echo "worlds built in $(( $(date +%s) - t0 )) s"

run_all() {  # $1: steps (0: measure); the rest: NAME:ARGS
  local steps=$1; shift
  local pids=()
  for spec in "$@"; do
    local name=${spec%%:*} args=${spec#*:}
    if [ "$steps" = 0 ]; then
      # shellcheck disable=SC2086
      "$PY" scripts/train_toy.py --device "$DEVICE" --world-root "$WORLD" --batch-size "$BATCH" \
        --steps "$SMOKE_STEPS" --checkpoint-every 0 --no-resume --out "/tmp/smoke-$name" $args \
        >"$OUT/$name.smoke.log" 2>&1 &
    else
      # shellcheck disable=SC2086
      "$PY" scripts/train_toy.py --device "$DEVICE" --world-root "$WORLD" --batch-size "$BATCH" \
        --steps "$steps" --checkpoint-every 0 --out "$FOLDERS/$name" $args \
        >"$OUT/$name.log" 2>&1 &
    fi
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

run_all 0 "$@"
steps=$("$PY" - "$BUDGET_S" "$ROUND" "$@" <<'PY'
import json, sys
budget, unit = float(sys.argv[1]), int(sys.argv[2])
names = [a.split(":")[0] for a in sys.argv[3:]]
rates = []
for n in names:
    rec = json.load(open(f"/tmp/smoke-{n}/training.json"))
    rate = rec["steps"] / rec["train_seconds"]
    rates.append(rate)
    print(f"{n}: {rate:.1f} steps/s beside the others", file=sys.stderr)
print(max(unit, int(min(rates) * budget) // unit * unit))
PY
) || { echo "rate measurement failed"; tail -5 "$OUT"/*.smoke.log; exit 1; }
echo "training every candidate for $steps steps (batch $BATCH)"
run_all "$steps" "$@"
for spec in "$@"; do
  name=${spec%%:*}
  tail -3 "$OUT/$name.log"
  tar czf "$OUT/$name.tgz" -C "$FOLDERS" "$name" && ls -la "$OUT/$name.tgz"
  "$PY" -c "import json; r=json.load(open('$FOLDERS/$name/training.json')); \
print('$name', {k: r.get(k) for k in ('steps', 'final_loss', 'train_seconds', 'parameters')})"
done
echo "total $(( $(date +%s) - t0 )) s"
