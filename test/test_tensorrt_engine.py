"""The engine cache key, the rebuild decision and shape checks (TensorRT itself is not installable here)."""
import importlib.util
import json

import pytest

from hydranet_ros.inference.backends import BackendError, BackendOptions
from hydranet_ros.inference.backends.tensorrt_backend import (EngineKey, ShapeProfile, current_platform,
                                                              needs_rebuild, sidecar, write_engine)


def _key(**changes):
    values = dict(onnx_sha256="ab" * 32, tensorrt_version="10.13.0", gpu_name="NVIDIA H100 80GB HBM3",
                  compute_capability="90", precision="fp16", profile=ShapeProfile())
    values.update(changes)
    return EngineKey(**values)


def test_file_name_names_everything_that_makes_an_engine_valid():
    name = _key().file_name()
    assert name.startswith("hydranet-abababababab-trt10.13.0-nvidia-h100-80gb-hbm3-sm90-fp16-")
    assert name.endswith(".engine")
    others = [_key(onnx_sha256="cd" * 32), _key(tensorrt_version="10.14.1"), _key(gpu_name="Orin"),
              _key(compute_capability="87"), _key(precision="int8"),
              _key(profile=ShapeProfile(opt=(480, 640)))]
    assert len({k.file_name() for k in others + [_key()]}) == len(others) + 1


def test_rebuild_decision(tmp_path):
    engine = tmp_path / "x.engine"
    assert needs_rebuild(engine, _key()) == "no cached engine"
    engine.write_bytes(b"serialized")
    assert needs_rebuild(engine, _key()) == "the cached engine has no key file"
    write_engine(engine, b"serialized", _key())  # the writer build_engine uses
    assert needs_rebuild(engine, _key()) is None
    assert engine.read_bytes() == b"serialized" and sorted(p.name for p in tmp_path.iterdir()) == ["x.engine", "x.json"]
    assert needs_rebuild(engine, _key(tensorrt_version="11.0.0")) == "changed: tensorrt_version"
    assert needs_rebuild(engine, _key(gpu_name="Orin", compute_capability="87")) == \
        "changed: gpu_name, compute_capability"
    assert needs_rebuild(engine, _key(profile=ShapeProfile(max=(720, 1280)))) == "changed: profile"
    sidecar(engine).write_text("{not json")
    assert needs_rebuild(engine, _key()).startswith("the key file is unreadable")
    # the format build_engine wrote before: an extra entry made every start rebuild, then crash
    sidecar(engine).write_text(json.dumps(_key().to_dict() | {"onnx_path": "/tmp/x.onnx"}))
    assert needs_rebuild(engine, _key()).startswith("the key file is unreadable")
    write_engine(engine, b"serialized", _key())
    assert needs_rebuild(engine, _key()) is None


def test_key_round_trips_through_json():
    key = _key(profile=ShapeProfile((32, 32), (352, 1216), (720, 1280)))
    assert EngineKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key


def test_shape_profile_checks():
    profile = ShapeProfile((64, 64), (375, 1242), (1080, 1920))
    assert profile.accepts(375, 1242) and profile.accepts(64, 1920)
    assert not profile.accepts(32, 640) and not profile.accepts(480, 2048)
    assert profile.input_shapes() == ((1, 64, 64, 3), (1, 375, 1242, 3), (1, 1080, 1920, 3))
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ShapeProfile((64, 64), (2000, 640), (1080, 1920))


def test_platform_without_tensorrt_is_a_clear_error():
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    with pytest.raises(BackendError, match="TensorRT is not installed"):
        current_platform()


class _FakeTensorRT:
    """Records what build_engine asks of the TensorRT 10/11 builder API (TensorRT is not installable here)."""

    def __init__(self, version="10.13.0", profile_index=0, context=True):
        import types
        self.calls = []
        fake = self

        class Builder:
            def __init__(self, logger):
                fake.calls.append(("Builder",))

            def create_network(self, flags):
                fake.calls.append(("create_network", flags))
                return "network"

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                fake.calls.append(("build_serialized_network", network))
                return b"serialized engine"

        class TimingCache:
            def __init__(self, data):
                self.data = data

            def serialize(self):
                return memoryview(b"timings:" + self.data)

        class Config:
            progress_monitor = None

            def set_memory_pool_limit(self, pool, size):
                fake.calls.append(("set_memory_pool_limit", pool, size))

            def add_optimization_profile(self, profile):
                fake.calls.append(("add_optimization_profile",))
                return profile_index  # TensorRT: the profile's index, -1 when it is not valid

            def create_timing_cache(self, data):
                fake.calls.append(("create_timing_cache", bytes(data)))
                self.cache = TimingCache(bytes(data))
                return self.cache

            def set_timing_cache(self, cache, ignore_mismatch):
                fake.calls.append(("set_timing_cache", ignore_mismatch))
                return True

            def get_timing_cache(self):
                return self.cache

            def set_flag(self, flag):
                fake.calls.append(("set_flag", flag))

            def __setattr__(self, name, value):
                if name == "int8_calibrator":
                    fake.calls.append(("int8_calibrator",))
                object.__setattr__(self, name, value)

        class Profile:
            def set_shape(self, name, low, opt, high):
                fake.calls.append(("set_shape", name, low, opt, high))

        class OnnxParser:
            def __init__(self, network, logger):
                pass

            def parse(self, data):
                fake.calls.append(("parse", bytes(data)))
                return True

        class IProgressMonitor:
            def __init__(self):
                pass

        class Engine:
            num_io_tensors = 5

            def get_tensor_name(self, index):
                return ("image", "labels", "color", "confidence", "depth")[index]

            def create_execution_context(self):
                fake.calls.append(("create_execution_context",))
                return object() if context else None  # TensorRT returns None when it cannot make one

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                return Engine()

        self.module = types.SimpleNamespace(
            Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
            Builder=Builder, OnnxParser=OnnxParser, IProgressMonitor=IProgressMonitor, Runtime=Runtime,
            NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1),
            MemoryPoolType=types.SimpleNamespace(WORKSPACE="workspace"),
            BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8"),
            __version__=version)


@pytest.fixture(scope="module")
def fixed_onnx(tmp_path_factory):
    """A post-processed export for 480x640 images, as the backends and build-engine make them."""
    from hydranet_ros.inference.export import export_onnx
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.model.model_file import ModelSpec, load_label_space
    path = tmp_path_factory.mktemp("onnx") / "graph.onnx"
    spec = ModelSpec(["segmentation", "depth"], load_label_space("kitti6"), (96, 128))
    return export_onnx(HydraNet(6), spec, path, image_size=(480, 640))


@pytest.mark.parametrize("precision", ["fp16", "fp32", "int8"])
def test_every_engine_is_built_strongly_typed_from_its_onnx_without_precision_flags(tmp_path, monkeypatch,
                                                                                    precision, fixed_onnx):
    import sys
    from hydranet_ros.inference.backends.tensorrt_backend import build_engine, read_key
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    key = _key(precision=precision, profile=ShapeProfile((480, 640), (480, 640), (480, 640)))
    engine = tmp_path / key.file_name()
    timing = tmp_path / "timing.cache"
    build_engine(fixed_onnx, engine, key, workspace_gib=1.5, timing_cache=timing)
    assert fake.calls[1] == ("create_network", 1 << 1)  # STRONGLY_TYPED, nothing else
    assert ("parse", fixed_onnx.read_bytes()) in fake.calls
    assert ("set_memory_pool_limit", "workspace", int(1.5 * (1 << 30))) in fake.calls
    assert ("set_shape", "image", (1, 480, 640, 3), (1, 480, 640, 3), (1, 480, 640, 3)) in fake.calls
    assert not [c for c in fake.calls if c[0] in ("set_flag", "int8_calibrator")]  # the ONNX types decide
    assert engine.read_bytes() == b"serialized engine" and read_key(engine) == key  # the one writer
    assert needs_rebuild(engine, key) is None
    # the timing cache: empty on the first build, saved after it, read by the next build
    assert ("create_timing_cache", b"") in fake.calls and ("set_timing_cache", False) in fake.calls
    assert timing.read_bytes() == b"timings:"
    build_engine(fixed_onnx, engine, key, workspace_gib=1.5, timing_cache=timing)
    assert ("create_timing_cache", b"timings:") in fake.calls


def test_engine_for_onnx_builds_under_its_lock_once_then_reuses_the_cache(tmp_path, monkeypatch, fixed_onnx):
    import sys
    from hydranet_ros.inference.backends import tensorrt_backend
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    monkeypatch.setattr(tensorrt_backend, "current_platform", lambda: ("10.13.0", "NVIDIA H100 80GB HBM3", "90"))
    profile = ShapeProfile((480, 640), (480, 640), (480, 640))
    first = tensorrt_backend.engine_for_onnx(fixed_onnx, "fp16", profile, directory=tmp_path / "engines")
    again = tensorrt_backend.engine_for_onnx(fixed_onnx, "fp16", None, directory=tmp_path / "engines")
    assert first == again and first.read_bytes() == b"serialized engine"
    assert [c for c in fake.calls if c[0] == "build_serialized_network"] == [("build_serialized_network", "network")]
    assert first.with_name(first.name + ".lock").is_file()  # the lock a second node would wait on
    assert sorted(p.name for p in (tmp_path / "engines").glob("timing-*")) == \
        ["timing-trt10.13.0-nvidia-h100-80gb-hbm3-sm90.cache"]


def test_a_fixed_size_export_gets_exactly_its_own_profile(tmp_path, monkeypatch, fixed_onnx):
    """A profile wider than the graph's fixed shape would build an engine that fails at run time; the
    default used to be 64x64..1080x1920 for every file."""
    import sys
    from hydranet_ros.inference.backends import tensorrt_backend
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    monkeypatch.setattr(tensorrt_backend, "current_platform", lambda: ("10.13.0", "NVIDIA H100 80GB HBM3", "90"))
    path = tensorrt_backend.engine_for_onnx(fixed_onnx, "fp16", directory=tmp_path)
    assert tensorrt_backend.read_key(path).profile == ShapeProfile((480, 640), (480, 640), (480, 640))
    with pytest.raises(BackendError, match="takes only 640x480 images"):
        tensorrt_backend.engine_for_onnx(fixed_onnx, "fp16", ShapeProfile(), directory=tmp_path)


def test_a_profile_tensorrt_refuses_is_an_error_not_an_engine(tmp_path, monkeypatch, fixed_onnx):
    import sys
    from hydranet_ros.inference.backends.tensorrt_backend import build_engine
    monkeypatch.setitem(sys.modules, "tensorrt", _FakeTensorRT(profile_index=-1).module)
    key = _key(profile=ShapeProfile((480, 640), (480, 640), (480, 640)))
    with pytest.raises(BackendError, match="refused the shape profile"):
        build_engine(fixed_onnx, tmp_path / "x.engine", key, 1.0)
    assert not (tmp_path / "x.engine").exists()


def test_a_graph_that_breaks_tensorrt_rules_never_reaches_the_parser(tmp_path, monkeypatch):
    import sys
    import onnx
    from onnx import TensorProto, helper
    from hydranet_ros.inference.backends.tensorrt_backend import build_engine
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    graph = helper.make_graph([helper.make_node("Transpose", ["image"], ["t"], perm=[0, 3, 1, 2]),
                               helper.make_node("Cast", ["t"], ["out"], to=TensorProto.FLOAT)], "g",
                              [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4, 4, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 4, 4])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    key = _key(profile=ShapeProfile((4, 4), (4, 4), (4, 4)))
    with pytest.raises(BackendError, match="uint8-input-feeds-cast at .*Transpose"):
        build_engine(path, tmp_path / "x.engine", key, 1.0)
    assert not [c for c in fake.calls if c[0] == "parse"]


@pytest.mark.parametrize("version", ["8.6.2", "9.3.0"])
def test_tensorrt_below_10_is_refused_by_name(monkeypatch, version):
    """JetPack 6.0 ships TensorRT 8.6, whose builder has no strongly typed networks: an AttributeError
    deep in the build used to kill the node."""
    import sys
    from hydranet_ros.inference.backends.tensorrt_backend import build_engine
    monkeypatch.setitem(sys.modules, "tensorrt", _FakeTensorRT(version=version).module)
    with pytest.raises(BackendError, match=f"TensorRT {version} is too old: .*10.x or newer"):
        current_platform()
    with pytest.raises(BackendError, match=f"TensorRT {version} is too old"):
        build_engine(None, None, _key(), 1.0)


def test_no_execution_context_is_a_backend_error(tmp_path, monkeypatch):
    import sys
    from hydranet_ros.inference.backends.tensorrt_backend import TensorRTBackend
    fake = _FakeTensorRT(context=False)
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"serialized engine")
    with pytest.raises(BackendError, match="could not create an execution context"):
        TensorRTBackend(engine)
    assert ("create_execution_context",) in fake.calls


def test_auto_tries_the_next_backend_after_any_failure(street_model_file, monkeypatch, caplog):
    """An export's RuntimeError, an older torch's TypeError or TensorRT's own exception types in one
    candidate must not stop auto: each is one log line, and the next candidate starts."""
    import logging
    from hydranet_ros.inference.backends import choose
    real_build = choose._build
    failures = {"onnxruntime": RuntimeError("export failed\nsecond line"),
                "openvino": TypeError("export() got an unexpected keyword argument 'dynamo'")}

    def build(name, *args):
        if name in failures:
            raise failures[name]
        return real_build(name, *args)
    monkeypatch.setattr(choose, "_build", build)
    monkeypatch.setattr(choose, "_cuda_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="hydranet_ros.backends"):
        chosen, skipped = choose.create_backend(street_model_file, BackendOptions(precision="fp32"))
    assert chosen.name == "torch"
    assert "onnxruntime/cpu: RuntimeError: export failed" in skipped
    assert "openvino/cpu: TypeError: export() got an unexpected keyword argument 'dynamo'" in skipped
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    with pytest.raises(BackendError, match="onnxruntime/cpu: RuntimeError: export failed"):
        # asked for by name: one line
        choose.create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu", precision="fp32"))


def test_an_engine_for_cameras_of_one_size_is_built_for_batches_up_to_their_number(tmp_path, monkeypatch):
    """Several cameras of one size (issue 45): the export has a batch axis and the engine's profile runs
    1..N images at once, tuned for N; a one-image export is refused for batches; the key (and so the
    cached file) differs from the one-image engine's."""
    import sys
    from hydranet_ros.inference.backends import tensorrt_backend
    from hydranet_ros.inference.export import export_onnx
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.model.model_file import ModelSpec, load_label_space
    spec = ModelSpec(["segmentation", "depth"], load_label_space("kitti6"), (96, 128))
    batched = export_onnx(HydraNet(6), spec, tmp_path / "batched.onnx", image_size=(480, 640), dynamic_batch=True)
    single = export_onnx(HydraNet(6), spec, tmp_path / "single.onnx", image_size=(480, 640))
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    monkeypatch.setattr(tensorrt_backend, "current_platform", lambda: ("10.13.0", "NVIDIA H100 80GB HBM3", "90"))
    engine = tensorrt_backend.engine_for_onnx(batched, "fp16", directory=tmp_path / "engines", max_batch=4)
    assert ("set_shape", "image", (1, 480, 640, 3), (4, 480, 640, 3), (4, 480, 640, 3)) in fake.calls
    key = tensorrt_backend.read_key(engine)
    assert key.profile == ShapeProfile((480, 640), (480, 640), (480, 640), max_batch=4)
    assert EngineKey.from_dict(key.to_dict()) == key
    assert key.file_name() != _key(profile=ShapeProfile((480, 640), (480, 640), (480, 640))).file_name()
    with pytest.raises(BackendError, match="takes one image at a time"):
        tensorrt_backend.engine_for_onnx(single, "fp16", directory=tmp_path / "engines", max_batch=4)
    assert ShapeProfile((480, 640), (480, 640), (480, 640)).fixed and not key.profile.fixed
    with pytest.raises(ValueError, match="max_batch >= 1"):
        ShapeProfile(max_batch=0)
