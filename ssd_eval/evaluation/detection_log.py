"""Detections on disk: an append-only log written as they arrive, its columnar store, the COCO results file.

The log (`detections.jsonl`) holds one JSON line per image and is flushed after every image, so a
run that dies keeps everything it produced; it is the record of truth. Floats are written with
Python's shortest round-trip repr, so reading the log back gives bit-identical arrays and a resumed
run scores exactly like an uninterrupted one.

Parsing a val2017-sized log (~90 MB of JSON, ~950k detections) takes seconds, so beside it lives a
columnar store (`detections.npz`: the same records as flat arrays, loaded in a fraction of a second).
It is written when a log is closed cleanly and whenever the log had to be parsed, and it records the
size and sha256 of the log content it mirrors (`LogState`; hashing a 90 MB log takes about 0.1 s): a
store that is missing, damaged or out of date (the log grew, was truncated or rewritten) is ignored and
rebuilt from the log, and a copied folder (new modification times) keeps its store. A folder that
cannot be written keeps no store and is read from the log. `read_detection_log` is the one way to read
a run's detections; it picks the store or the log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeGuard

import numpy as np

from ssd_eval.config.strict_load import loads_json
from ssd_eval.data.annotation_checks import MAX_ID, exact_id
from ssd_eval.errors import OutputError
from ssd_eval.files import atomic_writer, open_own_file
from ssd_eval.pipeline.decode import Detections

log = logging.getLogger(__name__)

_FSYNC_EVERY_SECONDS = 5.0  # flush() per image survives a killed process; fsync bounds loss on power failure


def detections_to_line(detections: Detections) -> str:
    record = {
        "image_id": detections.image_id,
        "boxes": detections.boxes.ravel().tolist(),
        "scores": detections.scores.tolist(),
        "category_ids": detections.category_ids.tolist(),
    }
    return json.dumps(record, separators=(",", ":"))


def detections_from_line(line: str) -> Detections:
    """One log line back as Detections; anything but what `detections_to_line` writes is a ValueError
    (an id out of range, a float where an integer belongs: never cast, never rounded)."""
    record = loads_json(line, allow_nan=True)  # NaN: a model's non-finite output, logged as it came
    if not isinstance(record, dict):
        raise ValueError("expected an object")
    raw_id, boxes, scores, category_ids = (
        record.get(key) for key in ("image_id", "boxes", "scores", "category_ids")
    )
    image_id = exact_id(raw_id)
    if image_id is None:
        shown = repr(raw_id)[:40]
        raise ValueError(f"image_id must be an integer with |id| <= {MAX_ID} (2**53 - 1), got {shown}")
    if not _all_of(boxes, (int, float)) or len(boxes) % 4 or not _all_of(scores, (int, float)):
        raise ValueError("boxes and scores must be lists of numbers (four a box)")
    if not _all_of(category_ids, (int,)) or not all(abs(c) <= MAX_ID for c in category_ids):
        raise ValueError(f"category_ids must be a list of integers with |id| <= {MAX_ID}")
    return Detections(
        image_id=image_id,
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        scores=np.asarray(scores, dtype=np.float64),
        category_ids=np.asarray(category_ids, dtype=np.int64),
    )


def _all_of(values: object, kinds: tuple[type, ...]) -> TypeGuard[list[Any]]:
    """A JSON list whose items are all of `kinds` (bools, which are ints to Python, excluded)."""
    return isinstance(values, list) and all(type(v) in kinds for v in values)


STORE_SUFFIX = ".npz"


def store_path(log_path: Path) -> Path:
    """The columnar store beside a log: `detections.jsonl` -> `detections.npz`."""
    return log_path.with_suffix(STORE_SUFFIX)


# image_ids, counts, boxes, scores, category_ids: what the log's text reads back as, bit for bit.
_COLUMN_DTYPES = (
    np.dtype(np.int64),
    np.dtype(np.int64),
    np.dtype(np.float64),
    np.dtype(np.float64),
    np.dtype(np.int64),
)


@dataclass(frozen=True)
class DetectionColumns:
    """A log's records as flat arrays, in log order: record r holds `counts[r]` detections."""

    image_ids: np.ndarray  # int64 [R], one per log line
    counts: np.ndarray  # int64 [R]
    boxes: np.ndarray  # float64 [N, 4] pixel x, y, w, h
    scores: np.ndarray  # float64 [N]
    category_ids: np.ndarray  # int64 [N]

    def __post_init__(self) -> None:
        n = len(self.scores)
        records = len(self.image_ids)
        dtypes = (
            self.image_ids.dtype,
            self.counts.dtype,
            self.boxes.dtype,
            self.scores.dtype,
            self.category_ids.dtype,
        )
        if dtypes != _COLUMN_DTYPES:
            raise ValueError(
                "detection columns of dtypes " + ", ".join(map(str, dtypes)) + "; expected int64, int64, "
                "float64, float64, int64 (image_ids, counts, boxes, scores, category_ids)"
            )
        if (
            self.counts.shape != (records,)
            or int(self.counts.sum()) != n
            or bool((self.counts < 0).any())
            or self.boxes.shape != (n, 4)
            or self.category_ids.shape != (n,)
        ):
            raise ValueError(
                f"inconsistent detection columns: {records} records, counts {self.counts.shape} summing "
                f"to {int(self.counts.sum())}, boxes {self.boxes.shape}, scores {self.scores.shape}, "
                f"category_ids {self.category_ids.shape}"
            )

    @classmethod
    def of(cls, records: Sequence[Detections]) -> DetectionColumns:
        def joined(parts: list[np.ndarray], shape: tuple[int, ...], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(shape, dtype)

        return cls(
            image_ids=np.array([d.image_id for d in records], dtype=np.int64),
            counts=np.array([len(d) for d in records], dtype=np.int64),
            boxes=joined([d.boxes for d in records], (0, 4), np.float64),
            scores=joined([d.scores for d in records], (0,), np.float64),
            category_ids=joined([d.category_ids for d in records], (0,), np.int64),
        )

    def by_image(self) -> dict[int, Detections]:
        """One Detections per image (views into the columns); a later record of an image wins."""
        found: dict[int, Detections] = {}
        ends = np.cumsum(self.counts).tolist()
        start = 0
        for image_id, end in zip(self.image_ids.tolist(), ends, strict=True):
            found[image_id] = Detections(
                image_id, self.boxes[start:end], self.scores[start:end], self.category_ids[start:end]
            )
            start = end
        return found


@dataclass(frozen=True)
class LogState:
    """What identifies one content of the log: its size and the sha256 of its bytes.

    The store records it; a store is used only for the log content it was made from (a copy made with
    `cp -r`, whose times are new, keeps its store; a log rewritten to the same size does not).
    """

    size: int
    sha256: bytes  # 32 bytes

    @classmethod
    def of(cls, data: bytes) -> LogState:
        return cls(len(data), hashlib.sha256(data).digest())

    @classmethod
    def of_file(cls, path: Path) -> LogState:
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return cls(size, digest.digest())


def _load_store(path: Path, state: LogState) -> DetectionColumns | None:
    """The store's columns if it mirrors the log content `state`; None if missing, stale or damaged."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if "log_sha256" not in data.files:
                log.info("%s was written by an older ssd_eval; rebuilding it from the log", path)
                return None
            recorded = LogState(int(data["log_size"]), bytes(np.asarray(data["log_sha256"], np.uint8)))
            if recorded != state:
                log.info("%s does not mirror its log (the log changed); rebuilding it", path)
                return None
            # Arrays of another dtype (a store written by hand or another version) are refused by
            # DetectionColumns (ValueError) and rebuilt from the log: never cast, never rounded.
            return DetectionColumns(
                image_ids=data["image_ids"],
                counts=data["counts"],
                boxes=data["boxes"],
                scores=data["scores"],
                category_ids=data["category_ids"],
            )
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        log.warning("%s is damaged (%s); rebuilding it from the log", path, exc)
        return None


def _write_store(log_path: Path, columns: DetectionColumns, state: LogState) -> None:
    """Write the columnar store of `log_path` (atomically). A folder that cannot be written (read-only,
    full) keeps no store: the log is parsed again next time, which is slower but no error."""
    path = store_path(log_path)
    try:
        with atomic_writer(path) as handle:
            np.savez(
                handle,
                log_size=np.int64(state.size),
                log_sha256=np.frombuffer(state.sha256, dtype=np.uint8),
                image_ids=columns.image_ids,
                counts=columns.counts,
                boxes=columns.boxes,
                scores=columns.scores,
                category_ids=columns.category_ids,
            )
    except OSError as exc:
        log.info("cannot write %s (%s): the log is parsed again next time", path, exc.strerror or exc)


def _parse_log(path: Path, data: bytes) -> DetectionColumns:
    """The log's records; a torn last line (the process died mid-write) is dropped."""
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise OutputError(
            f"{path} is not UTF-8 text (byte {exc.start}); it is written by `ssd-eval run`: restore it "
            "from a copy, or delete the run folder and run again"
        ) from None
    records: list[Detections] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(detections_from_line(line))
        except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
            if number >= len(lines) - 1 and not line.endswith("}"):
                log.warning("%s: dropping a torn last line (the run was interrupted mid-write)", path)
                continue
            raise OutputError(
                f"{path}: line {number} is not a detections record ({' '.join(str(exc).split())[:120]}); "
                "the file is damaged: restore it from a copy, or delete the run folder and run again"
            ) from None
    return DetectionColumns.of(records)


def _read_columns(path: Path) -> DetectionColumns:
    if not path.is_file():
        return DetectionColumns.of([])
    try:
        columns = _load_store(store_path(path), LogState.of_file(path))
        if columns is not None:
            return columns
        data = path.read_bytes()
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}") from None
    columns = _parse_log(path, data)
    _write_store(path, columns, LogState.of(data))  # the state of the very bytes parsed
    return columns


def read_detection_log(path: Path) -> dict[int, Detections]:
    """Every image's detections in the log at `path`, from its columnar store when that is up to date.

    The one way to read a run's detections (run --resume, score, merge, compare). A missing log
    means no detections; a torn last line is dropped; a damaged line elsewhere is an OutputError.
    """
    return _read_columns(path).by_image()


class DetectionLog:
    """Appends one line per image to a JSON-lines file; writes the store when closed.

    Each line goes to the file descriptor in one write (no buffer between): a line is either whole in
    the file or, when the write fails (a full disk) or is interrupted, cut away again, so the log stays
    a clean prefix of the run and `--resume` continues from it once the cause is fixed.
    """

    # Set by __enter__: the log's bytes so far and their digest (what the store records), the records
    # it held when opened and those appended since (what the store holds), the time of the last fsync.
    _size: int
    _digest: hashlib._Hash
    _earlier: DetectionColumns
    _appended: list[Detections]
    _last_sync: float

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None  # the open log, between __enter__ and __exit__

    def __enter__(self) -> DetectionLog:
        try:
            # Never through a link planted under the log's name (files.open_own_file).
            fd = open_own_file(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            data = _cut_torn_tail(fd)  # appending always continues on a clean line
            state = LogState.of(data)
            stored = _load_store(store_path(self.path), state)
            self._earlier = stored if stored is not None else _parse_log(self.path, data)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._digest = hashlib.sha256(data)
        self._size = len(data)
        self._appended = []
        self._last_sync = time.monotonic()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        except OSError as error:
            if exc_type is None:
                raise self._write_error(error) from None
        finally:
            os.close(fd)
        if exc_type is None:
            # Interrupted runs skip this: the next reader rebuilds the store from the log.
            appended = DetectionColumns.of(self._appended)
            state = LogState(self._size, self._digest.digest())
            _write_store(self.path, _concatenate(self._earlier, appended), state)
        self._appended = []

    def append(self, detections: Detections) -> None:
        if self._fd is None:
            raise RuntimeError("DetectionLog.append outside its `with` block")
        line = (detections_to_line(detections) + "\n").encode("utf-8")
        rest = memoryview(line)
        try:
            while rest:
                written = os.write(self._fd, rest)
                if not written:
                    raise OSError("the write made no progress")  # read by its text alone (_write_error)
                rest = rest[written:]
        except BaseException as exc:
            # A part of the line may be in the file: cut it so the log ends on a whole line.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            if isinstance(exc, OSError):
                raise self._write_error(exc) from None
            raise
        self._size += len(line)
        self._digest.update(line)
        self._appended.append(detections)
        if time.monotonic() - self._last_sync > _FSYNC_EVERY_SECONDS:
            os.fsync(self._fd)
            self._last_sync = time.monotonic()

    def _write_error(self, exc: OSError) -> OutputError:
        done = len(self._earlier.image_ids) + len(self._appended)
        return OutputError(
            f"cannot write {self.path}: {exc.strerror or exc} (the {done} images before are kept); "
            f"free some space, then continue with --resume {self.path.parent}"
        )


def _concatenate(first: DetectionColumns, second: DetectionColumns) -> DetectionColumns:
    if not len(second.image_ids):
        return first
    if not len(first.image_ids):
        return second
    return DetectionColumns(
        image_ids=np.concatenate([first.image_ids, second.image_ids]),
        counts=np.concatenate([first.counts, second.counts]),
        boxes=np.concatenate([first.boxes, second.boxes]),
        scores=np.concatenate([first.scores, second.scores]),
        category_ids=np.concatenate([first.category_ids, second.category_ids]),
    )


def _cut_torn_tail(fd: int) -> bytes:
    """Cut a partial last line of the open log `fd` (so that appending continues on a clean line);
    return the bytes it keeps."""
    with open(fd, "rb", closefd=False) as handle:  # the log's own descriptor, kept open
        handle.seek(0)
        data = handle.read()  # to the end, however many reads that takes
    end = data.rfind(b"\n") + 1
    if end != len(data):
        os.ftruncate(fd, end)
        data = data[:end]
    return data


def truncate_torn_tail(path: Path) -> None:
    """Cut a partial last line so that appending continues on a clean line (never through a link)."""
    if not os.path.lexists(path):
        return
    try:
        fd = open_own_file(path, os.O_RDWR)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        _cut_torn_tail(fd)
    finally:
        os.close(fd)


_RESULT_RECORD = '{"image_id":%d,"category_id":%d,"bbox":[%r,%r,%r,%r],"score":%r}'


def _result_lines(detections: Detections) -> list[str]:
    """One image's COCO result records as JSON text, the same bytes `json.dumps` writes, faster."""
    finite = bool(np.isfinite(detections.boxes).all() and np.isfinite(detections.scores).all())
    if not finite:  # json.dumps spells these NaN / Infinity
        return [json.dumps(r, separators=(",", ":")) for r in detections.to_coco_json()]
    image_id = int(detections.image_id)
    return [
        _RESULT_RECORD % (image_id, c, *box, s)
        for box, s, c in zip(
            detections.boxes.tolist(),
            detections.scores.tolist(),
            detections.category_ids.tolist(),
            strict=True,
        )
    ]


def write_results_json(path: Path, detections: Iterable[Detections]) -> int:
    """The COCO results file (a JSON list, one record a line), written atomically; returns the count."""
    count = 0
    with atomic_writer(path, text=True) as handle:
        handle.write("[")
        for dets in detections:
            lines = _result_lines(dets)
            if lines:
                handle.write(("," if count else "") + "\n" + ",\n".join(lines))
                count += len(lines)
        handle.write("\n]\n")
    return count
