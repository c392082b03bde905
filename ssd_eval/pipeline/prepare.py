"""One image read and preprocessed ahead of inference (in a feeder thread): its tensor, or the error.

A bad image becomes a value here rather than an exception in a worker thread, so the run decides in
order, image by image, whether to stop or skip it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ssd_eval.data.dataset import CocoGroundTruth, ImageRecord, load_checked
from ssd_eval.errors import DatasetError
from ssd_eval.pipeline.preprocess import HostPreprocessor


@dataclass(frozen=True)
class Prepared:
    """One image after the workers: its host-side model input, or the error that stopped it."""

    record: ImageRecord
    tensor: np.ndarray | None
    error: DatasetError | None
    read_s: float
    preprocess_s: float


def prepare_image(
    gt: CocoGroundTruth, host: HostPreprocessor, record: ImageRecord, *, max_pixels: int
) -> Prepared:
    """Decode and preprocess one image (runs in a feeder thread); a bad image becomes a value."""
    start = time.perf_counter()
    try:
        pixels = load_checked(gt, record, max_pixels=max_pixels).pixels
    except DatasetError as exc:
        return Prepared(record, None, exc, time.perf_counter() - start, 0.0)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    tensor = host(pixels)
    return Prepared(record, tensor, None, read_s, time.perf_counter() - start)
