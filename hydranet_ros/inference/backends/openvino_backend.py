"""OpenVINO on the CPU: the post-processed ONNX graph compiled for this processor, fp32, bf16 or int8.

int8 runs a Q/DQ ONNX from inference/quantize.py; OpenVINO turns its QuantizeLinear/DequantizeLinear
pairs into int8 kernels. Compiled models are cached beside the ONNX exports, keyed by the ONNX file's
hash, the OpenVINO version, the processor and its capabilities and the precision, so a compiled
model never runs on a processor or OpenVINO it was not compiled for. A missing, stale or corrupt
cached model is compiled again.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from hydranet_ros.cache import cache_dir, write_atomically
from hydranet_ros.inference.backends.base import Backend, BackendError, Prediction, stacked
from hydranet_ros.cache import file_sha256
from hydranet_ros.inference.graph import INPUT_NAME, OUTPUT_NAMES

LOG = logging.getLogger("hydranet_ros.openvino")
PRECISIONS = ("fp32", "bf16", "int8")


def cpu_capabilities(core) -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES for the CPU, e.g. ['FP32', 'INT8', 'BF16', ...]."""
    return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def compiled_model_key(onnx_path: Path, precision: str, core) -> str:
    import openvino
    identity = "|".join([file_sha256(onnx_path), openvino.__version__, precision,
                         str(core.get_property("CPU", "FULL_DEVICE_NAME")), ",".join(sorted(cpu_capabilities(core)))])
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


class OpenVinoBackend(Backend):
    name = "openvino"
    device = "cpu"

    def __init__(self, onnx_path: str | Path, precision: str = "fp32", threads: int | None = None):
        try:
            import openvino
        except ImportError:
            raise BackendError("OpenVINO is not installed (pip install openvino)") from None
        if precision not in PRECISIONS:
            raise BackendError(f"OpenVINO runs {', '.join(PRECISIONS)}, not {precision}")
        core = openvino.Core()
        if precision == "bf16" and "BF16" not in cpu_capabilities(core):
            LOG.warning("this CPU has no bf16 instructions (AVX-512 BF16 or AMX); OpenVINO runs fp32 instead")
            precision = "fp32"
        self.precision = precision
        self.onnx_path = Path(onnx_path)
        # int8 comes from the Q/DQ graph itself; everything between them runs at the hint's precision.
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        blob = cache_dir() / "openvino" / f"{compiled_model_key(self.onnx_path, precision, core)}.blob"
        self.compiled = self._load_cached(core, blob, config) or self._compile(core, blob, config)
        self.request = self.compiled.create_infer_request()

    @staticmethod
    def _load_cached(core, blob: Path, config: dict):
        if not blob.is_file():
            return None
        try:
            return core.import_model(blob.read_bytes(), "CPU", config)
        except Exception as error:  # OpenVINO raises RuntimeError subclasses of its own for bad blobs
            LOG.warning("cached OpenVINO model %s is unreadable (%s); compiling again", blob, error)
            return None

    def _compile(self, core, blob: Path, config: dict):
        try:
            compiled = core.compile_model(str(self.onnx_path), "CPU", config)
        except Exception as error:
            raise BackendError(f"OpenVINO could not compile {self.onnx_path}: {error}") from None
        try:
            blob.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(blob, compiled.export_model().getvalue())
        except OSError as error:
            LOG.warning("cannot cache the compiled OpenVINO model in %s (%s); it is compiled on every start",
                        blob.parent, error.strerror)
        return compiled

    def describe(self) -> str:
        return f"openvino on cpu ({self.precision})"

    def infer(self, rgb: np.ndarray) -> Prediction:
        return self.infer_batch([rgb])[0]

    def infer_batch(self, rgbs: list[np.ndarray]) -> list[Prediction]:
        """One inference for the batch when the compiled model has a batch axis (export dynamic_batch). The
        outputs are the request's and valid until its next inference, as the pipeline uses them."""
        if len(rgbs) > 1 and not self.compiled.input(INPUT_NAME).get_partial_shape()[0].is_dynamic:
            # one at a time: each frame's outputs copied out before the next inference overwrites them
            return [Prediction(*(np.copy(output) for output in vars(self.infer(rgb)).values())) for rgb in rgbs]
        results = self.request.infer({INPUT_NAME: stacked(rgbs)})
        outputs = [results[self.compiled.output(name)] for name in OUTPUT_NAMES]
        return [Prediction(*(output[index] for output in outputs)) for index in range(len(rgbs))]
