"""Retrain the toy model (`make toy-model`): see sdvicl_bench/toy/train.py.

python scripts/train_toy.py                              # the shipped weights (2 CPU cores)
python scripts/train_toy.py --steps 20 --out /tmp/toy    # a smoke run

Interrupted, the same command resumes from the last checkpoint (<out>/.checkpoint/,
every --checkpoint-every steps) and writes the same weights as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sdvicl_bench.toy.train import (
    WEIGHTS_DIR,
    CheckpointError,
    Checkpoints,
    TrainConfig,
    train,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="the diffusers folder")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads, help="torch threads")
    parser.add_argument("--world-root", type=Path, default=Path(".cache/sdvicl/toy-world"))
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=250,
        help="steps between checkpoints (0: none; default 250)",
    )
    parser.add_argument(
        "--checkpoint-dir", type=Path, default=None, help="default: <out>/.checkpoint"
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="start at step 0, discarding a checkpoint (of this or another config)",
    )
    parser.add_argument(
        "--layers-per-block", type=int, default=TrainConfig.layers_per_block, help="U-Net's"
    )
    parser.add_argument(
        "--width", type=int, default=TrainConfig.width, help="channels (16, 32, 64, 64) x W"
    )
    parser.add_argument(
        "--mixture",
        type=json.loads,
        default=None,
        help="JSON {kind: share} for every kind of world.MIXTURE (default: MIXTURE)",
    )
    parser.add_argument(
        "--device", default="cpu", help='where the U-Net trains ("cuda" on a GPU: minutes)'
    )
    args = parser.parse_args(argv)
    if args.checkpoint_every < 0:
        parser.error("--checkpoint-every must be >= 0")
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        threads=args.threads,
        layers_per_block=args.layers_per_block,
        width=args.width,
        mixture=args.mixture,
    )
    try:
        record = train(
            cfg,
            args.out,
            world_root=args.world_root,
            checkpoints=Checkpoints(args.checkpoint_every, args.checkpoint_dir, not args.no_resume),
            device=args.device,
        )
    except CheckpointError as exc:
        raise SystemExit(f"train_toy.py: error: {exc}") from None
    except KeyboardInterrupt:
        print(
            "train_toy.py: interrupted; the same command resumes from the last checkpoint"
            if args.checkpoint_every
            else "train_toy.py: interrupted (no checkpoints: --checkpoint-every 0)",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    summary = {k: record[k] for k in ("steps", "wall_seconds", "sessions", "final_loss", "sha256")}
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
