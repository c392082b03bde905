"""Property-based: random valid and broken model outputs through the session's infer and decode.

The outputs come from a stand-in for onnxruntime's session, so the real `ProviderSession.infer`
(shape checks, batch axis) and `decode_image` (value checks, rescaling, label map) run on them.
Valid outputs never raise and decode to what a hand-written conversion says; every broken output
(one fault planted in a valid one) is a ModelError, exit code 2, before any detection is kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssd_eval.config.run import DecodeConfig, OutputNames, ProviderConfig, SessionConfig
from ssd_eval.data.categories import COCO_CATEGORIES, canonical_label_map
from ssd_eval.data.dataset import ImageRecord
from ssd_eval.errors import EXIT_USAGE, ModelError
from ssd_eval.pipeline.decode import decode_image
from ssd_eval.pipeline.session import ModelSignature, ProviderSession

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABEL_MAP = canonical_label_map()


class _FakeOrt:
    """Stands in for an onnxruntime InferenceSession that returns fixed outputs."""

    def __init__(self, outputs: list[np.ndarray]) -> None:
        self.outputs = outputs

    def run(self, names: list[str], feed: dict) -> list[np.ndarray]:
        return self.outputs


def _session(outputs: list[np.ndarray]) -> ProviderSession:
    session = ProviderSession(Path("m.onnx"), [ProviderConfig("cpu")], SessionConfig())
    session._session = _FakeOrt(outputs)
    session.signature = ModelSignature("image", 8, 8, OutputNames())
    return session


def _infer_and_decode(outputs: list[np.ndarray], record: ImageRecord, threshold: float):
    raw, _ = _session(outputs).infer(np.zeros((1, 3, 8, 8), np.float32))
    return decode_image(raw, record, LABEL_MAP, DecodeConfig(score_threshold=threshold))


def _f32(low: float, high: float) -> st.SearchStrategy[float]:
    """float32 values in [low, high] (the bounds rounded inwards to float32)."""
    lo, hi = np.float32(low), np.float32(high)
    lo = lo if lo >= low else np.nextafter(lo, np.float32(np.inf))
    hi = hi if hi <= high else np.nextafter(hi, np.float32(-np.inf))
    return st.floats(float(lo), float(hi), width=32)


@st.composite
def valid_outputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[1, N, 4] float boxes (a little outside [0, 1] allowed, x2 >= x1, y2 >= y1), labels, scores."""
    n = draw(st.integers(0, 230))  # more than the card's 200 is a warning, not an error
    corners = draw(hnp.arrays(np.float32, (n, 2), elements=_f32(-1.5, 1.5)))
    sizes = draw(hnp.arrays(np.float32, (n, 2), elements=_f32(0.0, 2.0)))
    boxes = np.concatenate([corners, corners + sizes], axis=1)[None]
    labels = draw(
        hnp.arrays(draw(st.sampled_from([np.int64, np.int32])), (1, n), elements=st.integers(1, 80))
    )
    scores = draw(hnp.arrays(np.float32, (1, n), elements=_f32(0.0, 1.0)))
    return boxes.astype(np.float32), labels, scores


records = st.builds(
    ImageRecord,
    image_id=st.integers(0, 10**9),
    file_name=st.just("x.jpg"),
    width=st.integers(1, 2000),
    height=st.integers(1, 2000),
)
thresholds = st.sampled_from([0.0, 0.05, 0.5])


@SETTINGS
@given(outputs=valid_outputs(), record=records, threshold=thresholds)
def test_valid_outputs_decode_as_a_hand_conversion(outputs, record, threshold):
    boxes, labels, scores = outputs
    dets = _infer_and_decode([boxes, labels, scores], record, threshold)
    # The conversion written out: keep score >= threshold; x, y, w, h in pixels; label k -> k-th COCO id.
    keep = scores[0].astype(np.float64) >= threshold
    b = boxes[0].astype(np.float64)[keep]
    w, h = record.width, record.height
    expected = np.stack([b[:, 0] * w, b[:, 1] * h, (b[:, 2] - b[:, 0]) * w, (b[:, 3] - b[:, 1]) * h], axis=1)
    np.testing.assert_allclose(dets.boxes.reshape(-1, 4), expected.reshape(-1, 4), rtol=1e-12, atol=1e-9)
    assert dets.category_ids.tolist() == [COCO_CATEGORIES[int(k) - 1][0] for k in labels[0][keep]]
    assert dets.scores.tolist() == scores[0][keep].astype(np.float64).tolist()
    assert dets.image_id == record.image_id


OUTPUT_FAULTS = [
    "transposed",
    "no batch axis",
    "float labels",
    "label out of range",
    "negative score",
    "score above 1",
    "nan",
    "pixels",
    "x2 < x1",
    "y2 < y1",
    "count mismatch",
]


@st.composite
def broken_outputs(draw: st.DrawFn, fault: str) -> list[np.ndarray]:
    """Valid outputs with the named fault planted in them."""
    boxes, labels, scores = draw(valid_outputs().filter(lambda o: o[2].shape[1] >= 1))
    n = scores.shape[1]
    k = draw(st.integers(0, n - 1))
    if fault == "transposed":
        if n == 4:  # [1, 4, 4] cannot be told from [1, N, 4]; one more row makes it [1, 4, 5]
            boxes, labels, scores = (np.concatenate([a, a[:, :1]], axis=1) for a in (boxes, labels, scores))
        boxes = boxes.transpose(0, 2, 1).copy()
    elif fault == "no batch axis":
        index = draw(st.integers(0, 2))
        arrays = [boxes, labels, scores]
        arrays[index] = arrays[index][0]
        boxes, labels, scores = arrays
    elif fault == "float labels":
        labels = labels.astype(draw(st.sampled_from([np.float32, np.float64])))
    elif fault == "label out of range":
        labels[0, k] = draw(st.sampled_from([0, -1, 81, 90, 1000]))
    elif fault == "negative score":
        scores[0, k] = draw(_f32(-1.0, -1e-6))
    elif fault == "score above 1":
        scores[0, k] = draw(_f32(1.001, 100.0))
    elif fault == "nan":
        target = draw(st.sampled_from(["boxes", "scores"]))
        if target == "boxes":
            boxes[0, k, draw(st.integers(0, 3))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        else:
            scores[0, k] = np.nan
    elif fault == "pixels":
        size = draw(st.sampled_from([300, 600, 1200]))
        corner = draw(hnp.arrays(np.float32, (n, 2), elements=_f32(0.0, size - 6)))
        extent = draw(hnp.arrays(np.float32, (n, 2), elements=_f32(6.0, size)))  # beyond 5: pixels
        boxes = np.concatenate([corner, corner + extent], axis=1)[None]
    elif fault == "x2 < x1":
        boxes[0, k, 2] = boxes[0, k, 0] - draw(_f32(1e-3, 0.5))
    elif fault == "y2 < y1":
        boxes[0, k, 3] = boxes[0, k, 1] - draw(_f32(1e-3, 0.5))
    elif fault == "count mismatch":
        scores = scores[:, :-1] if draw(st.booleans()) else np.concatenate([scores, scores[:, :1]], axis=1)
    return [boxes, labels, scores]


@pytest.mark.parametrize("fault", OUTPUT_FAULTS)
@settings(SETTINGS, max_examples=15)
@given(data=st.data(), record=records, threshold=thresholds)
def test_every_broken_output_is_a_model_error_with_exit_code_2(fault, data, record, threshold):
    outputs = data.draw(broken_outputs(fault))
    try:
        _infer_and_decode(outputs, record, threshold)
    except ModelError as exc:
        assert exc.exit_code == EXIT_USAGE
        assert "\n" not in str(exc)
    else:
        raise AssertionError(f"{fault}: accepted")
