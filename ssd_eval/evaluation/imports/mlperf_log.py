"""MLPerf accuracy logs of the SSD-ResNet34 benchmark (`ssd-large` in v0.5, `ssd-resnet34` later).

`mlperf_log_accuracy.json` is a JSON list of `{seq_id, qsl_idx, data}`; `data` is the hex of
little-endian float32 values, 7 per detection: `[image_idx, ymin, xmin, ymax, xmax, score, label]`,
boxes normalized to the original image and **y first**, labels the contiguous indices 1..80. What
mlcommons/inference `vision/classification_and_detection/tools/accuracy-coco.py` does with it, and
where this reader deliberately differs, is written down in docs/import.md. In short, as the script:
`qsl_idx` indexes an image list (`IMAGE_ORDERS`), a repeated `qsl_idx` counts once (the first), an
entry of fewer than 7 floats is an image without detections, boxes are scaled by the annotation file's
width and height in float32 and written as `[xmin, ymin, xmax - xmin, ymax - ymin]`. Unlike the
script, a payload whose `image_idx` disagrees with its `qsl_idx` is refused (the script prints an
ERROR and goes on), and so is every malformed entry (the script crashes or truncates silently).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np

from ssd_eval.data.categories import LabelMap
from ssd_eval.data.dataset import ImageRecord
from ssd_eval.errors import DetectionsFileError
from ssd_eval.evaluation.imports import ImportedDetections, json_list, whole_number
from ssd_eval.pipeline.decode import Detections
from ssd_eval.pipeline.output_contract import NORMALIZED_RANGE, SCORE_SLACK

WHAT = "an MLPerf accuracy log: a JSON list of {seq_id, qsl_idx, data} (mlperf_log_accuracy.json)"
FIELDS = "[image_idx, ymin, xmin, ymax, xmax, score, label]"

# Which image list `qsl_idx` indexes:
# file: the annotation file's `images` list in file order (the harness's default image list, and
#   accuracy-coco.py's default);
# annotated: the annotated images only, in file order (what the harness's coco.py builds when it drops
#   the images without annotations: the `coco-1200-pt` profile, `use_label_map`);
# annotated-set: the annotated images in the order accuracy-coco.py's --remove-48-empty-images
#   assumes: `list(set(ids))` of the image ids of each category's annotations (CPython set order).
ImageOrder = Literal["file", "annotated", "annotated-set"]
IMAGE_ORDERS: tuple[ImageOrder, ...] = get_args(ImageOrder)


def image_order(coco_json: Mapping[str, Any], order: ImageOrder) -> list[ImageRecord]:
    """The image list `qsl_idx` indexes under `order` (the annotation file already checked)."""
    records = [
        ImageRecord(image_id=im["id"], file_name=im["file_name"], width=im["width"], height=im["height"])
        for im in coco_json["images"]
    ]
    if order == "file":
        return records
    annotated = {int(a["image_id"]) for a in coco_json["annotations"]}
    if order == "annotated":
        return [r for r in records if r.image_id in annotated]
    # pycocotools' catToImgs: per category, the image id of each annotation in file order; the script
    # concatenates them over getCatIds() (the file's category order) and keeps list(set(...)).
    by_category: dict[int, list[int]] = {}
    for ann in coco_json["annotations"]:
        by_category.setdefault(int(ann["category_id"]), []).append(int(ann["image_id"]))
    ids: list[int] = []
    for category in coco_json["categories"]:
        ids += by_category.get(int(category["id"]), [])
    by_id = {r.image_id: r for r in records}
    return [by_id[i] for i in list(set(ids)) if i in by_id]


def read_mlperf_log(
    data: bytes, *, source: str, images: Sequence[ImageRecord], order: str, label_map: LabelMap
) -> ImportedDetections:
    """The detections of an MLPerf accuracy log, by image id; `images` is the list `qsl_idx` indexes
    (`image_order`), `order` its name for messages."""
    entries = json_list(data, source=source, what=WHAT)
    found: dict[int, Detections] = {}
    seen: set[int] = set()
    repeats = 0
    for index, entry in enumerate(entries):
        where = f"{source}: entry {index}"
        if not isinstance(entry, dict):
            raise DetectionsFileError(f"{where} is a {type(entry).__name__}, not an object: expected {WHAT}")
        qsl = whole_number(entry, "qsl_idx", where)
        if not 0 <= qsl < len(images):
            raise DetectionsFileError(
                f"{where}: qsl_idx {qsl} is outside the {len(images)} images of image order {order!r} "
                f"(0..{len(images) - 1}): give the --image-order the harness used, and the annotation file "
                "it ran on (--data)"
            )
        if qsl in seen:
            repeats += 1  # loadgen may log a sample twice: the first counts, as in accuracy-coco.py
            continue
        seen.add(qsl)
        record = images[qsl]
        found[record.image_id] = _entry(entry, where, qsl, record, label_map)
    return ImportedDetections(detections=found, records=len(entries), repeats=repeats)


def _floats(entry: Mapping[str, Any], where: str) -> np.ndarray:
    text = entry.get("data")
    if not isinstance(text, str):
        shown = "missing" if "data" not in entry else f"a {type(text).__name__}"
        raise DetectionsFileError(f"{where}: data is {shown}; expected the hex of float32 values {FIELDS}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise DetectionsFileError(
            f"{where}: data {text[:24]!r}{'…' if len(text) > 24 else ''} is not hexadecimal"
        ) from None
    if len(raw) % 4:
        raise DetectionsFileError(f"{where}: data holds {len(raw)} bytes, not whole float32 values")
    return np.frombuffer(raw, dtype="<f4")


def _entry(
    entry: Mapping[str, Any], where: str, qsl: int, record: ImageRecord, label_map: LabelMap
) -> Detections:
    values = _floats(entry, where)
    if len(values) < 7:  # the harness logs an image without detections so
        return Detections.empty(record.image_id)
    if len(values) % 7:
        raise DetectionsFileError(
            f"{where}: data holds {len(values)} float32 values, not a multiple of 7 ({FIELDS} per detection)"
        )
    rows = values.reshape(-1, 7)
    _check_rows(rows, where, qsl, label_map.num_labels)
    _, ymin, xmin, ymax, xmax, score, label = rows.T
    # As accuracy-coco.py: scaled by the annotation file's size in float32, then [x, y, w, h].
    height, width = np.float32(record.height), np.float32(record.width)
    x1, y1, x2, y2 = xmin * width, ymin * height, xmax * width, ymax * height
    boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1).astype(np.float64)
    return Detections(
        image_id=record.image_id,
        boxes=boxes,
        scores=score.astype(np.float64),
        category_ids=label_map.category_ids[label.astype(np.int64)],
    )


def _check_rows(rows: np.ndarray, where: str, qsl: int, num_labels: int) -> None:
    """Each detection of one entry: finite, of its own image, a label 1..80, a score in [0, 1], a
    normalized box with max >= min."""

    def first(bad: Any) -> tuple[int, list[float]]:
        j = int(np.flatnonzero(bad)[0])
        return j, [float(f"{v:.6g}") for v in rows[j]]

    if not np.isfinite(rows).all():
        j, row = first(np.asarray(~np.isfinite(rows).all(axis=1)))
        raise DetectionsFileError(f"{where}: detection {j} {row} holds NaN or infinity; expected {FIELDS}")
    bad = rows[:, 0] != qsl
    if bad.any():
        j, row = first(bad)
        raise DetectionsFileError(
            f"{where}: detection {j} has image_idx {row[0]:g} but the entry's qsl_idx is {qsl}: the payload "
            "and loadgen disagree on the image (accuracy-coco.py only prints an ERROR); the log is damaged"
        )
    labels = rows[:, 6]
    bad = (labels != np.round(labels)) | (labels < 1) | (labels > num_labels)
    if bad.any():
        j, row = first(bad)
        raise DetectionsFileError(
            f"{where}: detection {j} has label {row[6]:g}, not one of the contiguous indices 1..{num_labels} "
            "the SSD-ResNet34 logs hold (a COCO category id, or a 0-based index?)"
        )
    scores = rows[:, 5]
    bad = (scores < 0) | (scores > 1 + SCORE_SLACK)
    if bad.any():
        j, row = first(bad)
        raise DetectionsFileError(f"{where}: detection {j} has score {row[5]:g}; expected a score in [0, 1]")
    boxes = rows[:, 1:5]
    low, high = NORMALIZED_RANGE
    bad = ((boxes < low) | (boxes > high)).any(axis=1)
    if bad.any():
        j, row = first(bad)
        raise DetectionsFileError(
            f"{where}: detection {j} has box {row[1:5]} (ymin, xmin, ymax, xmax); expected coordinates "
            "normalized to the image: these look like pixels"
        )
    bad = (rows[:, 3] < rows[:, 1]) | (rows[:, 4] < rows[:, 2])
    if bad.any():
        j, row = first(bad)
        raise DetectionsFileError(
            f"{where}: detection {j} has box {row[1:5]} with ymax < ymin or xmax < xmin; expected "
            "ymin, xmin, ymax, xmax (y first)"
        )
