"""The files ssd_eval writes: the run folder's file names, how each is written, one sha256.

Every module that reads or writes a run folder names its files from here, so the layout (and the
list of files an overwrite replaces) is defined once. Every file the package writes goes through
the writers below, which never write through a link planted in a folder (a run folder on shared
storage may be writable by others):

- a file written whole (metrics.json, junit.xml, a picture, detections.npz, ...) is written to a new
  temporary file beside it (created exclusively: never an existing file or link), synced, then
  renamed onto its name with `os.replace`, which replaces a link instead of following it;
- a file appended to (detections.jsonl, skipped.jsonl, history.jsonl, a download's `.part`) and a
  lock file are opened with O_NOFOLLOW, and only if they are a regular file with no other hard link:
  anything else is refused (`OutputError`, one line) and left as it is; a lock file is never
  truncated;
- a folder the package creates inside one of its folders (a comparison's `runs/`, its pictures'
  folders) is created, or must already be a real folder, never a link (`own_folder`).

Folders you name (RUN_DIR, --output, output.dir and the folders above them) are used as given: the
system follows their links, so a `results/` linked to scratch storage works.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

from ssd_eval.errors import OutputError

# A run folder (`ssd-eval run`, `score`, `merge`, a comparison's runs/<name>/).
CONFIG_FILE = "config.yaml"  # the resolved config the run started with
IDENTITY_FILE = "identity.json"  # what the run is: written once before the first image, never changed
RUN_INFO_FILE = "run_info.json"  # model file and providers, written before the first image
HISTORY_FILE = "history.jsonl"  # one line per command that worked on the folder (run, resume, score, merge)
DETECTION_LOG = "detections.jsonl"  # the detections, one image a line, appended as they are made
DETECTION_STORE = "detections.npz"  # a columnar cache of the log (rebuilt when the log changes)
RESULTS_FILE = "detections.json"  # the COCO results file, derived from the log
SKIPPED_LOG = "skipped.jsonl"
METRICS_FILE = "metrics.json"
COCOEVAL_LOG = "cocoeval.txt"
GATE_BASELINE_FILE = "gate_baseline.json"  # the baseline the gate used, copied at gate time
JUNIT_FILE = "junit.xml"
SUMMARY_FILE = "summary.md"
LOCK_FILE = "run.lock"
PR_CURVE_FILE = "pr_curve.png"  # report.pr_curve (a comparison's: pr_curves.png, every run on one plot)
PICTURES_DIR = "pictures"  # report.pictures: the images the model is most wrong on, against the ground truth

# What `output.overwrite` removes from a run folder before a new run starts in it (the lock stays:
# the new run holds it).
RUN_FILES = (
    CONFIG_FILE,
    IDENTITY_FILE,
    RUN_INFO_FILE,
    HISTORY_FILE,
    DETECTION_LOG,
    DETECTION_STORE,
    RESULTS_FILE,
    SKIPPED_LOG,
    METRICS_FILE,
    COCOEVAL_LOG,
    GATE_BASELINE_FILE,
    JUNIT_FILE,
    SUMMARY_FILE,
    PR_CURVE_FILE,
)

# The run-folder files that are appended to (never rewritten whole): opened with O_NOFOLLOW, and a
# link or other non-regular file under one of these names is refused.
APPENDED_FILES = (HISTORY_FILE, DETECTION_LOG, SKIPPED_LOG)

# A comparison folder holds these beside metrics.json, junit.xml and summary.md (and its run.lock).
COMPARE_CONFIG_FILE = "compare.yaml"
RUNS_DIR = "runs"
PR_CURVES_FILE = "pr_curves.png"
DISAGREEMENTS_DIR = "disagreements"  # disagreements/<run name>/<rank>-<image id>.jpg


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _refused(path: Path, what: str) -> OutputError:
    return OutputError(
        f"{path} {what}: ssd-eval writes only to files and folders of its own there (a link could redirect "
        "its writes elsewhere); remove it (or replace it by a copy of the file it stands for), then run again"
    )


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, empty file beside `path`: `<name>.<random>.tmp`, created with O_EXCL | O_NOFOLLOW.

    This is what `tempfile.mkstemp` does, except for the permissions: mkstemp makes the file 0600,
    which would make a run folder's files unreadable to the colleagues it is shared with; here the
    file gets the usual umask permissions, as a plain `open` would give it.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW  # os.open adds O_CLOEXEC itself (PEP 446)
    for _ in range(100):
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path))


@overload
def atomic_writer(path: Path, *, text: Literal[True]) -> contextlib.AbstractContextManager[IO[str]]: ...


@overload
def atomic_writer(
    path: Path, *, text: Literal[False] = False
) -> contextlib.AbstractContextManager[IO[bytes]]: ...


def atomic_writer(path: Path, *, text: bool = False) -> contextlib.AbstractContextManager[IO[Any]]:
    """A handle whose content becomes `path` when the block ends, all at once: a temporary file beside
    it, synced, then `os.replace`d onto it (a link at `path` is replaced, never followed). When the
    block fails, `path` keeps what it held and the temporary file is removed."""
    return _atomic_writer(path, text=text)


@contextlib.contextmanager
def _atomic_writer(path: Path, *, text: bool) -> Iterator[IO[Any]]:
    fd, tmp = _create_temporary(path)
    try:
        handle: IO[Any] = os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or an interrupt: no temporary file stays behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every file system can sync a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `path` as UTF-8 so that a reader (or a crash) never sees half a file (see `atomic_writer`)."""
    with atomic_writer(path, text=True) as handle:
        handle.write(text)


def write_json_atomic(path: Path, data: Any) -> None:
    """`write_text_atomic` of indented JSON (no NaN or infinity: JSON has none)."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def open_own_file(path: Path, flags: int) -> int:
    """`os.open` a file that is appended to or locked in one of the package's folders (created if
    missing), never through a link: a symbolic link, a FIFO, a folder, a device or a file with another
    hard link under this name is refused with an OutputError, and left as it is. O_TRUNC is not
    allowed: such a file is never cut except by its own writer (`os.ftruncate`)."""
    if flags & os.O_TRUNC:
        raise ValueError("open_own_file: O_TRUNC would cut whatever file the name stands for")
    try:
        # O_NONBLOCK: a FIFO planted under the name must not hang the open (it is refused below).
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(path, "is a symbolic link") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):
            raise _refused(path, "is not a regular file") from None
        raise
    try:
        _check_regular(path, os.fstat(fd))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append(path: Path, *, text: bool = False) -> IO[Any]:
    """A handle appending to `path` (created if missing), opened by `open_own_file`."""
    fd = open_own_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "a", encoding="utf-8") if text else os.fdopen(fd, "ab", buffering=0)


def check_own_files(folder: Path, names: tuple[str, ...] = APPENDED_FILES) -> None:
    """Refuse, before a command writes anything, a folder where one of the files it appends to is a
    link or not a regular file (the one-line error of `open_own_file`); absent files are fine."""
    for name in names:
        path = folder / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            raise _refused(path, "is a symbolic link")
        _check_regular(path, info)


def _check_regular(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _refused(path, "is not a regular file")
    if info.st_nlink > 1:
        others = info.st_nlink - 1
        raise _refused(path, f"has {others} other hard link(s), which a write would change too")


def own_folder(path: Path) -> Path:
    """Create the folder `path` inside one of the package's folders, or check that it is a real folder
    already: a link (or a file) under its name is refused with an OutputError."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise _refused(path, "is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise _refused(path, "is not a folder")
    return path
