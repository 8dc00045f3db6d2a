"""The backbone names `model.name` accepts, importable without torch or diffusers.

`ModelConfig` checks its `name` here when it is built, so a typo fails at config time (in
`validate` too) with one line and a "did you mean"; the registry (`registry.py`) asserts
that it implements exactly these names.
"""

from __future__ import annotations

import difflib

from sdvicl_bench.errors import ConfigError

BACKBONE_NAMES: tuple[str, ...] = (
    "sd15",
    "sd21",
    "sdxl",
    "toy",
    "tiny",
    "tiny-sd21",
    "tiny-sdxl",
    "sd15-random",
)
"""Every backbone, real weights first, then the ones built in code."""


def check_backbone_name(name: str) -> str:
    """`name` if it is a backbone, else a one-line ConfigError with the choices."""
    if name in BACKBONE_NAMES:
        return name
    close = difflib.get_close_matches(str(name), BACKBONE_NAMES, n=1)
    hint = f" Did you mean model={close[0]}?" if close else ""
    raise ConfigError(f"Unknown model '{name}'. Choose one of: {', '.join(BACKBONE_NAMES)}.{hint}")
