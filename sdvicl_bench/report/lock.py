"""Locks that keep two processes from doing the same work in one run folder.

`SampleLock` claims one sample file (`<samples file>.lock` next to it) for as long as a
process appends to it: `fcntl.flock(LOCK_EX | LOCK_NB)`, so the kernel drops the claim when
the process dies, however it dies (a lock file left behind by a killed process blocks no
one). The holder's pid, host and start time are written into the file for the message a
second process gets. Shards have different sample files, so they keep working in parallel.

`exclusive` serialises the short step where a process finds or creates the run folder of a
key and claims its sample file, so two processes started at once never make two folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from sdvicl_bench.errors import DataError


def lock_path(samples: Path) -> Path:
    """The lock file of a sample file: `<samples file>.lock` next to it."""
    return samples.with_name(samples.name + ".lock")


class SampleLock:
    """An exclusive claim on one sample file; `DataError` (one line) when another holds it.

    On file systems without flock (some network mounts) the claim is skipped, not fatal.
    """

    def __init__(self, samples: Path) -> None:
        self.samples = samples
        self.path = lock_path(samples)
        self._fd: int | None = None

    def acquire(self) -> SampleLock:
        """Take the claim now or raise `DataError` naming the holder and the ways out."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise DataError(busy_message(self.samples, holder)) from None
            except OSError:  # no lock support here: run unguarded rather than not at all
                os.close(fd)
                return self
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed the file as we opened it: claim the new one
        _write_holder(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (if still ours) and drop the claim."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(fd, self.path):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> SampleLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


def held(lock_file: Path) -> bool:
    """Whether a live process holds the claim in `lock_file` (one left by a dead process, or
    none at all: False)."""
    try:
        fd = os.open(lock_file, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # dropped again by the close below
    except BlockingIOError:
        return True
    except OSError:  # no lock support here: nothing can be known to hold it
        return False
    finally:
        os.close(fd)
    return False


def busy_message(samples: Path, holder: dict) -> str:
    """The one-line error for a sample file another process is filling."""
    pid, host = holder.get("pid", "?"), holder.get("host", "an unknown host")
    since = f" since {holder['started']}" if holder.get("started") else ""
    return (
        f"{samples} is being filled by process {pid} on {host}{since}. Fix: wait for it to "
        "finish, split the work with shard=i/K, or delete "
        f"{lock_path(samples)} if that process is gone and ran on another host."
    )


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold a blocking flock on `path` (created if missing, never removed) for a short step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):  # no lock support: go on unguarded
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path`."""
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _write_holder(fd: int) -> None:
    """Write this process's pid, host and start time into the lock file."""
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    os.fsync(fd)


def _read_holder(fd: int) -> dict:
    """The holder written into a lock file; {} while it is being written or unreadable."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
