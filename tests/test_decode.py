"""Normalized x1, y1, x2, y2 + labels 1..80 -> pixel x, y, w, h + COCO category ids."""

from __future__ import annotations

import numpy as np
import pytest

from ssd_eval.data.categories import canonical_label_map
from ssd_eval.errors import ModelError
from ssd_eval.pipeline.decode import Detections, decode
from ssd_eval.pipeline.session import RawOutputs

LABELS = canonical_label_map()


def _raw(boxes, labels, scores) -> RawOutputs:
    return RawOutputs(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64),
        np.asarray(scores, np.float32),
    )


def test_rescale_to_original_size_and_map_labels():
    raw = _raw([[0.25, 0.5, 0.75, 1.0], [-0.05, 0.0, 0.5, 1.02]], [1, 12], [0.9, 0.3])
    dets = decode(raw, image_id=7, width=640, height=480, label_map=LABELS)
    np.testing.assert_allclose(dets.boxes[0], [160, 240, 320, 240])
    # Not clipped by default: the box keeps its part outside the image, as the published protocol.
    np.testing.assert_allclose(dets.boxes[1], [-32, 0, 352, 489.6], rtol=1e-6)
    assert dets.category_ids.tolist() == [1, 13]  # label 12 is "stop sign", COCO id 13
    assert dets.image_id == 7


def test_clip_option():
    raw = _raw([[-0.05, 0.0, 0.5, 1.02]], [80], [0.3])
    dets = decode(raw, image_id=1, width=100, height=100, label_map=LABELS, clip_boxes=True)
    np.testing.assert_allclose(dets.boxes[0], [0, 0, 50, 100])
    assert dets.category_ids.tolist() == [90]


def test_score_threshold_and_empty_output():
    raw = _raw([[0, 0, 1, 1], [0, 0, 0.5, 0.5]], [1, 2], [0.9, 0.06])
    assert len(decode(raw, image_id=1, width=10, height=10, label_map=LABELS, score_threshold=0.5)) == 1
    empty = decode(_raw(np.zeros((0, 4)), [], []), image_id=1, width=10, height=10, label_map=LABELS)
    assert len(empty) == 0 and empty.to_rows().shape == (0, 7)


@pytest.mark.parametrize("label", [0, 81, -1])
def test_label_outside_range_is_an_error(label):
    with pytest.raises(ModelError, match=rf"image 3: the model emitted label {label}, outside 1..80"):
        decode(_raw([[0, 0, 1, 1]], [label], [0.5]), image_id=3, width=10, height=10, label_map=LABELS)


def test_nan_is_an_error():
    with pytest.raises(ModelError, match="NaN"):
        decode(_raw([[0, np.nan, 1, 1]], [1], [0.5]), image_id=3, width=10, height=10, label_map=LABELS)


@pytest.mark.parametrize(
    ("boxes", "scores", "categories"),
    [
        ((2, 4), (3,), (2,)),  # one score too many
        ((3, 4), (2,), (2,)),  # boxes alone disagree
        ((2, 4), (2,), (3,)),  # category ids alone disagree
        ((2, 4), (2, 1), (2,)),  # scores of the right length, wrong shape
        ((2, 5), (2,), (2,)),  # five coordinates
    ],
)
def test_detections_refuse_inconsistent_shapes(boxes, scores, categories):
    with pytest.raises(ValueError) as info:
        Detections(1, np.zeros(boxes), np.zeros(scores), np.zeros(categories, np.int64))
    assert str(info.value) == (
        f"inconsistent detection arrays: boxes {boxes}, scores {scores}, category_ids {categories}"
    )


def test_a_refusal_names_the_models_own_output_names():
    from ssd_eval.config.run import OutputNames

    raw = RawOutputs(
        np.zeros((1, 4), np.float32),
        np.ones(1, np.int64),
        np.array([7.0], np.float32),
        OutputNames(boxes="det_boxes", labels="det_classes", scores="det_scores"),
    )
    with pytest.raises(ModelError, match=r"^image 3: the model's output 'det_scores' holds 7 "):
        decode(raw, image_id=3, width=10, height=10, label_map=LABELS)


def test_detections_validate_shapes_and_convert():
    dets = Detections(5, np.array([[1.0, 2, 3, 4]]), np.array([0.5]), np.array([18]))
    assert dets.to_coco_json() == [
        {"image_id": 5, "category_id": 18, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    ]
    assert dets.to_rows().tolist() == [[5, 1, 2, 3, 4, 0.5, 18]]


def test_float32_outputs_are_rescaled_in_float64():
    # The model's float32 0.1 is 0.100000001490116...; times 640 in float64 that is 64.00000095...
    raw = _raw([[0.1, 0.1, 0.7, 0.9]], [1], [0.3])
    dets = decode(raw, image_id=1, width=640, height=480, label_map=LABELS)
    assert dets.boxes.dtype == np.float64 and dets.scores.dtype == np.float64
    x = float(np.float32(0.1))
    assert dets.boxes[0, 0] == x * 640 and dets.boxes[0, 1] == x * 480
    assert dets.scores[0] == float(np.float32(0.3))


def test_a_score_exactly_at_the_threshold_is_kept():
    raw = _raw([[0, 0, 1, 1], [0, 0, 0.5, 0.5]], [1, 2], [0.5, 0.25])
    dets = decode(raw, image_id=1, width=10, height=10, label_map=LABELS, score_threshold=0.5)
    assert dets.scores.tolist() == [0.5] and dets.category_ids.tolist() == [1]


def test_decode_image_uses_the_records_size_and_the_decode_settings():
    from ssd_eval.config.run import DecodeConfig
    from ssd_eval.data.dataset import ImageRecord
    from ssd_eval.pipeline.decode import decode_image

    raw = _raw([[-0.25, 0.0, 0.5, 1.5], [0, 0, 1, 1]], [1, 80], [0.75, 0.25])
    record = ImageRecord(9, "9.jpg", 200, 100)
    dets = decode_image(raw, record, LABELS, DecodeConfig(clip_boxes=True, score_threshold=0.5))
    assert dets.image_id == 9 and dets.boxes.tolist() == [[0.0, 0.0, 100.0, 100.0]]
    kept = decode_image(raw, record, LABELS, DecodeConfig())
    assert kept.boxes.tolist() == [[-50.0, 0.0, 150.0, 150.0], [0.0, 0.0, 200.0, 100.0]]
    assert kept.category_ids.tolist() == [1, 90]


def test_output_shapes_are_checked_with_one_clear_line():
    bad = RawOutputs(np.zeros((2, 5), np.float32), np.ones(2, np.int64), np.zeros(2, np.float32))
    with pytest.raises(ModelError) as info:
        decode(bad, image_id=4, width=10, height=10, label_map=LABELS)
    assert str(info.value) == (
        "image 4: the model's outputs are [2, 5] boxes, [2] labels and [2] scores; "
        "expected [N, 4], [N], [N] after the batch axis"
    )
    flat_scores = RawOutputs(np.zeros((2, 4), np.float32), np.ones(2, np.int64), np.zeros((2, 1), np.float32))
    with pytest.raises(ModelError, match=r"are \[2, 4\] boxes, \[2\] labels and \[2, 1\] scores"):
        decode(flat_scores, image_id=4, width=10, height=10, label_map=LABELS)
    flat_labels = RawOutputs(np.zeros((2, 4), np.float32), np.ones((2, 1), np.int64), np.zeros(2, np.float32))
    with pytest.raises(ModelError, match=r"\[2, 1\] labels"):
        decode(flat_labels, image_id=4, width=10, height=10, label_map=LABELS)
    uneven = RawOutputs(np.zeros((2, 4), np.float32), np.ones(3, np.int64), np.zeros(2, np.float32))
    with pytest.raises(ModelError) as info:
        decode(uneven, image_id=4, width=10, height=10, label_map=LABELS)
    assert str(info.value) == "image 4: the model returned 2 boxes, 3 labels and 2 scores; they must match"


def test_empty_detections_have_the_record_dtypes():
    empty = Detections.empty(3)
    assert empty.boxes.shape == (0, 4) and empty.category_ids.dtype == np.int64
    assert empty.scores.dtype == np.float64 and empty.to_rows().dtype == np.float64
