"""Build the SSD-ResNet34 twin, save it, and report its size, cost and one CPU inference.

python scripts/build_twin.py [--size 1200] [--seed 0] [--out ssd-twin-1200.onnx]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ssd_eval.config.run import IMAGENET_MEAN, IMAGENET_STD
from ssd_eval.errors import SsdEvalError
from ssd_eval.pipeline.preprocess import Normalization, normalize_to_nchw
from ssd_eval.twin.graph_stats import count_macs, count_parameters


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1200, help="square input side (default 1200)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="output file (default ssd-twin-SIZE.onnx)")
    return parser.parse_args(argv)


def random_input(size: int, seed: int) -> np.ndarray:
    """A uniformly random RGB image, normalized as the model card says."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return normalize_to_nchw(pixels, Normalization.from_mean_std(IMAGENET_MEAN, IMAGENET_STD))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out if args.out is not None else Path(f"ssd-twin-{args.size}.onnx")
    try:
        from ssd_eval.twin.model import build_twin, save_twin

        started = time.perf_counter()
        model = build_twin(args.size, args.seed)
        save_twin(model, out)
    except (SsdEvalError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    built = time.perf_counter() - started
    print(f"wrote {out} ({out.stat().st_size:,} bytes) in {built:.1f} s")
    print(f"parameters: {count_parameters(model):,}")
    macs = count_macs(model)
    print(f"MACs: {macs:,} ({macs / 1e9:.1f} G)")

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {"image": random_input(args.size, args.seed)}
    session.run(None, feeds)  # warm-up: first-run allocations and kernel selection
    started = time.perf_counter()
    _, labels, scores = session.run(None, feeds)
    latency = time.perf_counter() - started
    print(f"onnxruntime CPU latency: {latency * 1000:.0f} ms (one run after one warm-up)")
    print(f"detections on a random image: {scores.shape[1]} ({len(set(labels[0].tolist()))} classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
