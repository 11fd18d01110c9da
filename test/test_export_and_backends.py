"""ONNX export, parity, TensorRT operator support, and the backends on CPU."""
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from hydranet_ros.inference.backends.base import BackendError, PerResolution
from hydranet_ros.inference.backends import BackendOptions, create_backend
from hydranet_ros.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
from hydranet_ros.inference.backends.torch_backend import TorchBackend
from hydranet_ros.inference.export import OPSET, export_onnx, onnx_for_model, onnx_parity
from hydranet_ros.inference.graph import first_argmax
from hydranet_ros.inference.tensorrt_rules import tensorrt_findings
from hydranet_ros.model.hydranet import HEAD_NAMES
from hydranet_ros.model.model_file import load_model

CUDA = torch.cuda.is_available()


def _image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("output", ["input", "network"])
def test_postprocessed_export_is_valid_supported_and_matches_pytorch(street_model_file, tmp_path, output):
    model, spec = load_model(street_model_file)
    for height, width in [(120, 400), (480, 640)]:  # one graph per camera resolution; 640x480 is shrunk 2x+
        path = export_onnx(model, spec, tmp_path / f"m{height}.onnx", output, image_size=(height, width))
        graph = onnx.load(str(path))
        onnx.checker.check_model(graph)
        assert graph.opset_import[0].version >= OPSET
        assert [i.name for i in graph.graph.input] == ["image"]
        assert [o.name for o in graph.graph.output] == ["labels", "color", "confidence", "depth"]
        assert tensorrt_findings(graph) == []
        parity = onnx_parity(model, spec, path, _image(height, width), output)
        assert parity["depth_max_abs_diff_m"] < 1e-3
        assert parity["label_agreement"] > 0.999


def test_first_argmax_matches_torch_argmax_also_on_ties():
    scores = torch.randint(0, 3, (2, 6, 17, 23)).float()  # few values: many ties
    scores[0, :, 0, 0] = 1.0  # all channels tie: channel 0
    expected = scores.argmax(dim=1).float()
    assert torch.equal(first_argmax(scores), expected)
    assert first_argmax(scores)[0, 0, 0] == 0


def test_uint8_outputs_are_cast_from_float_and_colours_gathered_by_int32(street_model_file):
    """TensorRT converts UINT8 only from or to FLOAT/HALF (tensorrt_rules.py): labels, colours and
    confidence are Casts from float; the palette Gather takes int32 indices (no int64 anywhere)."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(onnx_for_model(street_model_file, "input", (96, 320))))
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.graph.value_info) + list(graph.graph.input)}
    types |= {i.name: i.data_type for i in graph.graph.initializer}
    producers = {output: node for node in graph.graph.node for output in node.output}
    for name in ("labels", "color", "confidence"):
        cast = producers[name]
        assert cast.op_type == "Cast" and types[cast.input[0]] == onnx.TensorProto.FLOAT, name
    color_gather = producers[producers["color"].input[0]]
    index = producers[color_gather.input[1]]
    assert color_gather.op_type == "Gather" and color_gather.input[0] == "palette"
    assert types["palette"] == onnx.TensorProto.FLOAT
    assert index.op_type == "Cast" and index.attribute[0].i == onnx.TensorProto.INT32
    assert producers["labels"].input[0] == index.input[0]  # one float argmax serves both
    image_users = [node for node in graph.graph.node if "image" in node.input]
    assert [node.op_type for node in image_users] == ["Cast"]  # the uint8 image feeds a Cast only
    assert [n.op_type for n in graph.graph.node if n.op_type in ("ArgMax", "TopK")] == []


@pytest.mark.skipif(CUDA, reason="auto would start PyTorch CUDA here")
def test_auto_never_picks_onnxruntime_on_cuda_but_it_can_be_asked_for(street_model_file, monkeypatch):
    from hydranet_ros.inference.backends import choose
    monkeypatch.setattr(choose, "_cuda_available", lambda: True)  # reach the CUDA candidates on this CPU
    with pytest.raises(BackendError) as by_name:
        create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cuda"))
    assert "onnxruntime/cuda" in str(by_name.value)
    with pytest.raises(BackendError) as auto:
        create_backend(street_model_file, BackendOptions(backend="auto", device="cuda"))
    assert "tensorrt/cuda" in str(auto.value) and "torch/cuda" in str(auto.value)
    assert "onnxruntime" not in str(auto.value)


def test_raw_export_has_named_heads_and_fixed_size(street_model_file, tmp_path):
    import onnxruntime as ort
    model, spec = load_model(street_model_file)
    path = export_onnx(model, spec, tmp_path / "raw.onnx", raw=True, image_size=(96, 320))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["segmentation_logits", "depth"]
    x = np.random.default_rng(1).standard_normal((1, 3, 96, 320)).astype(np.float32)
    logits, depth = session.run(None, {"input": x})
    with torch.no_grad():
        ref_logits, ref_depth = model(torch.from_numpy(x))
    assert logits.shape == (1, 6, 24, 80)
    assert np.abs(ref_depth.numpy() - depth).max() < 1e-3
    assert tensorrt_findings(onnx.load(str(path))) == []


def test_torch_and_onnxruntime_backends_agree_on_cpu(street_model_file):
    image = _image(150, 500)
    model, spec = load_model(street_model_file)
    torch_prediction = TorchBackend(model, spec).infer(image)
    ort_prediction = OnnxRuntimeBackend(onnx_for_model(street_model_file, "input", (150, 500))).infer(image)
    assert torch_prediction.labels.shape == (150, 500) and torch_prediction.color.shape == (150, 500, 3)
    assert ort_prediction.depth.dtype == np.float32
    assert (torch_prediction.labels == ort_prediction.labels).mean() > 0.999
    assert np.abs(torch_prediction.depth - ort_prediction.depth).max() < 1e-3
    palette = spec.palette_array()
    assert np.array_equal(ort_prediction.color, palette[ort_prediction.labels])
    assert ort_prediction.confidence.dtype == np.uint8 and ort_prediction.confidence.shape == (150, 500)
    assert np.abs(torch_prediction.confidence.astype(int) - ort_prediction.confidence).max() <= 1


@pytest.mark.parametrize("bias, expected", [(0.0, int(255 / 6 + 0.5)), (30.0, 255)])  # 42.5 rounds up
def test_confidence_is_255_times_the_highest_class_probability(street_model_file, tmp_path, bias, expected):
    """A segmentation head with zero weights gives every pixel the logits of its bias: all zero is
    a uniform softmax over the 6 classes (255 / 6); one class far ahead is certainty (255)."""
    from hydranet_ros.model.model_file import save_model
    model, spec = load_model(street_model_file)
    head = getattr(model, HEAD_NAMES["segmentation"])
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[2] = bias
    path = save_model(tmp_path / "flat.pt", model, spec)
    image = _image(96, 320)
    for prediction in (TorchBackend(*load_model(path)).infer(image),
                       OnnxRuntimeBackend(onnx_for_model(path, "input", (96, 320))).infer(image)):
        assert (prediction.labels == (2 if bias else 0)).all()
        assert (prediction.confidence == expected).all(), np.unique(prediction.confidence)


def test_auto_on_cpu_picks_onnxruntime_for_fp32_and_says_why(street_model_file, caplog):
    if CUDA:
        pytest.skip("this machine has a GPU; auto may choose a CUDA backend")
    with caplog.at_level(logging.INFO, logger="hydranet_ros.backends"):
        backend, skipped = create_backend(street_model_file, BackendOptions(backend="auto", device="auto"))
    assert backend.name == "onnxruntime" and backend.device == "cpu"
    assert "auto chose onnxruntime on cpu (fp32): the fastest fp32 CPU backend measured" in caplog.text
    assert any("tensorrt" in reason for reason in skipped)


def test_bad_backend_requests_are_refused_with_reasons(street_model_file):
    with pytest.raises(BackendError, match="backend must be one of"):
        create_backend(street_model_file, BackendOptions(backend="tflite"))
    if not CUDA:
        with pytest.raises(BackendError, match="no CUDA device"):
            create_backend(street_model_file, BackendOptions(backend="torch", device="cuda"))
        with pytest.raises(BackendError, match="fp16 needs a CUDA device"):
            TorchBackend(*load_model(street_model_file), precision="fp16")


def test_input_size_override_sets_the_pixel_budget_and_the_aspect_ratio_is_kept(street_model_file):
    backend, _ = create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu",
                                                                  input_size=(64, 128), output="network"))
    assert backend.infer(_image(100, 300)).labels.shape == (48, 160)  # about 64 x 128 pixels, 1:3 as the image


def test_onnxruntime_keeps_one_graph_per_camera_resolution(street_model_file):
    backend, _ = create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu"))
    assert isinstance(backend, PerResolution)
    for height, width in [(100, 300), (200, 200), (100, 300)]:
        assert backend.infer(_image(height, width)).labels.shape == (height, width)
    assert list(backend._backends) == [(96, 320), (200, 200), (100, 300)]


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_torch_cuda_fp16_cuda_graphs_match_cpu(street_model_file):
    image = _image(375, 1242)
    model, spec = load_model(street_model_file)
    cpu = TorchBackend(model, spec).infer(image)
    gpu_backend = TorchBackend(*load_model(street_model_file), device="cuda", precision="fp16")
    assert gpu_backend.cuda_graphs and gpu_backend.channels_last
    for _ in range(2):  # the second call replays the captured graph
        gpu = gpu_backend.infer(image)
    assert (gpu.labels == cpu.labels).mean() > 0.98
    assert np.nanmax(np.abs(gpu.depth - cpu.depth)) < 0.05 * np.nanmax(cpu.depth)


def test_benchmark_times_the_whole_path_beside_the_bare_onnxruntime_session(street_model_file):
    from hydranet_ros.inference.benchmark import benchmark_backend
    record = benchmark_backend(street_model_file, "onnxruntime", "cpu", (96, 320), iterations=3, warmup=1,
                               precision="fp32")
    assert {"pre", "inference", "post", "total"} <= set(record)
    assert record["bare_session_run"]["median_ms"] > 0 and record["total_over_bare_session_run"] > 0


def test_fp16_export_runs_the_network_in_fp16_and_matches_fp32(street_model_file):
    """The graph a strongly typed TensorRT network builds in fp16; ONNX Runtime runs it here."""
    import onnxruntime as ort
    fp32 = onnx_for_model(street_model_file, "input", (96, 320))
    fp16 = onnx_for_model(street_model_file, "input", (96, 320), precision="fp16")
    assert fp16 != fp32 and "-fp16-" in fp16.name
    graph = onnx.load(str(fp16))
    weights = {i.name: i.data_type for i in graph.graph.initializer}
    conv_types = {n.name: weights[n.input[1]] for n in graph.graph.node if n.op_type == "Conv"}
    depth_head = {name for name in conv_types if name.startswith(("/model/pre_depth/", "/model/depth/"))}
    assert len(depth_head) == 2  # fp16 steps are 3-6 cm beyond 32 m: the depth head stays fp32
    assert all(conv_types[name] == onnx.TensorProto.FLOAT for name in depth_head)
    assert all(kind == onnx.TensorProto.FLOAT16 for name, kind in conv_types.items() if name not in depth_head)
    assert [o.name for o in graph.graph.output] == ["labels", "color", "confidence", "depth"]
    assert tensorrt_findings(graph) == []
    image = _image(96, 320, seed=3)
    run = {path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["labels", "depth"], {"image": image[None]}) for path in (fp32, fp16)}
    (labels32, depth32), (labels16, depth16) = run[fp32], run[fp16]
    assert depth16.dtype == np.float32  # outputs stay fp32 for every consumer
    assert (labels16 == labels32).mean() > 0.99
    assert np.abs(depth16 - depth32).max() < 0.05


def test_onnxruntime_that_falls_back_to_the_cpu_is_refused(street_model_file, monkeypatch):
    """onnxruntime-gpu without its CUDA libraries builds a CPU-only session; reporting cuda would lie."""
    import onnxruntime as ort

    class CpuOnlySession:
        def __init__(self, path, options, providers):
            pass

        def get_providers(self):
            return ["CPUExecutionProvider"]

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", CpuOnlySession)
    with pytest.raises(BackendError, match="could not start its CUDAExecutionProvider"):
        OnnxRuntimeBackend(onnx_for_model(street_model_file, "input", (96, 320)), device="cuda")


def test_two_processes_making_the_same_export_make_it_once(street_model_file):
    """Two nodes starting together: the second waits for the first's export (cache.building) instead of
    exporting again; with an engine build that saves minutes."""
    script = ("import logging, sys; logging.basicConfig(level=logging.INFO, format='%(message)s'); "
              "from hydranet_ros.inference.export import onnx_for_model; "
              "print(onnx_for_model(sys.argv[1], 'input', (120, 400)))")
    env = os.environ | {"HYDRANET_CACHE": os.environ["HYDRANET_CACHE"] + "-two-processes"}
    processes = [subprocess.Popen([sys.executable, "-c", script, str(street_model_file)], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    paths = {stdout.strip() for stdout, _ in outputs}
    assert len(paths) == 1 and onnx.load(paths.pop()).graph.output[0].name == "labels"
    logs = "".join(stderr for _, stderr in outputs)
    assert logs.count("exporting") == 1, logs


def test_a_truncated_cached_export_is_made_again_not_trusted(street_model_file, caplog):
    """A cached export cut short (full disk, crash, copy) used to be trusted forever: ONNX Runtime failed
    on every start and auto quietly ran torch. Each cached file's hash is recorded and checked."""
    import onnxruntime as ort
    path = onnx_for_model(street_model_file, "input", (112, 352))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger="hydranet_ros.cache"):
        again = onnx_for_model(street_model_file, "input", (112, 352))
    assert again == path and path.read_bytes() == whole
    assert "damaged or incomplete; making it again" in caplog.text
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_a_full_disk_during_export_is_one_line_leaves_no_temporary_and_auto_falls_back(street_model_file,
                                                                                       monkeypatch):
    """ENOSPC can only be simulated here: the exporter writes 2 MB and then the disk is full."""
    import errno
    from hydranet_ros.cache import CacheError, cache_dir
    from hydranet_ros.inference import export

    def full_disk(model, spec, path, *args, **kwargs):
        Path(path).write_bytes(bytes(2 << 20))
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(export, "export_onnx", full_disk)
    with pytest.raises(CacheError, match=r"cannot write the ONNX export to .*\(No space left on device\); free space"):
        onnx_for_model(street_model_file, "input", (128, 384))
    leftovers = [p.name for p in (cache_dir() / "onnx").iterdir() if ".tmp" in p.name]
    assert leftovers == []
    backend, skipped = create_backend(street_model_file, BackendOptions(device="cpu", precision="fp32",
                                                                        camera_size=(128, 384)))
    assert backend.name in ("openvino", "torch") and any("No space left on device" in s for s in skipped), skipped


def test_a_lock_held_by_a_stopped_process_is_waited_for_a_bounded_time_naming_it(tmp_path):
    import signal
    from hydranet_ros.cache import CacheError, building
    target = tmp_path / "engine.plan"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, signal, sys; from pathlib import Path; from hydranet_ros.cache import building\n"
        "with building(Path(sys.argv[1])):\n"
        "    print('held', flush=True); os.kill(os.getpid(), signal.SIGSTOP)"), str(target)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CacheError, match=f"process {holder.pid} has held .*engine.plan.lock for more than 1 s"):
            with building(target, wait_s=1.0):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with building(target, wait_s=1.0):  # a dead holder's lock is free at once
        pass
