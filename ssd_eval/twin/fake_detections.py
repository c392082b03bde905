"""A seeded COCO-val2017-shaped ground truth and detector output, for scoring benchmarks and parity.

Full size: 5000 images (48 without annotations), ~36.8k boxes over the 80 categories with a
skewed, person-heavy frequency, ~1% crowd, val2017-like box sizes; ~190 detections per image:
jittered copies of the ground truth (right and wrong class) plus background false positives,
scores in [0.05, 1]. Nothing here is a real result: it only has the shape and the cost of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ssd_eval.data.categories import COCO_CATEGORIES
from ssd_eval.pipeline.decode import Detections


@dataclass(frozen=True)
class FakeSet:
    """Ground truth (a COCO instances tree) and one detections record per image."""

    coco_json: dict[str, Any]
    detections: tuple[Detections, ...]

    @property
    def image_ids(self) -> list[int]:
        return [int(im["id"]) for im in self.coco_json["images"]]


def _boxes(rng: np.random.Generator, n: int, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """`n` x, y, w, h boxes inside their images, with a val2017-like spread of sizes."""
    side = np.exp(rng.normal(np.log(0.18), 0.9, n)).clip(0.01, 1.0)
    aspect = np.exp(rng.normal(0.0, 0.5, n))
    w = (side * np.sqrt(aspect)).clip(0.005, 1.0) * width
    h = (side / np.sqrt(aspect)).clip(0.005, 1.0) * height
    x = rng.random(n) * (width - w)
    y = rng.random(n) * (height - h)
    return np.stack([x, y, w, h], axis=1)


def make_fake_set(
    num_images: int = 5000,
    *,
    boxes_per_image: float = 7.36,
    detections_per_image: int = 190,
    empty_images: int = 48,
    seed: int = 0,
) -> FakeSet:
    """The generated set; the defaults are val2017's size and this model's detection count."""
    rng = np.random.default_rng(seed)
    cat_ids = np.array([cid for cid, _ in COCO_CATEGORIES])
    freq = 1.0 / np.arange(1, 81) ** 0.9
    freq[0] *= 4.0  # person is ~30% of val2017's boxes
    freq /= freq.sum()
    ids = np.arange(1, num_images + 1) * 7 + 100
    widths = rng.choice([640, 480, 500, 427, 612], num_images).astype(np.float64)
    heights = rng.choice([480, 640, 375, 333, 427], num_images).astype(np.float64)
    counts = rng.poisson(boxes_per_image - 1, num_images) + 1
    counts[rng.choice(num_images, min(empty_images, num_images), replace=False)] = 0
    images = [
        {"id": int(i), "file_name": f"{int(i):012d}.jpg", "width": int(w), "height": int(h)}
        for i, w, h in zip(ids, widths, heights, strict=True)
    ]
    annotations: list[dict[str, Any]] = []
    detections = []
    for k in range(num_images):
        n = int(counts[k])
        gt_boxes = _boxes(rng, n, widths[k], heights[k])
        gt_cats = rng.choice(cat_ids, n, p=freq)
        crowd = rng.random(n) < 0.01
        for box, cat, is_crowd in zip(gt_boxes, gt_cats, crowd, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": int(ids[k]),
                    "category_id": int(cat),
                    "bbox": [round(float(v), 2) for v in box],
                    "area": round(float(box[2] * box[3]), 2),
                    "iscrowd": int(is_crowd),
                }
            )
        # Detections: 3 jittered copies per ground-truth box (a third with a wrong class), the rest noise.
        hits = np.repeat(np.arange(n), 3)[: detections_per_image // 2]
        jitter = rng.normal(0.0, 0.08, (len(hits), 4)) * np.repeat(gt_boxes[hits, 2:], 2, axis=1)
        hit_boxes = gt_boxes[hits] + jitter
        hit_boxes[:, 2:] = np.abs(hit_boxes[:, 2:]) + 1.0
        hit_cats = np.where(
            rng.random(len(hits)) < 0.66, gt_cats[hits], rng.choice(cat_ids, len(hits), p=freq)
        )
        noise = detections_per_image - len(hits)
        boxes = np.concatenate([hit_boxes, _boxes(rng, noise, widths[k], heights[k])])
        cats = np.concatenate([hit_cats, rng.choice(cat_ids, noise, p=freq)]).astype(np.int64)
        scores = np.concatenate([rng.uniform(0.2, 1.0, len(hits)), rng.uniform(0.05, 0.6, noise)])
        order = np.argsort(-scores, kind="stable")
        detections.append(Detections(int(ids[k]), boxes[order], scores[order], cats[order]))
    categories = [{"id": cid, "name": name, "supercategory": "x"} for cid, name in COCO_CATEGORIES]
    coco_json = {"images": images, "annotations": annotations, "categories": categories}
    return FakeSet(coco_json=coco_json, detections=tuple(detections))
