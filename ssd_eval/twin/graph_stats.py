"""Parameter and multiply-accumulate counts of an ONNX model, read from its graph.

`onnx` is imported inside the functions: importing this module never needs it.

What counts as a parameter: a float initializer feeding a learned slot of a layer (the weight or
bias of Conv / ConvTranspose / Gemm, either operand of MatMul, the scale or bias of
BatchNormalization / InstanceNormalization). Everything else is a constant, not a weight: default
boxes, thresholds, shapes and indices, BatchNorm running mean and variance (buffers, as PyTorch
counts them). That matches what `sum(p.numel() for p in model.parameters())` gives for the
exported network.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

# op type -> the input slots that hold learned parameters
_PARAMETER_SLOTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (1, 2),
    "MatMul": (0, 1),
    "BatchNormalization": (1, 2),
    "InstanceNormalization": (1, 2),
}
_FLOAT_TYPES = frozenset({1, 10, 11, 16})  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


def count_parameters(model: onnx.ModelProto) -> int:
    """Number of learned float values (weights and biases) among the model's initializers."""
    initializers = {t.name: t for t in model.graph.initializer if t.data_type in _FLOAT_TYPES}
    learned: set[str] = set()
    for node in model.graph.node:
        for slot in _PARAMETER_SLOTS.get(node.op_type, ()):
            if slot < len(node.input) and node.input[slot] in initializers:
                learned.add(node.input[slot])
    return sum(math.prod(initializers[name].dims) for name in learned)


def count_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of one inference: Conv, ConvTranspose, Gemm and MatMul.

    Conv: output elements * (input channels / group) * kernel area. Shapes come from
    onnx.shape_inference; a layer whose shapes stay unknown (dynamic) raises ValueError rather
    than being silently left out.
    """
    shapes = _static_shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        try:
            inputs = [shapes[name] for name in node.input[:2]]
            output = shapes[node.output[0]]
        except KeyError:
            raise ValueError(
                f"count_macs: the shapes around {node.op_type} node {node.name!r} are unknown"
            ) from None
        total += _node_macs(node, inputs, output)
    return total


def _node_macs(node: onnx.NodeProto, inputs: list[tuple[int, ...]], output: tuple[int, ...]) -> int:
    if node.op_type == "Conv":
        weight = inputs[1]  # [cout, cin / group, kh, kw]
        return math.prod(output) * math.prod(weight[1:])
    if node.op_type == "ConvTranspose":
        data, weight = inputs  # weight [cin, cout / group, kh, kw]: each input element feeds a window
        return math.prod(data) * math.prod(weight[1:])
    if node.op_type == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        inner = inputs[0][0] if trans_a else inputs[0][1]
        return math.prod(output) * inner
    return math.prod(output) * inputs[0][-1]  # MatMul: every output element is a dot product


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Every tensor whose shape is fully known after shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    shapes: dict[str, tuple[int, ...]] = {t.name: tuple(t.dims) for t in graph.initializer}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = tuple(d.dim_value for d in dims)
    return shapes
