"""Records shared between stages: frozen episodes and per-sample results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class EpisodeSpec:
    """One frozen episode: which query, which prompts, which seed (episodes.jsonl line).

    query and prompts are dataset keys (for Pascal-5i `<image id>__<class>`); `meta` holds
    task extras such as the fold.
    """

    id: str
    query: str
    prompts: tuple[str, ...]
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["prompts"] = list(self.prompts)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EpisodeSpec:
        return cls(
            d["id"], d["query"], tuple(d["prompts"]), int(d["seed"]), dict(d.get("meta", {}))
        )


IGNORE_LABEL = 255
"""Cityscapes trainId of pixels not scored (void and rare classes); drawn black."""

NUM_CLASSES = 19
"""Cityscapes evaluation classes (trainIds 0..18); `data.cityscapes.TRAIN_CLASSES` names them."""


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Named landmark positions in one image: the keypoint task's truth and prediction.

    ``names`` (K,) landmark names; ``xy`` float (K, 2) pixel (x, y), NaN where missing;
    ``visible`` bool (K,) which ones count (truth: annotated visible; prediction: found);
    ``size`` (W, H) of the image the pixels belong to.
    """

    names: tuple[str, ...]
    xy: Any = field(repr=False)
    visible: Any = field(repr=False)
    size: tuple[int, int] = (0, 0)
