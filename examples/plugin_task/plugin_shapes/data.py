"""The `shapes` dataset family: small generated pictures of a disc or a square, with masks.

Written on first use under `data.root/<task.root_subdir>/` (deterministic, like the demo
writers of sdvicl_bench/data/demo.py):

    images/<split>_<class>_<i>.png   RGB, SIDE x SIDE: a coloured shape on a grey background
    masks/<split>_<class>_<i>.png    'L': 255 on the shape, 0 elsewhere
    .complete                        written last: the tree is whole

Queries are the `val` pictures, prompts come from the `trn` pictures (same class, with
`data=demo`'s same_class retrieval). The truth of a key is its bool mask (H, W).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.config import RunConfig
from sdvicl_bench.protocols.episodes import QuerySet
from sdvicl_bench.protocols.family import DatasetFamily

CLASSES = ("disc", "square")
SIDE = 64
PER_CLASS = 3
"""Pictures per class and split."""


def draw(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (SIDE, SIDE, 3), bool mask): one `kind` shape of random size, place, colour."""
    radius = int(rng.integers(10, 18))
    cy, cx = (int(v) for v in rng.integers(radius + 2, SIDE - radius - 2, size=2))
    yy, xx = np.mgrid[:SIDE, :SIDE]
    if kind == "disc":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    else:
        mask = (abs(yy - cy) <= radius) & (abs(xx - cx) <= radius)
    rgb = np.full((SIDE, SIDE, 3), 110, dtype=np.uint8)
    rgb[mask] = rng.integers(150, 256, size=3, dtype=np.uint8)
    return rgb, mask


def write_shapes(root: Path, seed: int = 0) -> Path:
    """Write the shapes tree under `root` once (nothing if `root/.complete` exists)."""
    if (root / ".complete").is_file():
        return root
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split in ("trn", "val"):
        for kind in CLASSES:
            for i in range(PER_CLASS):
                rgb, mask = draw(kind, rng)
                key = f"{split}_{kind}_{i}"
                Image.fromarray(rgb, mode="RGB").save(root / "images" / f"{key}.png")
                grey = np.where(mask, np.uint8(255), np.uint8(0))
                Image.fromarray(grey, mode="L").save(root / "masks" / f"{key}.png")
    (root / ".complete").write_text("shapes\n")
    return root


class ShapesFamily(DatasetFamily):
    """Generated shapes: `<split>_<class>_<i>` keys, bool masks as truth."""

    class_names = CLASSES

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        self.root = write_shapes(Path(cfg.data.root).expanduser() / cfg.task.root_subdir)

    def keys(self, split: str) -> list[str]:
        return sorted(p.stem for p in (self.root / "images").glob(f"{split}_*.png"))

    def image(self, key: str) -> Image.Image:
        return Image.open(self.root / "images" / f"{key}.png").convert("RGB")

    def target(self, key: str) -> np.ndarray:
        return np.asarray(Image.open(self.root / "masks" / f"{key}.png")) > 127

    def class_of(self, key: str) -> int:
        return CLASSES.index(key.split("_")[1])

    def query_sets(self) -> list[QuerySet]:
        return [
            QuerySet(
                queries=self.keys(self.cfg.task.split),
                pool=self.keys(self.cfg.task.prompt_pool),
                class_of=self.class_of,
                fold_of=lambda _k: None,
            )
        ]

    def key_inputs(self) -> dict[str, Any]:
        return {"images": len(self.keys("trn")) + len(self.keys("val"))}
