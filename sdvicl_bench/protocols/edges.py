"""Edge dataset families (TASKS.md 5): VOC photos with Canny truths, or BSDS500.

`task.options.source=voc` (default): VOC val queries, train prompts, truth = Canny
(scikit-image, sigma 2, `tasks.edges.canny_edges`). `source=bsds500`: BSDS500 test queries,
train prompts, truth = the mean of the human boundary maps (data.root holds BSR/); each
query also brings its annotators' maps (`extras`) for the BSDS benchmark's ODS and OIS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data.demo import make_demo_voc
from sdvicl_bench.data.pascal import VOCDataset
from sdvicl_bench.data.voc_det import read_image_set
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.protocols.episodes import QuerySet
from sdvicl_bench.protocols.family import DatasetFamily, dataset_root, split_key
from sdvicl_bench.tasks.edges import canny_edges, thicken


def edge_family(cfg: RunConfig) -> DatasetFamily:
    """The family `task.options.source` names (voc or bsds500)."""
    source = str(cfg.task.options.get("source", "voc"))
    if source == "bsds500":
        return BSDSFamily(cfg)
    if source == "voc":
        return VOCEdgesFamily(cfg)
    raise ConfigError(f"task.options.source={source!r}: choose voc or bsds500.")


class VOCEdgesFamily(DatasetFamily):
    """VOC val queries, train prompts; truth = Canny edges float32 (H, W) in {0, 1}, thickened
    to `task.options.edge_width` px (default 1: Canny's own lines; the demo sets wider ones),
    with `task.options.canny_thresholds` (default: scikit-image's)."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.root = dataset_root(cfg, make_demo_voc)
        self.voc = VOCDataset(self.root)
        self.edge_width = int(cfg.task.options.get("edge_width", 1))
        self.thresholds = cfg.task.options.get("canny_thresholds")

    def image(self, key: str) -> Image.Image:
        return self.voc.image(key)

    def target(self, key: str) -> np.ndarray:
        edges = canny_edges(self.image(key), self.thresholds)
        return thicken(edges, self.edge_width).astype(np.float32)

    def target_id(self, key: str) -> str:
        return f"{key}#edges"

    def query_sets(self) -> list[QuerySet]:
        t = self.cfg.task
        queries = read_image_set(self.root, t.split)
        pool = read_image_set(self.root, t.prompt_pool)
        return [QuerySet(queries, pool, class_of=lambda _k: 0, fold_of=lambda _k: None)]

    def key_inputs(self) -> dict[str, Any]:
        return {"source": "voc"}


class BSDSFamily(DatasetFamily):
    """BSDS500 `test/<id>` queries, `train/<id>` prompts; truth = mean human boundaries."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        from sdvicl_bench.data.bsds import BSDSDataset, make_demo_bsds

        root = Path(cfg.data.root).expanduser()
        if cfg.data.name == "demo":
            root = make_demo_bsds(root / "bsds")
        self.root, self.bsds = root, BSDSDataset(root)

    def image(self, key: str) -> Image.Image:
        split, image_id = split_key(key)
        return self.bsds.image(image_id, split)

    def target(self, key: str) -> np.ndarray:
        split, image_id = split_key(key)
        return self.bsds.boundaries(image_id, split)

    def target_id(self, key: str) -> str:
        return f"{key}#edges"

    def query_sets(self) -> list[QuerySet]:
        queries = [f"test/{i}" for i in self.bsds.ids("test")]
        pool = [f"train/{i}" for i in self.bsds.ids("train")]
        return [QuerySet(queries, pool, class_of=lambda _k: 0, fold_of=lambda _k: None)]

    def key_inputs(self) -> dict[str, Any]:
        return {"source": "bsds500"}

    def extras(self, key: str) -> dict[str, Any]:
        split, image_id = split_key(key)
        return {"annotators": self.bsds.annotator_boundaries(image_id, split)}
