"""Fixtures shared by the sampler, naive-path and processor tests."""

from __future__ import annotations

import pytest

from sdvicl_bench.sampler.models import build_tiny


@pytest.fixture(scope="module")
def tiny():
    """The tiny random SD-shaped model (seeded), one per test module."""
    return build_tiny(seed=0)
