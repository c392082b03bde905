"""ssd_eval: the true COCO box mAP of the ONNX Model Zoo SSD-ResNet34 detector, on any execution provider."""

from __future__ import annotations

__version__ = "0.1.0"
