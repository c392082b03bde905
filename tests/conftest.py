"""Shared fixtures: a small COCO data set of several sizes and modes with a known answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Det, TinyImage, make_coco

# Images of several sizes, aspect ratios, modes and formats.
TINY_IMAGES = (
    TinyImage(1, 64, 48, "RGB", "png"),
    TinyImage(2, 50, 80, "L", "png"),
    TinyImage(5, 120, 90, "P", "png"),
    TinyImage(7, 40, 40, "CMYK", "jpg"),
    TinyImage(9, 96, 64, "RGBA", "png"),
    TinyImage(11, 70, 30, "I;16", "png"),
)

# Ground truth: 4 persons (category 1), 2 dogs (18), 1 toothbrush (90, the last id).
TINY_GT = {
    1: [Det(4, 4, 30, 30, 1), Det(30, 10, 20, 30, 18)],
    2: [Det(10, 20, 30, 40, 1)],
    5: [Det(0, 0, 60, 45, 1), Det(60, 45, 50, 40, 18)],
    7: [Det(5, 5, 20, 20, 90)],
    9: [Det(20, 10, 40, 40, 1)],
    # image 11 has no annotations: excluded by selection "annotated", included by "all"
}


@pytest.fixture
def tiny_coco(tmp_path: Path) -> Path:
    return make_coco(tmp_path / "coco", TINY_IMAGES, TINY_GT)
