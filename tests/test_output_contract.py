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


BOXES = "expected float [1, N, 4] (normalized x1, y1, x2, y2 per row)"
LABELS = "expected integer [1, N] (labels 1..80)"
SCORES = "expected float [1, N] (scores in [0, 1])"
TRANSPOSE = ": this is the [1, 4, N] layout; transpose it to [1, N, 4] in the model"
TRUNCATED = ": float labels would be truncated to a class; cast them to int64 in the model"


def refusal(check, *args, **kwargs) -> str:
    """The one line a check refuses with (the whole line: it tells the user what is wrong and what to do)."""
    with pytest.raises(ModelError) as info:
        check(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize(
    "outputs",
    [
        _signature(),  # the model card's
        _signature(boxes=("tensor(float)", [1, 200, 4]), labels=("tensor(int32)", [1, 200])),
        _signature(boxes=("tensor(float16)", [None, None, None])),  # unknown sizes: checked per image
        _signature(boxes=("tensor(float)", ["batch", "n", 4])),  # a symbolic batch axis may be 1
        _signature(boxes=("tensor(float)", [1, 4, 4])),  # N = 4: cannot be told apart, accepted
        _signature(boxes=("tensor(float)", None)),  # no shape, or no rank ([]): checked per image
        _signature(boxes=("tensor(float)", [])),
    ],
)
def test_good_signatures(outputs):
    check_output_signature(outputs, NAMES, model=MODEL)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (
            _signature(boxes=("tensor(float)", [1, 4, "n"])),
            f"output 'bboxes' is tensor(float) [1, 4, 'n']; {BOXES}{TRANSPOSE}",
        ),
        (
            _signature(boxes=("tensor(float)", [1, 200, 5])),
            f"output 'bboxes' is tensor(float) [1, 200, 5]; {BOXES} (4 box coordinates on the last axis)",
        ),
        (
            _signature(boxes=("tensor(float)", [200, 4])),
            f"output 'bboxes' is tensor(float) [200, 4]; {BOXES} (2 axes, not 3)",
        ),
        (
            _signature(boxes=("tensor(float)", [2, "n", 4])),
            f"output 'bboxes' is tensor(float) [2, 'n', 4]; {BOXES} (batch 1 first)",
        ),
        (
            _signature(boxes=("tensor(int64)", [1, "n", 4])),
            f"output 'bboxes' is tensor(int64) [1, 'n', 4]; {BOXES}",
        ),
        (
            _signature(labels=("tensor(float)", [1, "n"])),
            f"output 'labels' is tensor(float) [1, 'n']; {LABELS}{TRUNCATED}",
        ),
        # Not a float: no word about truncation.
        (
            _signature(labels=("tensor(string)", [1, "n"])),
            f"output 'labels' is tensor(string) [1, 'n']; {LABELS}",
        ),
        (
            _signature(scores=("tensor(int64)", [1, "n"])),
            f"output 'scores' is tensor(int64) [1, 'n']; {SCORES}",
        ),
        (
            _signature(scores=("tensor(float)", [1, "n", 1])),
            f"output 'scores' is tensor(float) [1, 'n', 1]; {SCORES} (3 axes, not 2)",
        ),
        (
            _signature(scores=("tensor(float)", [200])),
            f"output 'scores' is tensor(float) [200]; {SCORES} (1 axis, not 2)",
        ),
        # An output of unknown rank is checked on the first image; the outputs after it still are now.
        (
            _signature(boxes=("tensor(float)", None), labels=("tensor(float)", [1, "n"])),
            f"output 'labels' is tensor(float) [1, 'n']; {LABELS}{TRUNCATED}",
        ),
    ],
)
def test_bad_signatures(outputs, message):
    assert refusal(check_output_signature, outputs, NAMES, model=MODEL) == f"model m.onnx {message}"


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
    check_output_arrays(*_arrays(2, labels=np.ones((1, 2), np.uint8)), NAMES, model=MODEL)


DISAGREE = "disagree on N, the number of detections; expected [1, N, 4], [1, N], [1, N]"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            _arrays(7, boxes=np.zeros((1, 4, 7), np.float32)),
            f"output 'bboxes' is float32 [1, 4, 7]; {BOXES}{TRANSPOSE}",
        ),
        (_arrays(7, boxes=np.zeros((7, 4), np.float32)), f"output 'bboxes' is float32 [7, 4]; {BOXES}"),
        (_arrays(7, boxes=np.zeros((1, 7, 4), np.int32)), f"output 'bboxes' is int32 [1, 7, 4]; {BOXES}"),
        (
            _arrays(labels=np.ones((1, 3), np.float32)),
            f"output 'labels' is float32 [1, 3]; {LABELS}{TRUNCATED}",
        ),
        # Boxes of N = 4 look like [1, 4, N]: the float labels are the fault named.
        (
            _arrays(4, labels=np.ones((1, 4), np.float32)),
            f"output 'labels' is float32 [1, 4]; {LABELS}{TRUNCATED}",
        ),
        (_arrays(labels=np.ones((1, 3, 1), np.int64)), f"output 'labels' is int64 [1, 3, 1]; {LABELS}"),
        (_arrays(labels=np.ones((1, 3), np.bool_)), f"output 'labels' is bool [1, 3]; {LABELS}"),
        (_arrays(scores=np.zeros((1, 3), np.int64)), f"output 'scores' is int64 [1, 3]; {SCORES}"),
        (_arrays(scores=np.zeros(3, np.float32)), f"output 'scores' is float32 [3]; {SCORES}"),
        (_arrays(scores=np.zeros((2, 3), np.float32)), f"output 'scores' is float32 [2, 3]; {SCORES}"),
        (
            _arrays(scores=np.zeros((1, 2), np.float32)),
            f"outputs 'bboxes' [1, 3, 4], 'labels' [1, 3] and 'scores' [1, 2] {DISAGREE}",
        ),
        (
            _arrays(boxes=np.zeros((1, 2, 4), np.float32)),
            f"outputs 'bboxes' [1, 2, 4], 'labels' [1, 3] and 'scores' [1, 3] {DISAGREE}",
        ),
    ],
)
def test_bad_arrays(arrays, message):
    assert refusal(check_output_arrays, *arrays, NAMES, model=MODEL) == f"model m.onnx {message}"


def _values(boxes, labels=None, scores=None):
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    labels = np.ones(n, np.int64) if labels is None else np.asarray(labels)
    scores = np.full(n, 0.5) if scores is None else np.asarray(scores, np.float64)
    return boxes, labels, scores


def test_values_on_the_edges_are_accepted():
    # Slightly outside [0, 1] occurs (not clipped); the accepted range is [-4, 5]; x2 == x1 is a point;
    # a float32 softmax may round a score up to a millionth above 1.
    check_output_values(
        *_values(
            [[-0.05, 0.0, 0.5, 1.02], [-4.0, -4.0, 5.0, 5.0], [0.3, 0.3, 0.3, 0.3], [0, 0, 1, 1]],
            scores=[0.0, 1.0, 0.05, 1.0 + 1e-6],
        ),
        image_id=1,
        num_labels=80,
    )
    check_output_values(*_values(np.zeros((0, 4))), image_id=1, num_labels=80)
    check_output_values(*_values([[0, 0, 1, 1]], labels=np.array([80], np.uint16)), image_id=1, num_labels=80)


LAYOUT = "this is not the SSD label layout (0 is background and never emitted)"
OUTPUT = "image 4: the model's output"
PIXELS = "expected x1, y1, x2, y2 normalized to [0, 1]: these look like pixels"
SWAPPED = "with x2 < x1 or y2 < y1"
CORNERS = "expected corners x1, y1, x2, y2 (not x, y, w, h)"
PROBABILITIES = "expected scores in [0, 1] (softmax probabilities, not logits)"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (_values([[0, 0, 1, 1]], labels=[1.0]), f"{OUTPUT} 'labels' is float64; {LABELS}{TRUNCATED}"),
        (_values([[0, 0, 1, 1]], labels=[0]), f"image 4: the model emitted label 0, outside 1..80; {LAYOUT}"),
        (
            _values([[0, 0, 1, 1]], labels=[81]),
            f"image 4: the model emitted label 81, outside 1..80; {LAYOUT}",
        ),
        (_values([[0, 0, 1, 1]], scores=[np.nan]), "image 4: the model emitted NaN or infinite boxes/scores"),
        (_values([[0, np.inf, 1, 1]]), "image 4: the model emitted NaN or infinite boxes/scores"),
        (
            _values([[0, 0, 1, 1], [0, 0, 1, 1]], scores=[0.5, -0.01]),
            f"{OUTPUT} 'scores' holds -0.01 (detection 1; 1 of 2 outside [0, 1]); {PROBABILITIES}",
        ),
        (
            _values([[0, 0, 1, 1]], scores=[1.001]),
            f"{OUTPUT} 'scores' holds 1.001 (detection 0; 1 of 1 outside [0, 1]); {PROBABILITIES}",
        ),
        (
            _values([[0, 0, 1, 1], [-4.01, 0, 1, 1]]),
            f"{OUTPUT} 'bboxes' holds [-4.01, 0, 1, 1] (detection 1; 1 of 2 beyond [-4, 5]); {PIXELS}",
        ),
        (
            _values([[10, 20, 300, 400]]),
            f"{OUTPUT} 'bboxes' holds [10, 20, 300, 400] (detection 0; 1 of 1 beyond [-4, 5]); {PIXELS}",
        ),
        (
            _values([[0.5, 0.1, 0.4, 0.9]]),
            f"{OUTPUT} 'bboxes' holds [0.5, 0.1, 0.4, 0.9] (detection 0; 1 of 1 {SWAPPED}); {CORNERS}",
        ),
        (
            _values([[0.1, 0.5, 0.4, 0.49]]),
            f"{OUTPUT} 'bboxes' holds [0.1, 0.5, 0.4, 0.49] (detection 0; 1 of 1 {SWAPPED}); {CORNERS}",
        ),
    ],
)
def test_bad_values(values, message):
    assert refusal(check_output_values, *values, image_id=4, num_labels=80) == message


def test_configured_output_names_are_named():
    names = OutputNames(boxes="b", labels="l", scores="s")
    with pytest.raises(ModelError, match=r"output 's' holds 7"):
        check_output_values(*_values([[0, 0, 1, 1]], scores=[7.0]), image_id=1, num_labels=80, names=names)


def test_more_than_200_detections_is_a_warning():
    assert detection_count_warning({1: 200, 2: 0}) is None
    assert detection_count_warning({}) is None
    warning = detection_count_warning({1: 201, 2: 200, 3: 1000, 4: 1000})
    assert warning is not None
    assert warning == (
        "3 image(s) got more than the model card's 200 detections (most: 1000 on image 3); the model "
        "keeps more than ssd-10 does, so its AP is not comparable with the card's"
    )
