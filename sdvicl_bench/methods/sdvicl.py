"""SD-VICL, this suite's own method (METHOD.md), as one method among others.

Its model is `model=` and its settings `sampler.`; the loop drives `sampler.pipeline.Sampler`
directly (it alone can share A, B and C rows between variants), so this module only says
what SD-VICL is to `ls`, the tables and the run key.
"""

from __future__ import annotations

from typing import Any

from sdvicl_bench.methods.base import MethodInfo

INFO: dict[str, MethodInfo] = {
    "sdvicl": MethodInfo(
        name="sdvicl",
        title="SD-VICL",
        source="Oorloff et al., Stable Diffusion Models are Secretly Good at Visual "
        "In-Context Learning, ICCV 2025; no code released: this suite's implementation",
        licence="the model's (SD1.5: CreativeML OpenRAIL-M)",
        trained_for=(),  # training-free: every task is in-context
        gpu_seconds_per_episode=1.35,
        estimate_basis="measured: SD1.5 architecture, 512 px, 70 steps, bf16, fused kernel, "
        "K = 4 episodes per batch, n = 1, one H200 (docs/PERFORMANCE.md Run 4; 3.3 s at n = 5)",
        memory_gib=6.3,
        kind="model",
    )
}

OPTIONS: dict[str, Any] = {}
"""SD-VICL reads no `method.options`: `sampler.` holds its settings."""
