"""What truly differs between datasets: a `DatasetFamily` per on-disk layout.

A family knows where its data is (written by the demo generator for `data=demo`), its query
and pool keys (`query_sets`), the photo of a key, the truth of a key (what the task's decoder
renders as B and decodes a prediction to), the ids the sampler caches pictures under, and
any baseline or record extra only it can give (fgseg's every-object mask, BSDS500's
annotators). Everything else (pictures, decoding, metrics) is the task's YAML and decoder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.errors import DataError
from sdvicl_bench.protocols.episodes import QuerySet


class DatasetFamily(ABC):
    """One dataset layout's keys, photos and truths (subclasses: one module each)."""

    root: Path
    cycle_per_fold: bool = False
    """`episodes=N` gives N episodes per fold (Pascal-5i: VP's 1000 per fold)."""
    baseline_names: tuple[str, ...] = ()
    """The baselines `extra_baselines` gives, besides every task's black and copy_b."""
    class_names: tuple[str, ...] = ()
    """Names of the classes `class_of` returns (`per_class` blocks of set-level metrics)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.options = cfg.task.options

    @abstractmethod
    def query_sets(self) -> list[QuerySet]:
        """Queries with their prompt pools."""

    @abstractmethod
    def image(self, key: str) -> Image.Image:
        """The photo a key names: a prompt's A, the query's C, what CLIP sees."""

    @abstractmethod
    def target(self, key: str) -> Any:
        """The truth of a key at its image's size (the decoder's `render_gt` draws it)."""

    def query_image(self, key: str) -> Image.Image:
        """The query picture C (colorization: the grey photo)."""
        return self.image(key)

    def key_inputs(self) -> dict[str, Any]:
        """What, besides configs, changes a number (split-list hashes ...)."""
        return {}

    def class_of(self, key: str) -> Hashable:
        """The class a record's query key shows (per-class blocks; 0 where none)."""
        return 0

    # -- the ids the sampler caches pictures under (kept per family: they key its caches)
    def prompt_id(self, key: str) -> str:
        return key

    def target_id(self, key: str) -> str:
        return f"{key}#gt"

    def query_id(self, key: str) -> str:
        return key

    # -- scoring
    def scored_target(self, target: Any) -> Any:
        """The truth at the scoring size (Pascal `score_size`); itself by default."""
        return target

    def scored_picture(self, picture: Image.Image) -> Image.Image:
        """A picture (prediction, B) as it is decoded for scoring; itself by default."""
        return picture

    def extra_baselines(self, key: str, target: Any) -> dict[str, Any]:
        """Baselines only this family can give: name -> prediction at the scoring size, or a
        picture (decoded like the model's)."""
        return {}

    def extras(self, key: str) -> dict[str, Any]:
        """Truth extras set-level metrics read (BSDS500's annotator boundary maps)."""
        return {}


def split_key(key: str) -> tuple[str, str]:
    """A `split/image_id` key (Cityscapes, BSDS500) -> (split, image_id)."""
    split, _, image_id = key.partition("/")
    return split, image_id


def dataset_root(cfg: RunConfig, make_demo: Callable[[Path], Any] | None) -> Path:
    """`data.root/<task.root_subdir>`, written by `make_demo` for data=demo; a one-line
    DataError naming the folder and the fix where it is missing."""
    root = Path(cfg.data.root).expanduser() / cfg.task.root_subdir
    if cfg.data.name == "demo" and make_demo is not None:
        make_demo(root)
    if not root.is_dir():
        raise DataError(
            f"Dataset root not found: {root}. Fix: put the {cfg.task.dataset} data there (see "
            f"README, task {cfg.task.name}), pass data.root=<folder holding "
            f"{cfg.task.root_subdir}/>, or try data=demo."
        )
    return root
