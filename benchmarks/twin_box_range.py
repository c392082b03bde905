"""How far outside [0, 1] a model's normalized boxes reach on real images (for the output contract's bound).

    python benchmarks/twin_box_range.py MODEL.onnx [COCO_FOLDER]

Runs the model on every image of the folder (default: the real 50-image val2017 slice beside the
project) and prints the range and tails of the box coordinates it emits. No assertions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ssd_eval.config.run import IMAGENET_MEAN, IMAGENET_STD, ProviderConfig, SessionConfig
from ssd_eval.data.dataset import load_rgb
from ssd_eval.pipeline.preprocess import Normalization, preprocess
from ssd_eval.pipeline.session import ProviderSession

SLICE = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_val2017_first50"


def main() -> None:
    model = Path(sys.argv[1])
    root = Path(sys.argv[2]) if len(sys.argv) > 2 else SLICE
    files = sorted((root / "val2017").glob("*.jpg"))
    norm = Normalization.from_mean_std(IMAGENET_MEAN, IMAGENET_STD)
    coords = []
    with ProviderSession(model, [ProviderConfig("cpu")], SessionConfig()) as session:
        assert session.signature is not None
        size = (session.signature.input_height or 1200, session.signature.input_width or 1200)
        for path in files:
            raw, _ = session.infer(preprocess(load_rgb(path), size, norm))
            coords.append(raw.boxes.reshape(-1))
    b = np.concatenate(coords)
    print(
        f"{model.name}: {len(files)} images, {b.size // 4} boxes, "
        f"coordinates in [{b.min():.4f}, {b.max():.4f}], "
        f"0.1% / 99.9% quantiles {np.percentile(b, 0.1):.4f} / {np.percentile(b, 99.9):.4f}, "
        f"outside [0, 1]: {np.mean((b < 0) | (b > 1)):.1%}"
    )


if __name__ == "__main__":
    main()
