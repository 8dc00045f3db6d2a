"""DeepFashion FLD dataset family (TASKS.md 4): test queries, train prompts, landmarks.

Keys are image paths; the truth is a `types.Landmarks` (the record's names, positions and
visibility, in the image's size). Groups are clothes types; `same_class` draws prompts of
the query's clothes type.
"""

from __future__ import annotations

from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data.deepfashion import CLOTHES_TYPES, FLDDataset, make_demo_fld
from sdvicl_bench.protocols.episodes import QuerySet
from sdvicl_bench.protocols.family import DatasetFamily, dataset_root
from sdvicl_bench.types import Landmarks


class DeepFashionFamily(DatasetFamily):
    """`Anno/list_landmarks.txt`, `Eval/list_eval_partition.txt` and `Img/` under the root."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.root = dataset_root(cfg, make_demo_fld)
        self.fld = FLDDataset(self.root)
        self.by_image = {r.image: r for r in self.fld.all_records()}

    def image(self, key: str) -> Image.Image:
        return self.fld.image(self.by_image[key])

    def target(self, key: str) -> Landmarks:
        record = self.by_image[key]
        size = self.image(key).size
        return Landmarks(tuple(record.names), record.xy, record.visible, size)

    def query_sets(self) -> list[QuerySet]:
        t = self.cfg.task
        return [
            QuerySet(
                queries=[r.image for r in self.fld.records(t.split)],
                pool=[r.image for r in self.fld.records(t.prompt_pool)],
                class_of=lambda k: self.by_image[k].clothes_type,
                fold_of=lambda k: CLOTHES_TYPES[self.by_image[k].clothes_type],
            )
        ]
