"""Fetch one file over HTTP(S): streamed with a progress bar, resumable, verified, put in place atomically.

`obtain(urls, dest, ...)` (and `download`, which returns only the path) first looks at what is on
disk: a complete `dest`, or a `.part` that already holds every byte and verifies, needs no request.
With `allow_download=False` that is all it does: anything else raises `DownloadsOff` before a single
request is made (this is the one gate for every request: GET, resume and retry all sit behind it).

Otherwise it tries the URLs in order. Bytes go to `<dest>.part`; a `.part` left by an interrupted run
is resumed with `Range: bytes=N-` (a server that ignores Range and answers 200 makes the transfer
start over, truncating the `.part`). A connection cut mid-file is resumed a few times from the same
URL while it makes progress. 404s, refused connections, timeouts, a transfer slower than the minimum
rate (`MinRate`: the average over a sliding window) and a file that fails its checksum move on to the
next URL; when every URL fails, `DownloadFailed` lists each with its failure. On completion the size
and the sha256 and/or md5 (hashed while streaming, the resumed prefix included) are checked: a
mismatch deletes the `.part`; a match `os.replace`s it onto `dest`, so `dest` is either absent, an
older file, or complete.

Two processes asking for the same file take turns (`ssd_eval.assets.lock.exclusive`): the second
waits, then finds the file complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import math
import os
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from tqdm import tqdm

from ssd_eval import __version__
from ssd_eval.assets.lock import exclusive
from ssd_eval.errors import AssetError
from ssd_eval.files import open_own_file

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
# A transfer cut mid-file is resumed from the same URL at most this many times, and only while the
# previous attempt added bytes; after that the next URL is tried.
MAX_RESUMES = 3

# The minimum rate: a source whose average over the last RATE_WINDOW seconds stays below MIN_RATE
# bytes/s is abandoned for the next one (the socket timeout alone never fires on a source that sends
# a byte every few seconds). 32 KiB/s still brings val2017.zip (815 MB) in 7 hours; slower than that,
# another source or a file put there by hand is the better bet. A minute smooths out stalls.
ENV_MIN_RATE = "SSD_EVAL_MIN_RATE"
ENV_RATE_WINDOW = "SSD_EVAL_RATE_WINDOW"
DEFAULT_MIN_RATE = 32 * 1024
DEFAULT_RATE_WINDOW = 60.0


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


@dataclass(frozen=True)
class MinRate:
    """Abandon a source whose average rate over the last `window` seconds is below `bytes_per_second`."""

    bytes_per_second: float = DEFAULT_MIN_RATE  # 0: never abandon a slow source
    window: float = DEFAULT_RATE_WINDOW

    @classmethod
    def from_env(cls) -> MinRate:
        """$SSD_EVAL_MIN_RATE (bytes/s, 0 for none) and $SSD_EVAL_RATE_WINDOW (seconds), else the defaults."""
        rate = _env_number(ENV_MIN_RATE, DEFAULT_MIN_RATE, "bytes per second, a number >= 0 (0: no minimum)")
        window = _env_number(ENV_RATE_WINDOW, DEFAULT_RATE_WINDOW, "seconds, a number > 0", positive=True)
        return cls(bytes_per_second=rate, window=window)

    def describe(self) -> str:
        return (
            f"the minimum rate of {self.bytes_per_second:,.0f} bytes/s averaged over {self.window:g} s, "
            f"set by {ENV_MIN_RATE} / {ENV_RATE_WINDOW}"
        )


def _env_number(name: str, default: float, expected: str, *, positive: bool = False) -> float:
    """A number from the environment; anything else is an error naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise AssetError(f"{name}={raw!r}: expected {expected}; unset it for the default {default:g}")
    return value


class Obtained(NamedTuple):
    """Where the verified file is, and whether bytes were transferred to get it."""

    path: Path
    downloaded: bool


class DownloadsOff(AssetError):
    """Downloads are off and `dest` is not there complete: nothing was requested."""

    def __init__(self, dest: Path, state: str) -> None:
        super().__init__(f"{dest} {state}; downloads are off")
        self.dest = dest
        self.state = state  # "is missing", "has 10 bytes, expected 2,383", ...


class DownloadFailed(AssetError):
    """Every URL failed; `failures` holds `url (why)` for each, in the order tried."""

    def __init__(self, dest: Path, failures: Sequence[str]) -> None:
        self.dest = dest
        self.failures = tuple(failures)
        self.summary = f"could not download {dest.name} to {dest}: every source failed: {'; '.join(failures)}"
        super().__init__(
            f"{self.summary}. Check the network (or proxy settings), try a mirror, or put the file there "
            "by hand"
        )


class _Digests:
    """Running hashes of the bytes of one file, fed in order."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._hashes = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}

    @classmethod
    def of_file(cls, path: Path, algorithms: Iterable[str]) -> _Digests:
        """The hashes of the whole of `path`."""
        digests = cls(algorithms)
        if not digests._hashes:
            return digests
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
                digests.update(chunk)
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


class _RateWatch:
    """The bytes one response delivered over time; `add` raises when the last window's average is too low."""

    def __init__(self, floor: MinRate) -> None:
        self._floor = floor
        self._start = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque([(self._start, 0)])

    def add(self, received: int) -> None:
        """`received`: the bytes of this response so far."""
        if self._floor.bytes_per_second <= 0:
            return
        now = time.monotonic()
        samples = self._samples
        samples.append((now, received))
        horizon = now - self._floor.window
        while samples[1][0] <= horizon:  # never the newest sample (`now`): the window is > 0
            samples.popleft()
        if now - self._start < self._floor.window:
            return
        # samples[0] is the last sample at or before the window's start: counting from it can only
        # overstate the rate, so a source is never dropped for a rate it did reach.
        in_window = received - samples[0][1]
        if in_window / self._floor.window < self._floor.bytes_per_second:
            raise _TransferError(
                f"too slow: {in_window:,} bytes in the last {self._floor.window:g} s, below "
                f"{self._floor.describe()}"
            )


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
    allow_download: bool = True,
    progress: bool = True,
    timeout: float = 30.0,
    min_rate: MinRate | None = None,
) -> Path:
    """Make `dest` a verified copy of the file behind `urls` (tried in order) and return it (see `obtain`)."""
    return obtain(
        urls,
        dest,
        sha256=sha256,
        md5=md5,
        size=size,
        allow_download=allow_download,
        progress=progress,
        timeout=timeout,
        min_rate=min_rate,
    ).path


def obtain(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    allow_download: bool = True,
    progress: bool = True,
    timeout: float = 30.0,
    min_rate: MinRate | None = None,
) -> Obtained:
    """Make `dest` a verified copy of the file behind `urls` (tried in order); say whether it was fetched.

    An existing `dest` of the right size and checksum is returned at once, without a request. With
    `allow_download=False` no request is ever made: a `dest` that is not complete raises
    `DownloadsOff` (saying what is wrong with it), and nothing is written unless a finished `.part`
    verifies and is moved into place. `min_rate`: None reads `MinRate.from_env()`.
    """
    expected = Expected(sha256=sha256, md5=md5, size=size)
    dest = Path(dest)
    if not allow_download and not _part_has_every_byte(part_path(dest), expected):
        state = _local_state(dest, expected)  # reads only: a read-only cache works offline
        if state is None:
            return Obtained(dest, downloaded=False)
        raise DownloadsOff(dest, _with_part(state, part_path(dest)))
    if allow_download and not urls:
        raise AssetError(f"no URL to download {dest.name} from")
    floor = min_rate if min_rate is not None else MinRate.from_env()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(dest):
            return _obtain_locked(
                tuple(urls), dest, expected, allow_download, progress=progress, timeout=timeout, floor=floor
            )
    except OSError as exc:  # network errors were turned into _TransferError: this one is local
        raise AssetError(
            f"cannot write {dest} ({exc.strerror or exc}): free some space or choose another cache "
            "folder (--dest, SSD_EVAL_HOME or assets.cache)"
        ) from exc


def _obtain_locked(
    urls: tuple[str, ...],
    dest: Path,
    expected: Expected,
    allow_download: bool,
    *,
    progress: bool,
    timeout: float,
    floor: MinRate,
) -> Obtained:
    state = _local_state(dest, expected)
    if state is None:
        log.debug("%s is already complete", dest)
        return Obtained(dest, downloaded=False)
    part = part_path(dest)
    if _finished_part_is_good(part, expected):
        os.replace(part, dest)
        return Obtained(dest, downloaded=False)
    if not allow_download:
        raise DownloadsOff(dest, _with_part(state, part))
    if dest.exists():
        log.warning("%s %s: downloading it again", dest, state)
    _download_locked(urls, dest, expected, progress=progress, timeout=timeout, floor=floor)
    return Obtained(dest, downloaded=True)


def _download_locked(
    urls: tuple[str, ...], dest: Path, expected: Expected, *, progress: bool, timeout: float, floor: MinRate
) -> None:
    part = part_path(dest)
    failures: list[str] = []
    for number, url in enumerate(urls):
        try:
            digests = _fetch_resuming(url, part, expected, progress=progress, timeout=timeout, floor=floor)
            _verify(part, digests, expected)
        except _TransferError as exc:
            # Not a warning: when every source fails, the error line names each failure; when a
            # later one works, the info line below does.
            log.debug("%s: %s%s", url, exc, "; trying the next source" if number + 1 < len(urls) else "")
            failures.append(f"{url} ({exc})")
            continue
        os.replace(part, dest)
        log.info("downloaded %s from %s%s", dest, url, f" (after {'; '.join(failures)})" if failures else "")
        return
    raise DownloadFailed(dest, failures)


def _local_state(dest: Path, expected: Expected) -> str | None:
    """None when `dest` exists with the expected size and checksums, else what is wrong with it."""
    if not dest.is_file():
        return "is missing"
    actual = dest.stat().st_size
    if expected.size is not None and actual != expected.size:
        return f"has {actual:,} bytes, expected {expected.size:,}"
    wanted = expected.checksums()
    got = _Digests.of_file(dest, wanted).hexdigests()
    wrong = [algorithm for algorithm in wanted if got[algorithm] != wanted[algorithm]]
    if wrong:
        size = "the expected size" if expected.size is not None else f"{actual:,} bytes"
        return f"has {size} but not the expected {' and '.join(wrong)}"
    return None


def _with_part(state: str, part: Path) -> str:
    """`state`, and the partial download beside it if there is one."""
    held = _size_of(part)
    return f"{state} (a partial download, {part.name}, holds {held:,} bytes)" if held else state


def _part_has_every_byte(part: Path, expected: Expected) -> bool:
    return expected.size is not None and part.is_file() and part.stat().st_size == expected.size


def _finished_part_is_good(part: Path, expected: Expected) -> bool:
    """A `.part` that already has every byte (a run stopped before the rename): keep it if it verifies."""
    if not _part_has_every_byte(part, expected):
        return False
    wanted = expected.checksums()
    if _Digests.of_file(part, wanted).hexdigests() == wanted:
        return True
    log.warning("%s is complete but does not match its checksum: starting over", part)
    part.unlink()
    return False


def _fetch_resuming(
    url: str, part: Path, expected: Expected, *, progress: bool, timeout: float, floor: MinRate
) -> _Digests:
    """Transfer from one URL, resuming a connection cut mid-file while each attempt makes progress."""
    resumes = 0
    while True:
        before = _size_of(part)
        try:
            return _transfer(url, part, expected, progress=progress, timeout=timeout, floor=floor)
        except _Interrupted as exc:
            resumes += 1
            if resumes > MAX_RESUMES or _size_of(part) <= before:
                raise
            log.info("%s: %s; resuming at byte %s", url, exc, f"{_size_of(part):,}")


def _transfer(
    url: str, part: Path, expected: Expected, *, progress: bool, timeout: float, floor: MinRate
) -> _Digests:
    """One request: continue (206) or restart (200) the `.part`; return the hashes of all its bytes."""
    offset = _resumable_offset(part, expected)
    response, offset = _open_at(url, part, offset, timeout=timeout)
    with response:
        offset, total = _plan(response, offset, expected, url=url)
        # A resumed `.part` holds exactly `offset` bytes (nothing else writes it while the lock is held).
        digests = _Digests.of_file(part, expected.checksums()) if offset else _Digests(expected.checksums())
        full = total if total is not None else expected.size
        with _open_part(part, keep=offset) as out, _bar(part, full, offset, progress) as bar:
            written = _copy(
                response, out, digests, bar, offset=offset, limit=expected.size, watch=_RateWatch(floor)
            )
    if full is not None and written < full:
        raise _Interrupted(f"connection closed after {written:,} of {full:,} bytes")
    return digests


def _open_part(part: Path, *, keep: int) -> BinaryIO:
    """The `.part` file opened to append after its first `keep` bytes (0: emptied), never through a
    link planted under its name (a shared cache folder)."""
    fd = open_own_file(part, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        if os.fstat(fd).st_size != keep:
            os.ftruncate(fd, keep)
    except BaseException:
        os.close(fd)
        raise
    return cast(BinaryIO, os.fdopen(fd, "ab"))


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
        part.unlink()  # a 416 answers a Range request: the `.part` held `offset` > 0 bytes
        return _open(url, 0, timeout=timeout), 0


def _open(url: str, offset: int, *, timeout: float) -> Any:
    """The only place a request is made (`obtain` reaches it only when downloads are allowed)."""
    # http.client itself asks for `Accept-Encoding: identity`: no gzip, the Range offsets and the
    # checksums are of the file's own bytes.
    headers = {"User-Agent": f"ssd_eval/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            raise _RangeNotSatisfiable from exc  # `_open_at` catches it and starts over
        raise _TransferError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _TransferError(f"cannot connect: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _TransferError(f"cannot connect: {exc}") from exc


def _plan(response: Any, offset: int, expected: Expected, *, url: str) -> tuple[int, int | None]:
    """Where this response's body starts in the file, and the file's full size if the server says."""
    if offset and response.status == 206:  # a file:// URL's status is None
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
    response: Any,
    out: BinaryIO,
    digests: _Digests,
    bar: tqdm[Any],
    *,
    offset: int,
    limit: int | None,
    watch: _RateWatch,
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
        if written != limit:  # with the last byte in, no rate can make waiting for the rest too long
            watch.add(written - offset)
    return written


def _chunks(response: Any) -> Iterator[bytes]:
    """The body as it arrives: `read1` returns what one read brings (a trickle is seen byte by byte)."""
    while True:
        try:
            chunk = response.read1(CHUNK_SIZE)  # http.client's and urllib's file:// responses have read1
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


def _verify(part: Path, digests: _Digests, expected: Expected) -> None:
    """Size and checksums of the finished `.part`; a mismatch deletes it (the next URL starts clean)."""
    actual_size = part.stat().st_size
    if expected.size is not None and actual_size != expected.size:
        part.unlink()
        raise _TransferError(
            f"delivered {actual_size:,} bytes, expected {expected.size:,}; the download was deleted"
        )
    got = digests.hexdigests()
    for algorithm, wanted in expected.checksums().items():
        if got[algorithm] != wanted:
            part.unlink()
            raise _TransferError(
                f"checksum mismatch: {algorithm} expected {wanted}, got {got[algorithm]}; the download "
                "was deleted (this source, or a partial download resumed from an earlier one, serves "
                "a different file)"
            )


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
