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


def test_detections_validate_shapes_and_convert():
    with pytest.raises(ValueError, match="inconsistent"):
        Detections(1, np.zeros((2, 4)), np.zeros(3), np.zeros(2, np.int64))
    dets = Detections(5, np.array([[1.0, 2, 3, 4]]), np.array([0.5]), np.array([18]))
    assert dets.to_coco_json() == [
        {"image_id": 5, "category_id": 18, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    ]
    assert dets.to_rows().tolist() == [[5, 1, 2, 3, 4, 0.5, 18]]
