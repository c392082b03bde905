"""COCO results files: a JSON list of `{image_id, category_id, bbox: [x, y, w, h], score}`.

The format pycocotools' `loadRes` reads and detectron2, mmdet and ultralytics (`save_json`) write:
boxes in pixels of the original image, category ids of the annotation file. Every record is checked
(pycocotools checks none of this): its image and category exist in the annotation file, its numbers
are finite, w and h are >= 0 and the score is in [0, 1]. Other keys (area, segmentation) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from ssd_eval.errors import DetectionsFileError
from ssd_eval.evaluation.imports import ImportedDetections, json_list, whole_number
from ssd_eval.pipeline.decode import Detections
from ssd_eval.pipeline.output_contract import NORMALIZED_RANGE

WHAT = "a COCO results file: a JSON list of {image_id, category_id, bbox: [x, y, w, h], score}"


def _number(value: object) -> bool:
    """A finite JSON number (an integer too large for a float, 1e400 written out, is not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def read_coco_results(
    data: bytes,
    *,
    source: str,
    image_ids: Collection[int],
    category_ids: Collection[int],
    annotations: str,
    image_sizes: Mapping[int, tuple[int, int]] | None = None,
) -> ImportedDetections:
    """The detections of a COCO results file, by image, in record order.

    image_ids, category_ids: those of the annotation file (`annotations` names it in messages).
    image_sizes: (width, height) by image id; given, a box must lie within the range the model's own
    outputs are held to (NORMALIZED_RANGE of the image's size): farther is not a detection of it.
    """
    records = json_list(data, source=source, what=WHAT)
    images = set(image_ids)
    categories = set(category_ids)
    rows: dict[int, list[tuple[float, float, float, float, float, int]]] = {}
    for index, record in enumerate(records):
        where = f"{source}: record {index}"
        if not isinstance(record, dict):
            raise DetectionsFileError(f"{where} is a {type(record).__name__}, not an object: expected {WHAT}")
        image_id = _image_id(record, where, images, annotations)
        row = _row(record, where, categories, annotations)
        if image_sizes is not None and image_id in image_sizes:
            _check_within(row, image_sizes[image_id], where)
        rows.setdefault(image_id, []).append(row)
    detections = {image_id: _detections(image_id, found) for image_id, found in rows.items()}
    return ImportedDetections(detections=detections, records=len(records))


def _image_id(record: dict[str, Any], where: str, images: set[int], annotations: str) -> int:
    image_id = whole_number(record, "image_id", where)
    if image_id not in images:
        raise DetectionsFileError(
            f"{where}: image_id {image_id} is not an image of {annotations}: import detections made on the "
            "images of that annotation file (--data the COCO root they were made for)"
        )
    return image_id


def _row(
    record: dict[str, Any], where: str, categories: set[int], annotations: str
) -> tuple[float, float, float, float, float, int]:
    category = whole_number(record, "category_id", where)
    if category not in categories:
        raise DetectionsFileError(
            f"{where}: category_id {category} is not a category of {annotations}: results files hold COCO "
            "category ids (1..90 with gaps); a detector's contiguous label (1..80) must be mapped first"
        )
    bbox = record.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        raise DetectionsFileError(
            f"{where}: bbox is {bbox!r}; expected [x, y, w, h], 4 finite numbers (pixels)"
        )
    if bbox[2] < 0 or bbox[3] < 0:
        raise DetectionsFileError(
            f"{where}: bbox {bbox} has a negative width or height; expected [x, y, w, h] with w, h >= 0 "
            "(a box written as [x1, y1, x2, y2]?)"
        )
    score = record.get("score")
    if not _number(score) or not 0.0 <= float(score) <= 1.0:  # type: ignore[arg-type]
        raise DetectionsFileError(f"{where}: score is {score!r}; expected a number in [0, 1]")
    x, y, w, h = (float(v) for v in bbox)
    return x, y, w, h, float(score), category  # type: ignore[arg-type]


def _check_within(
    row: tuple[float, float, float, float, float, int], size: tuple[int, int], where: str
) -> None:
    """Corners within [low, high] x the image's size, as decode holds the model's normalized boxes."""
    low, high = NORMALIZED_RANGE
    x, y, w, h = row[:4]
    width, height = size
    corners = ((x, width), (x + w, width), (y, height), (y + h, height))
    inside = all(low * side <= value <= high * side for value, side in corners)
    if not inside:
        raise DetectionsFileError(
            f"{where}: bbox [{x:g}, {y:g}, {w:g}, {h:g}] reaches beyond [{low:g}, {high:g}] times the "
            f"image's size ({width}x{height}): not a box of this image (made for another image size?)"
        )


def _detections(image_id: int, rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    """One image's records (at least one: an image without records has no entry in `rows`)."""
    return Detections(
        image_id=image_id,
        boxes=np.array([row[:4] for row in rows], dtype=np.float64),
        scores=np.array([row[4] for row in rows], dtype=np.float64),
        category_ids=np.array([row[5] for row in rows], dtype=np.int64),
    )
