"""Preprocessing equals the model card's code, in float32, NCHW, contiguous."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ssd_eval.config.run import IMAGENET_MEAN, IMAGENET_STD
from ssd_eval.pipeline.preprocess import Normalization, normalize_to_nchw, preprocess, resize_bilinear

NORM = Normalization.from_mean_std(IMAGENET_MEAN, IMAGENET_STD)


def _card_preprocess(image: Image.Image, size: int) -> np.ndarray:
    """The model card's sample code (float64 loop), with the RGB conversion it forgot."""
    img = image.convert("RGB").resize((size, size), Image.BILINEAR)
    data = np.transpose(np.array(img), [2, 0, 1])[None]
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    out = np.zeros(data.shape).astype("float32")
    for i in range(3):
        out[:, i, :, :] = (data[:, i, :, :] / 255 - mean[i]) / std[i]
    return out


def test_matches_the_model_card_code():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(75, 103, 3), dtype=np.uint8)
    ours = preprocess(pixels, (120, 120), NORM)
    card = _card_preprocess(Image.fromarray(pixels), 120)
    assert ours.dtype == np.float32 and ours.shape == (1, 3, 120, 120)
    assert ours.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(ours, card, rtol=0, atol=2e-6)


def test_resize_is_pillow_bilinear_and_keeps_no_aspect_ratio():
    pixels = np.zeros((10, 40, 3), np.uint8)
    pixels[:, 20:] = 255
    resized = resize_bilinear(pixels, (30, 30))
    assert resized.shape == (30, 30, 3)
    expected = np.asarray(Image.fromarray(pixels).resize((30, 30), Image.BILINEAR))
    np.testing.assert_array_equal(resized, expected)


def test_normalization_values():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    out = normalize_to_nchw(pixels, NORM)[0, :, 0, 0]
    expected = (np.array([0, 128, 255]) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(out, expected, atol=1e-6)
