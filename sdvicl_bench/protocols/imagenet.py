"""ImageNet dataset family for colorization (TASKS.md 6): seeded val queries shown grey.

A_i is the grey prompt, B_i its colour image; retrieval sees grey pictures only (the
query's colours are what is asked). The truth is the colour image as float32 (H, W, 3) in
[0, 1]; the extra baseline `grey` is the grey query picture itself.
`task.options.source`: `folder` (ImageFolder under data.root) or `hub` (`datasets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data.imagenet import ImageFolderDataset, grey, make_demo_imagenet, sample_queries
from sdvicl_bench.protocols.episodes import QuerySet
from sdvicl_bench.protocols.family import DatasetFamily, dataset_root


class ImageNetFamily(DatasetFamily):
    """ImageNet val images, `<wnid>/<file>` keys."""

    baseline_names = ("grey",)

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        if self.options.get("source", "folder") == "hub":  # ImageNet through `datasets`
            from sdvicl_bench.data.imagenet_hub import load_hub_imagenet

            name = str(self.options.get("hub_name", "imagenet-1k"))
            self.root = Path(cfg.data.root).expanduser()
            self.folder = load_hub_imagenet(name, split="validation")
        else:
            self.root = dataset_root(cfg, make_demo_imagenet)
            self.folder = ImageFolderDataset(self.root)

    def image(self, key: str) -> Image.Image:
        """The grey photo (A, C, and what CLIP sees)."""
        return grey(self.folder.image(key))

    def target(self, key: str) -> np.ndarray:
        return np.asarray(self.folder.image(key).convert("RGB"), dtype=np.float32) / 255.0

    def query_sets(self) -> list[QuerySet]:
        ids = self.folder.ids()
        count = int(self.options.get("queries", 1000))
        return [
            QuerySet(
                queries=sample_queries(ids, count=count, seed=self.cfg.seed),
                pool=ids,
                class_of=type(self.folder).label,
                fold_of=lambda _k: None,
            )
        ]

    def key_inputs(self) -> dict[str, Any]:
        return {"images": len(self.folder.ids())}

    def prompt_id(self, key: str) -> str:
        return f"{key}#grey"

    def target_id(self, key: str) -> str:
        return key

    def query_id(self, key: str) -> str:
        return f"{key}#grey"

    def extra_baselines(self, key: str, target: Any) -> dict[str, Any]:
        return {"grey": self.image(key)}  # a picture: decoded like the model's
