"""Fixtures shared by the test modules (a module may override one with its own)."""

from __future__ import annotations

import os

import pytest
import torch

# Without a GPU, Triton kernels (fused_attention.py) run in Triton's CPU interpreter. The
# variable is read when a kernel is defined, so it must be set before triton is imported.
if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

from sdvicl_bench.sampler.backbones.sd15 import build_tiny


@pytest.fixture(scope="module")
def tiny():
    """The tiny random SD-shaped model (seeded), one per test module."""
    return build_tiny(seed=0)


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A fresh current directory (run folders, demo data and caches land under it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """One demo data root for the module (written on first use by the protocols)."""
    return tmp_path_factory.mktemp("demo-data")
