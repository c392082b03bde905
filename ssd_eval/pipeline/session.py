"""One onnxruntime session on one execution provider: resolution, signature check, timed run.

Like a Polygraphy runner it has a lifecycle (a context manager), resolves forgiving provider names
with an error that lists what *is* available, and refuses a silent fallback to CPU: onnxruntime
quietly drops a provider that fails to load (microsoft/onnxruntime#23372), so the providers the
session really uses are checked after creation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from ssd_eval.config.run import OutputNames, ProviderConfig, SessionConfig
from ssd_eval.errors import ModelError, ProviderError
from ssd_eval.pipeline.output_contract import check_output_arrays, check_output_signature

log = logging.getLogger(__name__)

# Short names users type -> onnxruntime's provider names.
PROVIDER_ALIASES: Mapping[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "ov": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "onednn": "DnnlExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
    "cann": "CANNExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
}

_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def canonical_provider_name(name: str, known: Sequence[str]) -> str | None:
    """`cuda`, `CUDA`, `CUDAExecutionProvider` -> `CUDAExecutionProvider`; None if unrecognised."""
    key = name.strip().lower()
    if key in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[key]
    for full in [*known, *PROVIDER_ALIASES.values()]:
        lowered = full.lower()
        if key in (lowered, lowered.removesuffix("executionprovider")):
            return full
    return None


def resolve_provider(name: str, *, available: Sequence[str], all_known: Sequence[str]) -> str:
    """The full provider name, checked against the providers this onnxruntime build has."""
    full = canonical_provider_name(name, all_known)
    shown = ", ".join(available)
    if full is None:
        aliases = ", ".join(sorted(PROVIDER_ALIASES))
        raise ProviderError(
            f"unknown execution provider {name!r}; short names: {aliases}; available here: {shown}"
        )
    if full not in available:
        hint = {
            "CUDAExecutionProvider": "pip install onnxruntime-gpu (in place of onnxruntime)",
            "TensorrtExecutionProvider": "pip install onnxruntime-gpu and TensorRT",
            "OpenVINOExecutionProvider": "pip install onnxruntime-openvino (in place of onnxruntime)",
            "DmlExecutionProvider": "pip install onnxruntime-directml (Windows)",
        }.get(full, "install an onnxruntime build that includes it")
        raise ProviderError(
            f"execution provider {full} is not available in this onnxruntime (available: {shown}); {hint}"
        )
    return full


@dataclass(frozen=True)
class ModelSignature:
    """What the session found in the model: input name and size, output names."""

    input_name: str
    input_height: int | None  # None when the model's input size is symbolic
    input_width: int | None
    outputs: OutputNames


def check_signature(
    inputs: Sequence[Any], outputs: Sequence[Any], *, model: Path, input_name: str, output_names: OutputNames
) -> ModelSignature:
    """One float input `[1, 3, H, W]` and the three detection outputs, or a ModelError saying what differs."""
    described = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
    if len(inputs) != 1:
        raise ModelError(f"model {model} has {len(inputs)} inputs ({described}); expected one image input")
    (tensor,) = inputs
    if tensor.name != input_name:
        raise ModelError(
            f"model {model} input is named {tensor.name!r}, not {input_name!r}: set model.input in the config"
        )
    shape = list(tensor.shape)
    batch_ok = len(shape) == 4 and (shape[0] in (1, None) or isinstance(shape[0], str))
    if tensor.type != "tensor(float)" or not batch_ok or shape[1] != 3:
        raise ModelError(f"model {model} input is {described}; expected float32 [1, 3, H, W]")
    height = shape[2] if isinstance(shape[2], int) else None
    width = shape[3] if isinstance(shape[3], int) else None
    found = {o.name for o in outputs}
    wanted = (output_names.boxes, output_names.labels, output_names.scores)
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ModelError(
            f"model {model} has no output {', '.join(repr(m) for m in missing)} "
            f"(outputs: {', '.join(sorted(found))});"
            " set model.outputs in the config"
        )
    check_output_signature(outputs, output_names, model=model)
    return ModelSignature(
        input_name=tensor.name, input_height=height, input_width=width, outputs=output_names
    )


class OrtSession(Protocol):
    """What ProviderSession uses of an `onnxruntime.InferenceSession`."""

    def run(self, output_names: list[str], input_feed: dict[str, np.ndarray]) -> list[Any]: ...
    def get_providers(self) -> list[str]: ...
    def get_provider_options(self) -> dict[str, dict[str, str]]: ...
    def get_inputs(self) -> list[Any]: ...
    def get_outputs(self) -> list[Any]: ...


class InferenceFailed(ModelError):
    """onnxruntime raised while running the model on one input (the caller names the image)."""


@dataclass(frozen=True)
class RawOutputs:
    """The model's three outputs for one image, batch dimension removed."""

    boxes: np.ndarray  # float32 [N, 4] normalized x1, y1, x2, y2
    labels: np.ndarray  # int64 [N]
    scores: np.ndarray  # float32 [N]
    names: OutputNames = field(default_factory=OutputNames)  # the model's names for them


class ProviderSession:
    """An onnxruntime InferenceSession on the requested providers (first = the one under test)."""

    def __init__(
        self,
        model: Path,
        providers: Sequence[ProviderConfig],
        session: SessionConfig,
        *,
        input_name: str = "image",
        outputs: OutputNames | None = None,
    ) -> None:
        self.model = model
        self.provider_configs = tuple(providers)
        self.session_config = session
        self._input_name = input_name
        self._output_names = outputs or OutputNames()
        self._session: OrtSession | None = None
        self.signature: ModelSignature | None = None
        self.providers_used: tuple[str, ...] = ()
        self.provider_options_used: tuple[dict[str, Any], ...] = ()

    def __enter__(self) -> ProviderSession:
        self.activate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()

    def activate(self) -> None:
        """Create the session and check providers and signature."""
        import onnxruntime as ort

        if not self.model.is_file():
            raise ModelError(
                f"model {self.model} not found: set model.path in the config (or --model), "
                "or use model.source to fetch a known model"
            )
        available = ort.get_available_providers()
        names = [
            resolve_provider(p.name, available=available, all_known=ort.get_all_providers())
            for p in self.provider_configs
        ]
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _OPT_LEVELS[self.session_config.graph_optimization_level]
        )
        options.intra_op_num_threads = self.session_config.intra_op_threads
        options.inter_op_num_threads = self.session_config.inter_op_threads
        options.log_severity_level = 3  # onnxruntime's own warnings would interleave with the progress bar
        provider_options = [{k: str(v) for k, v in p.options.items()} for p in self.provider_configs]
        try:
            self._session = ort.InferenceSession(
                str(self.model), sess_options=options, providers=names, provider_options=provider_options
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "protobuf" in text.lower() or "load model" in text.lower() or "model_path" in text.lower():
                raise ModelError(f"model {self.model} is not a valid ONNX model: {text}") from None
            raise ProviderError(
                f"cannot create an onnxruntime session for {self.model} on {names[0]}: {text}"
            ) from None
        self.providers_used = tuple(self._session.get_providers())
        # onnxruntime reports the options of every provider this CPU build uses (CPU's are {}); a build that
        # leaves one out must not end the run on a KeyError: that provider's options read as none.
        all_options = self._session.get_provider_options()
        self.provider_options_used = tuple(dict(all_options.get(p, {})) for p in self.providers_used)
        if self.providers_used[0] != names[0] and not self.session_config.allow_cpu_fallback:
            why = self._fallback_cause(ort, options, names, provider_options)
            raise ProviderError(
                f"{names[0]} was requested but onnxruntime fell back to {', '.join(self.providers_used)} "
                f"({why}); set session.allow_cpu_fallback: true to accept this"
            )
        self.signature = check_signature(
            self._session.get_inputs(),
            self._session.get_outputs(),
            model=self.model,
            input_name=self._input_name,
            output_names=self._output_names,
        )

    def _fallback_cause(
        self, ort: Any, options: Any, names: Sequence[str], provider_options: Sequence[dict[str, str]]
    ) -> str:
        """Why the requested provider did not load: its options, when it loads without them (OpenVINO
        refuses precision FP16 on the CPU device, for one: only FP32 or ACCURACY), else its libraries.
        onnxruntime says which only in its own log, so the provider is tried once more without options."""
        given = provider_options[0]
        if given and self._loads_without_options(ort, options, names[0]):
            shown = ", ".join(f"{k}={v}" for k, v in given.items())
            return (
                f"the provider loads, but refused its options {shown}: check them against the "
                "provider's documentation (OpenVINO on device_type CPU takes precision FP32 or ACCURACY, "
                "not FP16)"
            )
        return "the provider failed to load: check its libraries"

    def _loads_without_options(self, ort: Any, options: Any, provider: str) -> bool:
        """Whether onnxruntime keeps `provider` first when it is given no provider options."""
        try:
            bare = ort.InferenceSession(str(self.model), sess_options=options, providers=[provider])
        except Exception:  # onnxruntime's own exception types: the provider does not load at all
            return False
        return bool(bare.get_providers()[0] == provider)

    def deactivate(self) -> None:
        self._session = None

    def infer(self, tensor: np.ndarray) -> tuple[RawOutputs, float]:
        """Run one image; returns the outputs and the seconds `run` alone took."""
        if self._session is None or self.signature is None:
            raise RuntimeError("ProviderSession.infer called before activate()")
        names = [self.signature.outputs.boxes, self.signature.outputs.labels, self.signature.outputs.scores]
        start = time.perf_counter()
        try:
            boxes, labels, scores = self._session.run(names, {self.signature.input_name: tensor})
        except Exception as exc:  # onnxruntime's own exception types (Fail, InvalidArgument, ...)
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InferenceFailed(
                f"onnxruntime failed running model {self.model} on {self.providers_used[0]}: {text}"
            ) from None
        elapsed = time.perf_counter() - start
        boxes, labels, scores = np.asarray(boxes), np.asarray(labels), np.asarray(scores)
        check_output_arrays(boxes, labels, scores, self.signature.outputs, model=self.model)
        raw = RawOutputs(boxes[0], labels[0], scores[0], names=self.signature.outputs)
        return raw, elapsed
