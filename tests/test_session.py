"""Provider resolution, signature checks and the silent-fallback guard."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from helpers import Det, table_detector
from onnx import TensorProto, helper

from ssd_eval.config.run import OutputNames, ProviderConfig, SessionConfig
from ssd_eval.errors import ModelError, ProviderError
from ssd_eval.pipeline.session import ProviderSession, canonical_provider_name, resolve_provider

ALL = [
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
]


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("cpu", "CPUExecutionProvider"),
        ("CPU", "CPUExecutionProvider"),
        ("trt", "TensorrtExecutionProvider"),
        ("tensorrt", "TensorrtExecutionProvider"),
        ("OpenVINO", "OpenVINOExecutionProvider"),
        ("CUDAExecutionProvider", "CUDAExecutionProvider"),
        ("cudaexecutionprovider", "CUDAExecutionProvider"),
        ("dml", "DmlExecutionProvider"),
        ("coreml", "CoreMLExecutionProvider"),
    ],
)
def test_forgiving_provider_names(name, full):
    assert canonical_provider_name(name, ALL) == full


def test_unknown_provider_lists_what_is_available():
    with pytest.raises(
        ProviderError, match=r"unknown execution provider 'cdua'.*available here: CPUExecutionProvider"
    ):
        resolve_provider("cdua", available=["CPUExecutionProvider"], all_known=ALL)


def test_unavailable_provider_says_how_to_get_it():
    with pytest.raises(ProviderError, match=r"CUDAExecutionProvider is not available .*onnxruntime-gpu"):
        resolve_provider("cuda", available=["CPUExecutionProvider"], all_known=ALL)


def _model(path, inputs, outputs, ir_version=5):
    # Each output is the input cast to the output's declared type.
    nodes = [
        helper.make_node("Cast", [inputs[0].name], [o.name], to=o.type.tensor_type.elem_type) for o in outputs
    ]
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = ir_version
    onnx.save(model, path)
    return path


def _image(name="image", dtype=TensorProto.FLOAT, shape=(1, 3, 8, 8)):
    return helper.make_tensor_value_info(name, dtype, list(shape))


def _out(name, dtype=None):
    if dtype is None:  # the contract's types: integer labels, float boxes and scores
        dtype = TensorProto.INT64 if name in ("labels", "l") else TensorProto.FLOAT
    return helper.make_tensor_value_info(name, dtype, None)


def _open(path, **kwargs):
    session = ProviderSession(path, [ProviderConfig("cpu")], SessionConfig(), **kwargs)
    session.activate()
    return session


def test_good_signature(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(table_detector([0.0], [[Det(1, 2, 3, 4, 18)]], [(10, 10)], input_size=8), path)
    with ProviderSession(path, [ProviderConfig("cpu")], SessionConfig()) as session:
        assert session.signature is not None
        assert (session.signature.input_height, session.signature.input_width) == (8, 8)
        assert session.providers_used[0] == "CPUExecutionProvider"
        raw, seconds = session.infer(np.zeros((1, 3, 8, 8), np.float32))
        # The batch axis is removed: one detection, box (1, 2, 3, 4) on a 10x10 image -> x1 y1 x2 y2.
        np.testing.assert_allclose(raw.boxes, [[0.1, 0.2, 0.4, 0.6]], rtol=1e-6)
        assert raw.labels.tolist() == [17] and raw.scores.shape == (1,) and seconds >= 0


def test_outputs_shaped_as_the_input_break_the_contract(tmp_path):
    path = _model(tmp_path / "m.onnx", [_image()], [_out("bboxes"), _out("labels"), _out("scores")])
    with pytest.raises(
        ModelError, match=r"output 'bboxes' is tensor\(float\) \[1, 3, 8, 8\]; expected float \[1, N, 4\]"
    ):
        _open(path)


@pytest.mark.parametrize(
    ("inputs", "outputs", "message"),
    [
        ([_image("input")], ["bboxes", "labels", "scores"], r"input is named 'input', not 'image'"),
        ([_image(), _image("x")], ["bboxes", "labels", "scores"], r"has 2 inputs"),
        (
            [_image(dtype=TensorProto.UINT8)],
            ["bboxes", "labels", "scores"],
            r"expected float32 \[1, 3, H, W\]",
        ),
        ([_image(shape=(1, 8, 8))], ["bboxes", "labels", "scores"], r"expected float32 \[1, 3, H, W\]"),
        (
            [_image()],
            ["boxes", "labels", "scores"],
            r"has no output 'bboxes' \(outputs: boxes, labels, scores\)",
        ),
    ],
)
def test_wrong_signature_is_a_model_error(tmp_path, inputs, outputs, message):
    path = _model(tmp_path / "m.onnx", inputs, [_out(o) for o in outputs])
    with pytest.raises(ModelError, match=message):
        _open(path)


def test_output_names_are_configurable(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(table_detector([0.0], [[]], [(10, 10)], input_size=8, names=("x", "b", "l", "s")), path)
    session = _open(path, input_name="x", outputs=OutputNames(boxes="b", labels="l", scores="s"))
    assert session.signature is not None and session.signature.outputs.boxes == "b"
    raw, _ = session.infer(np.zeros((1, 3, 8, 8), np.float32))
    assert raw.boxes.shape == (0, 4) and raw.names.scores == "s"


def test_missing_and_non_onnx_files(tmp_path):
    with pytest.raises(ModelError, match=r"gone.onnx not found"):
        _open(tmp_path / "gone.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf at all \x00\x01")
    with pytest.raises(ModelError, match=r"junk.onnx is not a valid ONNX model"):
        _open(junk)


def test_silent_fallback_to_cpu_is_an_error(tmp_path, monkeypatch):
    """A provider that fails to load leaves onnxruntime on CPU without an error; we refuse that."""
    import onnxruntime as ort

    path = tmp_path / "m.onnx"
    onnx.save(table_detector([0.0], [[]], [(10, 10)], input_size=8), path)
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    real = ort.InferenceSession

    def fake_session(model, sess_options=None, providers=None, provider_options=None):
        return real(model, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    session = ProviderSession(path, [ProviderConfig("cuda")], SessionConfig())
    with pytest.raises(
        ProviderError,
        match=r"CUDAExecutionProvider was requested but onnxruntime fell back to "
        r"CPUExecutionProvider",
    ):
        session.activate()
    allowed = ProviderSession(path, [ProviderConfig("cuda")], SessionConfig(allow_cpu_fallback=True))
    allowed.activate()
    assert allowed.providers_used == ("CPUExecutionProvider",)
