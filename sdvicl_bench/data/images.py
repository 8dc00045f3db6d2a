"""Reading image files for every dataset loader: a missing or corrupt file is one DataError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from sdvicl_bench.errors import DataError

# What PIL raises for a truncated, corrupt, non-image or oversized file.
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@contextmanager
def open_image(path: Path, what: str, fix: str, *, load: bool = True) -> Iterator[Image.Image]:
    """Open (and unless ``load=False``, decode) an image file with PIL.

    ``what`` names the file in the message ("Cityscapes image"), ``fix`` is the message's
    "Fix: ..." sentence. A missing file or one PIL cannot read is a one-line DataError; the
    image is closed when the block ends.
    """
    if not path.is_file():
        raise DataError(f"{what} not found: {path}. {fix}")
    im = None
    try:
        im = Image.open(path)
        if load:
            im.load()
    except UNREADABLE as err:
        if im is not None:
            im.close()
        raise DataError(f"{path} is not a readable image ({type(err).__name__}). {fix}") from None
    with im:
        yield im


def read_rgb(path: Path, what: str, fix: str) -> Image.Image:
    """The image file as PIL RGB of size (W, H) (grey, palette or CMYK files are converted)."""
    with open_image(path, what, fix) as im:
        return im.convert("RGB")
