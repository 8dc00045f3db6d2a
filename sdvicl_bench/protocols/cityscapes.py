"""Cityscapes dataset family (TASKS.md 3): val queries, train prompts, trainId maps.

Keys are `<split>/<image id>`; the truth is the trainId map uint8 (H, W). B pictures are
cached per palette (`task.options.palette`), so their ids name it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data.cityscapes import TRAIN_CLASSES, CityscapesDataset
from sdvicl_bench.data.demo_cityscapes import make_demo_cityscapes
from sdvicl_bench.protocols.episodes import QuerySet
from sdvicl_bench.protocols.family import DatasetFamily, dataset_root, split_key


class CityscapesFamily(DatasetFamily):
    """leftImg8bit photos and gtFine trainIds under `data.root/cityscapes`."""

    class_names = TRAIN_CLASSES

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.root = dataset_root(cfg, make_demo_cityscapes)
        self.city = CityscapesDataset(self.root)
        self.palette = str(self.options.get("palette", "official"))

    def image(self, key: str) -> Image.Image:
        split, image_id = split_key(key)
        return self.city.image(image_id, split)

    def target(self, key: str) -> np.ndarray:
        split, image_id = split_key(key)
        return self.city.train_ids(image_id, split)

    def query_sets(self) -> list[QuerySet]:
        t = self.cfg.task
        return [
            QuerySet(
                queries=[f"{t.split}/{i}" for i in self.city.ids(t.split)],
                pool=[f"{t.prompt_pool}/{i}" for i in self.city.ids(t.prompt_pool)],
                class_of=lambda _k: 0,
                fold_of=lambda _k: None,
            )
        ]

    def key_inputs(self) -> dict[str, Any]:
        return {"palette": self.palette}

    def target_id(self, key: str) -> str:
        return f"{key}#gt-{self.palette}"
