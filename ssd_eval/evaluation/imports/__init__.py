"""Detections made elsewhere, read from the files other harnesses write: COCO results files
(`coco_results`) and MLPerf accuracy logs (`mlperf_log`). Pure functions from bytes to one
`ImportedDetections`; every bad record or entry is one `DetectionsFileError` line naming it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ssd_eval.config.strict_load import loads_json
from ssd_eval.errors import DetectionsFileError
from ssd_eval.pipeline.decode import Detections


@dataclass(frozen=True)
class ImportedDetections:
    """What a file of detections holds, per image, in COCO terms (pixel x, y, w, h; COCO category ids)."""

    detections: Mapping[int, Detections]  # by image id: every image the file speaks of
    records: int  # records (COCO results) or entries (MLPerf log) read
    repeats: int = 0  # MLPerf: entries of a qsl_idx seen before (the first one counts)


def json_list(data: bytes, *, source: str, what: str) -> list[Any]:
    """The file's top level, which must be a JSON list."""
    try:
        # Strict: a key given twice in a record is refused (json.loads would keep the last one silently);
        # NaN is read, so that the record holding it is named by the checks.
        parsed = loads_json(data.decode("utf-8"), allow_nan=True)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DetectionsFileError(f"{source} is not readable JSON ({exc}): expected {what}") from None
    if not isinstance(parsed, list):
        raise DetectionsFileError(f"{source}: the top level is a {type(parsed).__name__}, expected {what}")
    return parsed


def whole_number(record: Mapping[str, Any], key: str, where: str) -> int:
    """`record[key]` as a whole number (a JSON integer; true/false are not numbers)."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        shown = "missing" if key not in record else f"{value!r}, not a whole number"
        raise DetectionsFileError(f"{where}: {key} is {shown}")
    return value
