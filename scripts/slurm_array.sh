#!/usr/bin/env bash
# SLURM array example: one shard per array task (one GPU each), then merge.
#   sbatch --array=0-7 scripts/slurm_array.sh task=fgseg prompts=5
#   # when all are done (or as a dependent job: sbatch --dependency=afterok:<jobid> ...):
#   sdvicl-bench merge results/runs/fgseg/*-<key>
# Every shard computes the same frozen episode list and run key, takes episodes i, i+K, ...
# and writes samples.shard<i>of<K>.jsonl; on a shared disk they land in one run folder.
#SBATCH --job-name=sdvicl
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
: "${SLURM_ARRAY_TASK_ID:?run me with sbatch --array=0-(K-1)}"
: "${SLURM_ARRAY_TASK_COUNT:?}"
exec sdvicl-bench run "$@" "shard=${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" \
  sampler.batch_episodes=4 --quiet
