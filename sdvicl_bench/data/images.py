"""Reading image (and MATLAB) files for every dataset loader: a missing or corrupt file is
one DataError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.io
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


def read_label_png(path: Path, what: str, fix: str, expected: str) -> np.ndarray:
    """An 8-bit label PNG as uint8 (H, W): a 'P' PNG gives its palette indices, an 'L' PNG
    its grey values. Another mode is a one-line DataError saying it is not ``expected``
    ("a class-id PNG ('P' or 'L')")."""
    with open_image(path, what, fix) as im:
        if im.mode not in ("P", "L"):
            raise DataError(f"{path} is a {im.mode} PNG, not {expected}. {fix}")
        return np.array(im, dtype=np.uint8)


def load_mat(path: Path, fix: str) -> dict:
    """The variables of a MATLAB file (``scipy.io.loadmat``, squeezed, structs as objects);
    a file scipy cannot read is a one-line DataError ending in ``fix``."""
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises many kinds on a bad file
        raise DataError(
            f"{path} is not a readable MATLAB file ({type(err).__name__}). {fix}"
        ) from None
