"""What TensorRT's ONNX parser rejects, or reads differently from ONNX, checked before TensorRT sees a file.

    tensorrt_findings(graph_or_path, fixed_shape=True) -> [Finding(rule, node, detail), ...]

`hydranet export`, `hydranet quantize --for tensorrt` and `hydranet build-engine` run it, and so do the
tests on every graph the project exports. Each rule names the source it was written from: the
TensorRT 11.1 headers (NVIDIA/TensorRT include/), onnx-tensorrt 10.1's docs/operators.md and
onnxOpImporters.cpp, and NVIDIA's answers in the TensorRT issue tracker. TensorRT 10.0 is the oldest
version this project builds with, so its parser's limits are the ones checked. Pure: onnx, no TensorRT.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# onnx-tensorrt docs/operators.md (10.0/10.1): "TensorRT 10.0 supports operators in the inclusive
# range of opset 9 to opset 20".
OPSET_RANGE = (9, 20)

FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
_F, _I, _B = FLOATS, {TensorProto.INT32, TensorProto.INT64}, {TensorProto.BOOL}
# The operators our graphs use or may come to use, with the types of their first input that
# onnx-tensorrt docs/operators.md (10.1, "Operator Support Matrix") lists as supported.
SUPPORTED_INPUT_TYPES = {
    **{op: _F for op in ("AveragePool BatchNormalization Ceil Clip Conv ConvTranspose Erf Exp Floor Gemm "
                         "GlobalAveragePool GlobalMaxPool HardSigmoid LeakyRelu MatMul MaxPool Pow Resize "
                         "Sigmoid Softmax Sqrt Tanh QuantizeLinear").split()},
    **{op: _F | _I for op in ("Abs Add ArgMax ArgMin Div Equal Greater Less Max Min Mul Neg Pad Range "
                              "ReduceMax ReduceMean ReduceMin ReduceSum Relu Sub TopK").split()},
    **{op: _F | _I | _B for op in ("Concat Constant ConstantOfShape Expand Flatten Gather GatherElements Identity "
                                   "Reshape Shape Slice Split Squeeze Tile Transpose Unsqueeze").split()},
    **{op: _B for op in "And Not Or".split()},
    "Where": _B,  # the condition; the branches take FP32, FP16, BF16, INT32, INT64, BOOL
    **{op: set() for op in ("Cast", "DequantizeLinear")},  # types checked by the rules of their own
}
# Constant is typed by its value; Casts and Q/DQ have rules of their own above.
NOT_TYPE_CHECKED = {"Constant", "Cast", "QuantizeLinear", "DequantizeLinear"}
RESIZE_MODES = {"nearest", "linear", "cubic"}  # onnxOpImporters.cpp importResize (10.1, lines 4396-4406)


@dataclass(frozen=True)
class Finding:
    rule: str
    node: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule} at {self.node}: {self.detail}"


def _type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type)


class _Graph:
    """The graph with every tensor's element type (shape inference) and constant values."""

    def __init__(self, model: onnx.ModelProto):
        self.model = onnx.shape_inference.infer_shapes(model)
        graph = self.model.graph
        self.types = {v.name: v.type.tensor_type.elem_type
                      for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
        self.values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for init in graph.initializer:
            self.types[init.name] = init.data_type
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                self.types[node.output[0]] = node.attribute[0].t.data_type
        self.inputs = {i.name for i in graph.input} - set(self.values)
        self.outputs = {o.name for o in graph.output}
        self.consumers = {}
        self.producers = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                self.producers[name] = node

    def type_of(self, name: str) -> int:
        return self.types.get(name, TensorProto.UNDEFINED)


def _name(node) -> str:
    return node.name or f"{node.op_type}({', '.join(node.output)})"


def _uint8_inputs_feed_casts(g: _Graph):
    # NvInferRuntimeBase.h (11.1, DataType::kUINT8): "Use the IdentityLayer to convert kUINT8 network-level
    # inputs to {kFLOAT, kHALF} prior to use with other TensorRT layers"; NVIDIA/TensorRT#3985 (kevinch-nv,
    # 2025-02-11): "All UINT8 inputs must directly feed into a cast layer ... even just data-movement ops
    # like reshape / transpose."
    for name in sorted(g.inputs):
        if g.type_of(name) != TensorProto.UINT8:
            continue
        for node in g.consumers.get(name, []):
            if node.op_type != "Cast":
                yield Finding("uint8-input-feeds-cast", _name(node),
                              f"UINT8 input {name!r} feeds {node.op_type}; TensorRT takes a UINT8 input only "
                              "into a Cast to FLOAT or FLOAT16")


def _uint8_casts_from_float(g: _Graph):
    # NvInferRuntimeBase.h (11.1, DataType::kUINT8): "kUINT8 conversions are only supported for {kFLOAT,
    # kHALF}" and "are not supported for {kINT8, kINT32, kBOOL}".
    allowed = {TensorProto.FLOAT, TensorProto.FLOAT16}
    for node in g.model.graph.node:
        if node.op_type != "Cast":
            continue
        source, target = g.type_of(node.input[0]), node.attribute[0].i
        if target == TensorProto.UINT8 and source not in allowed:
            yield Finding("uint8-cast-from-float", _name(node),
                          f"Cast {_type_name(source)} -> UINT8; TensorRT converts to UINT8 only from FLOAT or FLOAT16")
        if source == TensorProto.UINT8 and target not in allowed:
            yield Finding("uint8-cast-from-float", _name(node),
                          f"Cast UINT8 -> {_type_name(target)}; TensorRT converts UINT8 only to FLOAT or FLOAT16")


def _uint8_only_at_io(g: _Graph):
    # onnx-tensorrt docs/operators.md (10.1): "UINT8 is only supported as network input or output tensor types."
    for node in g.model.graph.node:
        if node.op_type in ("Cast", "QuantizeLinear", "DequantizeLinear"):
            continue  # Casts: the rule above; Q/DQ: the quantization rules
        inner = [n for n in node.input if n and n not in g.inputs and g.type_of(n) == TensorProto.UINT8]
        inner += [n for n in node.output if g.type_of(n) == TensorProto.UINT8]
        if inner:
            yield Finding("uint8-only-at-io", _name(node),
                          f"{node.op_type} on UINT8 tensor {inner[0]!r}; TensorRT has UINT8 only at the network's "
                          "inputs and outputs, converted by a Cast")


def _zero_point(g: _Graph, node):
    return node.input[2] if len(node.input) > 2 and node.input[2] else None


def _quantization_is_int8_symmetric(g: _Graph):
    # onnxOpImporters.cpp (10.1) QuantizeLinear/DequantizeLinear: a UINT8 zero point is replaced by INT8
    # with a warning (lines 1457-1461: every quantized value then means something else), and "TensorRT
    # only supports symmetric quantization. The zero point ... must be all zeros" (lines 1491-1494);
    # operators.md: QuantizeLinear "`y_zero_point` must be 0", DequantizeLinear "`x_zero_point` must be zero".
    for node in g.model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        point = _zero_point(g, node)
        quantized = node.input[0] if node.op_type == "DequantizeLinear" else node.output[0]
        kind = g.type_of(point) if point else g.type_of(quantized)
        if kind == TensorProto.UINT8:
            yield Finding("qdq-int8", _name(node), f"{node.op_type} quantizes to UINT8; TensorRT quantizes to "
                          "INT8 only and reads a UINT8 zero point as INT8")
        elif node.op_type == "DequantizeLinear" and kind not in (TensorProto.INT8, TensorProto.UNDEFINED):
            # operators.md (10.1): DequantizeLinear takes INT8, FP8, INT4: an INT32 bias cannot be dequantized
            yield Finding("dq-int8-input", _name(node), f"DequantizeLinear of {_type_name(kind)} "
                          f"{quantized!r}; TensorRT dequantizes INT8 (leave biases unquantized)")
        if point and point in g.values and np.any(g.values[point] != 0):
            yield Finding("qdq-symmetric", _name(node), f"{node.op_type} zero point {point!r} is not all zeros; "
                          "TensorRT only supports symmetric quantization")


def _fixed_input_shapes(g: _Graph):
    # The optimisation profile of a fixed-size export equals its shape (tensorrt_backend.ShapeProfile);
    # a dynamic dimension there would be built for one size and refused for any other.
    for value in g.model.graph.input:
        if value.name not in g.inputs:
            continue
        dims = value.type.tensor_type.shape.dim
        dynamic = [d.dim_param or "?" for d in dims if not d.HasField("dim_value")]
        if dynamic:
            yield Finding("fixed-input-shape", value.name, f"dimensions {dynamic} are dynamic where a fixed "
                          "profile is built")


def _operators_supported(g: _Graph):
    # onnx-tensorrt docs/operators.md (10.1): opset range and the Operator Support Matrix's types.
    for opset in g.model.opset_import:
        if opset.domain in ("", "ai.onnx") and not OPSET_RANGE[0] <= opset.version <= OPSET_RANGE[1]:
            yield Finding("opset", "graph", f"opset {opset.version} is outside TensorRT 10's {OPSET_RANGE[0]}.."
                          f"{OPSET_RANGE[1]}")
        elif opset.domain not in ("", "ai.onnx"):
            yield Finding("opset", "graph", f"operator domain {opset.domain!r} has no TensorRT importer")
    for node in g.model.graph.node:
        types = SUPPORTED_INPUT_TYPES.get(node.op_type)
        if types is None:
            yield Finding("operator", _name(node), f"{node.op_type} is not in the operators this check knows "
                          "TensorRT's parser to import")
            continue
        if node.op_type not in NOT_TYPE_CHECKED and node.input:
            kind = g.type_of(node.input[0])
            if kind not in types | {TensorProto.UNDEFINED, TensorProto.UINT8}:  # UINT8: uint8-only-at-io
                yield Finding("operator-type", _name(node), f"{node.op_type} on {_type_name(kind)}; TensorRT "
                              f"imports it for {sorted(_type_name(t) for t in types)}")
        if node.op_type == "Resize":
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            mode = attributes.get("mode", b"nearest").decode()
            if mode not in RESIZE_MODES:
                yield Finding("resize", _name(node), f"Resize mode {mode!r}; TensorRT imports {sorted(RESIZE_MODES)}")
            if attributes.get("antialias", 0):  # onnxOpCheckers.cpp (10.1) line 585: not supported
                yield Finding("resize", _name(node), "Resize with antialias=1; TensorRT does not support it")


RULES = (_uint8_inputs_feed_casts, _uint8_casts_from_float, _uint8_only_at_io, _quantization_is_int8_symmetric,
         _operators_supported)


def tensorrt_findings(graph: onnx.ModelProto | str | Path, fixed_shape: bool = True) -> list[Finding]:
    """Every construct of the graph that TensorRT's ONNX parser rejects or reads differently; [] when none."""
    model = graph if isinstance(graph, onnx.ModelProto) else onnx.load(str(graph))
    g = _Graph(model)
    rules = RULES + ((_fixed_input_shapes,) if fixed_shape else ())
    return [finding for rule in rules for finding in rule(g)]


def report(findings: list[Finding], limit: int = 5) -> str:
    """One line: the first findings and how many more."""
    shown = "; ".join(str(f) for f in findings[:limit])
    more = len(findings) - limit
    return shown + (f"; and {more} more" if more > 0 else "")
