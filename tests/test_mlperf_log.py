"""The MLPerf accuracy log reader, called directly (issue 22: the survivors of its mutation run).

Expectations are the format's rules as docs/import.md writes them: `data` the hex of little-endian
float32 `[image_idx, ymin, xmin, ymax, xmax, score, label]`, y first, labels 1..80, a repeated
`qsl_idx` counted once (the first), fewer than 7 floats an image without detections; boxes scaled by
the annotation file's width and height and written `[xmin, ymin, xmax - xmin, ymax - ymin]`. The
bounds are written out literally: scores in [0, 1] with the output contract's 1e-6 of float32 slack,
box coordinates within [-4, 5] (both ends allowed), ymax >= ymin and xmax >= xmin (equal allowed).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssd_eval.data.categories import canonical_label_map
from ssd_eval.data.dataset import ImageRecord
from ssd_eval.errors import DetectionsFileError
from ssd_eval.evaluation.imports.mlperf_log import image_order, read_mlperf_log

SOURCE = "log.json"
FIELDS = "[image_idx, ymin, xmin, ymax, xmax, score, label]"
IMAGES = (
    ImageRecord(image_id=42, file_name="a.jpg", width=640, height=480),
    ImageRecord(image_id=7, file_name="b.jpg", width=100, height=50),
    ImageRecord(image_id=13, file_name="c.jpg", width=200, height=200),
)
GOOD = [
    0.25,
    0.5,
    0.75,
    1.0,
    0.5,
    17,
]  # ymin, xmin, ymax, xmax, score, label (17: dog, COCO id 18; id 12 is unused)


def hex_of(rows: list[list[float]]) -> str:
    return np.asarray(rows, dtype="<f4").tobytes().hex()


def entry(qsl: int, *rows: list[float]) -> dict:
    """An entry whose detections carry their own qsl as image_idx (rows without it)."""
    return {"seq_id": 0, "qsl_idx": qsl, "data": hex_of([[qsl, *row] for row in rows])}


def read(entries: object, images=IMAGES, order: str = "file"):
    return read_mlperf_log(
        json.dumps(entries).encode(),
        source=SOURCE,
        images=images,
        order=order,
        label_map=canonical_label_map(),
    )


def refusal(entries: object, **kw) -> str:
    with pytest.raises(DetectionsFileError) as caught:
        read(entries, **kw)
    return str(caught.value)


# --- what is read ------------------------------------------------------------------------------------


def test_an_entry_is_scaled_by_its_image_and_written_x_first():
    # Image 42 is 640 x 480: xmin 0.5 -> 320, ymin 0.25 -> 120, xmax 1.0 -> 640, ymax 0.75 -> 360.
    imported = read([entry(0, GOOD, [0.0, 0.0, 0.5, 0.5, 0.25, 80])])
    (found,) = imported.detections.values()
    assert found.image_id == 42
    assert found.boxes.tolist() == [[320.0, 120.0, 320.0, 240.0], [0.0, 0.0, 320.0, 240.0]]
    assert found.scores.tolist() == [0.5, 0.25]
    assert found.category_ids.tolist() == [18, 90]  # label 80 is the toothbrush, COCO id 90
    assert (found.boxes.dtype, found.scores.dtype, found.category_ids.dtype) == (
        np.float64,
        np.float64,
        np.int64,
    )


def test_repeated_entries_count_once_the_first_and_reading_goes_on():
    # qsl 1 logged three times: the first (with its detection) counts, the two repeats are counted;
    # the entry after them (qsl 2) is still read.
    imported = read([entry(1, GOOD), {"qsl_idx": 1, "data": ""}, {"qsl_idx": 1, "data": ""}, entry(2, GOOD)])
    assert imported.records == 4
    assert imported.repeats == 2
    assert sorted(imported.detections) == [7, 13]
    assert len(imported.detections[7]) == 1 and len(imported.detections[13]) == 1
    assert imported.detections[7].boxes.tolist() == [[50.0, 12.5, 50.0, 25.0]]


@pytest.mark.parametrize("data", ["", hex_of([[0, 0.1, 0.1, 0.2, 0.2, 0.5]])])
def test_fewer_than_7_floats_is_an_image_without_detections(data):
    imported = read([{"qsl_idx": 0, "data": data}])
    assert list(imported.detections) == [42] and len(imported.detections[42]) == 0
    assert imported.repeats == 0


# --- the bounds, both ends -------------------------------------------------------------------------------


def test_boxes_on_the_bounds_and_of_zero_size_are_detections():
    rows = [
        [-4.0, -4.0, 5.0, 5.0, 0.5, 1],  # every coordinate on a bound
        [0.5, 0.25, 0.5, 0.75, 0.5, 1],  # ymax == ymin: zero height
        [0.25, 0.5, 0.75, 0.5, 0.5, 1],  # xmax == xmin: zero width
    ]
    found = read([entry(1, *rows)]).detections[7]  # image 7: 100 x 50
    assert found.boxes.tolist() == [
        [-400.0, -200.0, 900.0, 450.0],
        [25.0, 25.0, 50.0, 0.0],
        [50.0, 12.5, 0.0, 25.0],
    ]


def test_a_score_within_the_float32_slack_above_1_is_a_detection():
    slack = float(np.float32(1 + 1e-6))  # a softmax in float32 can round a hair above 1
    found = read([entry(0, [0.1, 0.1, 0.2, 0.2, slack, 1])]).detections[42]
    assert found.scores.tolist() == [slack]


# --- every refusal, whole ---------------------------------------------------------------------------------


@pytest.mark.parametrize("qsl", [-1, 3])
def test_a_qsl_idx_outside_the_image_list_is_refused_naming_the_range(qsl):
    assert refusal([entry(0, GOOD), {"qsl_idx": qsl, "data": ""}], order="annotated") == (
        f"{SOURCE}: entry 1: qsl_idx {qsl} is outside the 3 images of image order 'annotated' (0..2): "
        "give the --image-order the harness used, and the annotation file it ran on (--data)"
    )


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        ({"qsl_idx": 0}, "missing"),
        ({"qsl_idx": 0, "data": 5}, "a int"),
        ({"qsl_idx": 0, "data": None}, "a NoneType"),
    ],
)
def test_data_that_is_not_a_string_is_refused(bad, shown):
    assert (
        refusal([bad]) == f"{SOURCE}: entry 0: data is {shown}; expected the hex of float32 values {FIELDS}"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("z" * 24, "'" + "z" * 24 + "'"),  # 24 characters: shown whole
        ("z" * 25, "'" + "z" * 24 + "'…"),  # 25: the first 24, then an ellipsis
        ("0011zz", "'0011zz'"),
    ],
)
def test_data_that_is_not_hexadecimal_is_shown_up_to_24_characters(text, shown):
    assert refusal([{"qsl_idx": 0, "data": text}]) == f"{SOURCE}: entry 0: data {shown} is not hexadecimal"


def test_a_byte_count_that_is_not_whole_float32_values_is_refused():
    assert refusal([{"qsl_idx": 0, "data": "00" * 30}]) == (
        f"{SOURCE}: entry 0: data holds 30 bytes, not whole float32 values"
    )


def test_a_float_count_that_is_not_a_multiple_of_7_is_refused():
    assert refusal([{"qsl_idx": 0, "data": hex_of([[0.0] * 9])}]) == (
        f"{SOURCE}: entry 0: data holds 9 float32 values, not a multiple of 7 ({FIELDS} per detection)"
    )


@pytest.mark.parametrize(
    ("row", "shown"),
    [
        ([-4.5, 0.1, 0.5, 0.5], "[-4.5, 0.1, 0.5, 0.5]"),  # ymin alone below -4
        ([0.1, -4.5, 0.5, 0.5], "[0.1, -4.5, 0.5, 0.5]"),  # xmin alone
        ([0.1, 0.1, 5.5, 0.5], "[0.1, 0.1, 5.5, 0.5]"),  # ymax alone above 5
        ([0.1, 0.1, 0.5, 5.5], "[0.1, 0.1, 0.5, 5.5]"),  # xmax alone
        ([10, 20, 300, 400], "[10.0, 20.0, 300.0, 400.0]"),  # pixels
    ],
)
def test_a_box_beyond_the_normalized_range_is_refused_naming_the_detection(row, shown):
    # The second detection of the entry is the bad one.
    assert refusal([entry(0, GOOD, [*row, 0.5, 1])]) == (
        f"{SOURCE}: entry 0: detection 1 has box {shown} (ymin, xmin, ymax, xmax); expected coordinates "
        "normalized to the image: these look like pixels"
    )


def test_a_bad_entry_after_good_ones_is_named_by_its_index():
    message = refusal([entry(0, GOOD), entry(1, GOOD), entry(2, [0.5, 0.1, 0.2, 0.5, 0.9, 1])])
    assert message == (
        f"{SOURCE}: entry 2: detection 0 has box [0.5, 0.1, 0.2, 0.5] with ymax < ymin or xmax < xmin; "
        "expected ymin, xmin, ymax, xmax (y first)"
    )


# --- the image list qsl_idx indexes ---------------------------------------------------------------------


def _coco(image_ids: list[int], annotations: list[tuple[int, int]], categories: list[int]) -> dict:
    return {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 10 * i, "height": i} for i in image_ids],
        "annotations": [{"image_id": i, "category_id": c} for i, c in annotations],
        "categories": [{"id": c} for c in categories],
    }


def test_the_three_image_orders():
    # File order 9, 3, 16, 1; image 3 has no annotation. Categories listed 18 then 1: the set is built
    # from [16, 9] (dogs) + [9, 1] (persons) = {16, 9, 1}; CPython's set of these small ints iterates
    # by hash modulo 8: 16 (0), 9 (1), 1 (1, collides, after 9) -> [16, 9, 1].
    coco = _coco([9, 3, 16, 1], [(9, 1), (16, 18), (1, 1), (9, 18)], [18, 1])
    assert [r.image_id for r in image_order(coco, "file")] == [9, 3, 16, 1]
    assert [r.image_id for r in image_order(coco, "annotated")] == [9, 16, 1]
    assert [r.image_id for r in image_order(coco, "annotated-set")] == [16, 9, 1]
    first = image_order(coco, "annotated-set")[0]
    assert (first.image_id, first.file_name, first.width, first.height) == (16, "16.jpg", 160, 16)
