"""Fixtures shared by the sampler, naive-path and processor tests."""

from __future__ import annotations

import os

import pytest
import torch

# Without a GPU, Triton kernels (fused_attention.py) run in Triton's CPU interpreter. The
# variable is read when a kernel is defined, so it must be set before triton is imported.
if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

from sdvicl_bench.sampler.models import build_tiny


@pytest.fixture(scope="module")
def tiny():
    """The tiny random SD-shaped model (seeded), one per test module."""
    return build_tiny(seed=0)
