"""OpenVINO and calibrated int8 on the CPU: agreement with fp32, the compiled-model cache, fallbacks,
the quantize command, the CPU benchmark, and the accuracy gate on real frames."""
import logging
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from conftest import shared_path
from hydranet_ros.inference.backends.base import BackendError
from hydranet_ros.inference.backends import BackendOptions, create_backend
from hydranet_ros.inference.benchmark import camera_frame
from hydranet_ros.inference.export import onnx_for_model
from hydranet_ros.inference.quantize import float_convolutions, int8_onnx

pytest.importorskip("openvino")


def cpu_backend(model_path, name, precision="fp32", **options):
    return create_backend(model_path, BackendOptions(backend=name, device="cpu", precision=precision, **options))[0]


def _agreement(a, b):
    return float((a.labels == b.labels).mean()), float(np.nanmean(np.abs(a.depth - b.depth)) / np.nanmean(b.depth))


def test_openvino_fp32_matches_onnxruntime(street_model_file):
    frame = camera_frame(150, 500)
    reference = cpu_backend(street_model_file, "onnxruntime").infer(frame)
    openvino = cpu_backend(street_model_file, "openvino")
    assert openvino.describe() == "openvino on cpu (fp32)"
    prediction = openvino.infer(frame)
    assert prediction.labels.shape == (150, 500) and prediction.labels.dtype == np.uint8
    assert prediction.color.shape == (150, 500, 3) and prediction.depth.dtype == np.float32
    labels_agree, depth_change = _agreement(prediction, reference)
    assert labels_agree > 0.999 and depth_change < 1e-4


def test_compiled_model_is_cached_and_a_corrupt_cache_is_compiled_again(street_model_file, tmp_path, monkeypatch,
                                                                        caplog):
    monkeypatch.setenv("HYDRANET_CACHE", str(tmp_path))
    frame = camera_frame(96, 320)
    first = cpu_backend(street_model_file, "openvino").infer(frame)
    blobs = list((tmp_path / "openvino").glob("*.blob"))
    assert len(blobs) == 1
    stamp = blobs[0].stat().st_mtime_ns
    cpu_backend(street_model_file, "openvino").infer(frame)
    assert blobs[0].stat().st_mtime_ns == stamp  # imported, not compiled and written again
    blobs[0].write_bytes(b"not a compiled model")
    with caplog.at_level(logging.WARNING, logger="hydranet_ros.openvino"):
        again = cpu_backend(street_model_file, "openvino").infer(frame)
    assert "unreadable" in caplog.text and "compiling again" in caplog.text
    assert blobs[0].read_bytes() != b"not a compiled model"
    assert np.array_equal(again.labels, first.labels)


def test_bf16_runs_where_the_cpu_has_it_and_falls_back_with_a_log_line(street_model_file, caplog):
    import openvino
    from hydranet_ros.inference.backends.openvino_backend import cpu_capabilities
    with caplog.at_level(logging.WARNING, logger="hydranet_ros.openvino"):
        backend = cpu_backend(street_model_file, "openvino", "bf16")
    if "BF16" in cpu_capabilities(openvino.Core()):
        assert backend.describe() == "openvino on cpu (bf16)"
    else:
        assert backend.describe() == "openvino on cpu (fp32)"
        assert "no bf16 instructions" in caplog.text
    assert backend.infer(camera_frame(96, 320)).labels.shape == (96, 320)


def test_int8_without_calibration_says_how_to_make_it(street_model_file):
    for name in ("openvino", "onnxruntime"):
        with pytest.raises(BackendError, match="int8 needs calibration frames.*hydranet quantize"):
            cpu_backend(street_model_file, name, "int8")
    with pytest.raises(BackendError, match="calibration folder /nonexistent does not exist"):
        cpu_backend(street_model_file, "openvino", "int8", calibration="/nonexistent")


def test_int8_graph_is_calibrated_once_keeps_the_sensitive_convolutions_float_and_runs(street_model_file,
                                                                                       calibration_folder):
    fp32 = onnx_for_model(street_model_file, "input", (96, 320))
    path = int8_onnx(fp32, calibration_folder, (96, 320))
    graph = onnx.load(str(path)).graph
    quantized_inputs = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convolutions = {node.name: node for node in graph.node if node.op_type == "Conv"}
    kept_float = float_convolutions(fp32)
    assert {"/model/depth/Conv", "/model/pre_depth/Conv", "/model/layer1/layer1.0/Conv"} <= set(kept_float)
    assert not any(name.startswith(("/model/layer4/", "/model/crp", "/model/segm", "/model/pre_segm"))
                   for name in kept_float)
    for name, node in convolutions.items():
        assert (node.input[1] in quantized_inputs) == (name not in kept_float), name
    stamp = path.stat().st_mtime_ns
    assert int8_onnx(fp32, calibration_folder, (96, 320)) == path and path.stat().st_mtime_ns == stamp
    frame = camera_frame(96, 320)
    reference = cpu_backend(street_model_file, "onnxruntime").infer(frame)
    for name in ("openvino", "onnxruntime"):
        backend = cpu_backend(street_model_file, name, "int8", calibration=calibration_folder)
        labels_agree, depth_change = _agreement(backend.infer(frame), reference)
        assert labels_agree > 0.9 and depth_change < 0.1, (name, labels_agree, depth_change)
    if not torch.cuda.is_available():  # auto takes OpenVINO for int8 on a CPU (fastest there)
        assert create_backend(street_model_file, BackendOptions(precision="int8", calibration=calibration_folder))[0] \
            .describe() == "openvino on cpu (int8)"


def test_int8_keeps_all_zero_convolutions_float_so_openvino_compiles_dead_blocks(tmp_path, calibration_folder):
    """Training can leave whole weight tensors at zero (round 3's K had five); with two equal ones quantized,
    which the exporter shares through an Identity, OpenVINO refused the int8 graph ("No suitable
    implementations")."""
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.model.model_file import ModelSpec, load_label_space, save_model
    torch.manual_seed(0)
    model = HydraNet(6)
    dead = ("layer7.1", "layer7.2")
    with torch.no_grad():
        for block in dead:
            model.get_submodule(f"{block}.output.0.0").weight.zero_()  # the expansion
    path = save_model(tmp_path / "dead_blocks.pt", model,
                      ModelSpec(["segmentation", "depth"], load_label_space("kitti6"), (96, 320)))
    fp32 = onnx_for_model(path, "input", (96, 320))
    assert any(node.op_type == "Identity" for node in onnx.load(str(fp32)).graph.node)
    kept_float = float_convolutions(fp32)
    for block in dead:
        assert f"/model/layer7/{block}/output/output.0/output.0.0/Conv" in kept_float
    assert not any(name.startswith(("/model/layer6/", "/model/layer8/")) for name in kept_float)
    frame = camera_frame(96, 320)
    reference = cpu_backend(path, "openvino").infer(frame)
    backend = cpu_backend(path, "openvino", "int8", calibration=calibration_folder)
    assert backend.describe() == "openvino on cpu (int8)"
    labels_agree, depth_change = _agreement(backend.infer(frame), reference)
    assert labels_agree > 0.9 and depth_change < 0.1, (labels_agree, depth_change)


def test_quantize_command_writes_the_graph_and_refuses_a_missing_folder(street_model_file, calibration_folder,
                                                                        tmp_path):
    out = tmp_path / "street_int8.onnx"
    command = [sys.executable, "-m", "hydranet_ros.cli.main", "quantize", str(street_model_file), "--calibration",
               str(calibration_folder), "--image-size", "96", "320", "--out", str(out)]
    process = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert f"int8 graph (Q/DQ ONNX) for cpu, 320x96 images: {out}" in process.stdout
    assert any(node.op_type == "QuantizeLinear" for node in onnx.load(str(out)).graph.node)
    trt_out = tmp_path / "street_int8_tensorrt.onnx"
    process = subprocess.run(command[:-1] + [str(trt_out), "--for", "tensorrt"], capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 0, process.stderr
    assert f"int8 graph (Q/DQ ONNX) for tensorrt, 320x96 images: {trt_out}" in process.stdout
    from hydranet_ros.inference.tensorrt_rules import tensorrt_findings
    assert tensorrt_findings(trt_out) == [] and tensorrt_findings(out) != []  # the cpu recipe is not for TensorRT
    command[command.index(str(calibration_folder))] = "/nonexistent"
    process = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert process.returncode == 2 and "--calibration: /nonexistent does not exist" in process.stderr
    assert "Traceback" not in process.stderr


def test_cpu_benchmark_runs_every_variant_interleaved_with_ratios(street_model_file, calibration_folder):
    from hydranet_ros.inference.benchmark import compare_cpu
    result = compare_cpu(street_model_file, (96, 320), iterations=2, warmup=1, calibration=[calibration_folder])
    names = [record["backend"] for record in result["results"]]
    assert names[0] == "onnxruntime on cpu (fp32)" and result["results"][0]["total_vs_onnxruntime_fp32"] == 1.0
    assert {"onnxruntime on cpu (int8)", "openvino on cpu (fp32)", "openvino on cpu (int8)",
            "torch on cpu (fp32, BatchNorm folded)",
            "onnxruntime on cpu (fp32) + torch post"} <= set(names)
    for record in result["results"]:
        assert len({record["total"]["median_ms"], record["inference"]["median_ms"]}) == 2
        assert record["total_vs_onnxruntime_fp32"] > 0


def test_int8_accuracy_gate_on_real_street_frames(tmp_path):
    """int8 against fp32 of the shipped street model on held-out real frames: at most 1 point of CamVid
    mIoU and 3 % of KITTI LiDAR depth RMSE lost. Calibrated on frames the model trained on (every 6th
    CamVid train frame, KITTI 0001 frames 0-19); the model card measures all 101 CamVid val frames,
    this test the first 20 and the held-out LiDAR frames 20-30."""
    from conftest import REPO
    from real_frames import precision_gate, street_calibration_folder
    data = shared_path("data")
    calibration = street_calibration_folder(data, tmp_path / "calibration")
    scores = precision_gate(REPO / "models" / "hydranet_street.pt", data, "street", calibration,
                            precisions=("int8",), camvid_limit=20)
    int8 = next(score for name, score in scores.items() if name.startswith("int8"))
    assert int8["miou_points_lost"] <= 1.0 and int8["rmse_percent_lost"] <= 3.0, scores


def test_node_runs_openvino_int8_from_its_parameters(ros, street_model_file, calibration_folder):
    from hydranet_ros.camera.intrinsics import Intrinsics
    from ros_harness import InProcessNode, RosClient, camera_info_message, image_message
    params = {"backend": "openvino", "precision": "int8", "int8_calibration": str(calibration_folder)}
    with InProcessNode(street_model_file, params) as node:
        tester = RosClient(topics=["depth/image"])
        assert tester.wait_for_node(), node.stop()[1]
        image = image_message(camera_frame(96, 320), 7_000_000_000)
        tester.info_pub.publish(camera_info_message(Intrinsics(300.0, 300.0, 159.5, 47.5, 320, 96), image.header))
        tester.spin(0.05)
        tester.image_pub.publish(image)
        assert tester.wait_for(lambda: tester.received["depth/image"], 60.0)
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0 and "openvino on cpu (int8)" in output, output
    depth = np.frombuffer(bytes(tester.received["depth/image"][-1].data), np.float32)
    assert np.isfinite(depth).any()


def test_the_model_card_figures_on_unseen_streets_are_what_the_real_frames_give():
    """models/metrics.json (the card's source) against a fresh run of the same scoring: the KITTI
    semantics drives held back from training and the LiDAR frames of other drives."""
    import json
    from conftest import REPO
    from hydranet_ros.inference.pipeline import Perception
    from hydranet_ros.model.model_file import load_model
    from real_frames import KITTI_SEMANTICS_HELD_BACK, kitti_other_drives, kitti_semantics
    data = shared_path("data")
    model = REPO / "models" / "hydranet_street.pt"
    card = json.loads((REPO / "models" / "metrics.json").read_text())["hydranet_street.pt"]
    perception = Perception(cpu_backend(model, "onnxruntime"), load_model(model)[1])
    segmentation = kitti_semantics(perception, data)
    depth = kitti_other_drives(perception, data)
    assert segmentation["frames"] == len(KITTI_SEMANTICS_HELD_BACK) and depth["frames"] == 3
    assert segmentation["miou"] == pytest.approx(card["kitti_semantics_heldback_segmentation"]["miou"], abs=1e-4)
    assert depth["rmse"] == pytest.approx(card["kitti_object_other_drives_lidar"]["rmse"], abs=1e-3)
    assert depth["abs_rel"] == pytest.approx(card["kitti_object_other_drives_lidar"]["abs_rel"], abs=1e-4)
