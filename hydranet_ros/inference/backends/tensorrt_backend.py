"""TensorRT engines: build from ONNX, cache by what makes an engine valid, run by tensor name.

An engine only runs with the TensorRT version and GPU it was built for, so the cache key holds
the ONNX file's hash, the TensorRT version, the GPU name and compute capability, the precision
and the input shape profile. Each engine is stored with a JSON sidecar holding that key; a
mismatch rebuilds. Written against the TensorRT 10/11 Python API (named I/O tensors,
execute_async_v3). CUDA memory comes from PyTorch, so no other CUDA binding is needed.

Before the parser sees a file, inference/tensorrt_rules.py checks it; TensorRT below 10 is refused
(its builder lacks the strongly typed networks every engine here is built as). Tactic timings are
kept in a timing cache per TensorRT version and GPU beside the engines, so a rebuild (a new model,
another camera size) skips the minutes of timing it already did.

The builder and runtime need TensorRT and a GPU; the key, the rebuild decision and the shape
checks are plain Python and unit-tested without them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hydranet_ros.inference.choices import ENGINE_PRECISIONS
from hydranet_ros.cache import building, cache_dir, file_sha256, write_atomically
from hydranet_ros.inference.backends.base import BackendError, DeviceFrame
from hydranet_ros.inference.backends.device import DeviceBackend, PinnedStaging
from hydranet_ros.inference.export import onnx_for_model
from hydranet_ros.inference.graph import INPUT_NAME, OUTPUT_NAMES
from hydranet_ros.inference.quantize import int8_onnx
from hydranet_ros.inference.tensorrt_rules import report, tensorrt_findings

LOG = logging.getLogger("hydranet_ros.tensorrt")
OLDEST_TENSORRT = 10  # strongly typed networks, named I/O tensors and execute_async_v3 (docs/backends_and_tensorrt.md)


@dataclass(frozen=True)
class ShapeProfile:
    """Input image sizes (height, width) the engine accepts: min <= opt <= max per dimension; and up to
    max_batch images at once (cameras of one size, batched), tuned for max_batch."""

    min: tuple[int, int] = (64, 64)
    opt: tuple[int, int] = (375, 1242)
    max: tuple[int, int] = (1080, 1920)
    max_batch: int = 1

    def __post_init__(self):
        for low, mid, high in zip(self.min, self.opt, self.max):
            if not 0 < low <= mid <= high:
                raise ValueError(f"shape profile needs 0 < min <= opt <= max, got {self.min} {self.opt} {self.max}")
        if self.max_batch < 1:
            raise ValueError(f"shape profile needs max_batch >= 1, got {self.max_batch}")

    def accepts(self, height: int, width: int) -> bool:
        return self.min[0] <= height <= self.max[0] and self.min[1] <= width <= self.max[1]

    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        """TensorRT's min, opt and max input shapes: batch 1 at the least, max_batch for opt and max."""
        batches = (1, self.max_batch, self.max_batch)
        return tuple((batch, h, w, 3) for batch, (h, w) in zip(batches, (self.min, self.opt, self.max)))

    @property
    def fixed(self) -> bool:
        """One input shape only (what a fixed-size export of batch 1 takes)."""
        return self.min == self.max and self.max_batch == 1


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: ShapeProfile

    def file_name(self) -> str:
        gpu = re.sub(r"[^a-z0-9]+", "-", self.gpu_name.lower()).strip("-")
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
        return (f"hydranet-{self.onnx_sha256[:12]}-trt{self.tensorrt_version}-{gpu}-sm{self.compute_capability}"
                f"-{self.precision}-{digest}.engine")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["profile"] = {k: v if isinstance(v, int) else list(v) for k, v in data["profile"].items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "EngineKey":
        profile = ShapeProfile(**{k: v if isinstance(v, int) else tuple(v) for k, v in data["profile"].items()})
        return cls(**{**data, "profile": profile})


def sidecar(engine_path: Path) -> Path:
    return engine_path.with_suffix(".json")


def write_engine(engine_path: Path, serialized: bytes, key: EngineKey) -> None:
    """The one writer of cached engines: the engine, then its key file, each atomically."""
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(engine_path, serialized)
    write_atomically(sidecar(engine_path), json.dumps(key.to_dict(), indent=1).encode())


def read_key(engine_path: Path) -> EngineKey:
    """The one reader of key files (write_engine writes them); ValueError when unreadable."""
    try:
        return EngineKey.from_dict(json.loads(sidecar(engine_path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{sidecar(engine_path)} is not a key file written by write_engine ({error})") from None


def needs_rebuild(engine_path: Path, key: EngineKey) -> str | None:
    """Why the engine must be (re)built, or None when the cached one is valid for this key."""
    if not engine_path.is_file():
        return "no cached engine"
    if not sidecar(engine_path).is_file():
        return "the cached engine has no key file"
    try:
        cached = read_key(engine_path)
    except ValueError as error:
        return f"the key file is unreadable ({error})"
    changed = [name for name, value in key.to_dict().items() if cached.to_dict().get(name) != value]
    return f"changed: {', '.join(changed)}" if changed else None


def check_tensorrt_version(version: str) -> None:
    """BackendError for a TensorRT this code cannot drive (JetPack 6.0 ships 8.6)."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise BackendError(f"cannot read the TensorRT version {version!r}") from None
    if major < OLDEST_TENSORRT:
        raise BackendError(f"TensorRT {version} is too old: hydranet_ros needs TensorRT {OLDEST_TENSORRT}.x or "
                           "newer (JetPack 6.1+ or 7 on Jetson); use backend torch or onnxruntime meanwhile")


def current_platform() -> tuple[str, str, str]:
    """(TensorRT version, GPU name, compute capability) of this machine."""
    try:
        import tensorrt as trt
        import torch
    except ImportError as error:
        raise BackendError(f"TensorRT is not installed ({error}); install NVIDIA's tensorrt Python package") from None
    check_tensorrt_version(trt.__version__)
    if not torch.cuda.is_available():
        raise BackendError("TensorRT needs a CUDA GPU and PyTorch sees none")
    major, minor = torch.cuda.get_device_capability()
    return trt.__version__, torch.cuda.get_device_name(), f"{major}{minor}"


def input_dims(onnx_path: Path) -> list[int | None]:
    """The image input's dimensions (batch, height, width, 3) of a post-processed export; None where dynamic."""
    import onnx
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    for value in graph.input:
        if value.name == INPUT_NAME:
            return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
    raise BackendError(f"{onnx_path} has no input {INPUT_NAME!r}: not a post-processed hydranet export")


def fixed_input_size(onnx_path: Path) -> tuple[int, int] | None:
    """(height, width) of a post-processed export's fixed image input, None when it is dynamic."""
    dims = input_dims(onnx_path)
    return (dims[1], dims[2]) if len(dims) == 4 and None not in dims[1:3] else None


def onnx_for_engine(model_path: str | Path, output: str, image_size: tuple[int, int], precision: str,
                    calibration=None, input_size: tuple[int, int] | None = None, dynamic_batch: bool = False) -> Path:
    """The graph an engine of `precision` builds from: the fp32 export, the fp16 export, or for int8 the
    fp16 export quantized for TensorRT (quantize.py, target tensorrt), so that its float layers run fp16.
    dynamic_batch: with a batch axis, for an engine that runs several cameras of one size at once."""
    if precision not in ENGINE_PRECISIONS:
        raise BackendError(f"TensorRT precision must be one of {ENGINE_PRECISIONS}, not {precision!r}")
    float_onnx = onnx_for_model(model_path, output, image_size, input_size, "fp32" if precision == "fp32" else "fp16",
                                dynamic_batch=dynamic_batch)
    return int8_onnx(float_onnx, calibration, image_size, "tensorrt") if precision == "int8" else float_onnx


def engine_key(onnx_path: Path, precision: str, profile: ShapeProfile) -> EngineKey:
    if precision not in ENGINE_PRECISIONS:
        raise BackendError(f"TensorRT precision must be one of {ENGINE_PRECISIONS}, not {precision!r}")
    version, gpu, capability = current_platform()
    return EngineKey(file_sha256(onnx_path), version, gpu, capability, precision, profile)


def engine_for_onnx(onnx_path: str | Path, precision: str = "fp16", profile: ShapeProfile | None = None,
                    workspace_gib: float = 2.0,
                    directory: str | Path | None = None, max_batch: int = 1) -> Path:
    """The cached engine for this ONNX file, GPU and TensorRT; built first when missing or stale. A
    fixed-size export (every post-processed one) is built for exactly its size: profile defaults to
    it (with up to max_batch images at once, for an export with a batch axis), and another profile is
    refused."""
    onnx_path = Path(onnx_path)
    fixed = fixed_input_size(onnx_path)
    if max_batch > 1 and input_dims(onnx_path)[0] is not None:
        raise BackendError(f"{onnx_path.name} takes one image at a time; an engine for batches of {max_batch} "
                           "needs an export with a batch axis (export.onnx_for_model dynamic_batch)")
    if fixed is not None:
        own = ShapeProfile(fixed, fixed, fixed, max_batch)
        if profile is not None and profile != own:
            raise BackendError(f"{onnx_path.name} takes only {fixed[1]}x{fixed[0]} images; the shape profile "
                               f"{profile.min}..{profile.max} would build an engine its graph cannot run")
        profile = own
    key = engine_key(onnx_path, precision, profile or ShapeProfile())
    folder = Path(directory or cache_dir() / "engines")
    path = folder / key.file_name()
    with building(path):
        reason = needs_rebuild(path, key)
        if reason:
            LOG.warning("building TensorRT engine %s (%s); this takes minutes once", path.name, reason)
            build_engine(onnx_path, path, key, workspace_gib, timing_cache_path(folder, key))
    return path


def timing_cache_path(folder: Path, key: EngineKey) -> Path:
    """One timing cache per TensorRT version and GPU: tactic timings do not carry to others."""
    gpu = re.sub(r"[^a-z0-9]+", "-", key.gpu_name.lower()).strip("-")
    return folder / f"timing-trt{key.tensorrt_version}-{gpu}-sm{key.compute_capability}.cache"


def build_engine(onnx_path: Path, engine_path: Path, key: EngineKey, workspace_gib: float,
                 timing_cache: Path | None = None) -> None:
    """Every network is strongly typed: the ONNX file's types decide each layer's precision. fp16 is
    the fp16 export (export.onnx_for_model(precision="fp16")), int8 the fp16 export quantized for
    TensorRT (quantize.py): no BuilderFlag.FP16/INT8 (weak typing is deprecated since 10.12) and no
    int8 calibrator (deprecated in 10.1, removed in 11)."""
    import tensorrt as trt
    from tqdm import tqdm

    check_tensorrt_version(trt.__version__)
    findings = tensorrt_findings(onnx_path, fixed_shape=key.profile.fixed)
    if findings:
        raise BackendError(f"{onnx_path} breaks TensorRT's ONNX rules, so no engine would build: {report(findings)}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Explicit batch is the only mode since TensorRT 10; strongly typed since 10.0.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *key.profile.input_shapes())
    if config.add_optimization_profile(profile) < 0:  # -1: the profile is not valid for the network
        raise BackendError(f"TensorRT refused the shape profile {key.profile} for {onnx_path}")
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b"")
    if cache is None or not config.set_timing_cache(cache, False):  # False: a mismatching cache is an error
        LOG.warning("the timing cache %s does not fit this TensorRT or GPU; timing from scratch", timing_cache)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)

    class Progress(trt.IProgressMonitor):
        """Shows the builder's phases as progress bars (TensorRT 10's progress_monitor)."""

        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=parent_phase is None)

        def step_complete(self, phase_name, step):
            self.bars[phase_name].update(1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            self.bars.pop(phase_name).close()

    config.progress_monitor = Progress()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    write_engine(engine_path, bytes(serialized), key)
    if timing_cache is not None:
        write_atomically(timing_cache, bytes(config.get_timing_cache().serialize()))


class TensorRTBackend(DeviceBackend):
    """Runs a serialized engine; tensors are bound by name (graph.OUTPUT_NAMES)."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, engine_path: str | Path):
        import tensorrt as trt
        import torch
        engine_path = Path(engine_path)
        if sidecar(engine_path).is_file():
            try:
                built_for = read_key(engine_path)
            except ValueError as error:
                raise BackendError(f"{error}; rebuild the engine with `hydranet build-engine`") from None
            version, gpu, capability = current_platform()
            if (built_for.tensorrt_version, built_for.compute_capability) != (version, capability):
                raise BackendError(
                    f"engine {engine_path} was built for TensorRT {built_for.tensorrt_version} on "
                    f"{built_for.gpu_name} (sm{built_for.compute_capability}), this machine has TensorRT "
                    f"{version} on {gpu} (sm{capability}); rebuild it with `hydranet build-engine`")
            self.profile = built_for.profile
        else:
            self.profile = None
        self.torch = torch
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        try:
            self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        except Exception as error:  # TensorRT raises its own types; auto must be able to fall back
            raise BackendError(f"TensorRT cannot load {engine_path}: {error}") from None
        if self.engine is None:
            raise BackendError(f"{engine_path} is not an engine this TensorRT can load; rebuild it")
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        if names != {INPUT_NAME, *OUTPUT_NAMES}:
            raise BackendError(f"{engine_path} has tensors {sorted(names)}, expected {INPUT_NAME} and {OUTPUT_NAMES}")
        self.context = self.engine.create_execution_context()
        if self.context is None:  # e.g. no device memory left for the engine's activations
            raise BackendError(f"TensorRT could not create an execution context for {engine_path} "
                               "(out of GPU memory?)")
        self.stream = torch.cuda.Stream()
        self.engine_path = engine_path
        self.staging = PinnedStaging()
        self._bound_shape, self._input, self._outputs = None, None, {}
        self._dtypes = {name: torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
                        for name in names}

    def describe(self) -> str:
        return f"tensorrt on cuda ({self.engine_path.name})"

    def _bind(self, shape: tuple[int, ...]) -> None:
        """Input and output tensors bound to the context, made again only when the input shape changes."""
        if self._bound_shape != shape:
            torch = self.torch
            if not self.context.set_input_shape(INPUT_NAME, shape):
                raise BackendError(f"TensorRT refused the input shape {shape}")
            self._input = torch.empty(shape, dtype=torch.uint8, device="cuda")
            self._outputs = {name: torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._dtypes[name],
                                               device="cuda") for name in OUTPUT_NAMES}
            for name, tensor in [(INPUT_NAME, self._input), *self._outputs.items()]:
                self.context.set_tensor_address(name, tensor.data_ptr())
            self._bound_shape = shape

    def infer_on_device(self, rgb: np.ndarray) -> DeviceFrame:
        return self.infer_batch_on_device([rgb])[0]

    @property
    def max_batch(self) -> int:
        return self.profile.max_batch if self.profile is not None else 1

    def device_batch_limit(self, size: tuple[int, int]) -> int:
        return self.max_batch

    def infer_batch_on_device(self, rgbs: list[np.ndarray]) -> list[DeviceFrame]:
        """Images of one size in one execution (up to the profile's max_batch); every frame is valid
        until the next call, which may reuse the tensors."""
        torch = self.torch
        height, width = rgbs[0].shape[:2]
        if self.profile is not None and not self.profile.accepts(height, width):
            raise BackendError(f"image {width}x{height} is outside the engine's shape profile "
                               f"{self.profile.min}..{self.profile.max} (height, width); rebuild with a wider profile")
        if len(rgbs) > self.max_batch:
            raise BackendError(f"{len(rgbs)} images at once, the engine takes at most {self.max_batch}")
        caller = torch.cuda.current_stream()
        self.stream.wait_stream(caller)
        with torch.cuda.stream(self.stream):
            self._bind((len(rgbs),) + rgbs[0].shape)
            for index, rgb in enumerate(rgbs):
                self.staging.upload(rgb, self._input[index])
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError("TensorRT execution failed")
        caller.wait_stream(self.stream)  # the caller's stream takes the outputs from here, no host sync
        return [DeviceFrame(self._input[index], tuple(self._outputs[name][index] for name in OUTPUT_NAMES))
                for index in range(len(rgbs))]
