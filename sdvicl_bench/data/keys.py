"""Dataset keys: ``<image id>__<suffix>`` names one use of an image, any other key is an image id.

The HSNet list-line form (``2007_000033__01``) names an image once per fold class it holds. A
module of its own, imported by both ``retrieval`` and ``clip_retrieval``, so neither imports
the other back (``retrieval.clip_knn`` loads ``clip_retrieval`` lazily, for torch).
"""

from __future__ import annotations


def image_id_of(key: str) -> str:
    """The image id of a key: the part before the last ``__``, or the key itself."""
    head, sep, _ = key.rpartition("__")
    return head if sep else key
