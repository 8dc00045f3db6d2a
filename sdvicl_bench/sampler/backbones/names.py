"""The backbone names `model.name` accepts, importable without torch or diffusers.

`ModelConfig` checks its `name` when it is built, so a typo fails at config time (in
`validate` too) with one line and a "did you mean"; the registry (`registry.py`) asserts
that it implements exactly these names. The list lives in the leaf `config` module (which
must not import the sampler); this module names it for the sampler.
"""

from __future__ import annotations

from sdvicl_bench.config import BACKBONE_NAMES, check_backbone_name

__all__ = ["BACKBONE_NAMES", "check_backbone_name"]
