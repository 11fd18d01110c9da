"""ONNX Runtime backend: an ONNX export of the inference graph (fp32, its int8 version, or fp16 on CUDA)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hydranet_ros.inference.backends.base import Backend, BackendError, PerResolution, Prediction, stacked
from hydranet_ros.inference.graph import INPUT_NAME, OUTPUT_NAMES


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
        return self.infer_batch([rgb])[0]

    def infer_batch(self, rgbs: list[np.ndarray]) -> list[Prediction]:
        """One session.run for the batch when the graph has a batch axis (export dynamic_batch)."""
        if len(rgbs) > 1 and not isinstance(self.session.get_inputs()[0].shape[0], str):
            return super().infer_batch(rgbs)
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: stacked(rgbs)})
        return [Prediction(*(output[index] for output in outputs)) for index in range(len(rgbs))]
