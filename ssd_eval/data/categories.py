"""The 80 COCO detection categories and the model's label -> category id map.

The model emits contiguous labels 1..80 (0 is background, never emitted) in the order of the COCO
categories sorted by id (MODEL_FACTS "Labels"). COCO ids run 1..90 with gaps, so label k means
`COCO_CATEGORIES[k - 1]`. The table is canonical, not read from the annotation file: the JSON's
category order is not guaranteed, so the file is only checked against it, by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ssd_eval.errors import DatasetError

# (COCO category id, name), sorted by id.
COCO_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "person"),
    (2, "bicycle"),
    (3, "car"),
    (4, "motorcycle"),
    (5, "airplane"),
    (6, "bus"),
    (7, "train"),
    (8, "truck"),
    (9, "boat"),
    (10, "traffic light"),
    (11, "fire hydrant"),
    (13, "stop sign"),
    (14, "parking meter"),
    (15, "bench"),
    (16, "bird"),
    (17, "cat"),
    (18, "dog"),
    (19, "horse"),
    (20, "sheep"),
    (21, "cow"),
    (22, "elephant"),
    (23, "bear"),
    (24, "zebra"),
    (25, "giraffe"),
    (27, "backpack"),
    (28, "umbrella"),
    (31, "handbag"),
    (32, "tie"),
    (33, "suitcase"),
    (34, "frisbee"),
    (35, "skis"),
    (36, "snowboard"),
    (37, "sports ball"),
    (38, "kite"),
    (39, "baseball bat"),
    (40, "baseball glove"),
    (41, "skateboard"),
    (42, "surfboard"),
    (43, "tennis racket"),
    (44, "bottle"),
    (46, "wine glass"),
    (47, "cup"),
    (48, "fork"),
    (49, "knife"),
    (50, "spoon"),
    (51, "bowl"),
    (52, "banana"),
    (53, "apple"),
    (54, "sandwich"),
    (55, "orange"),
    (56, "broccoli"),
    (57, "carrot"),
    (58, "hot dog"),
    (59, "pizza"),
    (60, "donut"),
    (61, "cake"),
    (62, "chair"),
    (63, "couch"),
    (64, "potted plant"),
    (65, "bed"),
    (67, "dining table"),
    (70, "toilet"),
    (72, "tv"),
    (73, "laptop"),
    (74, "mouse"),
    (75, "remote"),
    (76, "keyboard"),
    (77, "cell phone"),
    (78, "microwave"),
    (79, "oven"),
    (80, "toaster"),
    (81, "sink"),
    (82, "refrigerator"),
    (84, "book"),
    (85, "clock"),
    (86, "vase"),
    (87, "scissors"),
    (88, "teddy bear"),
    (89, "hair drier"),
    (90, "toothbrush"),
)


@dataclass(frozen=True)
class LabelMap:
    """Maps the model's labels 1..N to COCO category ids."""

    category_ids: np.ndarray  # int64 [N + 1]; index 0 (background) holds -1
    names: tuple[str, ...]  # names[label - 1]

    @property
    def num_labels(self) -> int:
        return len(self.names)

    def name_of(self, category_id: int) -> str:
        """The name of a COCO category id."""
        index = int(np.flatnonzero(self.category_ids == category_id)[0])
        return self.names[index - 1]


def coco_categories_json() -> list[dict[str, object]]:
    """The 80 categories as an annotation file lists them (used to generate COCO files)."""
    return [{"id": cid, "name": name, "supercategory": ""} for cid, name in COCO_CATEGORIES]


def canonical_label_map() -> LabelMap:
    """Labels 1..80 -> COCO ids, from the canonical table."""
    ids = np.array([-1] + [cid for cid, _ in COCO_CATEGORIES], dtype=np.int64)
    return LabelMap(category_ids=ids, names=tuple(name for _, name in COCO_CATEGORIES))


def check_categories(categories: Sequence[Mapping[str, object]], *, source: str) -> LabelMap:
    """Check an annotation file's categories against the canonical table and return the label map.

    The comparison is by id and name, independent of the order in which the file lists them.
    """
    by_id: dict[int, str] = {}
    for entry in categories:
        cid, name = entry.get("id"), entry.get("name")
        if not isinstance(cid, int) or not isinstance(name, str):
            raise DatasetError(
                f"{source}: a category lacks an integer `id` or a string `name`: {dict(entry)}"
            )
        by_id[cid] = name
    expected = dict(COCO_CATEGORIES)
    missing = [f"{cid} {name!r}" for cid, name in COCO_CATEGORIES if cid not in by_id]
    wrong = [
        f"{cid}: {by_id[cid]!r} (expected {name!r})"
        for cid, name in COCO_CATEGORIES
        if cid in by_id and by_id[cid] != name
    ]
    extra = sorted(set(by_id) - set(expected))
    if missing or wrong or extra:
        parts = []
        if missing:
            parts.append(
                f"missing categories {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
            )
        if wrong:
            parts.append(f"names differ for {', '.join(wrong[:5])}" + (" ..." if len(wrong) > 5 else ""))
        if extra:
            parts.append(f"unexpected category ids {extra[:5]}")
        raise DatasetError(
            f"{source}: categories are not the 80 COCO detection categories ({'; '.join(parts)}); "
            "the model's labels 1..80 can only be mapped onto COCO's own category table"
        )
    return canonical_label_map()
