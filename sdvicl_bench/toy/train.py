"""Train the toy model: DDPM epsilon-prediction on the demo worlds' pictures, on a CPU.

    python scripts/train_toy.py                  # retrains the shipped weights (make toy-model)
    python scripts/train_toy.py --steps 20 --out /tmp/toy   # a smoke run

The loop, per step:
  1. draw a batch of pictures (``world.batches``: every task's photos and GT pictures);
  2. draw t uniformly in [0, 1000) and noise with SD1.5's beta schedule (the sampler's
     ``SD15_SCHEDULER``), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps;
  3. predict eps with the U-Net (conditioning: the text encoder's "" embedding, constant);
  4. AdamW on the MSE, warm-up then cosine decay; an EMA of the weights is what ships.

Seeded end to end (world seeds, batch draws, noise, initial weights). ``training.json`` beside
the weights records the config, steps, wall time, final loss, machine and every weights
file's sha256 (checked on load).

Checkpoints: every ``Checkpoints.every`` steps (default 250; 0: none) the whole loop state
(step, U-Net, EMA, AdamW and LR schedule, the training generator's state, the loss history,
the held-out start loss, time so far, the config) is written atomically (temp file, then
``os.replace``) to ``<out>/.checkpoint/state.pt`` (or ``Checkpoints.folder``). A later run
with the same config resumes from it and writes the same bytes as an uninterrupted run; a
checkpoint of another config is refused with a one-line ``CheckpointError``
(``Checkpoints.resume=False`` discards it).
The checkpoint is removed once the weights and ``training.json`` are written. The loop draws
from its own generator only, never from torch's global RNG, so that state is not saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from sdvicl_bench.report.progress import progress_bar
from sdvicl_bench.sampler.backbones.base import SD15_SCHEDULER, make_scheduler
from sdvicl_bench.toy import architecture, world

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "toy"
"""Where the shipped weights live (inside the package)."""

RECORD = "training.json"

CHECKPOINT_DIR = ".checkpoint"
"""The default checkpoint folder, inside the output folder (removed when training ends)."""
CHECKPOINT_FILE = "state.pt"
CHECKPOINT_FORMAT = 1
_GITIGNORE = "# written by sdvicl_bench.toy.train: a training checkpoint, never committed\n*\n"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: another config or format, or unreadable."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 5000
    batch_size: int = 32
    lr: float = 5e-4
    warmup: int = 200
    min_lr_ratio: float = 0.1
    ema_decay: float = 0.999
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 2
    world_sizes: dict | None = None  # None: world.WORLD_SIZES
    layers_per_block: int = 1  # the U-Net's (SD1.5: 2)
    width: int = 1  # channel multiplier: (16, 32, 64, 64) x width
    mixture: dict | None = None  # None: world.MIXTURE


@dataclass(frozen=True)
class Checkpoints:
    """How the loop state is saved: every ``every`` steps (0: never) into ``folder`` (None:
    ``<out>/.checkpoint``); ``resume``: continue from a checkpoint there of the same config (a
    checkpoint of another config raises ``CheckpointError``), False: discard it, start at 0."""

    every: int = 250
    folder: Path | None = None
    resume: bool = True


def train(
    cfg: TrainConfig,
    out: Path,
    *,
    world_root: Path = Path(".cache/sdvicl/toy-world"),
    quiet: bool = False,
    checkpoints: Checkpoints = Checkpoints(),
    stop_after: int | None = None,
    device: str = "cpu",
) -> dict:
    """Train, write the diffusers folder to ``out`` with ``training.json``; return the record.

    ``checkpoints``: where, how often, and whether to resume (`Checkpoints`). ``stop_after``:
    for tests, raise KeyboardInterrupt once this many steps
    are done, as an interruption would (not part of the config: the weights do not depend on
    it). ``device``: where the U-Net trains ("cuda" on a lent GPU: minutes instead of an
    hour); the pictures, noise and timesteps are still drawn on the CPU from the same
    generator, so only float rounding differs between devices.
    """
    out = Path(out)
    ckpt = Path(checkpoints.folder) if checkpoints.folder is not None else out / CHECKPOINT_DIR
    ckpt_path = ckpt / CHECKPOINT_FILE
    state = None
    if checkpoints.resume:
        state = load_checkpoint(ckpt_path, cfg)  # before the slow part: a refusal is instant
    elif ckpt_path.exists():
        ckpt_path.unlink()
        if not quiet:
            print(f"Discarded the checkpoint {ckpt_path} (no resume)", file=sys.stderr)

    torch.set_num_threads(cfg.threads)
    start = time.time()
    worlds = world.build_worlds(Path(world_root), cfg.seed, cfg.world_sizes)
    bank = world.picture_bank(worlds, architecture.RESOLUTION)
    generator = torch.Generator().manual_seed(cfg.seed)

    unet = architecture.new_unet(cfg.seed, cfg.layers_per_block, cfg.width).to(device).train()
    text_encoder = architecture.new_text_encoder(cfg.seed + 1)
    tokenizer_dir = out / "tokenizer"
    architecture.write_tokenizer(tokenizer_dir)
    from transformers import CLIPTokenizer

    embeds = architecture.empty_prompt_embedding(
        CLIPTokenizer.from_pretrained(tokenizer_dir), text_encoder
    )
    embeds = embeds.expand(cfg.batch_size, -1, -1).to(device)
    abar = make_scheduler().alphas_cumprod.float()  # SD1.5's betas, the sampler's schedule

    held = tuple(x.to(device) for x in _held_out_batch(bank, abar, seed=cfg.seed))
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))

    if state is None:
        held_start = held_out_loss(unet, embeds, held)
        first_step, losses = 0, []
        past = {"wall_seconds": 0.0, "train_seconds": 0.0, "sessions": 0, "resumed_at": []}
    else:
        unet.load_state_dict(state["unet"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["lr_scheduler"])
        generator.set_state(state["generator"])
        held_start, first_step, losses = state["held_out_start"], state["step"], state["losses"]
        past = {k: state[k] for k in ("wall_seconds", "train_seconds", "sessions", "resumed_at")}
        past["resumed_at"] = [*past["resumed_at"], first_step]
        if not quiet:
            print(f"Resuming toy training at step {first_step}/{cfg.steps} from {ckpt_path}")
    # The batches draw only from ``generator``, so a fresh iterator continues the sequence.
    batches = world.batches(bank, cfg.batch_size, generator, cfg.mixture)

    def checkpoint(step: int) -> None:
        now = time.time()
        save_checkpoint(
            ckpt_path,
            {
                "format": CHECKPOINT_FORMAT,
                "config": _config_dict(cfg),
                "step": step,
                "unet": unet.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "lr_scheduler": sched.state_dict(),
                "generator": generator.get_state(),
                "losses": losses,
                "held_out_start": held_start,
                "wall_seconds": past["wall_seconds"] + now - start,
                "train_seconds": past["train_seconds"] + now - loop_start,
                "sessions": past["sessions"] + 1,
                "resumed_at": past["resumed_at"],
            },
        )

    progress = progress_bar(
        "toy model",
        "loss {task.fields[loss]:.4f}  {task.fields[rate]:.2f} steps/s",
        disable=quiet,
    )
    loop_start = time.time()
    with progress:
        bar = progress.add_task(
            "train",
            total=cfg.steps,
            completed=first_step,
            loss=_mean_tail(losses, 100),
            rate=0.0,
        )
        for step in range(first_step, cfg.steps):
            x0 = next(batches)  # 1.
            t = torch.randint(0, len(abar), (cfg.batch_size,), generator=generator)  # 2.
            eps = torch.randn(x0.shape, generator=generator)
            a = abar[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
            pred = unet(x_t.to(device), t.to(device), encoder_hidden_states=embeds).sample  # 3.
            loss = torch.nn.functional.mse_loss(pred, eps.to(device))
            opt.zero_grad(set_to_none=True)  # 4.
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            sched.step()
            ema.update_parameters(unet)
            losses.append(loss.item())
            rate = (step + 1 - first_step) / max(time.time() - loop_start, 1e-9)
            progress.update(bar, advance=1, loss=_mean_tail(losses, 100), rate=rate)
            if not quiet and not progress.console.is_terminal and (step + 1) % 250 == 0:
                print(  # a log file gets a line now and then instead of a bar
                    f"step {step + 1}/{cfg.steps} loss {_mean_tail(losses, 100):.4f} "
                    f"{rate:.2f} steps/s",
                    file=sys.stderr,
                    flush=True,
                )
            if checkpoints.every > 0 and (step + 1) % checkpoints.every == 0:
                checkpoint(step + 1)
            if stop_after is not None and step + 1 >= stop_after:
                raise KeyboardInterrupt(f"stop_after={stop_after}")

    final = ema.module.eval().to("cpu")
    architecture.write_folder(out, final, text_encoder, _scheduler_config())
    now = time.time()
    record = {
        "config": asdict(cfg),
        "steps": cfg.steps,
        "wall_seconds": round(past["wall_seconds"] + now - start, 1),
        "train_seconds": round(past["train_seconds"] + now - loop_start, 1),
        "sessions": past["sessions"] + 1,  # 1 + the resumes; the times sum over sessions
        "resumed_at": past["resumed_at"],
        "final_loss": round(_mean_tail(losses, 100), 5),
        "held_out_loss": {
            "start": round(held_start, 5),
            "end": round(held_out_loss(final, embeds.cpu(), tuple(x.cpu() for x in held)), 5),
        },
        "first_loss": round(_mean_tail(losses[:100], 100), 5),
        "loss_curve": [
            round(_mean_tail(losses[: i + 1], 100), 5) for i in _curve_points(cfg.steps)
        ],
        "world_sizes": {k: len(v) for k, v in bank.items()},
        "parameters": sum(p.numel() for p in final.parameters()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
        + ("" if device == "cpu" else f", trained on {device}"),
        "sha256": weights_sha256(out),
    }
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    remove_checkpoint(ckpt)
    return record


# ----------------------------------------------------------------------------- checkpoints


def _config_dict(cfg: TrainConfig) -> dict:
    """The config as plain JSON values (tuples as lists), as a checkpoint stores it."""
    return json.loads(json.dumps(asdict(cfg)))


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"  # an interrupted run inside the repo stays untracked
    if not ignore.exists():
        ignore.write_text(_GITIGNORE, encoding="utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, cfg: TrainConfig) -> dict | None:
    """The checkpoint at ``path`` if there is one; CheckpointError if it is not ``cfg``'s."""
    path = Path(path)
    if not path.is_file():
        return None
    fix = "delete it, or pass --no-resume (resume=False) to start over"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # load_state_dict moves it
    except Exception as exc:  # any unreadable file gets the same one line
        raise CheckpointError(
            f"Toy training checkpoint {path} is unreadable ({type(exc).__name__}); {fix}."
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"Toy training checkpoint {path} has another format; {fix}.")
    theirs, ours = state.get("config") or {}, _config_dict(cfg)
    if theirs != ours:
        diff = ", ".join(
            f"{k} {theirs.get(k)!r} -> {ours.get(k)!r}"
            for k in sorted(set(theirs) | set(ours))
            if theirs.get(k) != ours.get(k)
        )
        raise CheckpointError(
            f"Toy training checkpoint {path} is of another config ({diff}); {fix}."
        )
    return state


def remove_checkpoint(folder: Path) -> None:
    """Remove the checkpoint file, its temp files and .gitignore, then the folder if empty."""
    folder = Path(folder)
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
    for tmp in folder.glob(f".{CHECKPOINT_FILE}.*.tmp"):
        tmp.unlink(missing_ok=True)
    ignore = folder / ".gitignore"
    if ignore.is_file() and ignore.read_text(encoding="utf-8") == _GITIGNORE:
        ignore.unlink()
    with contextlib.suppress(OSError):  # absent, or holds something that is not ours
        folder.rmdir()


def _held_out_batch(bank: dict[str, torch.Tensor], abar: torch.Tensor, seed: int) -> tuple:
    """A fixed batch (x_t, t, eps) from its own generator: the training draws are untouched."""
    g = torch.Generator().manual_seed(10_000 + seed)
    x0 = next(world.batches(bank, 32, g))
    t = torch.randint(0, len(abar), (32,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = abar[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, t, eps


@torch.no_grad()
def held_out_loss(unet, embeds: torch.Tensor, held: tuple) -> float:
    """The eps-prediction MSE on the fixed held-out batch (eval mode, weights untouched)."""
    x_t, t, eps = held
    was_training = unet.training
    unet.eval()
    pred = unet(x_t, t, encoder_hidden_states=embeds[:1].expand(len(t), -1, -1)).sample
    unet.train(was_training)
    return float(torch.nn.functional.mse_loss(pred, eps))


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _mean_tail(values: list[float], k: int) -> float:
    tail = values[-k:]
    return sum(tail) / len(tail) if tail else float("nan")


def _curve_points(steps: int, count: int = 20) -> list[int]:
    return sorted({min(steps - 1, round(i * (steps - 1) / (count - 1))) for i in range(count)})


def _scheduler_config() -> dict:
    return dict(SD15_SCHEDULER)


def weights_sha256(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every ``*.safetensors`` under ``folder``."""
    out = {}
    for path in sorted(Path(folder).rglob("*.safetensors")):
        out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
