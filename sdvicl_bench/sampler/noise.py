"""Randomness keyed by content, not position (METHOD.md 3, [choice]).

Each image draws its noise from its own `torch.Generator`, seeded from (run seed, image id,
role). So C's noise does not depend on n, two copies of one prompt share their noise, prompt
order does not matter, and an episode gives the same result alone, batched, resumed or on
another shard. Noise is drawn on the CPU (identical on every device) and then moved.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, image_id: str, role: str) -> int:
    """A 63-bit generator seed from (seed, image id, role), stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}\x1f{role}\x1f{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def image_noise(
    seed: int, image_id: str, role: str, shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Standard normal noise of `shape` (float32) from the image's own generator."""
    gen = torch.Generator(device="cpu").manual_seed(derive_seed(seed, image_id, role))
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(device)
