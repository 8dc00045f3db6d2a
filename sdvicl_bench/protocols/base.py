"""What a scored prediction hands the orchestrator (`evaluate.py`).

A protocol wires one task's stages: dataset -> episodes -> sampler inputs (A, B, C
pictures) -> decoded prediction -> per-sample scores and trivial baselines. Every task is one
`protocols.task.TaskProtocol`, built from its YAML by `protocols.registry`; the stage modules
it calls (data/, tasks/, metrics/) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class Scored:
    """A scored prediction: the method's scores, each baseline's, and the GT picture to save."""

    scores: dict[str, float]
    baselines: dict[str, dict[str, float]]
    gt_picture: Image.Image
    extra: dict[str, Any] = field(default_factory=dict)
