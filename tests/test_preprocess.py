"""Preprocessing equals the model card's code, in float32, NCHW, contiguous."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ssd_eval.pipeline.preprocess import Normalization, normalize_to_nchw, preprocess, resize_bilinear

# The model card's numbers, written here (not imported): RGB order.
CARD_MEAN = (0.485, 0.456, 0.406)
CARD_STD = (0.229, 0.224, 0.225)
NORM = Normalization.from_mean_std(CARD_MEAN, CARD_STD)


def _card_preprocess(image: Image.Image, width: int, height: int) -> np.ndarray:
    """The model card's sample code (float64 loop), with the RGB conversion it forgot."""
    img = image.convert("RGB").resize((width, height), Image.BILINEAR)
    data = np.transpose(np.array(img), [2, 0, 1])[None]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    out = np.zeros(data.shape).astype("float32")
    for i in range(3):
        out[:, i, :, :] = (data[:, i, :, :] / 255 - mean[i]) / std[i]
    return out


def test_matches_the_model_card_code():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(75, 103, 3), dtype=np.uint8)
    ours = preprocess(pixels, (120, 136), NORM)  # (height, width): not square, so a swap shows
    card = _card_preprocess(Image.fromarray(pixels), width=136, height=120)
    assert ours.dtype == np.float32 and ours.shape == (1, 3, 120, 136)
    assert ours.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(ours, card, rtol=0, atol=2e-6)


def test_resize_is_pillow_bilinear_and_keeps_no_aspect_ratio():
    pixels = np.zeros((10, 40, 3), np.uint8)
    pixels[:, 20:] = 255
    resized = resize_bilinear(pixels, (30, 24))  # 30 high, 24 wide: the 4:1 image gets taller than wide
    assert resized.shape == (30, 24, 3)
    expected = np.asarray(Image.fromarray(pixels).resize((24, 30), Image.BILINEAR))
    np.testing.assert_array_equal(resized, expected)


def test_normalization_values():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    out = normalize_to_nchw(pixels, NORM)[0, :, 0, 0]
    # By hand from the card: (0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (1 - 0.406) / 0.225.
    expected = [-2.117904, 0.2051821, 2.64]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_a_missing_optional_package_names_the_install(monkeypatch):
    import importlib.util

    from ssd_eval.errors import ConfigError
    from ssd_eval.pipeline.preprocess import HostPreprocessor

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cv2" else real(name, *a)
    )
    with pytest.raises(ConfigError) as info:
        HostPreprocessor("opencv", (8, 8), NORM)
    assert str(info.value) == (
        "preprocess.backend 'opencv' needs the opencv-python-headless package: pip install "
        "opencv-python-headless (or pip install 'ssd_eval[fast]'), or use backend: pillow"
    )
    assert not HostPreprocessor("pillow", (8, 8), NORM).in_graph


def test_normalization_is_float32_per_channel():
    norm = Normalization.from_mean_std((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    assert norm.scale.dtype == np.float32 and norm.offset.dtype == np.float32
    np.testing.assert_array_equal(norm.scale, np.float32([2 / 255, 4 / 255, 1 / 255]))
    np.testing.assert_array_equal(norm.offset, np.float32([-1.0, -1.0, 0.0]))


def test_the_onnx_backends_need_onnx(monkeypatch):
    import importlib.util

    from ssd_eval.errors import ConfigError
    from ssd_eval.pipeline.preprocess import HostPreprocessor

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    for backend in ("onnx-normalize", "onnx-resize"):
        with pytest.raises(ConfigError) as info:
            HostPreprocessor(backend, (8, 8), NORM)
        assert str(info.value).startswith(
            f"preprocess.backend '{backend}' needs the onnx package: pip install onnx"
        )
    assert HostPreprocessor("pillow", (8, 8), NORM).backend == "pillow"


def test_an_image_already_the_input_size_is_passed_through_not_copied():
    """An image of the model's input size (a 1200x1200 photo) skips the resize: the very array comes back."""
    from ssd_eval.pipeline.preprocess import resize_opencv

    pixels = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
    assert resize_bilinear(pixels, (6, 10)) is pixels
    assert resize_opencv(pixels, (6, 10)) is pixels
    assert resize_bilinear(pixels, (10, 6)).shape == (10, 6, 3)  # the transposed size is resized
