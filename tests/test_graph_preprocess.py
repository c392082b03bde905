"""The preprocessing prefix graph: what it declares, what it computes at the ends of the pixel range,
and how its onnxruntime session is made (threads, providers and their options, the error line).

Written for the survivors of the mutation run of 2026-12-02 (their list, since removed:
`git show f1a4929:docs/mutation-survivors-2026-12-02.md`);
the distance to Pillow on real and random images is bounded in tests/test_preprocess_backends.py.
Expectations come from ONNX's own shape inference, Pillow's own resize, the ImageNet mean and std
written out, and onnxruntime's own error for the same bytes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import shape_inference
from PIL import Image

from ssd_eval.config.run import IMAGENET_MEAN, IMAGENET_STD, ProviderConfig, SessionConfig
from ssd_eval.errors import ProviderError
from ssd_eval.pipeline.graph_preprocess import GraphPreprocessor, build_prefix_model
from ssd_eval.pipeline.preprocess import Normalization

NORM = Normalization.from_mean_std(IMAGENET_MEAN, IMAGENET_STD)
CPU = ["CPUExecutionProvider"]
SIZE = (6, 10)  # height, width: not square, so a swapped pair shows


def _prefix(size: tuple[int, int], *, resize: bool) -> GraphPreprocessor:
    return GraphPreprocessor.for_session(
        size, NORM, resize=resize, providers=CPU, session=SessionConfig(intra_op_threads=1)
    )


@pytest.mark.parametrize("resize", [True, False])
def test_the_prefix_declares_what_it_computes(resize):
    model = onnx.load_from_string(build_prefix_model(SIZE, NORM, resize=resize))
    # The module docstring: opset 18 (Resize with antialias), IR 8, which onnxruntime >= 1.14 reads;
    # onnx's default opset is newer than what older onnxruntime builds load.
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 18)]
    assert model.ir_version == 8
    # ONNX's own shape inference, strict: a declared output shape it cannot derive is an error.
    inferred = shape_inference.infer_shapes(model, strict_mode=True, check_type=True)
    (output,) = inferred.graph.output
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [1, 3, 6, 10]
    (pixels,) = inferred.graph.input
    assert pixels.type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_without_resize_the_prefix_refuses_pixels_of_another_size():
    # onnx-normalize: the host resizes; the graph's fixed input shape is the check that it did.
    with _prefix(SIZE, resize=False) as prefix:
        out, _ = prefix(np.zeros((1, 6, 10, 3), np.uint8))
        assert out.shape == (1, 3, 6, 10)
        with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument):
            prefix(np.zeros((1, 7, 10, 3), np.uint8))


@pytest.mark.parametrize("value", [0, 255])
@pytest.mark.parametrize("size", [(6, 10), (40, 64)])
def test_black_and_white_are_exactly_pillows(value, size):
    """At the ends of the range Pillow's result is exact (a uniform image stays uniform), so the graph's
    rounding and clipping must give it exactly, not within the 1-level bound of other images."""
    pixels = np.full((17, 23, 3), value, np.uint8)
    height, width = size
    pillow = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    want = ((pillow / 255.0 - mean) / std).transpose(2, 0, 1)[None]
    with _prefix(size, resize=True) as prefix:
        out, _ = prefix(pixels[None])
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-5)


def test_the_seconds_returned_are_the_time_the_call_took():
    pixels = np.zeros((1, 6, 10, 3), np.uint8)
    with _prefix(SIZE, resize=False) as prefix:
        before = time.perf_counter()
        _, seconds = prefix(pixels)
        after = time.perf_counter()
    assert 0.0 <= seconds <= after - before


def test_the_session_gets_the_configured_threads_providers_and_options(monkeypatch):
    made: list[dict[str, Any]] = []

    def recording_session(model: bytes, **kwargs: Any) -> object:
        """Stands in for onnxruntime.InferenceSession: records how it was made."""
        made.append(kwargs)
        return object()

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording_session)
    cuda = ProviderConfig("cuda", {"device_id": 1, "cudnn_conv_algo_search": "DEFAULT"})
    GraphPreprocessor.for_session(
        SIZE,
        NORM,
        resize=True,
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],  # CPU appended as the fallback
        session=SessionConfig(intra_op_threads=2),
        provider_configs=[cuda],
    )
    (kwargs,) = made
    assert kwargs["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    # onnxruntime takes option values as strings; the appended CPU provider has none.
    assert kwargs["provider_options"] == [{"device_id": "1", "cudnn_conv_algo_search": "DEFAULT"}, {}]
    assert kwargs["sess_options"].intra_op_num_threads == 2
    # onnxruntime's errors reach stderr, its warnings (they would interleave with the progress bar) do not:
    # log severity 3 is ERROR (0 verbose, 1 info, 2 warning, 3 error, 4 fatal).
    assert kwargs["sess_options"].log_severity_level == 3


def test_a_session_onnxruntime_cannot_make_is_one_provider_error_with_what_to_do():
    broken = b"not an onnx model"
    with pytest.raises(Exception) as direct:
        onnxruntime.InferenceSession(broken, providers=CPU)
    ort_line = str(direct.value).splitlines()[0]
    with pytest.raises(ProviderError) as caught:
        GraphPreprocessor(broken, CPU, [{}], SessionConfig())
    assert str(caught.value) == (
        f"cannot create the preprocessing session on CPUExecutionProvider: {ort_line}; "
        "use preprocess.backend: pillow"
    )
