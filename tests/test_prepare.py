"""One image made ready in a feeder thread: its model input and the two timings, or its error as a value.

The clock is stubbed, so the seconds are exact; the model input of a uniform image is the card's
normalization of its one colour, written out; the refusal is the whole line the run prints.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import TinyImage, make_coco

from ssd_eval.data.dataset import CocoGroundTruth, open_ground_truth
from ssd_eval.pipeline import prepare
from ssd_eval.pipeline.prepare import prepare_image
from ssd_eval.pipeline.preprocess import HostPreprocessor, Normalization

# The model card's numbers, written here (not imported): RGB order.
NORM = Normalization.from_mean_std((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture
def one_image(tmp_path: Path) -> CocoGroundTruth:
    """One uniform 20x10 RGB image of colour (30, 90, 210) (helpers.write_image, first image)."""
    root = make_coco(tmp_path / "coco", [TinyImage(3, 20, 10)], {})
    annotations = root / "annotations" / "instances_val2017.json"
    return open_ground_truth(annotations, root / "val2017", selection="all")


def _clock(monkeypatch: pytest.MonkeyPatch, *readings: float) -> list[float]:
    """Stub prepare's perf_counter with these readings, in order; what is left is returned."""
    left = list(readings)
    monkeypatch.setattr(prepare, "time", SimpleNamespace(perf_counter=lambda: left.pop(0)))
    return left


def test_a_good_image_becomes_its_model_input_with_the_read_and_preprocess_seconds(one_image, monkeypatch):
    (record,) = one_image.images
    left = _clock(monkeypatch, 100.0, 100.5, 101.0, 101.75)
    got = prepare_image(one_image, HostPreprocessor("pillow", (4, 6), NORM), record, max_pixels=200)
    assert left == []
    assert got.record == record and got.error is None
    assert got.read_s == 0.5  # 100.0 -> 100.5: decoding
    assert got.preprocess_s == 0.75  # 101.0 -> 101.75: resize and normalize
    assert got.tensor is not None and got.tensor.dtype == np.float32 and got.tensor.shape == (1, 3, 4, 6)
    # A uniform image stays uniform through the resize: each channel is (v / 255 - mean) / std.
    want = [(30 / 255 - 0.485) / 0.229, (90 / 255 - 0.456) / 0.224, (210 / 255 - 0.406) / 0.225]
    expected = np.broadcast_to(np.reshape(want, (3, 1, 1)), (3, 4, 6))
    np.testing.assert_allclose(got.tensor[0], expected, rtol=0, atol=1e-6)


def test_an_image_over_max_pixels_is_an_error_value_with_its_read_seconds(one_image, monkeypatch):
    (record,) = one_image.images
    left = _clock(monkeypatch, 7.0, 7.25)
    got = prepare_image(one_image, HostPreprocessor("pillow", (4, 6), NORM), record, max_pixels=199)
    assert left == []
    path = one_image.image_dir / "000000000003.png"
    assert str(got.error) == (
        f"image {path} is 20x10 = 200 pixels, more than dataset.max_image_pixels (199): raise that setting "
        "if the image is genuine, or set dataset.on_bad_image: skip"
    )
    assert got.record == record and got.tensor is None
    assert got.read_s == 0.25  # 7.0 -> 7.25: the failed read
    assert got.preprocess_s == 0.0  # nothing was preprocessed
