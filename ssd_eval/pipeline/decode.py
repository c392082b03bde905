"""Raw model outputs -> COCO detections on the original image.

The model emits normalized x1, y1, x2, y2 boxes (not clipped; slightly outside [0, 1] occurs) and
labels 1..80. A detection becomes pixel x, y, w, h on the original width and height, and its label
a COCO category id through the canonical table. Boxes are NOT clipped by default: the published
protocol (MLPerf accuracy-coco.py, BowenBao's evaluation) does not clip, and clipping raises IoU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ssd_eval.config.run import DecodeConfig
from ssd_eval.data.categories import LabelMap
from ssd_eval.data.dataset import ImageRecord
from ssd_eval.errors import ModelError
from ssd_eval.pipeline.output_contract import check_output_values
from ssd_eval.pipeline.session import RawOutputs


@dataclass(frozen=True)
class Detections:
    """One image's detections in COCO terms; validates its own shapes."""

    image_id: int
    boxes: np.ndarray  # float64 [N, 4] pixel x, y, w, h
    scores: np.ndarray  # float64 [N]
    category_ids: np.ndarray  # int64 [N]

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.boxes.shape != (n, 4) or self.category_ids.shape != (n,) or self.scores.shape != (n,):
            raise ValueError(
                f"inconsistent detection arrays: boxes {self.boxes.shape}, scores {self.scores.shape}, "
                f"category_ids {self.category_ids.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, image_id: int) -> Detections:
        return cls(image_id, np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))

    def to_rows(self) -> np.ndarray:
        """Rows `[image_id, x, y, w, h, score, category_id]`: the array pycocotools' loadRes takes."""
        rows = np.empty((len(self), 7), dtype=np.float64)
        rows[:, 0] = self.image_id
        rows[:, 1:5] = self.boxes
        rows[:, 5] = self.scores
        rows[:, 6] = self.category_ids
        return rows

    def to_coco_json(self) -> list[dict[str, Any]]:
        """COCO results-format records."""
        return [
            {
                "image_id": self.image_id,
                "category_id": int(c),
                "bbox": [float(v) for v in box],
                "score": float(s),
            }
            for box, s, c in zip(self.boxes, self.scores, self.category_ids, strict=True)
        ]


def decode(
    raw: RawOutputs,
    *,
    image_id: int,
    width: int,
    height: int,
    label_map: LabelMap,
    clip_boxes: bool = False,
    score_threshold: float = 0.0,
) -> Detections:
    """Map labels to COCO ids and rescale normalized x1, y1, x2, y2 boxes to pixel x, y, w, h."""
    boxes = np.asarray(raw.boxes, dtype=np.float64)
    labels = np.asarray(raw.labels)
    scores = np.asarray(raw.scores, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1:] != (4,) or labels.ndim != 1 or scores.ndim != 1:
        raise ModelError(
            f"image {image_id}: the model's outputs are {list(boxes.shape)} boxes, {list(labels.shape)} "
            f"labels and {list(scores.shape)} scores; expected [N, 4], [N], [N] after the batch axis"
        )
    if not (len(boxes) == len(labels) == len(scores)):
        raise ModelError(
            f"image {image_id}: the model returned {len(boxes)} boxes, {len(labels)} labels and "
            f"{len(scores)} scores; they must match"
        )
    check_output_values(
        boxes, labels, scores, image_id=image_id, num_labels=label_map.num_labels, names=raw.names
    )
    keep = scores >= score_threshold
    boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
    if clip_boxes:
        boxes = np.clip(boxes, 0.0, 1.0)
    scale = np.array([width, height, width, height], dtype=np.float64)
    x1, y1, x2, y2 = (boxes * scale).T
    pixel_boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    category_ids = label_map.category_ids[labels.astype(np.int64)]
    return Detections(image_id=image_id, boxes=pixel_boxes, scores=scores, category_ids=category_ids)


def decode_image(
    raw: RawOutputs, record: ImageRecord, label_map: LabelMap, settings: DecodeConfig
) -> Detections:
    """`decode` for one evaluated image with the config's decode settings."""
    return decode(
        raw,
        image_id=record.image_id,
        width=record.width,
        height=record.height,
        label_map=label_map,
        clip_boxes=settings.clip_boxes,
        score_threshold=settings.score_threshold,
    )
