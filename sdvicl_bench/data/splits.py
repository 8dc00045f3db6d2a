"""Pascal-5i split lists: fetch once from the public source, check the sha256 pins.

TASKS.md §1: the lists (HSNet format) come from the public visual_prompting repository at
commit 6351e0d, ``evaluate/splits/pascal/{trn,val}/fold{0-3}.txt``, and must match
``pascal.SPLIT_SHA256`` (bytes as published, CRLF line ends), whether fetched or read from a
local folder. Demo data carries its own unpinned lists (``verify=False``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdvicl_bench.data.pascal import NUM_FOLDS, SPLIT_SHA256, SPLITS, split_list_path
from sdvicl_bench.errors import DataError

SPLITS_SOURCE = (
    "https://raw.githubusercontent.com/amirbar/visual_prompting/6351e0d/"
    "evaluate/splits/pascal/{split}/fold{fold}.txt"
)
"""URL of one published list; ``.format(split="trn"|"val", fold=0..3)``."""

FETCH_TIMEOUT_S = 20.0
MAX_LIST_BYTES = 10_000_000  # the largest published list is ~100 kB


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


_FIX = (
    "Fix: put the published list (visual_prompting@6351e0d) at that path, or pass "
    "data.splits=<folder holding trn/ and val/ fold0-3.txt>."
)


def _fetch(url: str, path: Path, opener: Callable[..., Any]) -> bytes:
    """The bytes at ``url``; any network or HTTP failure -> one-line DataError."""
    try:
        with opener(url, timeout=FETCH_TIMEOUT_S) as response:
            data = response.read(MAX_LIST_BYTES + 1)
    except urllib.error.URLError as err:  # HTTPError included
        reason = getattr(err, "reason", None) or err
        code = f"HTTP {err.code} " if isinstance(err, urllib.error.HTTPError) else ""
        problem = f"{code}{_one_line(reason)}"
    except (OSError, TimeoutError, ValueError, http.client.HTTPException) as err:
        problem = _one_line(err) or type(err).__name__
    else:
        if isinstance(data, bytes) and len(data) <= MAX_LIST_BYTES:
            return data
        problem = "response is not a split list (too large or not bytes)"
    raise DataError(
        f"Pascal-5i split list {path} is missing and cannot be downloaded from {url} "
        f"({problem[:200]}). {_FIX}"
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_split_lists(
    splits_dir: Path,
    *,
    verify: bool = True,
    fetch: bool = True,
    opener: Callable[..., Any] = urllib.request.urlopen,
) -> Path:
    """Make sure ``splits_dir/{trn,val}/fold{0-3}.txt`` exist and match the pins; return it.

    Each present file is checked against ``SPLIT_SHA256`` (``verify``); each missing one is
    downloaded from ``SPLITS_SOURCE`` with ``opener(url, timeout=...)`` (``fetch``), its sha256
    checked BEFORE it is written (atomically), so a bad download leaves nothing behind.
    Present, correct files cause no network access. ``verify=False`` (demo lists) skips every
    hash check. Every failure is a one-line DataError naming the file and the fix.
    """
    splits_dir = Path(splits_dir)
    for split in SPLITS:
        for fold in range(NUM_FOLDS):
            path = split_list_path(splits_dir, split, fold)
            expected = SPLIT_SHA256[f"{split}{fold}"]
            url = SPLITS_SOURCE.format(split=split, fold=fold)
            if path.exists():
                if verify:
                    _verify_file(path, expected)
                continue
            if not fetch:
                raise DataError(
                    f"Pascal-5i split list not found: {path}. Fix: download it from {url} "
                    "into that place, or pass data.splits=<folder holding trn/ and val/ "
                    "fold0-3.txt>."
                )
            data = _fetch(url, path, opener)
            actual = hashlib.sha256(data).hexdigest()
            if verify and actual != expected:
                raise DataError(
                    f"Pascal-5i split list downloaded from {url} has sha256 {actual}, expected "
                    f"{expected}; nothing written to {path}. Fix: check the network "
                    "(proxy/captive portal) or pass data.splits=<folder with the published "
                    "lists>."
                )
            _write_atomic(path, data)
    return splits_dir


def _verify_file(path: Path, expected: str) -> None:
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise DataError(
            f"Pascal-5i split list {path} cannot be read ({type(err).__name__}). {_FIX}"
        ) from None
    if actual != expected:
        raise DataError(
            f"Pascal-5i split list {path} has sha256 {actual}, expected {expected} "
            "(visual_prompting@6351e0d, bytes as published with CRLF line ends). Fix: delete "
            "it to fetch it again, or replace it with the published file byte for byte."
        )
