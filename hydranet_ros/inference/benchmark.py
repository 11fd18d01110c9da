"""hydranet benchmark: per-stage timings of the per-frame path, per backend and size; JSON out.

Stages (inference/pipeline.py): pre (camera layout -> RGB), inference (the backend: on-device
resize and normalisation, the network, argmax, colours, depth upsampling), post (REP 118 depth,
overlay, point cloud at stride 2; for torch and TensorRT on the device, with copy, the one copy of
every output to the host, inside it). On a GPU the stages are timed by CUDA events. For ONNX Runtime the
bare session.run on the same graph and input is timed in alternation with our path, so the overhead ratio
is measured side by side. compare_cpu runs every CPU backend and precision interleaved, frame by frame,
with each one's ratio to ONNX Runtime fp32, and ONNX Runtime fp32 once more with its outputs
post-processed by DevicePost, the torch post-processing of the GPU backends, on the CPU
(docs/architecture.md: why the host path keeps numpy). The command (cli/apps.py, `hydranet benchmark`)
also measures through perception_node in its own process (apps/node_benchmark.py).
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hydranet_ros.inference.backends import Backend, BackendError, BackendOptions, DeviceFrame, create_backend
from hydranet_ros.inference.backends.onnxruntime_backend import onnxruntime_session
from hydranet_ros.inference.graph import INPUT_NAME
from hydranet_ros.inference.pipeline import Perception, guess_intrinsics
from hydranet_ros.inference.postprocess import CloudRequest, CloudSettings
from hydranet_ros.model.model_file import load_model

SIZES = ((352, 1200), (480, 640), (240, 320))  # (height, width): camera image = network input


def percentiles(samples_ms: list[float]) -> dict:
    values = np.asarray(samples_ms)
    return {"median_ms": round(float(np.median(values)), 3), "p90_ms": round(float(np.percentile(values, 90)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3)}


def camera_frame(height: int, width: int) -> np.ndarray:
    """A BGR frame with structure (gradients and noise), as a camera driver would publish it."""
    rng = np.random.default_rng(height * width)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def network_input(spec, size: tuple[int, int], model_budget: bool) -> str:
    """WIDTHxHEIGHT of the network input for camera images of size (height, width): the model file's
    pixel budget (model_budget, the node's default) or the camera's own size."""
    height, width = spec.network_size(size) if model_budget else size
    return f"{width}x{height}"


class TensorOutputs(Backend):
    """A host backend whose outputs are handed over as CPU tensors, so that Perception post-processes
    them with DevicePost (torch) on the CPU instead of inference/postprocess.py (numpy)."""

    device_frames = True

    def __init__(self, backend: Backend):
        self.backend, self.name, self.device = backend, backend.name, "cpu"

    def infer_on_device(self, rgb: np.ndarray) -> DeviceFrame:
        import torch
        prediction = self.backend.infer(rgb)
        return DeviceFrame(torch.from_numpy(rgb), tuple(torch.from_numpy(output) for output in (
            prediction.labels, prediction.color, prediction.confidence, prediction.depth)))

    def describe(self) -> str:
        return f"{self.backend.describe()} + torch post"


class FramePath:
    """One backend's whole per-frame path (pre, inference, post with the point cloud) on one camera frame;
    for ONNX Runtime also the bare session.run on the same graph and input."""

    def __init__(self, model_path: Path, name: str, device: str, size: tuple[int, int], precision: str,
                 calibration=None, model_budget: bool = False, torch_post: bool = False):
        """model_budget: the network runs at the model file's pixel budget, as the node does by default;
        else at the camera's size. torch_post: a host backend's outputs post-processed by DevicePost."""
        backend, _ = create_backend(model_path, BackendOptions(
            backend=name, device=device, precision=precision, input_size=None if model_budget else size,
            calibration=calibration))
        spec = load_model(model_path)[1]
        self.perception = Perception(TensorOutputs(backend) if torch_post else backend, spec)
        self.network_input = network_input(spec, size, model_budget)
        self.frame = camera_frame(*size)
        self.intrinsics = guess_intrinsics(self.perception.spec, size[1], size[0])
        self.clouds = CloudRequest(CloudSettings(stride=2, max_depth=self.perception.spec.label_space.depth_range_m[1]))
        self.bare = None if torch_post else onnxruntime_session(backend, size)
        self.rgb = np.ascontiguousarray(self.frame[..., ::-1])[None]
        self.label = self.perception.backend.describe()
        self.size = f"{size[1]}x{size[0]}"
        self.samples = {"pre": [], "inference": [], "post": [], "total": [], "bare": []}
        self.device_clock = backend.device_frames and backend.device.startswith("cuda")

    def step(self, record: bool) -> None:
        start = time.perf_counter()
        result = self.perception.process(self.frame, "bgr8", overlay_alpha=0.5, camera=self.intrinsics,
                                         clouds=self.clouds)
        total = (time.perf_counter() - start) * 1e3
        if self.bare is not None:  # the same graph and input, straight into ONNX Runtime
            bare_start = time.perf_counter()
            self.bare.run(None, {INPUT_NAME: self.rgb})
            bare_time = (time.perf_counter() - bare_start) * 1e3
        if not record:
            return
        for stage, value in result.timings_ms.items():  # post includes the cloud; copy: device to host
            self.samples.setdefault(stage, []).append(value)
        self.samples["total"].append(total)
        if self.bare is not None:
            self.samples["bare"].append(bare_time)

    def record(self) -> dict:
        out = {"backend": self.label, "size": self.size, "network_input": self.network_input,
               "stage_clock": "CUDA events" if self.device_clock else "host",
               **{stage: percentiles(samples) for stage, samples in self.samples.items()
                  if samples and stage != "bare"}}
        out["fps"] = round(1000.0 / out["total"]["median_ms"], 2)
        if self.samples["bare"]:
            out["bare_session_run"] = percentiles(self.samples["bare"])
            out["total_over_bare_session_run"] = round(out["total"]["median_ms"]
                                                       / out["bare_session_run"]["median_ms"], 3)
        return out


def benchmark_backend(model_path: Path, name: str, device: str, size: tuple[int, int], iterations: int,
                      warmup: int, precision: str, calibration=None, model_budget: bool = False) -> dict:
    path = FramePath(model_path, name, device, size, precision, calibration, model_budget)
    for index in range(warmup + iterations):
        path.step(record=index >= warmup)
    return path.record()


# The CPU variants compared side by side (backend, precision, torch post-processing); the first is the
# reference (the CPU path before OpenVINO).
CPU_VARIANTS = (("onnxruntime", "fp32", False), ("onnxruntime", "int8", False), ("openvino", "fp32", False),
                ("openvino", "bf16", False), ("openvino", "int8", False), ("torch", "fp32", False),
                ("onnxruntime", "fp32", True))


def compare_cpu(model_path: Path, size: tuple[int, int], iterations: int, warmup: int, calibration,
                model_budget: bool = False) -> dict:
    """Every CPU backend and precision on one size, interleaved frame by frame so that load on the
    machine hits all alike; each total's median over the reference's (ONNX Runtime fp32)."""
    paths, skipped = [], []
    for name, precision, torch_post in CPU_VARIANTS:
        if precision == "int8" and not calibration:
            skipped.append(f"{name}/{precision}: no --calibration")
            continue
        try:
            path = FramePath(model_path, name, "cpu", size, precision, calibration, model_budget, torch_post)
        except (BackendError, ImportError) as error:
            skipped.append(f"{name}/{precision}: {error}")
            continue
        if path.label in {p.label for p in paths}:  # bf16 that fell back to fp32
            skipped.append(f"{name}/{precision}: runs as {path.label} on this CPU")
            continue
        paths.append(path)
    for index in tqdm(range(warmup + iterations), desc=f"cpu backends {size[1]}x{size[0]}", unit="round"):
        for path in paths:
            path.step(record=index >= warmup)
    records = [path.record() for path in paths]
    reference = records[0]["total"]["median_ms"]
    for record in records:
        record["total_vs_onnxruntime_fp32"] = round(record["total"]["median_ms"] / reference, 3)
    return {"results": records, "skipped": skipped}


def machine() -> dict:
    import os
    info = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    import onnxruntime
    info["onnxruntime"] = onnxruntime.__version__
    return info
