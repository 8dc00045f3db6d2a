"""The backbone names `model.name` accepts, importable without torch or diffusers.

`ModelConfig` checks its `name` when it is built, so a typo fails at config time (in
`validate` too) with one line and a "did you mean". The names live in the leaf
`sdvicl_bench.registry` (kind `backbone`, as module paths: no import of the sampler);
`config` names the packaged ones and checks against every registered one.
"""

from __future__ import annotations

from sdvicl_bench.config import BACKBONE_NAMES, check_backbone_name

__all__ = ["BACKBONE_NAMES", "check_backbone_name"]
