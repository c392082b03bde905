"""The COCO results reader, called directly (issue 22: the survivors of its mutation run).

Expectations are the format's own rules written out here: w, h >= 0 (0 allowed), a score in [0, 1]
(both ends allowed), and, with image sizes given, corners within -4..5 times the image's side (the
range the model's normalized outputs are held to, written literally, not read from the package).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssd_eval.errors import DetectionsFileError
from ssd_eval.evaluation.imports.coco_results import read_coco_results

SOURCE = "results.json"
ANNOTATIONS = "instances_val2017.json"


def read(records: object, *, sizes: dict[int, tuple[int, int]] | None = None):
    return read_coco_results(
        json.dumps(records).encode(),
        source=SOURCE,
        image_ids=[1, 2],
        category_ids=[1, 90],
        annotations=ANNOTATIONS,
        image_sizes=sizes,
    )


def record(bbox: list[float], *, score: float = 0.5, image_id: int = 1, category_id: int = 90) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


def refusal(records: object, **kw) -> str:
    with pytest.raises(DetectionsFileError) as caught:
        read(records, **kw)
    return str(caught.value)


@pytest.mark.parametrize("bbox", [[3, 4, 0, 5], [3, 4, 5, 0], [3, 4, 0, 0], [3, 4, 0.5, 0.5]])
def test_a_box_of_zero_or_fractional_width_or_height_is_a_detection(bbox):
    imported = read([record(bbox)])
    assert imported.detections[1].boxes.tolist() == [[float(v) for v in bbox]]


@pytest.mark.parametrize("score", [0, 0.0, 1, 1.0])
def test_scores_of_exactly_0_and_1_are_detections(score):
    assert read([record([0, 0, 1, 1], score=score)]).detections[1].scores.tolist() == [float(score)]


def test_records_are_counted_and_kept_in_order_by_image():
    imported = read(
        [
            record([0, 0, 1, 1], score=0.9),
            record([5, 5, 2, 2], image_id=2, category_id=1),
            record([1, 1, 1, 1], score=0.1),
        ]
    )
    assert imported.records == 3
    assert sorted(imported.detections) == [1, 2]
    assert imported.detections[1].scores.tolist() == [0.9, 0.1]
    assert imported.detections[1].category_ids.tolist() == [90, 90]
    assert imported.detections[2].boxes.tolist() == [[5.0, 5.0, 2.0, 2.0]]
    assert imported.detections[2].category_ids.dtype == np.int64


def test_without_image_sizes_any_finite_box_is_read():
    assert read([record([-1e6, 1e6, 3e6, 1])]).detections[1].boxes.shape == (1, 4)


# Image 1 is 100 x 50: x may run from -400 to 500, y from -200 to 250, both ends included.
@pytest.mark.parametrize(
    "bbox", [[-400, -200, 0, 0], [500, 250, 0, 0], [-400, -200, 900, 450], [0, 0, 500, 250]]
)
def test_a_box_exactly_on_the_allowed_bounds_is_a_detection(bbox):
    assert read([record(bbox)], sizes={1: (100, 50)}).detections[1].boxes.shape == (1, 4)


@pytest.mark.parametrize(
    "bbox",
    [
        [-400.5, 0, 1, 1],  # x below -4 x width
        [0, -200.5, 1, 1],  # y below -4 x height
        [499, 0, 1.5, 1],  # x + w beyond 5 x width, x alone inside
        [0, 249, 1, 1.5],  # y + h beyond 5 x height, y alone inside
    ],
)
def test_a_box_beyond_the_bounds_is_refused_naming_the_record_and_the_image_size(bbox):
    message = refusal([record([0, 0, 1, 1]), record(bbox)], sizes={1: (100, 50)})
    assert message.startswith(f"{SOURCE}: record 1: bbox ")
    assert "reaches beyond [-4, 5] times the image's size (100x50)" in message


def test_image_sizes_of_other_images_do_not_bound_this_one():
    assert read([record([900, 0, 1, 1])], sizes={2: (100, 50)}).detections[1].boxes.shape == (1, 4)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            record([0, 0, 1, 1], image_id=3),
            f"{SOURCE}: record 0: image_id 3 is not an image of {ANNOTATIONS}: import detections made on the "
            "images of that annotation file (--data the COCO root they were made for)",
        ),
        (
            record([0, 0, 1, 1], category_id=80),
            f"{SOURCE}: record 0: category_id 80 is not a category of {ANNOTATIONS}: results files hold COCO "
            "category ids (1..90 with gaps); a detector's contiguous label (1..80) must be mapped first",
        ),
        (
            record([0, 0, -1, 1]),
            f"{SOURCE}: record 0: bbox [0, 0, -1, 1] has a negative width or height; expected [x, y, w, h] "
            "with w, h >= 0 (a box written as [x1, y1, x2, y2]?)",
        ),
        (
            record([0, 0, 1, -1]),
            f"{SOURCE}: record 0: bbox [0, 0, 1, -1] has a negative width or height; expected [x, y, w, h] "
            "with w, h >= 0 (a box written as [x1, y1, x2, y2]?)",
        ),
        (record([0, 0, 1, 1], score=1.5), f"{SOURCE}: record 0: score is 1.5; expected a number in [0, 1]"),
        (record([0, 0, 1, 1], score=-0.5), f"{SOURCE}: record 0: score is -0.5; expected a number in [0, 1]"),
    ],
)
def test_each_refusal_is_one_whole_line(bad, expected):
    assert refusal([bad]) == expected


def test_a_file_that_is_not_a_list_names_itself_and_the_format():
    message = refusal({"image_id": 1})
    assert message == (
        f"{SOURCE}: the top level is a dict, expected a COCO results file: a JSON list of "
        "{image_id, category_id, bbox: [x, y, w, h], score}"
    )
