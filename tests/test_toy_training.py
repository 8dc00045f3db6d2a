"""The toy trainer's checkpoints: an interrupted and resumed training writes the same bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch

from sdvicl_bench.sampler.backbones.toy import check_weights
from sdvicl_bench.toy.train import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    CheckpointError,
    Checkpoints,
    TrainConfig,
    _config_dict,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
    train,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_toy.py"

TINY = TrainConfig(
    steps=6,
    batch_size=4,
    lr=2e-3,
    warmup=3,  # the LR changes every step: a schedule restored wrong shows in the weights
    ema_decay=0.5,  # an EMA that differs from the U-Net: a wrong EMA restore shows
    threads=1,
    world_sizes={"voc": 80, "cityscapes": 4, "fashion": 16, "imagenet": (2, 4)},
)


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "training.json"
    }


@pytest.mark.slow
def test_an_interrupted_training_resumes_to_the_same_bytes(tmp_path, capsys):
    world_root = tmp_path / "world"  # built once, shared by the three runs

    def run(out: str, global_seed: int, **kw) -> dict:
        # Another global seed per run: the loop must not draw from torch's global RNG (the
        # checkpoint does not save it), so the bytes must not change with it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(global_seed)
            every = Checkpoints(every=2, resume=kw.pop("resume", True))
            return train(TINY, tmp_path / out, world_root=world_root, checkpoints=every, **kw)

    stale = tmp_path / "a" / CHECKPOINT_DIR / CHECKPOINT_FILE  # another config's: discarded
    save_checkpoint(stale, {"format": CHECKPOINT_FORMAT, "config": {}, "step": 2})
    whole = run("a", 1, quiet=True, resume=False)
    assert whole["sessions"] == 1 and whole["resumed_at"] == []
    assert not (tmp_path / "a" / CHECKPOINT_DIR).exists()

    # Interrupted after step 5: the checkpoint of step 4 is there, step 5 is lost and redone.
    with pytest.raises(KeyboardInterrupt):
        run("b", 2, quiet=True, stop_after=5)
    ckpt = tmp_path / "b" / CHECKPOINT_DIR / CHECKPOINT_FILE
    assert load_checkpoint(ckpt, TINY)["step"] == 4
    assert sorted(p.name for p in ckpt.parent.iterdir()) == [".gitignore", CHECKPOINT_FILE]
    capsys.readouterr()

    resumed = run("b", 3)
    assert f"Resuming toy training at step 4/6 from {ckpt}" in capsys.readouterr().out
    assert resumed["sha256"] == whole["sha256"]  # the U-Net (the EMA, what ships) and the rest
    assert _files(tmp_path / "b") == _files(tmp_path / "a")  # every file, byte for byte
    assert check_weights(tmp_path / "b") == whole["sha256"]
    for key in ("final_loss", "first_loss", "loss_curve", "held_out_loss", "steps"):
        assert resumed[key] == whole[key], key
    assert resumed["sessions"] == 2 and resumed["resumed_at"] == [4]
    assert resumed["wall_seconds"] > 0 and resumed["train_seconds"] > 0
    assert not ckpt.parent.exists()  # removed once the weights and record are written


def test_a_checkpoint_of_another_config_is_refused_before_any_work(tmp_path):
    other = dataclasses.replace(TINY, steps=7)
    ckpt = tmp_path / "out" / CHECKPOINT_DIR / CHECKPOINT_FILE
    save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "config": _config_dict(other), "step": 2})
    with pytest.raises(CheckpointError, match=r"another config \(steps 7 -> 6\)") as err:
        train(TINY, tmp_path / "out", world_root=tmp_path / "world", quiet=True)
    assert "\n" not in str(err.value) and "--no-resume" in str(err.value)
    assert not (tmp_path / "world").exists()  # refused before building anything
    assert ckpt.is_file()  # and left alone

    # The script says it in one line and exits non-zero.
    spec = importlib.util.spec_from_file_location("train_toy", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--out", str(tmp_path / "out"), "--steps", "6", "--world-root", str(tmp_path / "w")]
    with pytest.raises(SystemExit) as exit_:
        script.main(argv)
    message = str(exit_.value.code)
    assert message.startswith("train_toy.py: error: Toy training checkpoint")
    assert "batch_size 4 -> 32" in message and "\n" not in message
    assert not (tmp_path / "w").exists()


def test_checkpoint_files_are_atomic_self_ignoring_and_cleaned_up(tmp_path):
    folder = tmp_path / CHECKPOINT_DIR
    save_checkpoint(folder / CHECKPOINT_FILE, {"format": CHECKPOINT_FORMAT, "config": {}})
    save_checkpoint(folder / CHECKPOINT_FILE, {"format": CHECKPOINT_FORMAT, "config": {}})
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore", CHECKPOINT_FILE]  # no temps
    assert load_checkpoint(tmp_path / "absent.pt", TINY) is None
    (folder / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(folder / CHECKPOINT_FILE, TINY)
    remove_checkpoint(folder)
    assert not folder.exists()
    mine = tmp_path / "mine"  # a checkpoint_dir that holds other things is left with them
    save_checkpoint(mine / CHECKPOINT_FILE, {"format": CHECKPOINT_FORMAT})
    (mine / "notes.txt").write_text("keep")
    remove_checkpoint(mine)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_mixture_and_layers_per_block_reach_the_batches_and_the_unet():
    from sdvicl_bench.toy import architecture, world

    kinds = list(world.MIXTURE)
    bank = {k: torch.full((3, 3, 4, 4), float(i)) for i, k in enumerate(kinds)}
    only = {k: (1.0 if k == "keypoints" else 0.0) for k in kinds}
    batch = next(world.batches(bank, 16, torch.Generator().manual_seed(0), only))
    assert torch.all(batch == kinds.index("keypoints"))  # every picture from the one kind
    with pytest.raises(ValueError, match="every kind"):
        next(world.batches(bank, 4, torch.Generator(), {"keypoints": 1.0}))
    one, two = (architecture.new_unet(0, n) for n in (1, 2))
    assert two.config.layers_per_block == 2 and one.config.layers_per_block == 1
    assert sum(p.numel() for p in two.parameters()) > sum(p.numel() for p in one.parameters())
    wide = architecture.new_unet(0, 1, width=2)
    assert wide.config.block_out_channels == (32, 64, 128, 128)
    assert one.config.block_out_channels == (16, 32, 64, 64)  # the shipped layout
