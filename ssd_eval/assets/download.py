"""Fetch one file over HTTP(S): streamed with a progress bar, resumable, verified, put in place atomically.

`download(urls, dest, ...)` tries the URLs in order. Bytes go to `<dest>.part`; a `.part` left by an
interrupted run is resumed with `Range: bytes=N-` (a server that ignores Range and answers 200 makes
the transfer start over, truncating the `.part`). A connection cut mid-file is resumed a few times
from the same URL while it makes progress. 404s, refused connections and timeouts move on to the
next URL; when every URL fails the error lists each with its failure. On completion the size and the
sha256 and/or md5 (hashed while streaming, the resumed prefix included) are checked: a mismatch
deletes the `.part` and raises; a match `os.replace`s it onto `dest`, so `dest` is either absent,
an older file, or complete.

Two processes asking for the same file: each holds `<dest>.lock` while it works, with `fcntl.flock`
on POSIX (the kernel drops the lock when a process dies, so a crash never leaves a stale lock) and
an `O_CREAT | O_EXCL` lock file elsewhere. The second process waits, then finds the file complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from ssd_eval import __version__
from ssd_eval.errors import AssetError

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
# A transfer cut mid-file is resumed from the same URL at most this many times, and only while the
# previous attempt added bytes; after that the next URL is tried.
MAX_RESUMES = 3


@dataclass(frozen=True)
class Expected:
    """What the finished file must be; `None` means "not checked"."""

    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    def checksums(self) -> dict[str, str]:
        """The checksums to verify, by hashlib name, lower-case hex."""
        pairs = (("sha256", self.sha256), ("md5", self.md5))
        return {algorithm: value.lower() for algorithm, value in pairs if value}


class _Digests:
    """Running hashes of the bytes of one file, fed in order."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._hashes = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}

    @classmethod
    def of_file(cls, path: Path, algorithms: Iterable[str], *, limit: int | None = None) -> _Digests:
        """The hashes of the first `limit` bytes of `path` (all of it when None)."""
        digests = cls(algorithms)
        if not digests._hashes:
            return digests
        remaining = path.stat().st_size if limit is None else limit
        with path.open("rb") as stream:
            while remaining > 0:
                chunk = stream.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                digests.update(chunk)
                remaining -= len(chunk)
        return digests

    def update(self, data: bytes) -> None:
        for value in self._hashes.values():
            value.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: value.hexdigest() for name, value in self._hashes.items()}


class _TransferError(Exception):
    """This URL did not deliver the file; the next URL may."""


class _Interrupted(_TransferError):
    """The connection broke mid-body: the `.part` keeps what arrived and can be resumed."""


class _RangeNotSatisfiable(_TransferError):
    """HTTP 416: the `.part` is not a prefix this server can continue."""


def hash_file(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a whole file (`sha256`, `md5`, any hashlib name)."""
    return _Digests.of_file(path, (algorithm,)).hexdigests()[algorithm]


def part_path(dest: Path) -> Path:
    """Where the bytes of `dest` go while they arrive."""
    return dest.with_name(dest.name + ".part")


def download(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Make `dest` a verified copy of the file behind `urls` (tried in order) and return it.

    An existing `dest` of the right size and checksum is returned at once, without a request.
    """
    if not urls:
        raise AssetError(f"no URL to download {dest.name} from")
    expected = Expected(sha256=sha256, md5=md5, size=size)
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(dest):
            if _is_complete(dest, expected):
                log.debug("%s is already complete", dest)
                return dest
            return _download_locked(tuple(urls), dest, expected, progress=progress, timeout=timeout)
    except OSError as exc:  # network errors were turned into _TransferError: this one is local
        raise AssetError(
            f"cannot write {dest} ({exc.strerror or exc}): free some space or choose another cache "
            "folder (--dest, SSD_EVAL_HOME or assets.cache)"
        ) from exc


def _download_locked(
    urls: tuple[str, ...], dest: Path, expected: Expected, *, progress: bool, timeout: float
) -> Path:
    part = part_path(dest)
    if _finished_part_is_good(part, expected):
        os.replace(part, dest)
        return dest
    failures: list[str] = []
    for number, url in enumerate(urls, start=1):
        try:
            digests = _fetch_resuming(url, part, expected, progress=progress, timeout=timeout)
        except _TransferError as exc:
            # Not a warning: when every source fails, the error line names each failure; when a
            # later one works, the info line below does.
            log.debug("%s: %s%s", url, exc, "; trying the next source" if number < len(urls) else "")
            failures.append(f"{url} ({exc})")
            continue
        _verify(part, digests, expected, url=url, dest=dest)
        os.replace(part, dest)
        failed = f" (after {'; '.join(failures)})" if failures else ""
        log.info("downloaded %s from %s%s", dest, url, failed)
        return dest
    raise AssetError(
        f"could not download {dest.name} to {dest}: every source failed: {'; '.join(failures)}. "
        "Check the network (or proxy settings), try a mirror, or put the file there by hand"
    )


def _is_complete(dest: Path, expected: Expected) -> bool:
    """`dest` exists with the expected size and checksums."""
    if not dest.is_file():
        return False
    if expected.size is not None and dest.stat().st_size != expected.size:
        log.warning(
            "%s has %d bytes, expected %d: downloading it again", dest, dest.stat().st_size, expected.size
        )
        return False
    wanted = expected.checksums()
    if wanted and _Digests.of_file(dest, wanted).hexdigests() != wanted:
        log.warning("%s does not match its checksum: downloading it again", dest)
        return False
    return True


def _finished_part_is_good(part: Path, expected: Expected) -> bool:
    """A `.part` that already has every byte (a run stopped before the rename): keep it if it verifies."""
    if expected.size is None or not part.is_file() or part.stat().st_size != expected.size:
        return False
    wanted = expected.checksums()
    if _Digests.of_file(part, wanted).hexdigests() == wanted:
        return True
    log.warning("%s is complete but does not match its checksum: starting over", part)
    part.unlink()
    return False


def _fetch_resuming(url: str, part: Path, expected: Expected, *, progress: bool, timeout: float) -> _Digests:
    """Transfer from one URL, resuming a connection cut mid-file while each attempt makes progress."""
    resumes = 0
    while True:
        before = _size_of(part)
        try:
            return _transfer(url, part, expected, progress=progress, timeout=timeout)
        except _Interrupted as exc:
            resumes += 1
            if resumes > MAX_RESUMES or _size_of(part) <= before:
                raise
            log.info("%s: %s; resuming at byte %s", url, exc, f"{_size_of(part):,}")


def _transfer(url: str, part: Path, expected: Expected, *, progress: bool, timeout: float) -> _Digests:
    """One request: continue (206) or restart (200) the `.part`; return the hashes of all its bytes."""
    offset = _resumable_offset(part, expected)
    response, offset = _open_at(url, part, offset, timeout=timeout)
    with response:
        offset, total = _plan(response, offset, expected, url=url)
        if offset:
            digests = _Digests.of_file(part, expected.checksums(), limit=offset)
        else:
            digests = _Digests(expected.checksums())
        full = total if total is not None else expected.size
        with part.open("ab" if offset else "wb") as out, _bar(part, full, offset, progress) as bar:
            written = _copy(response, out, digests, bar, offset=offset, limit=expected.size)
    if full is not None and written < full:
        raise _Interrupted(f"connection closed after {written:,} of {full:,} bytes")
    return digests


def _resumable_offset(part: Path, expected: Expected) -> int:
    """How many bytes of the `.part` to keep; one larger than the file can be is thrown away."""
    offset = _size_of(part)
    if expected.size is not None and offset > expected.size:
        log.warning("%s has %d bytes, more than the expected %d: starting over", part, offset, expected.size)
        part.unlink()
        return 0
    return offset


def _open_at(url: str, part: Path, offset: int, *, timeout: float) -> tuple[Any, int]:
    """Open `url` asking for bytes from `offset` on; a 416 drops the `.part` and asks for everything."""
    try:
        return _open(url, offset, timeout=timeout), offset
    except _RangeNotSatisfiable:
        log.info("%s cannot continue %s at byte %d: starting over", url, part.name, offset)
        part.unlink(missing_ok=True)
        return _open(url, 0, timeout=timeout), 0


def _open(url: str, offset: int, *, timeout: float) -> Any:
    headers = {"User-Agent": f"ssd_eval/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            raise _RangeNotSatisfiable(f"HTTP 416 for bytes={offset}-") from exc
        raise _TransferError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _TransferError(f"cannot connect: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _TransferError(f"cannot connect: {exc}") from exc


def _plan(response: Any, offset: int, expected: Expected, *, url: str) -> tuple[int, int | None]:
    """Where this response's body starts in the file, and the file's full size if the server says."""
    status = getattr(response, "status", None) or 200  # file:// URLs have no status
    if offset and status == 206:
        start, total = _parse_content_range(response.headers.get("Content-Range"))
        if start != offset:
            raise _TransferError(f"asked to resume at byte {offset}, the server resumed at {start}")
        if total is None:
            length = _parse_int(response.headers.get("Content-Length"))
            total = None if length is None else offset + length
    else:
        if offset:
            log.info("%s ignores Range requests: starting over", url)
        offset, total = 0, _parse_int(response.headers.get("Content-Length"))
    if expected.size is not None and total is not None and total != expected.size:
        raise _TransferError(f"serves {total:,} bytes, expected {expected.size:,}")
    return offset, total


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """`bytes 100-199/200` -> (100, 200); `*` as the total -> None."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[len("bytes ") :].partition("/")
    return _parse_int(span.partition("-")[0]), _parse_int(total)


def _parse_int(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _copy(
    response: Any, out: BinaryIO, digests: _Digests, bar: tqdm[Any], *, offset: int, limit: int | None
) -> int:
    """Stream the body into `out`, hashing it; return the file's size so far."""
    written = offset
    for chunk in _chunks(response):
        if limit is not None and written + len(chunk) > limit:
            out.truncate(0)
            raise _TransferError(f"sent more than the expected {limit:,} bytes")
        out.write(chunk)
        digests.update(chunk)
        bar.update(len(chunk))
        written += len(chunk)
    return written


def _chunks(response: Any) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read(CHUNK_SIZE)
        except (OSError, http.client.HTTPException) as exc:
            raise _Interrupted(f"connection lost: {exc!r}") from exc
        if not chunk:
            return
        yield chunk


def _bar(part: Path, total: int | None, offset: int, progress: bool) -> tqdm[Any]:
    return tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=part.name.removesuffix(".part"),
        disable=not progress,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )


def _verify(part: Path, digests: _Digests, expected: Expected, *, url: str, dest: Path) -> None:
    """Size and checksums of the finished `.part`; a mismatch deletes it and raises."""
    actual_size = part.stat().st_size
    if expected.size is not None and actual_size != expected.size:
        part.unlink()
        raise AssetError(
            f"{dest.name} from {url} has {actual_size:,} bytes, expected {expected.size:,}; "
            f"the download was deleted: run again, and if it repeats check the source"
        )
    got = digests.hexdigests()
    for algorithm, wanted in expected.checksums().items():
        if got[algorithm] != wanted:
            part.unlink()
            raise AssetError(
                f"checksum mismatch for {dest.name} downloaded from {url}: {algorithm} expected {wanted}, "
                f"got {got[algorithm]}; the download was deleted: run again, and if it repeats that source "
                "(or mirror) serves a different file"
            )


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


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
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
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
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
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
