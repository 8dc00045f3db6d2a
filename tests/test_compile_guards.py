"""torch.compile'd U-Net: the sampler's per-step state must not force a recompile per step.

dynamo treats an int attribute reached from an nn.Module as a constant. When the VICL
processors read the controller's step, each step compiled the U-Net again until dynamo's
recompile limit (8), then ran it eagerly: `make bench-gpu` on an H200 (2026-12-04, fc4d0eb)
measured compile-fused n = 5 at 57.5 s latency against 4.6 s eager. The `eager` backend
runs dynamo's tracing and guards without inductor, so this is checked on a CPU.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch._dynamo.utils import counters

from sdvicl_bench.config import AttentionConfig, SamplerConfig
from sdvicl_bench.sampler.pipeline import Sampler
from tests.helpers import SIZE, episode


def compiled_frames(tiny, config: SamplerConfig) -> int:
    """How many graphs dynamo compiled for one episode's run of `config`."""
    torch._dynamo.reset()
    counters.clear()
    network = tiny.unet
    tiny.unet = torch.compile(network, backend="eager", dynamic=False)
    try:
        Sampler(tiny, config).run([episode(1)])
    finally:
        tiny.unet = network
        torch._dynamo.reset()
    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("window", [(None, None), (1, 3)])
def test_compiled_unet_is_not_recompiled_per_step(tiny, window):
    base = SamplerConfig(steps=3, resolution=SIZE, attention=AttentionConfig(steps=window))
    short = compiled_frames(tiny, base)
    long = compiled_frames(tiny, dataclasses.replace(base, steps=8))
    # The graphs depend on the batch shapes and on whether a step lies in the window, not
    # on how many steps there are: one per step (the bug) gives 3 against 8.
    assert short == long, (short, long)
    assert long <= 6, long
