"""Provider resolution, signature checks and the silent-fallback guard."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from helpers import Det, table_detector
from onnx import TensorProto, helper

from ssd_eval.config.run import OutputNames, ProviderConfig, SessionConfig
from ssd_eval.errors import ModelError, ProviderError
from ssd_eval.pipeline.session import (
    InferenceFailed,
    ProviderSession,
    canonical_provider_name,
    resolve_provider,
)

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


# --- provider names and the refusals that name what is available ---------------------------------

HERE = ["AzureExecutionProvider", "CPUExecutionProvider"]  # what a plain `pip install onnxruntime` has


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("azure", "AzureExecutionProvider"),  # no short name: the provider's name without the suffix
        ("Js", "JsExecutionProvider"),
        ("ROCM", "ROCMExecutionProvider"),
        ("cdua", None),
        ("executionprovider", None),
    ],
)
def test_a_provider_is_also_its_name_without_executionprovider(name, full):
    known = [*ALL, "AzureExecutionProvider", "JsExecutionProvider"]
    assert canonical_provider_name(name, known) == full


def test_unknown_provider_is_one_line_with_the_short_names_and_what_is_here():
    # The short names, sorted: the providers as users type them (docs/operations.md: `--provider cuda`).
    short = (
        "cann, coreml, cpu, cuda, directml, dml, dnnl, gpu, migraphx, nnapi, onednn, openvino, ov, qnn, "
        "rocm, tensorrt, trt, vitisai, webgpu, xnnpack"
    )
    with pytest.raises(ProviderError) as caught:
        resolve_provider("cdua", available=HERE, all_known=ALL)
    assert str(caught.value) == (
        f"unknown execution provider 'cdua'; short names: {short}; "
        "available here: AzureExecutionProvider, CPUExecutionProvider"
    )


@pytest.mark.parametrize(
    ("name", "full", "hint"),
    [
        # The packages onnxruntime publishes per provider (README "Install"; onnxruntime.ai install matrix).
        ("cuda", "CUDAExecutionProvider", "pip install onnxruntime-gpu (in place of onnxruntime)"),
        ("trt", "TensorrtExecutionProvider", "pip install onnxruntime-gpu and TensorRT"),
        (
            "openvino",
            "OpenVINOExecutionProvider",
            "pip install onnxruntime-openvino (in place of onnxruntime)",
        ),
        ("dml", "DmlExecutionProvider", "pip install onnxruntime-directml (Windows)"),
        ("rocm", "ROCMExecutionProvider", "install an onnxruntime build that includes it"),
    ],
)
def test_unavailable_provider_is_one_line_saying_how_to_get_it(name, full, hint):
    with pytest.raises(ProviderError) as caught:
        resolve_provider(name, available=HERE, all_known=ALL)
    assert str(caught.value) == (
        f"execution provider {full} is not available in this onnxruntime "
        f"(available: AzureExecutionProvider, CPUExecutionProvider); {hint}"
    )


def test_an_available_provider_resolves_to_its_full_name():
    assert resolve_provider("ov", available=["OpenVINOExecutionProvider", *HERE], all_known=ALL) == (
        "OpenVINOExecutionProvider"
    )


# --- the model's signature -------------------------------------------------------------------------


def test_two_inputs_are_listed_in_the_refusal(tmp_path):
    path = _model(
        tmp_path / "m.onnx", [_image(), _image("x")], [_out("bboxes"), _out("labels"), _out("scores")]
    )
    with pytest.raises(ModelError) as caught:
        _open(path)
    assert str(caught.value) == (
        f"model {path} has 2 inputs (image tensor(float) [1, 3, 8, 8], x tensor(float) [1, 3, 8, 8]); "
        "expected one image input"
    )


@pytest.mark.parametrize(
    "shape",
    [
        (1, 3, 8),  # three axes, the second 3
        (2, 3, 8, 8),  # a batch of 2
        (1, 3, 8, 8, 1),  # five axes
        (1, 1, 8, 8),  # one channel
    ],
)
def test_an_input_not_shaped_1_3_h_w_is_refused(tmp_path, shape):
    path = _model(
        tmp_path / "m.onnx", [_image(shape=shape)], [_out("bboxes"), _out("labels"), _out("scores")]
    )
    with pytest.raises(ModelError) as caught:
        _open(path)
    shown = ", ".join(str(d) for d in shape)
    assert str(caught.value) == (
        f"model {path} input is image tensor(float) [{shown}]; expected float32 [1, 3, H, W]"
    )


def test_a_symbolic_input_size_is_none_in_the_signature(tmp_path):
    model = table_detector([0.0], [[Det(1, 2, 3, 4, 18)]], [(10, 10)], input_size=8)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param, dims[2].dim_param, dims[3].dim_param = "N", "H", "W"
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    session = _open(path)
    assert session.signature is not None
    assert (session.signature.input_name, session.signature.input_height, session.signature.input_width) == (
        "image",
        None,
        None,
    )
    raw, _ = session.infer(np.zeros((1, 3, 8, 8), np.float32))
    assert raw.labels.tolist() == [17]


def test_every_missing_output_is_named(tmp_path):
    path = _model(tmp_path / "m.onnx", [_image()], [_out("boxes"), _out("classes"), _out("scores")])
    with pytest.raises(ModelError) as caught:
        _open(path)
    assert str(caught.value) == (
        f"model {path} has no output 'bboxes', 'labels' (outputs: boxes, classes, scores); "
        "set model.outputs in the config"
    )


def test_a_missing_model_says_how_to_name_one(tmp_path):
    with pytest.raises(ModelError) as caught:
        _open(tmp_path / "gone.onnx")
    assert str(caught.value) == (
        f"model {tmp_path / 'gone.onnx'} not found: set model.path in the config (or --model), "
        "or use model.source to fetch a known model"
    )


# --- a stand-in for onnxruntime.InferenceSession, to reach the providers this build lacks ------------


@dataclass
class Created:
    """One `onnxruntime.InferenceSession(...)` call, as the stand-in saw it."""

    providers: list[str]
    provider_options: list[dict[str, str]] | None
    optimization: object
    intra_threads: int
    inter_threads: int
    log_severity: int


class Reported:
    """A real CPU session that reports the providers (and their options) onnxruntime would have used."""

    silent: tuple[str, ...] = ()  # providers whose options it leaves out, as another build might

    def __init__(self, real, providers, options):
        self._real, self._providers, self._options = real, providers, options

    def get_providers(self):
        return list(self._providers)

    def get_provider_options(self):
        return {p: dict(self._options.get(p, {})) for p in self._providers if p not in self.silent}

    def __getattr__(self, name):
        return getattr(self._real, name)


def fake_onnxruntime(
    monkeypatch,
    load,
    available=(
        "OpenVINOExecutionProvider",
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
        "CPUExecutionProvider",
    ),
):
    """Patch onnxruntime: `load(providers, provider_options)` gives the providers really used, or raises."""
    import onnxruntime as ort

    real = ort.InferenceSession
    created: list[Created] = []

    def create(model, sess_options=None, providers=None, provider_options=None):
        created.append(
            Created(
                providers=list(providers),
                provider_options=provider_options,
                optimization=sess_options.graph_optimization_level if sess_options else None,
                intra_threads=sess_options.intra_op_num_threads if sess_options else -1,
                inter_threads=sess_options.inter_op_num_threads if sess_options else -1,
                log_severity=sess_options.log_severity_level if sess_options else -1,
            )
        )
        used = load(list(providers), provider_options or [{} for _ in providers])
        options = dict(zip(providers, provider_options or [], strict=False))
        return Reported(real(model, providers=["CPUExecutionProvider"]), used, options)

    monkeypatch.setattr(ort, "get_available_providers", lambda: list(available))
    monkeypatch.setattr(ort, "InferenceSession", create)
    return created


def _loads(providers, provider_options):
    """Every provider loads; onnxruntime puts CPU last."""
    return [*providers, "CPUExecutionProvider"] if "CPUExecutionProvider" not in providers else providers


def _detector(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(table_detector([0.0], [[Det(1, 2, 3, 4, 18)]], [(10, 10)], input_size=8), path)
    return path


def test_the_session_gets_the_configured_options_and_reports_those_used(tmp_path, monkeypatch):
    import onnxruntime as ort

    created = fake_onnxruntime(monkeypatch, _loads)
    config = SessionConfig(graph_optimization_level="basic", intra_op_threads=2, inter_op_threads=1)
    providers = [ProviderConfig("openvino", {"device_type": "CPU", "precision": "FP32", "num_streams": 1})]
    with ProviderSession(_detector(tmp_path), providers, config) as session:
        assert session.providers_used == ("OpenVINOExecutionProvider", "CPUExecutionProvider")
        # Option values reach onnxruntime as strings (YAML gives 1, onnxruntime wants "1").
        assert session.provider_options_used == (
            {"device_type": "CPU", "precision": "FP32", "num_streams": "1"},
            {},
        )
    assert created == [
        Created(
            providers=["OpenVINOExecutionProvider"],
            provider_options=[{"device_type": "CPU", "precision": "FP32", "num_streams": "1"}],
            optimization=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            intra_threads=2,
            inter_threads=1,
            log_severity=3,  # errors only: onnxruntime's warnings would interleave with the progress bar
        )
    ]


def test_a_provider_whose_options_onnxruntime_leaves_out_reads_as_no_options(tmp_path, monkeypatch):
    """This CPU build reports every provider's options; a build that leaves one out is not a crash."""
    fake_onnxruntime(monkeypatch, _loads)
    monkeypatch.setattr(Reported, "silent", ("CPUExecutionProvider",))
    providers = [ProviderConfig("cuda", {"device_id": 0})]
    with ProviderSession(_detector(tmp_path), providers, SessionConfig()) as session:
        assert session.providers_used == ("CUDAExecutionProvider", "CPUExecutionProvider")
        assert session.provider_options_used == ({"device_id": "0"}, {})


def _raises(error):
    def load(providers, provider_options):
        raise error

    return load


class Fail(Exception):
    """Like onnxruntime's own exception types (onnxruntime.capi.onnxruntime_pybind11_state.Fail)."""


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (
            Fail("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Protobuf parsing failed."),
            ModelError,
            "is not a valid ONNX model: [ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Protobuf parsing failed.",
        ),
        (
            Fail(
                "[ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model from m.onnx failed:"
                "This is an invalid model."
            ),
            ModelError,
            "is not a valid ONNX model: [ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model from m.onnx "
            "failed:This is an invalid model.",
        ),
        (
            Fail(
                "[ONNXRuntimeError] : 1 : FAIL : model_path must not be empty. Ensure that a path is provided"
            ),
            ModelError,
            "is not a valid ONNX model: [ONNXRuntimeError] : 1 : FAIL : model_path must not be empty. "
            "Ensure that a path is provided",
        ),
        (
            Fail(
                "[ONNXRuntimeError] : 1 : FAIL : TensorRT EP failed to create engine from network.\nat line 2"
            ),
            ProviderError,
            "cannot create an onnxruntime session for {model} on TensorrtExecutionProvider: "
            "[ONNXRuntimeError] : 1 : FAIL : TensorRT EP failed to create engine from network.",
        ),
        (
            Fail(),
            ProviderError,
            "cannot create an onnxruntime session for {model} on TensorrtExecutionProvider: Fail",
        ),
    ],
)
def test_a_session_that_cannot_be_created_is_one_line(tmp_path, monkeypatch, error, kind, says):
    """A bad file is the model's fault (exit 2 naming the file); anything else the provider's."""
    fake_onnxruntime(monkeypatch, _raises(error))
    path = _detector(tmp_path)
    session = ProviderSession(path, [ProviderConfig("trt"), ProviderConfig("cuda")], SessionConfig())
    with pytest.raises(kind) as caught:
        session.activate()
    expected = says.format(model=path) if kind is ProviderError else f"model {path} {says}"
    assert str(caught.value) == expected


def _drops_first(providers, provider_options):
    """The first provider fails to load: onnxruntime goes on with the rest, silently."""
    return (
        [*providers[1:], "CPUExecutionProvider"] if providers[-1] != "CPUExecutionProvider" else providers[1:]
    )


def test_a_silent_fallback_names_the_providers_really_used(tmp_path, monkeypatch):
    created = fake_onnxruntime(monkeypatch, _drops_first)
    session = ProviderSession(
        _detector(tmp_path), [ProviderConfig("trt"), ProviderConfig("cuda")], SessionConfig()
    )
    with pytest.raises(ProviderError) as caught:
        session.activate()
    assert str(caught.value) == (
        "TensorrtExecutionProvider was requested but onnxruntime fell back to CUDAExecutionProvider, "
        "CPUExecutionProvider (the provider failed to load: check its libraries); "
        "set session.allow_cpu_fallback: true to accept this"
    )
    assert len(created) == 1  # no options given: nothing to try without them


def _refuses_fp16(providers, provider_options):
    """OpenVINO on device CPU refuses precision FP16 (docs/agreement.md) and is dropped; loads otherwise."""
    if provider_options[0].get("precision") == "FP16":
        return _drops_first(providers, provider_options)
    return _loads(providers, provider_options)


OV_FP16 = ProviderConfig("openvino", {"device_type": "CPU", "precision": "FP16"})


def test_a_provider_refusing_its_options_is_told_from_one_that_does_not_load(tmp_path, monkeypatch):
    import onnxruntime as ort

    created = fake_onnxruntime(monkeypatch, _refuses_fp16)
    session = ProviderSession(_detector(tmp_path), [OV_FP16], SessionConfig(intra_op_threads=2))
    with pytest.raises(ProviderError) as caught:
        session.activate()
    assert str(caught.value) == (
        "OpenVINOExecutionProvider was requested but onnxruntime fell back to CPUExecutionProvider "
        "(the provider loads, but refused its options device_type=CPU, precision=FP16: check them against "
        "the provider's documentation (OpenVINO on device_type CPU takes precision FP32 or ACCURACY, "
        "not FP16)); set session.allow_cpu_fallback: true to accept this"
    )
    # Tried again with the same session options, without provider options.
    assert [(c.providers, c.provider_options) for c in created] == [
        (["OpenVINOExecutionProvider"], [{"device_type": "CPU", "precision": "FP16"}]),
        (["OpenVINOExecutionProvider"], None),
    ]
    assert [(c.intra_threads, c.log_severity, c.optimization) for c in created] == [
        (2, 3, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    ] * 2


@pytest.mark.parametrize(
    "without_options", [_drops_first, _raises(Fail("[ONNXRuntimeError] : 1 : FAIL : cannot load library"))]
)
def test_a_provider_that_fails_without_its_options_too_is_a_library_problem(
    tmp_path, monkeypatch, without_options
):
    def load(providers, provider_options):
        return (
            _drops_first(providers, provider_options)
            if provider_options[0]
            else without_options(providers, provider_options)
        )

    created = fake_onnxruntime(monkeypatch, load)
    session = ProviderSession(_detector(tmp_path), [OV_FP16], SessionConfig())
    with pytest.raises(ProviderError) as caught:
        session.activate()
    assert str(caught.value) == (
        "OpenVINOExecutionProvider was requested but onnxruntime fell back to CPUExecutionProvider "
        "(the provider failed to load: check its libraries); "
        "set session.allow_cpu_fallback: true to accept this"
    )
    assert len(created) == 2


# --- infer: outputs by name, failures named, run timed alone ----------------------------------------

BEFORE_ACTIVATE = r"^ProviderSession\.infer called before activate\(\)$"


def test_infer_before_activate_or_after_deactivate_is_a_bug_said_plainly(tmp_path):
    session = ProviderSession(_detector(tmp_path), [ProviderConfig("cpu")], SessionConfig())
    with pytest.raises(RuntimeError, match=BEFORE_ACTIVATE):
        session.infer(np.zeros((1, 3, 8, 8), np.float32))
    with session:
        session.infer(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(RuntimeError, match=BEFORE_ACTIVATE):
        session.infer(np.zeros((1, 3, 8, 8), np.float32))


def test_outputs_are_fetched_by_name_whatever_their_order_in_the_graph(tmp_path):
    model = table_detector([0.0], [[Det(1, 2, 3, 4, 18)]], [(10, 10)], input_size=8)
    boxes, labels, scores = list(model.graph.output)
    del model.graph.output[:]
    model.graph.output.extend([scores, labels, boxes])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    raw, _ = _open(path).infer(np.zeros((1, 3, 8, 8), np.float32))
    np.testing.assert_allclose(raw.boxes, [[0.1, 0.2, 0.4, 0.6]], rtol=1e-6)
    assert raw.labels.tolist() == [17] and raw.scores.shape == (1,)


def test_onnxruntime_failing_on_an_input_is_its_first_line(tmp_path):
    path = _detector(tmp_path)
    with pytest.raises(InferenceFailed) as caught:
        _open(path).infer(np.zeros((1, 3, 9, 8), np.float32))
    # onnxruntime's message is three lines; the first says what is wrong.
    assert str(caught.value) == (
        f"onnxruntime failed running model {path} on CPUExecutionProvider: [ONNXRuntimeError] : 2 : "
        "INVALID_ARGUMENT : Got invalid dimensions for input: image for the following indices"
    )


def test_onnxruntime_failing_without_a_message_is_named_by_its_type(tmp_path, monkeypatch):
    import onnxruntime as ort

    path = _detector(tmp_path)
    session = _open(path)

    def run(self, output_names, input_feed, run_options=None):
        raise Fail()

    monkeypatch.setattr(ort.InferenceSession, "run", run)
    with pytest.raises(InferenceFailed) as caught:
        session.infer(np.zeros((1, 3, 8, 8), np.float32))
    assert str(caught.value) == f"onnxruntime failed running model {path} on CPUExecutionProvider: Fail"


def test_the_seconds_are_those_of_run_alone(tmp_path, monkeypatch):
    session = _open(_detector(tmp_path))
    tensor = np.zeros((1, 3, 8, 8), np.float32)
    ticks = iter([100.0, 100.25])
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    _, seconds = session.infer(tensor)
    monkeypatch.undo()
    assert seconds == 0.25
