"""Choosing and starting a backend: BackendOptions say what is asked for, create_backend builds it or, for
`auto`, the fastest that starts here, and says why it skipped the others.

Backends are imported when they are built, so that choosing one loads only its own libraries.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from hydranet_ros.inference.backends.base import Backend, BackendError, PerResolution
from hydranet_ros.inference.choices import BACKENDS, PRECISIONS

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


def auto_order(precision: str) -> tuple[tuple[str, str], ...]:
    return GPU_ORDER + CPU_ORDER[cpu_precision(precision)]


def _cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def cpu_precision(precision: str) -> str:
    """fp16 is the GPU default; CPUs run fp32 for it. bf16 and int8 are asked for on purpose."""
    return "fp32" if precision == "fp16" else precision


@dataclass(frozen=True)
class BackendOptions:
    """What a backend is asked for. backend: auto or one of BACKENDS; device: auto, cpu or cuda;
    precision: fp16 (GPU default; fp32 on CPUs), fp32, bf16 (OpenVINO on CPUs that have it), int8
    (calibrated on the images of the calibration folder; inference/quantize.py); output: outputs at the
    input's resolution or the network's; threads: CPU threads (ONNX Runtime, OpenVINO); engine_options:
    TensorRT builder options (engine_for_onnx); input_size (height, width): the network input, default
    the model's; camera_size (height, width): the camera's resolution, prepared at start (export, engine,
    int8 graph, compiled model) instead of on its first frame, default the network input."""

    backend: str = "auto"
    device: str = "auto"
    precision: str = "fp16"
    output: str = "input"
    threads: int | None = None
    engine_options: dict | None = None
    input_size: tuple[int, int] | None = None
    calibration: str | Path | None = None
    camera_size: tuple[int, int] | None = None
    batch: int = 1  # the most images of one size run at once (cameras of a node); TensorRT builds for it


def create_backend(model_path: str | Path, options: BackendOptions = BackendOptions()) -> tuple[Backend, list[str]]:
    """Builds the backend and returns it with the reasons for skipping others (for `auto`)."""
    backend, device, precision = options.backend, options.device, options.precision
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
            chosen = _build(name, dev, model_path,
                            replace(options, precision=precision if dev == "cuda" else cpu_precision(precision)))
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


def _build(name: str, device: str, model_path: str | Path, options: BackendOptions) -> Backend:
    """One backend on one device; options.precision is already the one that device runs."""
    from hydranet_ros.inference.export import load_for_inference, onnx_for_model
    from hydranet_ros.inference.quantize import int8_onnx
    precision, output, input_size, calibration = (options.precision, options.output, options.input_size,
                                                  options.calibration)
    model, spec = load_for_inference(model_path, input_size)
    if name == "torch":
        from hydranet_ros.inference.backends.torch_backend import TorchBackend
        return TorchBackend(model, spec, device, precision, output)
    first_size = tuple(options.camera_size or spec.input_size)  # made at start: a backend that cannot run fails here

    if name == "tensorrt":
        from hydranet_ros.inference.backends.tensorrt_backend import TensorRTBackend, engine_for_onnx, onnx_for_engine
        return PerResolution(lambda size: TensorRTBackend(engine_for_onnx(
            onnx_for_engine(model_path, output, size, precision, calibration, input_size,
                            dynamic_batch=options.batch > 1), precision,
            max_batch=options.batch, **(options.engine_options or {}))), first_size)
    export_precision = "fp16" if precision == "fp16" and device == "cuda" else "fp32"

    def graph(size):  # the fp16 export on a GPU, the fp32 one, or its calibrated int8 version
        # One graph for one camera and for several of one size (batched): the same outputs either way
        # (a fixed-batch export rounds depth differently, by up to 4e-6 m).
        onnx_path = onnx_for_model(model_path, output, size, input_size, export_precision, dynamic_batch=True)
        return int8_onnx(onnx_path, calibration, size, "cpu") if precision == "int8" else onnx_path
    if name == "onnxruntime":
        from hydranet_ros.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
        if precision not in ("fp32", "int8") and device == "cpu":
            raise BackendError(f"ONNX Runtime on the CPU runs fp32 or int8, not {precision}")
        graph_precision = "int8" if precision == "int8" else export_precision
        return PerResolution(lambda size: OnnxRuntimeBackend(graph(size), device, options.threads, graph_precision),
                             first_size)
    from hydranet_ros.inference.backends.openvino_backend import OpenVinoBackend
    return PerResolution(lambda size: OpenVinoBackend(graph(size), precision, options.threads), first_size)
