"""Inference backends behind one small interface: an RGB uint8 image in, host arrays out.

    backend.infer(rgb HxWx3 uint8) -> Prediction(labels, color, depth)

Every backend runs the same InferenceGraph (inference/graph.py), so resizing, normalisation,
argmax, colouring and depth upsampling run on the backend's device and only the finished
outputs come back to the host. All backends start from the same model file: ONNX Runtime
and TensorRT use an ONNX export of it for each camera resolution, cached by the model file's hash.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hydranet_ros.cache import cache_dir
from hydranet_ros.inference.export import export_onnx, file_sha256
from hydranet_ros.inference.graph import INPUT_NAME, InferenceGraph
from hydranet_ros.model.model_file import ModelSpec, load_model

LOG = logging.getLogger("hydranet_ros.backends")
BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8")
# auto tries these in order: the fastest first (measured: README, Benchmarks).
AUTO_ORDER = (("tensorrt", "cuda"), ("torch", "cuda"), ("onnxruntime", "cuda"), ("onnxruntime", "cpu"), ("torch", "cpu"))


class BackendError(RuntimeError):
    """A backend that cannot run here; the message says why."""


@dataclass
class Prediction:
    labels: np.ndarray  # h x w uint8
    color: np.ndarray   # h x w x 3 uint8
    depth: np.ndarray   # h x w float32 metres


def load_for_inference(model_path: str | Path, input_size: tuple[int, int] | None = None):
    """load_model, with the pixel budget overridden when input_size is given."""
    model, spec = load_model(model_path)
    if input_size:
        spec = spec.with_pixel_budget(input_size)
    return model, spec


def onnx_for_model(model_path: str | Path, output: str, image_size: tuple[int, int],
                   input_size: tuple[int, int] | None = None) -> Path:
    """The post-processed ONNX export of a model file for camera images of image_size (height, width),
    made once and cached by content hash."""
    model, spec = load_for_inference(model_path, input_size)
    height, width = image_size
    net_height, net_width = spec.network_size(image_size)
    name = f"{file_sha256(model_path)[:16]}-{height}x{width}-net{net_height}x{net_width}-{output}.onnx"
    path = cache_dir() / "onnx" / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackendError(f"cannot write the cache folder {path.parent} ({error.strerror}); set engine_cache "
                           "(or HYDRANET_CACHE) to a writable folder") from None
    if not path.is_file():
        LOG.info("exporting %s to ONNX for %dx%d images at %s", model_path, width, height, path)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        export_onnx(model, spec, temporary, output, image_size=image_size)
        temporary.replace(path)  # atomic: a crash never leaves half a file in the cache
    return path


class Backend:
    name = "base"
    device = "cpu"

    def infer(self, rgb: np.ndarray) -> Prediction:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} on {self.device}"


class TorchBackend(Backend):
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
        try:
            graph = InferenceGraph(model, spec, output).eval().to(device)
            if precision == "fp16":
                graph.model.half()
            if self.channels_last:
                graph.model.to(memory_format=torch.channels_last)
        except torch.cuda.OutOfMemoryError as error:
            raise BackendError(f"out of GPU memory loading the model on {device}: {error}") from None
        self.graph = graph
        self.precision = precision
        self._captured = {}  # input shape -> (static input, static outputs, CUDA graph)

    def describe(self) -> str:
        extras = [self.precision] + (["channels_last"] if self.channels_last else []) + \
            (["CUDA graphs"] if self.cuda_graphs else [])
        return f"torch on {self.device} ({', '.join(extras)})"

    def _run_graph(self, image):
        if not self.cuda_graphs:
            return self.graph(image)
        shape = tuple(image.shape)
        if shape not in self._captured:
            torch = self.torch
            static_input = image.clone()
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
        static_input, static_outputs, cuda_graph = self._captured[shape]
        static_input.copy_(image)
        cuda_graph.replay()
        return static_outputs

    def infer(self, rgb: np.ndarray) -> Prediction:
        torch = self.torch
        with torch.inference_mode():
            image = torch.from_numpy(np.ascontiguousarray(rgb))[None]
            if self.device != "cpu":
                image = image.pin_memory().to(self.device, non_blocking=True)
            labels, color, depth = self._run_graph(image)
            return Prediction(labels[0].cpu().numpy(), color[0].cpu().numpy(), depth[0].cpu().numpy())


class PerResolution(Backend):
    """One backend per camera resolution, made on first use: exported graphs (ONNX, TensorRT
    engines) are built for one image size. Keeps the `limit` most recently used."""

    def __init__(self, factory, first_size: tuple[int, int], limit: int = 4):
        self.factory = factory
        self.limit = limit
        self._backends: OrderedDict[tuple[int, int], Backend] = OrderedDict()
        first = self.for_size(tuple(first_size))  # fails here, at start, if the backend cannot run
        self.name, self.device = first.name, first.device

    def for_size(self, size: tuple[int, int]) -> Backend:
        if size in self._backends:
            self._backends.move_to_end(size)
        else:
            self._backends[size] = self.factory(size)
            if len(self._backends) > self.limit:
                self._backends.popitem(last=False)
        return self._backends[size]

    def infer(self, rgb: np.ndarray) -> Prediction:
        return self.for_size(tuple(rgb.shape[:2])).infer(rgb)

    def describe(self) -> str:
        return next(reversed(self._backends.values())).describe()


def onnxruntime_session(backend: Backend, image_size: tuple[int, int]):
    """The ONNX Runtime session a backend runs images of image_size with (None for other backends):
    benchmarks time it bare, beside the whole per-frame path."""
    inner = backend.for_size(tuple(image_size)) if isinstance(backend, PerResolution) else backend
    return getattr(inner, "session", None)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "cpu", threads: int | None = None):
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
        self.onnx_path = Path(onnx_path)

    def infer(self, rgb: np.ndarray) -> Prediction:
        labels, color, depth = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(rgb)[None]})
        return Prediction(labels[0], color[0], depth[0])


def _cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def create_backend(model_path: str | Path, backend: str = "auto", device: str = "auto",
                   precision: str = "fp16", output: str = "input", threads: int | None = None,
                   engine_options: dict | None = None,
                   input_size: tuple[int, int] | None = None) -> tuple[Backend, list[str]]:
    """Builds the backend and returns it with the reasons for skipping others (for `auto`).

    device: auto, cpu or cuda. precision: fp16 (GPU default), fp32, int8 (TensorRT only).
    """
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    cuda = _cuda_available()
    if device == "cuda" and not cuda:
        raise BackendError("device is cuda but no CUDA device is available (PyTorch sees none)")
    candidates = [(name, dev) for name, dev in AUTO_ORDER
                  if (backend in ("auto", name)) and (device in ("auto", dev))]
    skipped = []
    for name, dev in candidates:
        if dev == "cuda" and not cuda:
            skipped.append(f"{name}/cuda: no CUDA device")
            continue
        try:
            chosen = _build(name, dev, model_path, precision if dev == "cuda" else "fp32", output, threads,
                            engine_options, input_size)
        except (BackendError, ImportError) as error:
            skipped.append(f"{name}/{dev}: {error}")
            if backend != "auto":
                raise BackendError("; ".join(skipped)) from None
            LOG.warning("backend %s/%s unavailable, trying the next: %s", name, dev, error)
            continue
        return chosen, skipped
    raise BackendError("no backend could start: " + "; ".join(skipped))


def _build(name, device, model_path, precision, output, threads, engine_options, input_size) -> Backend:
    model, spec = load_for_inference(model_path, input_size)
    if name == "torch":
        return TorchBackend(model, spec, device, precision, output)
    first_size = tuple(spec.input_size)  # checks at start that the backend runs; cameras add their own
    if name == "onnxruntime":
        return PerResolution(lambda size: OnnxRuntimeBackend(onnx_for_model(model_path, output, size, input_size),
                                                             device, threads), first_size)
    from hydranet_ros.inference.tensorrt_engine import ShapeProfile, TensorRTBackend, engine_for_onnx

    def engine(size):
        onnx_path = onnx_for_model(model_path, output, size, input_size)
        return TensorRTBackend(engine_for_onnx(onnx_path, precision, ShapeProfile(size, size, size),
                                               **(engine_options or {})))
    return PerResolution(engine, first_size)
