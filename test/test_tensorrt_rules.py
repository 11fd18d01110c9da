"""The TensorRT rules checker (inference/tensorrt_rules.py): it finds what TensorRT's ONNX parser rejects
in the constructs our graphs used to have, and nothing in any graph the project exports today."""
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from hydranet_ros.inference.export import export_onnx, onnx_for_model
from hydranet_ros.inference.quantize import int8_onnx
from hydranet_ros.inference.backends.tensorrt_backend import onnx_for_engine
from hydranet_ros.inference.tensorrt_rules import tensorrt_findings
from hydranet_ros.model.model_file import load_model


def _rules(findings):
    return {finding.rule for finding in findings}


class _GraphOfBefore(torch.nn.Module):
    """The two constructs the inference graph had until graph version 5: the uint8 image transposed
    before its Cast, and uint8 outputs cast from an int32 argmax."""

    def forward(self, image):
        x = image.permute(0, 3, 1, 2).float()
        index = x.mean(dim=1).to(torch.int32)
        return index.to(torch.uint8)


def test_finds_a_transposed_uint8_input_and_uint8_cast_from_int32(tmp_path):
    path = tmp_path / "before.onnx"
    torch.onnx.export(_GraphOfBefore(), (torch.zeros(1, 8, 8, 3, dtype=torch.uint8),), str(path),
                      input_names=["image"], output_names=["labels"], opset_version=19, dynamo=False)
    findings = tensorrt_findings(path)
    assert {"uint8-input-feeds-cast", "uint8-cast-from-float", "uint8-only-at-io"} <= _rules(findings)
    assert any("Cast INT32 -> UINT8" in str(f) for f in findings)
    assert any("feeds Transpose" in str(f) for f in findings)


def test_finds_asymmetric_uint8_quantization_and_int32_biases_in_the_cpu_int8_graph(street_model_file,
                                                                                    calibration_folder):
    """The CPU recipe (ONNX Runtime's defaults, kept for OpenVINO) is what TensorRT cannot take."""
    cpu = int8_onnx(onnx_for_model(street_model_file, "input", (96, 320)), calibration_folder, (96, 320), "cpu")
    rules = _rules(tensorrt_findings(cpu))
    assert {"qdq-int8", "qdq-symmetric", "dq-int8-input"} <= rules


@pytest.mark.parametrize("output", ["input", "network"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_graph_a_tensorrt_engine_builds_from_has_no_findings(street_model_file, calibration_folder,
                                                                   precision, output):
    path = onnx_for_engine(street_model_file, output, (128, 400), precision, calibration_folder)
    assert tensorrt_findings(path) == []
    graph = onnx.load(str(path)).graph
    if precision == "int8":  # symmetric int8 on the fp16 export: the float layers stay fp16
        assert "-fp16-" in path.name and "-int8-tensorrt-" in path.name
        points = [n.input[2] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        values = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
        values |= {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                   if n.op_type == "Constant"}
        assert points and all(values[p].dtype == np.int8 and not values[p].any() for p in points)
        assert not [n for n in graph.node if n.op_type == "DequantizeLinear" and "bias" in n.input[0]]
        scales = {values[n.input[1]].dtype for n in graph.node if n.op_type == "QuantizeLinear"}
        assert scales == {np.dtype(np.float16)}


def test_the_int8_graph_for_tensorrt_still_predicts_what_fp32_does(calibration_folder):
    """The symmetric int8 recipe on the fp16 graph keeps the shipped street model's outputs (ONNX Runtime
    runs it here). A model with random weights would not do: its near-equal logits tie in fp16."""
    import onnxruntime as ort
    from conftest import REPO
    from hydranet_ros.inference.benchmark import camera_frame
    frame = camera_frame(128, 400)[None]
    model = REPO / "models" / "hydranet_street.pt"
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's notes on the fp16 constants it cannot fold on a CPU
    run = {precision: ort.InferenceSession(str(onnx_for_engine(model, "input", (128, 400), precision,
                                                               calibration_folder)), options,
                                           providers=["CPUExecutionProvider"]).run(["labels", "depth"],
                                                                                   {"image": frame})
           for precision in ("fp32", "int8")}
    (labels32, depth32), (labels8, depth8) = run["fp32"], run["int8"]
    # measured here: 98.1 % of labels agree, mean depth change 4.4 % (on KITTI 0001 frames 20-30, calibrated
    # on real frames: 98.3 %, 1.8 %; docs/backends_and_tensorrt.md)
    assert (labels8 == labels32).mean() > 0.95
    assert np.nanmean(np.abs(depth8 - depth32)) / np.nanmean(depth32) < 0.05


def test_dynamic_input_dimensions_are_found_where_a_fixed_profile_is_built(street_model_file, tmp_path):
    model, spec = load_model(street_model_file)
    path = export_onnx(model, spec, tmp_path / "raw.onnx", raw=True)  # H and W dynamic
    assert _rules(tensorrt_findings(path)) == {"fixed-input-shape"}
    assert tensorrt_findings(path, fixed_shape=False) == []


def test_opset_operators_and_resize_attributes_outside_the_parser(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="linear", antialias=1),
             helper.make_node("Hardmax", ["r"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [scales]),
                              opset_imports=[helper.make_opsetid("", 21)])
    findings = tensorrt_findings(model)
    assert _rules(findings) == {"opset", "resize", "operator"}
    assert any("opset 21 is outside" in str(f) for f in findings)
    assert any("antialias" in str(f) for f in findings)
