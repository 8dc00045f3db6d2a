"""DeepFashion FLD dataset family (TASKS.md 4): test queries, train prompts, landmarks.

Keys are image paths; the truth is a `types.Landmarks` (the record's names, positions and
visibility, in the image's size). Groups are clothes types; `same_class` draws prompts of
the query's clothes type. `task.options.normalize=box` scores in the clothes box of
`Anno/list_bbox.txt`: the truth is then a `tasks.keypoints.BoxLandmarks` (the metrics
normalise by the box; pictures still show the whole image).
"""

from __future__ import annotations

from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.data.deepfashion import (
    BBOX_FILE,
    CLOTHES_TYPES,
    LANDMARKS_FILE,
    Box,
    FLDDataset,
    make_demo_fld,
)
from sdvicl_bench.errors import DataError
from sdvicl_bench.protocols.episodes import QuerySet
from sdvicl_bench.protocols.family import DatasetFamily, dataset_root
from sdvicl_bench.tasks.keypoints import in_box
from sdvicl_bench.types import Landmarks

NORMALIZE = ("image", "box")
"""`task.options.normalize` values (tasks/keypoints.py OPTIONS lists the same); the first is the
default."""


class DeepFashionFamily(DatasetFamily):
    """`Anno/list_landmarks.txt`, `Eval/list_eval_partition.txt` and `Img/` under the root."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.root = dataset_root(cfg, make_demo_fld)
        self.fld = FLDDataset(self.root)
        self.by_image = {r.image: r for r in self.fld.all_records()}
        box = str(self.options.get("normalize", NORMALIZE[0])) == "box"
        self.boxes: dict[str, Box] | None = self._boxes() if box else None
        """Image -> clothes box with `normalize=box` (truths in the box), else None."""

    def _boxes(self) -> dict[str, Box]:
        """`Anno/list_bbox.txt`, checked to hold a box for every image of the landmark list;
        a one-line DataError naming the file and the fix where it is missing or short."""
        path = self.root / BBOX_FILE
        if not path.is_file():
            raise DataError(
                f"task.options.normalize=box needs the FLD clothes boxes, and {path} is "
                "missing. Fix: put list_bbox.txt from the DeepFashion FLD archive (Anno/) "
                "there, or drop task.options.normalize=box (normalize=image needs no boxes)."
            )
        boxes = self.fld.boxes()
        missing = [name for name in self.by_image if name not in boxes]
        if missing:
            raise DataError(
                f"{path} has no box for {len(missing)} image(s) of {LANDMARKS_FILE} (first: "
                f"{missing[0]}). Fix: use the list_bbox.txt of the same FLD archive, or drop "
                "task.options.normalize=box."
            )
        return boxes

    def image(self, key: str) -> Image.Image:
        return self.fld.image(self.by_image[key])

    def target(self, key: str) -> Landmarks:
        """The record's landmarks in the image; with `normalize=box`, in its clothes box."""
        record = self.by_image[key]
        size = self.image(key).size
        truth = Landmarks(tuple(record.names), record.xy, record.visible, size)
        return truth if self.boxes is None else in_box(truth, self.boxes[key])

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
