"""One process at a time per cached file: `<dest>.lock`, held while a download works on `dest`.

On POSIX the lock is `fcntl.flock` (the kernel drops it when a process dies, so a crash never leaves
a stale lock); elsewhere an `O_CREAT | O_EXCL` lock file, whose existence is the lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ssd_eval.errors import AssetError
from ssd_eval.files import open_own_file

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)


@contextlib.contextmanager
def exclusive(dest: Path) -> Iterator[None]:
    """Hold `<dest>.lock` so that only one process at a time downloads `dest` (others wait)."""
    lock = dest.with_name(dest.name + ".lock")
    if sys.platform == "win32":
        with _exclusive_create(lock, dest):
            yield
        return
    fd = _flock(lock, dest)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still holding it: a waiter then sees a new inode and retries
        os.close(fd)


def _flock(lock: Path, dest: Path) -> int:
    """Open and `flock` the lock file; retry if its holder removed it while we waited."""
    while True:
        fd = open_own_file(lock, os.O_RDWR | os.O_CREAT)  # never through a link planted in the cache
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is downloading %s: waiting for it (lock %s)", dest.name, lock)
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _is_same_file(fd, lock):
            return fd
        os.close(fd)


def _is_same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


@contextlib.contextmanager
def _exclusive_create(lock: Path, dest: Path) -> Iterator[None]:
    """Where `flock` is missing: the lock file's existence is the lock."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        raise AssetError(
            f"another process is downloading {dest.name} ({lock} exists): wait for it to finish, "
            f"or delete {lock} if no such process is running"
        ) from None
    try:
        yield
    finally:
        os.close(fd)
        lock.unlink(missing_ok=True)
