"""Pascal-5i split lists: fetch with a fake opener serving the published files, sha256 pins,
one-line errors. Offline."""

from __future__ import annotations

import io
import urllib.error
from pathlib import Path

import pytest

from sdvicl_bench.data.pascal import SPLIT_SHA256, file_sha256, read_split_list
from sdvicl_bench.data.splits import SPLITS_SOURCE, ensure_split_lists
from sdvicl_bench.errors import DataError

SHARED_SPLITS = Path(__file__).resolve().parents[2] / "shared/data/pascal5i"
PREFIX = "https://raw.githubusercontent.com/amirbar/visual_prompting/6351e0d/"
NAMES = [(s, f) for s in ("trn", "val") for f in range(4)]

needs_shared = pytest.mark.skipif(
    not SHARED_SPLITS.is_dir(), reason=f"published split lists not at {SHARED_SPLITS}"
)


class FakeOpener:
    """Serves ``files[url]`` as urlopen would; records every call."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float = 0) -> io.BytesIO:
        self.calls.append((url, timeout))
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        return io.BytesIO(self.files[url])


def _published() -> dict[str, bytes]:
    return {
        SPLITS_SOURCE.format(split=s, fold=f): (SHARED_SPLITS / s / f"fold{f}.txt").read_bytes()
        for s, f in NAMES
    }


def _fail(url: str, timeout: float = 0) -> io.BytesIO:
    raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")


def _write_all(folder: Path, content: bytes) -> None:
    for s, f in NAMES:
        (folder / s).mkdir(parents=True, exist_ok=True)
        (folder / s / f"fold{f}.txt").write_bytes(content)


def test_source_url() -> None:
    assert SPLITS_SOURCE.format(split="val", fold=2) == (
        PREFIX + "evaluate/splits/pascal/val/fold2.txt"
    )


@needs_shared
def test_fetch_all_verifies_and_writes(tmp_path: Path) -> None:
    opener = FakeOpener(_published())
    out = ensure_split_lists(tmp_path / "splits", opener=opener)
    assert out == tmp_path / "splits"
    assert sorted(u for u, _ in opener.calls) == sorted(_published())
    assert all(0 < t <= 60 for _, t in opener.calls)
    for s, f in NAMES:
        path = out / s / f"fold{f}.txt"
        assert file_sha256(path) == SPLIT_SHA256[f"{s}{f}"]
        assert read_split_list(path)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp files left
    # second call: everything present and correct, no network at all
    ensure_split_lists(out, opener=_fail)


@needs_shared
def test_only_missing_files_are_fetched(tmp_path: Path) -> None:
    files = _published()
    ensure_split_lists(tmp_path, opener=FakeOpener(files))
    (tmp_path / "val" / "fold3.txt").unlink()
    opener = FakeOpener(files)
    ensure_split_lists(tmp_path, opener=opener)
    assert [u for u, _ in opener.calls] == [PREFIX + "evaluate/splits/pascal/val/fold3.txt"]


@needs_shared
def test_tampered_local_file(tmp_path: Path) -> None:
    ensure_split_lists(tmp_path, opener=FakeOpener(_published()))
    path = tmp_path / "trn" / "fold1.txt"
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        ensure_split_lists(tmp_path, opener=_fail)
    msg = str(info.value)
    assert "sha256" in msg and "\n" not in msg
    assert str(path) in msg and SPLIT_SHA256["trn1"] in msg and file_sha256(path) in msg


@needs_shared
def test_tampered_download_writes_nothing(tmp_path: Path) -> None:
    files = _published()
    url = SPLITS_SOURCE.format(split="val", fold=0)
    files[url] = files[url][:-1] + b"x"
    with pytest.raises(DataError) as info:
        ensure_split_lists(tmp_path, opener=FakeOpener(files))
    msg = str(info.value)
    assert "sha256" in msg and "\n" not in msg and url in msg
    assert not (tmp_path / "val" / "fold0.txt").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_network_failure_names_file_and_url(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        ensure_split_lists(tmp_path, opener=_fail)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(tmp_path / "trn" / "fold0.txt") in msg
    assert SPLITS_SOURCE.format(split="trn", fold=0) in msg
    assert "data.splits=" in msg
    err = info.value  # no chained traceback behind the one line
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_http_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        ensure_split_lists(tmp_path, opener=FakeOpener({}))
    msg = str(info.value)
    assert "\n" not in msg and "404" in msg


def test_missing_without_fetch(tmp_path: Path) -> None:
    calls = []
    with pytest.raises(DataError) as info:
        ensure_split_lists(tmp_path, fetch=False, opener=lambda *a, **k: calls.append(a))
    msg = str(info.value)
    assert not calls and "\n" not in msg
    assert str(tmp_path / "trn" / "fold0.txt") in msg
    assert SPLITS_SOURCE.format(split="trn", fold=0) in msg and "data.splits=" in msg


def test_verify_false_accepts_any_content(tmp_path: Path) -> None:
    _write_all(tmp_path, b"2007_000032__01\n")
    assert ensure_split_lists(tmp_path, verify=False, fetch=False) == tmp_path
    with pytest.raises(DataError, match="sha256"):
        ensure_split_lists(tmp_path, fetch=False)
