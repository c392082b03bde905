"""Image -> model input, exactly as the model card says.

The card: resize the RGB image to 1200x1200 (aspect ratio not kept) with Pillow's bilinear filter,
scale to [0, 1], normalize with the ImageNet mean/std, NCHW float32. Here the division by 255 and
the mean/std are folded into one multiply-add per channel, in float32 throughout (the card's loop
computes in float64 and casts; the two agree to within float32 rounding, which a test checks).

Faster backends (`HostPreprocessor`) trade bit-identity for speed; their distance from this
reference is measured in `benchmarks/bench_speed.py` and bounded in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from ssd_eval.errors import ConfigError


@dataclass(frozen=True)
class Normalization:
    """Per-channel `(x / 255 - mean) / std` as `x * scale + offset`."""

    scale: np.ndarray  # float32 [3]
    offset: np.ndarray  # float32 [3]

    @classmethod
    def from_mean_std(
        cls, mean: tuple[float, float, float], std: tuple[float, float, float]
    ) -> Normalization:
        mean64 = np.asarray(mean, dtype=np.float64)
        std64 = np.asarray(std, dtype=np.float64)
        return cls(
            scale=(1.0 / (255.0 * std64)).astype(np.float32),
            offset=(-mean64 / std64).astype(np.float32),
        )


def resize_bilinear(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow bilinear resize of uint8 RGB `[H, W, 3]` to `size` = (height, width)."""
    height, width = size
    if pixels.shape[:2] == (height, width):
        return pixels
    resized = Image.fromarray(np.ascontiguousarray(pixels)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def normalize_to_nchw(pixels: np.ndarray, norm: Normalization) -> np.ndarray:
    """uint8 HWC RGB -> normalized float32 `[1, 3, H, W]`, written channel by channel.

    Each channel plane is computed straight into the contiguous NCHW output: converting the
    whole HWC image to float first and transposing keeps HWC memory order and is ~5x slower.
    """
    height, width = pixels.shape[:2]
    out = np.empty((1, 3, height, width), dtype=np.float32)
    for channel in range(3):
        plane = out[0, channel]
        np.multiply(pixels[:, :, channel], norm.scale[channel], out=plane, dtype=np.float32)
        plane += norm.offset[channel]
    return out


def preprocess(pixels: np.ndarray, size: tuple[int, int], norm: Normalization) -> np.ndarray:
    """The model card's preprocessing: bilinear resize to `size`, /255, mean/std, NCHW float32."""
    return normalize_to_nchw(resize_bilinear(pixels, size), norm)


PreprocessBackend = Literal["pillow", "opencv", "onnx-normalize", "onnx-resize"]
BACKENDS: tuple[str, ...] = ("pillow", "opencv", "onnx-normalize", "onnx-resize")


def resize_opencv(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV INTER_LINEAR resize of uint8 RGB `[H, W, 3]` (no antialiasing when shrinking)."""
    import cv2

    height, width = size
    if pixels.shape[:2] == (height, width):
        return pixels
    resized: np.ndarray = cv2.resize(
        np.ascontiguousarray(pixels), (width, height), interpolation=cv2.INTER_LINEAR
    )
    return resized


@dataclass(frozen=True)
class HostPreprocessor:
    """The part of preprocessing done on the host, in the feeder's worker threads.

    `pillow` and `opencv` return the model's float32 NCHW input; `onnx-normalize` returns the
    resized uint8 `[1, H, W, 3]` and `onnx-resize` the decoded uint8 `[1, h, w, 3]`, which a small
    ONNX graph (`ssd_eval.pipeline.graph_preprocess`) turns into the model input on the execution provider.
    """

    backend: PreprocessBackend
    size: tuple[int, int]  # (height, width) of the model input
    norm: Normalization

    def __post_init__(self) -> None:
        if self.backend == "opencv":
            _require("cv2", "opencv-python-headless", self.backend)
        if self.backend.startswith("onnx-"):
            _require("onnx", "onnx", self.backend)

    @property
    def in_graph(self) -> bool:
        """True when an ONNX graph finishes the job (the host output is uint8)."""
        return self.backend.startswith("onnx-")

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if self.backend == "pillow":
            return normalize_to_nchw(resize_bilinear(pixels, self.size), self.norm)
        if self.backend == "opencv":
            return normalize_to_nchw(resize_opencv(pixels, self.size), self.norm)
        if self.backend == "onnx-normalize":
            return np.ascontiguousarray(resize_bilinear(pixels, self.size))[None]
        return np.ascontiguousarray(pixels)[None]


def _require(module: str, package: str, backend: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"preprocess.backend {backend!r} needs the {package} package: pip install {package} "
            "(or pip install 'ssd_eval[fast]'), or use backend: pillow"
        )
