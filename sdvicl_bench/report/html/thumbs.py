"""The thumbnail cache: pictures shrunk under `out/img/`, made once per source.

`out/img/sources.json` remembers what each thumbnail was made from (and the classes of the
queries), so a second report into the same folder only makes the pictures that are new or
changed.
"""

from __future__ import annotations

import json
import os
import re
from hashlib import sha1
from pathlib import Path

from PIL import Image

from sdvicl_bench.report.grids import to_rgb
from sdvicl_bench.report.html.common import IMG_DIR

SOURCES = "sources.json"
"""The thumbnail cache's record (under out/img/): {relative path: what it was made from}."""


def safe_name(text: str) -> str:
    """`text` as a file name: itself where it only holds [A-Za-z0-9._-], else those kept
    (others as "_") and 8 hex chars of its hash appended (so two names never collide)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "_"
    if cleaned == text and len(text) <= 120:
        return text
    return f"{cleaned[:100]}-{sha1(text.encode()).hexdigest()[:8]}"


class Thumbs:
    """Thumbnails under `out/img/`, made once per source (`out/img/sources.json`)."""

    def __init__(self, out: Path, tile: int) -> None:
        self.out = out
        self.tile = tile
        self.record_path = out / IMG_DIR / SOURCES
        self.sources: dict[str, str] = {}
        self.classes: dict[str, str | None] = {}
        if self.record_path.is_file():
            try:
                saved = json.loads(self.record_path.read_text())
                self.sources = dict(saved.get("files") or {})
                self.classes = dict(saved.get("classes") or {})
            except (OSError, ValueError, AttributeError):
                self.sources, self.classes = {}, {}

    def fresh(self, rel: str, source: str) -> bool:
        """Whether `rel` exists and was made from `source` at this tile size."""
        return self.sources.get(rel) == f"{source}|{self.tile}" and (self.out / rel).is_file()

    def write(self, rel: str, source: str, picture: Image.Image) -> str:
        """Save `picture` shrunk to the tile size as `rel` (JPEG or PNG by suffix)."""
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        small = to_rgb(picture)
        small.thumbnail((self.tile, self.tile), Image.Resampling.BILINEAR)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        if rel.endswith(".jpg"):
            small.save(tmp, format="JPEG", quality=85)
        else:
            small.save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
        self.sources[rel] = f"{source}|{self.tile}"
        return rel

    def save(self) -> None:
        """Write the cache record."""
        payload = {"files": self.sources, "classes": self.classes}
        tmp = self.record_path.with_name(f"{SOURCES}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, self.record_path)


def file_source(path: Path) -> str:
    """What a file thumbnail was made from: its path, size and modification time."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
