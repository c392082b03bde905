"""Preprocessing as a small ONNX graph, run on the model's execution provider before the model.

The host sends uint8 pixels `[1, H, W, 3]` (a quarter of the float32 bytes); the graph casts,
transposes to NCHW, optionally resizes, and applies `x * scale + offset` per channel. It is a
separate session chained before the model rather than nodes spliced into it: the model stays the
file whose sha256 is recorded, and the prefix can use opset 18 (`Resize` with half-pixel
coordinates and antialiasing, close to Pillow's bilinear filter) while the model is opset 10,
whose `Resize` only has asymmetric coordinates.

The resize is not bit-identical to Pillow's (Pillow rounds to uint8 after each of its two passes
and uses fixed-point weights); the graph rounds once after resizing. The distance is measured in
`benchmarks/bench_speed.py` and bounded in the tests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import numpy as np

from ssd_eval.config.run import ProviderConfig, SessionConfig
from ssd_eval.errors import ProviderError
from ssd_eval.pipeline.preprocess import Normalization

PREFIX_OPSET = 18
PREFIX_IR_VERSION = 8  # what onnxruntime >= 1.14 reads; opset 18 needs IR >= 8
INPUT_NAME = "pixels"
OUTPUT_NAME = "image"


def build_prefix_model(size: tuple[int, int], norm: Normalization, *, resize: bool) -> bytes:
    """The serialized prefix graph: uint8 NHWC in, normalized float32 `[1, 3, *size]` out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width = size
    scale = norm.scale.astype(np.float32).reshape(1, 3, 1, 1)
    offset = norm.offset.astype(np.float32).reshape(1, 3, 1, 1)
    inits = [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(offset, "offset")]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["as_float"], ["nchw"], perm=[0, 3, 1, 2]),
    ]
    planar = "nchw"
    if resize:
        inits.append(numpy_helper.from_array(np.array([1, 3, height, width], np.int64), "sizes"))
        nodes += [
            helper.make_node(
                "Resize",
                ["nchw", "", "", "sizes"],
                ["resized"],
                mode="linear",
                coordinate_transformation_mode="half_pixel",
                antialias=1,
            ),
            # Pillow's output is uint8: round once (it rounds after each pass) and stay in range.
            helper.make_node("Round", ["resized"], ["rounded"]),
            helper.make_node("Clip", ["rounded", "lo", "hi"], ["planar"]),
        ]
        inits += [
            numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
            numpy_helper.from_array(np.array(255.0, np.float32), "hi"),
        ]
        planar = "planar"
    nodes += [
        helper.make_node("Mul", [planar, "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], [OUTPUT_NAME]),
    ]
    in_shape: list[int | str] = [1, "h", "w", 3] if resize else [1, height, width, 3]
    graph = helper.make_graph(
        nodes,
        "ssd_eval_preprocess",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, in_shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 3, height, width])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", PREFIX_OPSET)], producer_name="ssd_eval"
    )
    model.ir_version = PREFIX_IR_VERSION
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


class GraphPreprocessor:
    """An onnxruntime session running the prefix graph on the model's providers."""

    def __init__(
        self,
        model_bytes: bytes,
        providers: Sequence[str],
        provider_options: Sequence[dict[str, Any]],
        session: SessionConfig,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = session.intra_op_threads
        options.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(
                model_bytes,
                sess_options=options,
                providers=list(providers),
                provider_options=[{k: str(v) for k, v in o.items()} for o in provider_options],
            )
        except Exception as exc:  # onnxruntime's own exception types
            raise ProviderError(
                f"cannot create the preprocessing session on {providers[0]}: {str(exc).splitlines()[0]}; "
                "use preprocess.backend: pillow"
            ) from None

    @classmethod
    def for_session(
        cls,
        size: tuple[int, int],
        norm: Normalization,
        *,
        resize: bool,
        providers: Sequence[str],
        session: SessionConfig,
        provider_configs: Sequence[ProviderConfig] = (),
    ) -> GraphPreprocessor:
        options = [dict(p.options) for p in provider_configs][: len(providers)]
        options += [{} for _ in range(len(providers) - len(options))]
        return cls(build_prefix_model(size, norm, resize=resize), providers, options, session)

    def __enter__(self) -> GraphPreprocessor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._session = None

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, float]:
        """uint8 `[1, H, W, 3]` -> float32 NCHW model input, and the seconds `run` took."""
        start = time.perf_counter()
        (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: pixels})
        return out, time.perf_counter() - start
