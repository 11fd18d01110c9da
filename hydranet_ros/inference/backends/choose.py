"""Inference backends behind one small interface: an RGB uint8 image in, host arrays out.

    backend.infer(rgb HxWx3 uint8) -> Prediction(labels, color, confidence, depth)

Every backend runs the same InferenceGraph (inference/graph.py), so resizing, normalisation,
argmax, colouring and depth upsampling run on the backend's device and only the finished
outputs come back to the host. All backends start from the same model file: ONNX Runtime
and TensorRT use an ONNX export of it for each camera resolution, cached by the model file's hash.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from hydranet_ros.inference.choices import BACKENDS, PRECISIONS
from hydranet_ros.inference.backend_base import Backend, BackendError, DeviceFrame, PerResolution, Prediction
from hydranet_ros.inference.device_post import DeviceBackend, PinnedStaging
from hydranet_ros.inference.export import load_for_inference, onnx_for_model
from hydranet_ros.inference.graph import INPUT_NAME, OUTPUT_NAMES, InferenceGraph, fold_batchnorm, half_network
from hydranet_ros.inference.quantize import int8_onnx
from hydranet_ros.model.model_file import ModelSpec

LOG = logging.getLogger("hydranet_ros.backends")
# auto tries these in order: the fastest first (measured: docs/benchmarks.md).
GPU_ORDER = (("tensorrt", "cuda"), ("torch", "cuda"))
# ONNX Runtime on CUDA hands its outputs to the host, so the rest of the frame cannot stay on the GPU
# (inference/device_post.py): it runs when asked for by name, never by auto.
BY_NAME_ONLY = (("onnxruntime", "cuda"),)
# On a CPU the fastest backend depends on the precision (docs/benchmarks.md: measured side by side).
CPU_ORDER = {"fp32": (("onnxruntime", "cpu"), ("openvino", "cpu"), ("torch", "cpu")),
             "int8": (("openvino", "cpu"), ("onnxruntime", "cpu"), ("torch", "cpu")),
             "bf16": (("openvino", "cpu"), ("onnxruntime", "cpu"), ("torch", "cpu"))}
WHY_FIRST = {("tensorrt", "cuda"): "the fastest GPU backend",
             ("onnxruntime", "cpu"): "the fastest fp32 CPU backend measured at the models' own network sizes "
                                     "(OpenVINO fp32 took 1.13x its time; docs/benchmarks.md)",
             ("openvino", "cpu"): "the fastest int8 and bf16 CPU backend measured (int8: 0.74x ONNX Runtime "
                                  "fp32's time, ONNX Runtime's int8 1.48x; docs/benchmarks.md)"}


CUDA_GRAPHS_KEPT = 4  # input shapes whose CUDA graph the torch backend keeps (a node sees one or two)


def auto_order(precision: str) -> tuple[tuple[str, str], ...]:
    return GPU_ORDER + CPU_ORDER[cpu_precision(precision)]


class TorchBackend(DeviceBackend):
    name = "torch"

    def __init__(self, model, spec: ModelSpec, device: str = "cpu", precision: str = "fp32",
                 output: str = "input", channels_last: bool | None = None, cuda_graphs: bool | None = None):
        import torch
        if precision not in ("fp32", "fp16"):
            raise BackendError(f"the torch backend runs fp32 or fp16, not {precision}")
        self.torch = torch
        self.device = device
        cuda = device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise BackendError("PyTorch sees no CUDA device")
        if precision == "fp16" and not cuda:
            raise BackendError("fp16 needs a CUDA device; use fp32 on CPU")
        self.channels_last = cuda if channels_last is None else channels_last
        self.cuda_graphs = cuda if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and not cuda:
            raise BackendError("CUDA graphs need a CUDA device")
        if cuda:
            torch.backends.cudnn.benchmark = True  # one camera size: the tuned kernels are reused every frame
        try:
            graph = InferenceGraph(fold_batchnorm(model), spec, output).eval().to(device)
            if precision == "fp16":
                half_network(graph.model)
            if self.channels_last:
                graph.model.to(memory_format=torch.channels_last)
        except torch.cuda.OutOfMemoryError as error:
            raise BackendError(f"out of GPU memory loading the model on {device}: {error}") from None
        self.graph = graph
        self.precision = precision
        self._captured = OrderedDict()  # input shape -> (static input, static outputs, CUDA graph)
        self.staging = PinnedStaging(CUDA_GRAPHS_KEPT)

    def describe(self) -> str:
        extras = [self.precision, "BatchNorm folded"] + (["channels_last"] if self.channels_last else []) + \
            (["CUDA graphs"] if self.cuda_graphs else [])
        return f"torch on {self.device} ({', '.join(extras)})"

    def _captured_for(self, shape: tuple[int, ...]):
        """The CUDA graph for one input shape, captured on first use; the CUDA_GRAPHS_KEPT most recent
        are kept (each holds its own memory pool)."""
        torch = self.torch
        if shape in self._captured:
            self._captured.move_to_end(shape)
            return self._captured[shape]
        static_input = torch.zeros(shape, dtype=torch.uint8, device=self.device)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside the capture, as CUDA graphs require
            for _ in range(3):
                self.graph(static_input)
        torch.cuda.current_stream().wait_stream(stream)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(cuda_graph):
            static_outputs = self.graph(static_input)
        self._captured[shape] = (static_input, static_outputs, cuda_graph)
        if len(self._captured) > CUDA_GRAPHS_KEPT:
            self._captured.popitem(last=False)
        return self._captured[shape]

    def infer_on_device(self, rgb: np.ndarray) -> DeviceFrame:
        torch = self.torch
        with torch.inference_mode():
            image = torch.from_numpy(np.ascontiguousarray(rgb))[None]
            if self.device == "cpu":
                outputs = self.graph(image)
            elif not self.cuda_graphs:
                image = torch.empty(tuple(image.shape), dtype=torch.uint8, device=self.device)
                self.staging.upload(rgb, image[0])
                outputs = self.graph(image)
            else:  # straight from pinned host memory into the captured graph's input
                static_input, outputs, cuda_graph = self._captured_for(tuple(image.shape))
                self.staging.upload(rgb, static_input[0])
                cuda_graph.replay()
                image = static_input
        return DeviceFrame(image[0], tuple(output[0] for output in outputs))


def onnxruntime_session(backend: Backend, image_size: tuple[int, int]):
    """The ONNX Runtime session a backend runs images of image_size with (None for other backends):
    benchmarks time it bare, beside the whole per-frame path."""
    inner = backend.for_size(tuple(image_size)) if isinstance(backend, PerResolution) else backend
    return getattr(inner, "session", None)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32"):
        import onnxruntime as ort
        provider = "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise BackendError(f"ONNX Runtime here has no {provider} (it has {ort.get_available_providers()})")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.device = "cuda" if provider.startswith("CUDA") else "cpu"
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=[provider])
        except Exception as error:  # ORT raises its own types, OOM included
            raise BackendError(f"ONNX Runtime could not load {onnx_path} on {self.device}: {error}") from None
        if provider not in self.session.get_providers():  # e.g. CUDA without its cuDNN: ORT runs on the CPU
            raise BackendError(f"ONNX Runtime could not start its {provider} (the session has "
                               f"{self.session.get_providers()}); it would run on the CPU while reporting "
                               f"{self.device}")
        self.onnx_path = Path(onnx_path)
        self.precision = precision  # int8: the Q/DQ graph from inference/quantize.py

    def describe(self) -> str:
        return f"onnxruntime on {self.device} ({self.precision})"

    def infer(self, rgb: np.ndarray) -> Prediction:
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(rgb)[None]})
        return Prediction(*(output[0] for output in outputs))


def _cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def cpu_precision(precision: str) -> str:
    """fp16 is the GPU default; CPUs run fp32 for it. bf16 and int8 are asked for on purpose."""
    return "fp32" if precision == "fp16" else precision


def create_backend(model_path: str | Path, backend: str = "auto", device: str = "auto",
                   precision: str = "fp16", output: str = "input", threads: int | None = None,
                   engine_options: dict | None = None, input_size: tuple[int, int] | None = None,
                   calibration: str | Path | None = None,
                   camera_size: tuple[int, int] | None = None) -> tuple[Backend, list[str]]:
    """Builds the backend and returns it with the reasons for skipping others (for `auto`).

    device: auto, cpu or cuda. precision: fp16 (GPU default; fp32 on CPUs), fp32, bf16 (OpenVINO on
    CPUs that have it), int8 (calibrated on the images in the calibration folder; inference/quantize.py).
    camera_size (height, width): the camera's resolution, prepared at start (export, engine, int8
    graph, compiled model) instead of on its first frame; default the model's own input size.
    """
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    cuda = _cuda_available()
    if device == "cuda" and not cuda:
        raise BackendError("device is cuda but no CUDA device is available (PyTorch sees none)")
    pool = auto_order(precision) + (() if backend == "auto" else BY_NAME_ONLY)
    candidates = [(name, dev) for name, dev in pool if (backend in ("auto", name)) and (device in ("auto", dev))]
    skipped = []
    for name, dev in candidates:
        if dev == "cuda" and not cuda:
            skipped.append(f"{name}/cuda: no CUDA device")
            continue
        try:
            chosen = _build(name, dev, model_path, precision if dev == "cuda" else cpu_precision(precision),
                            output, threads, engine_options, input_size, calibration, camera_size)
        except Exception as error:  # noqa: BLE001 - any failure of one candidate (an export's RuntimeError,
            # an older torch's TypeError, TensorRT's own errors) must let auto try the next one
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if not isinstance(error, (BackendError, ImportError)):
                reason = f"{type(error).__name__}: {reason}"
            skipped.append(f"{name}/{dev}: {reason}")
            LOG.debug("backend %s/%s failed", name, dev, exc_info=True)  # the traceback, for a bug report
            if backend != "auto":
                raise BackendError("; ".join(skipped)) from None
            LOG.warning("backend %s/%s unavailable, trying the next: %s", name, dev, reason)
            continue
        if backend == "auto" and (name, dev) in WHY_FIRST:
            LOG.info("auto chose %s: %s", chosen.describe(), WHY_FIRST[(name, dev)])
        return chosen, skipped
    raise BackendError("no backend could start: " + "; ".join(skipped))


def _build(name, device, model_path, precision, output, threads, engine_options, input_size,
           calibration, camera_size) -> Backend:
    model, spec = load_for_inference(model_path, input_size)
    if name == "torch":
        return TorchBackend(model, spec, device, precision, output)
    first_size = tuple(camera_size or spec.input_size)  # made at start: a backend that cannot run fails here

    if name == "tensorrt":
        from hydranet_ros.inference.tensorrt_engine import TensorRTBackend, engine_for_onnx, onnx_for_engine
        return PerResolution(lambda size: TensorRTBackend(engine_for_onnx(
            onnx_for_engine(model_path, output, size, precision, calibration, input_size), precision,
            **(engine_options or {}))), first_size)
    export_precision = "fp16" if precision == "fp16" and device == "cuda" else "fp32"

    def graph(size):  # the fp16 export on a GPU, the fp32 one, or its calibrated int8 version
        onnx_path = onnx_for_model(model_path, output, size, input_size, export_precision)
        return int8_onnx(onnx_path, calibration, size, "cpu") if precision == "int8" else onnx_path
    if name == "onnxruntime":
        if precision not in ("fp32", "int8") and device == "cpu":
            raise BackendError(f"ONNX Runtime on the CPU runs fp32 or int8, not {precision}")
        graph_precision = "int8" if precision == "int8" else export_precision
        return PerResolution(lambda size: OnnxRuntimeBackend(graph(size), device, threads, graph_precision),
                             first_size)
    from hydranet_ros.inference.openvino_backend import OpenVinoBackend
    return PerResolution(lambda size: OpenVinoBackend(graph(size), precision, threads), first_size)
