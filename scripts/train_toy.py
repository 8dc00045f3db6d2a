"""Retrain the toy model (`make toy-model`): see sdvicl_bench/toy/train.py.

python scripts/train_toy.py                              # the shipped weights (2 CPU cores)
python scripts/train_toy.py --steps 20 --out /tmp/toy    # a smoke run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sdvicl_bench.toy.train import WEIGHTS_DIR, TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="the diffusers folder")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads, help="torch threads")
    parser.add_argument("--world-root", type=Path, default=Path(".cache/sdvicl/toy-world"))
    args = parser.parse_args()
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, seed=args.seed, threads=args.threads
    )
    record = train(cfg, args.out, world_root=args.world_root)
    summary = {k: record[k] for k in ("steps", "wall_seconds", "final_loss", "sha256")}
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
