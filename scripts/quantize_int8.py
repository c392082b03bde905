"""Make an int8 copy of an SSD model with onnxruntime.quantization (static, QDQ, per-channel Conv weights).

    python scripts/quantize_int8.py --model ssd-twin-1200.onnx --out ssd-twin-1200-int8.onnx \
        --calibration ../shared/data/coco_val2017_first50 [--images 226111 58636]

Static quantization with a calibration reader (MinMax over a few real images, preprocessed exactly as
the evaluation does) rather than dynamic: dynamic quantization turns Conv into ConvInteger with
activation ranges computed per image at run time, which is neither what the zoo's ssd-12-int8 /
ssd-12-qdq are (static) nor fast on CPU. Only Conv nodes are quantized (backbone, extra blocks and
heads, where nearly all the compute is); the box decoding, softmax and NMS stay float, so score and
box differences come from the quantized convolutions alone. By default the calibration images are
the slice's images *without* annotations, which the `annotated` protocol does not score.
Per-channel QDQ needs opset 13: the float model is first converted from its opset (10) with
onnx.version_converter, and the converted float model is checked to give identical outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from ssd_eval.config.run import IMAGENET_MEAN, IMAGENET_STD
from ssd_eval.data.dataset import load_rgb
from ssd_eval.pipeline.preprocess import Normalization, preprocess

# onnxruntime-openvino reads ONNX IR versions <= 13; per-channel QDQ needs opset 13 (IR >= 7).
IR_VERSION = 8
OPSET = 13


def check_same_outputs(original: Path, converted: Path, input_name: str, size: int) -> None:
    """The opset conversion must not change a single output value."""
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    a = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"]).run(None, {input_name: x})
    b = ort.InferenceSession(str(converted), providers=["CPUExecutionProvider"]).run(None, {input_name: x})
    if any(p.shape != q.shape or not np.array_equal(p, q) for p, q in zip(a, b, strict=True)):
        sys.exit(f"converting {original} to opset {OPSET} changed its outputs; not quantizing")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="float ONNX model")
    parser.add_argument("--out", type=Path, required=True, help="int8 ONNX model to write")
    parser.add_argument(
        "--calibration", type=Path, required=True, help="COCO folder (annotations/, val2017/)"
    )
    parser.add_argument(
        "--images",
        type=int,
        nargs="*",
        help="calibration image ids (default: the images without annotations)",
    )
    return parser.parse_args(argv)


def calibration_files(root: Path, ids: list[int] | None) -> list[Path]:
    data = json.loads((root / "annotations" / "instances_val2017.json").read_text(encoding="utf-8"))
    annotated = {a["image_id"] for a in data["annotations"]}
    chosen = [im for im in data["images"] if (im["id"] in ids if ids else im["id"] not in annotated)]
    if not chosen:
        sys.exit("no calibration images: pass --images ID ...")
    return [root / "val2017" / im["file_name"] for im in sorted(chosen, key=lambda im: im["id"])]


class Reader(CalibrationDataReader):
    """Feeds the calibration images, preprocessed as the evaluation does."""

    def __init__(self, files: list[Path], size: int, input_name: str) -> None:
        norm = Normalization.from_mean_std(IMAGENET_MEAN, IMAGENET_STD)
        self._items: Iterator[dict[str, np.ndarray]] = (
            {input_name: preprocess(load_rgb(f), (size, size), norm)} for f in files
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = onnx.load(str(args.model))
    graph_input = model.graph.input[0]
    size = graph_input.type.tensor_type.shape.dim[2].dim_value
    files = calibration_files(args.calibration, args.images)
    print(f"calibrating on {len(files)} image(s): {', '.join(f.name for f in files)}")
    with tempfile.TemporaryDirectory() as tmp:
        float13 = Path(tmp) / "float13.onnx"
        converted = version_converter.convert_version(model, OPSET)
        converted.ir_version = IR_VERSION
        onnx.save(converted, str(float13))
        check_same_outputs(args.model, float13, graph_input.name, size)
        staged = Path(tmp) / "int8.onnx"
        quantize_static(
            str(float13),
            str(staged),
            Reader(files, size, graph_input.name),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        quantized = onnx.load(str(staged))
    quantized.ir_version = min(quantized.ir_version, IR_VERSION)
    onnx.checker.check_model(quantized)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(quantized, str(args.out))
    opsets = {o.domain or "ai.onnx": o.version for o in quantized.opset_import}
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, IR {quantized.ir_version}, opsets {opsets})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
