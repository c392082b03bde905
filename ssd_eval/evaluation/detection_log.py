"""Detections on disk: an append-only log written as they arrive, and the COCO results file.

The log (`detections.jsonl`) holds one JSON line per image and is flushed after every image, so a
run that dies keeps everything it produced; `--resume` and `ssd-eval score` read it back. Floats
are written with Python's shortest round-trip repr, so reading the log back gives bit-identical
arrays and a resumed run scores exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from ssd_eval.errors import OutputError
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
    record = json.loads(line)
    return Detections(
        image_id=int(record["image_id"]),
        boxes=np.asarray(record["boxes"], dtype=np.float64).reshape(-1, 4),
        scores=np.asarray(record["scores"], dtype=np.float64),
        category_ids=np.asarray(record["category_ids"], dtype=np.int64),
    )


class DetectionLog:
    """Appends one line per image to a JSON-lines file and flushes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self._last_sync = time.monotonic()

    def __enter__(self) -> DetectionLog:
        try:
            self._handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def append(self, detections: Detections) -> None:
        if self._handle is None:
            raise RuntimeError("DetectionLog.append outside its `with` block")
        self._handle.write(detections_to_line(detections) + "\n")
        self._handle.flush()
        if time.monotonic() - self._last_sync > _FSYNC_EVERY_SECONDS:
            os.fsync(self._handle.fileno())
            self._last_sync = time.monotonic()


def read_detection_log(path: Path) -> dict[int, Detections]:
    """Every image's detections in a log; a torn last line (the process died mid-write) is dropped."""
    found: dict[int, Detections] = {}
    if not path.is_file():
        return found
    with path.open("r", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            detections = detections_from_line(line)
        except (json.JSONDecodeError, KeyError, ValueError, TypeError):
            if number >= len(lines) - 1:
                log.warning("%s: dropping a torn last line (the run was interrupted mid-write)", path)
                continue
            raise OutputError(
                f"{path}: line {number} is not a detections record; the file is damaged"
            ) from None
        found[detections.image_id] = detections
    return found


def truncate_torn_tail(path: Path) -> None:
    """Cut a partial last line so that appending continues on a clean line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)


def write_results_json(path: Path, detections: Iterable[Detections]) -> int:
    """The COCO results file (a JSON list), written atomically; returns the number of records."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for dets in detections:
            for record in dets.to_coco_json():
                handle.write(("," if count else "") + "\n" + json.dumps(record, separators=(",", ":")))
                count += 1
        handle.write("\n]\n")
    os.replace(tmp, path)
    return count
