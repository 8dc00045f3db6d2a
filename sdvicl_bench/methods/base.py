"""What a visual in-context learner is to the suite: episodes in, prediction pictures out.

A method turns each `Episode` (n prompt pairs A_i, B_i and a query C, PIL pictures at
their own sizes, `sampler.pipeline.Episode`) into an `EpisodeResult` whose `picture` is the
raw prediction picture of C's answer (RGB, any size: the task's decoder maps it back to the
query's size, exactly as for SD-VICL's D). Everything before (datasets, episodes, retrieval)
and after (decoders, metrics, records, grids, tables, rescore, sharding, resume) is shared.

A method module (`sdvicl_bench/methods/<name>.py`) gives, for each name it registers:
- `INFO`: a `MethodInfo` (what `ls` and docs/METHODS.md show);
- `build(cfg: MethodConfig) -> Method`: load the weights (hub id at a pinned revision, or a
  local folder `cfg.path`) or build a tiny random variant in code;
- `output_side(cfg: MethodConfig) -> int`: the side of the square picture its prediction
  is made at (the oracle row sends the GT picture through that side), without loading it;
- `weights_identity(cfg: MethodConfig) -> dict`: what names its weights in a run key,
  without loading them (`weights_identity` below does hub id + revision / folder digest /
  tiny seed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdvicl_bench.errors import ModelError

if TYPE_CHECKING:  # this module stays light: `ls` and the config read MethodInfo
    import torch

    from sdvicl_bench.sampler.pipeline import Episode, EpisodeResult


@dataclass(frozen=True)
class MethodInfo:
    """What `sdvicl-bench ls` and docs/METHODS.md say about a method.

    title: the name tables show ("SegGPT"); source: paper and code; licence: the weights';
    trained_for: the tasks it was trained for (of the six; the others still run);
    gpu_seconds_per_episode: an estimate on one H100 at n = 1, and what it rests on
    (`estimate_basis`); memory_gib: peak GPU memory estimate at n = 1 in its default dtype;
    kind: "hub" (real weights), "random" (tiny, for tests), "toy".
    """

    name: str
    title: str
    source: str
    licence: str
    trained_for: tuple[str, ...]
    gpu_seconds_per_episode: float | None
    estimate_basis: str
    memory_gib: float | None
    kind: str = "hub"


class Method(ABC):
    """A loaded visual in-context learner.

    Attributes: `info` (its MethodInfo), `device` (torch.device its outputs come from),
    `calls` (forward passes made so far, for results.json's timing).
    """

    info: MethodInfo
    device: torch.device
    calls: int = 0

    @abstractmethod
    def run(self, episodes: list[Episode]) -> list[EpisodeResult]:
        """One prediction picture per episode, in order. Randomness (if any) derives from
        each `episode.seed` alone, so a resumed or re-batched run gives the same pictures."""


def weights_identity(
    name: str, hub_id: str | None, revision: str | None, path: str | None, kind: str, seed: int = 0
) -> dict[str, Any]:
    """The run-key entry of a method's weights: random (tiny) -> name and seed; a local
    folder -> the sha256 over its files' contents (a copied folder resumes the same runs);
    hub -> id and revision."""
    if kind == "random":
        return {"name": name, "seed": seed}
    if path:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ModelError(
                f"method.path={path}: no such folder. Fix: point method.path at the method's "
                "downloaded folder, or drop method.path to load method.hub_id."
            )
        return {"name": name, "folder": folder_digest(folder)}
    return {"name": name, "source": hub_id, "revision": revision}


def folder_digest(folder: Path) -> str:
    """sha256 over (relative path, sha256 of content) of every non-hidden file under `folder`."""
    # Imported here: the backbones' registry loads torch, and this module stays light.
    from sdvicl_bench.sampler.backbones.registry import files_digest

    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(x.startswith(".") for x in p.relative_to(folder).parts)
    )
    return files_digest(folder, files)
