"""The model's output contract: signature, per-image shapes and values, the 200-detection warning."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ssd_eval.config.run import OutputNames
from ssd_eval.errors import ModelError
from ssd_eval.pipeline.output_contract import (
    check_output_arrays,
    check_output_signature,
    check_output_values,
    detection_count_warning,
)

NAMES = OutputNames()
MODEL = Path("m.onnx")


def _arg(name: str, type_: str, shape: list | None) -> SimpleNamespace:
    return SimpleNamespace(name=name, type=type_, shape=shape)


def _signature(boxes=("tensor(float)", [1, "n", 4]), labels=("tensor(int64)", [1, "n"]), scores=None):
    scores = scores or ("tensor(float)", [1, "n"])
    return [_arg("bboxes", *boxes), _arg("labels", *labels), _arg("scores", *scores)]


@pytest.mark.parametrize(
    "outputs",
    [
        _signature(),  # the model card's
        _signature(boxes=("tensor(float)", [1, 200, 4]), labels=("tensor(int32)", [1, 200])),
        _signature(boxes=("tensor(float16)", [None, None, None])),  # unknown sizes: checked per image
        _signature(boxes=("tensor(float)", [1, 4, 4])),  # N = 4: cannot be told apart, accepted
        _signature(boxes=("tensor(float)", None)),
    ],
)
def test_good_signatures(outputs):
    check_output_signature(outputs, NAMES, model=MODEL)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (
            _signature(boxes=("tensor(float)", [1, 4, "n"])),
            r"'bboxes' is tensor\(float\) \[1, 4, 'n'\]; expected float \[1, N, 4\] "
            r".*this is the \[1, 4, N\] layout",
        ),
        (
            _signature(boxes=("tensor(float)", [1, 200, 5])),
            r"\[1, 200, 5\].*4 box coordinates on the last axis",
        ),
        (_signature(boxes=("tensor(float)", [200, 4])), r"'bboxes' .*\[200, 4\].*\(2 axes, not 3\)"),
        (_signature(boxes=("tensor(float)", [2, "n", 4])), r"\(batch 1 first\)"),
        (_signature(boxes=("tensor(int64)", [1, "n", 4])), r"'bboxes' is tensor\(int64\)"),
        (
            _signature(labels=("tensor(float)", [1, "n"])),
            r"'labels' is tensor\(float\) \[1, 'n'\]; expected integer \[1, N\] .*would be truncated",
        ),
        (_signature(scores=("tensor(int64)", [1, "n"])), r"'scores' is tensor\(int64\)"),
        (_signature(scores=("tensor(float)", [1, "n", 1])), r"'scores' .*\(3 axes, not 2\)"),
    ],
)
def test_bad_signatures(outputs, message):
    with pytest.raises(ModelError, match=message):
        check_output_signature(outputs, NAMES, model=MODEL)


def _arrays(n=3, boxes=None, labels=None, scores=None):
    return (
        np.zeros((1, n, 4), np.float32) if boxes is None else boxes,
        np.ones((1, n), np.int64) if labels is None else labels,
        np.zeros((1, n), np.float32) if scores is None else scores,
    )


def test_good_arrays_including_no_detection():
    check_output_arrays(*_arrays(), NAMES, model=MODEL)
    check_output_arrays(*_arrays(0), NAMES, model=MODEL)
    check_output_arrays(*_arrays(4, boxes=np.zeros((1, 4, 4), np.float64)), NAMES, model=MODEL)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            _arrays(7, boxes=np.zeros((1, 4, 7), np.float32)),
            r"'bboxes' is float32 \[1, 4, 7\].*\[1, 4, N\] layout",
        ),
        (
            _arrays(7, boxes=np.zeros((7, 4), np.float32)),
            r"'bboxes' is float32 \[7, 4\]; expected float \[1, N, 4\]",
        ),
        (_arrays(labels=np.ones((1, 3), np.float32)), r"'labels' is float32 \[1, 3\].*would be truncated"),
        (
            _arrays(labels=np.ones((1, 3, 1), np.int64)),
            r"'labels' is int64 \[1, 3, 1\]; expected integer \[1, N\]",
        ),
        (_arrays(scores=np.zeros((1, 3), np.int64)), r"'scores' is int64 \[1, 3\]; expected float \[1, N\]"),
        (_arrays(scores=np.zeros((1, 2), np.float32)), r"disagree on N"),
        (_arrays(boxes=np.zeros((1, 2, 4), np.float32)), r"disagree on N"),
    ],
)
def test_bad_arrays(arrays, message):
    with pytest.raises(ModelError, match=message):
        check_output_arrays(*arrays, NAMES, model=MODEL)


def _values(boxes, labels=None, scores=None):
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    labels = np.ones(n, np.int64) if labels is None else np.asarray(labels)
    scores = np.full(n, 0.5) if scores is None else np.asarray(scores, np.float64)
    return boxes, labels, scores


def test_values_on_the_edges_are_accepted():
    # Slightly outside [0, 1] occurs (not clipped); the accepted range is [-4, 5]; x2 == x1 is a point.
    check_output_values(
        *_values(
            [[-0.05, 0.0, 0.5, 1.02], [-4.0, -4.0, 5.0, 5.0], [0.3, 0.3, 0.3, 0.3]], scores=[0.0, 1.0, 0.05]
        ),
        image_id=1,
        num_labels=80,
    )
    check_output_values(*_values(np.zeros((0, 4))), image_id=1, num_labels=80)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            _values([[0, 0, 1, 1]], labels=[1.0]),
            r"image 4: the model's output 'labels' is float64.*truncated",
        ),
        (_values([[0, 0, 1, 1]], labels=[0]), r"emitted label 0, outside 1..80"),
        (_values([[0, 0, 1, 1]], labels=[81]), r"emitted label 81, outside 1..80"),
        (_values([[0, 0, 1, 1]], scores=[np.nan]), r"NaN or infinite"),
        (
            _values([[0, 0, 1, 1], [0, 0, 1, 1]], scores=[0.5, -0.01]),
            r"'scores' holds -0.01 \(detection 1; 1 of 2",
        ),
        (_values([[0, 0, 1, 1]], scores=[1.001]), r"'scores' holds 1.001 .*expected scores in \[0, 1\]"),
        (
            _values([[0, 0, 1, 1], [-4.01, 0, 1, 1]]),
            r"'bboxes' holds \[-4.01, 0, 1, 1\] \(detection 1; 1 of 2 beyond \[-4, 5\]",
        ),
        (_values([[10, 20, 300, 400]]), r"holds \[10, 20, 300, 400\] .*these look like pixels"),
        (_values([[0.5, 0.1, 0.4, 0.9]]), r"holds \[0.5, 0.1, 0.4, 0.9\] .*x2 < x1 or y2 < y1"),
        (_values([[0.1, 0.5, 0.4, 0.49]]), r"x2 < x1 or y2 < y1\); expected corners"),
    ],
)
def test_bad_values(values, message):
    with pytest.raises(ModelError, match=message):
        check_output_values(*values, image_id=4, num_labels=80)


def test_configured_output_names_are_named():
    names = OutputNames(boxes="b", labels="l", scores="s")
    with pytest.raises(ModelError, match=r"output 's' holds 7"):
        check_output_values(*_values([[0, 0, 1, 1]], scores=[7.0]), image_id=1, num_labels=80, names=names)


def test_more_than_200_detections_is_a_warning():
    assert detection_count_warning({1: 200, 2: 0}) is None
    assert detection_count_warning({}) is None
    warning = detection_count_warning({1: 201, 2: 200, 3: 1000, 4: 1000})
    assert warning is not None
    assert warning.startswith(
        "3 image(s) got more than the model card's 200 detections (most: 1000 on image 3)"
    )
