"""Records shared between stages: frozen episodes and per-sample results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

_V = TypeVar("_V")


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


ORACLE = "oracle"
"""The key of the oracle row among a record's and results.json's `baselines`: the ground
truth sent through the path a prediction takes (`protocols.oracle`). A ceiling, not a
competitor: never the best baseline (`competitors`)."""

ORACLE_LABEL = "oracle (GT through the pipeline: ceiling)"
"""How summaries and tables name the oracle row (grid captions: "ceiling (oracle)")."""


def competitors(baselines: Mapping[str, _V]) -> dict[str, _V]:
    """The baselines a method competes with (a best baseline is picked among these): every
    entry of `baselines` but the oracle, in order."""
    return {k: v for k, v in baselines.items() if k != ORACLE}


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
