"""The engine cache key, the rebuild decision and shape checks (TensorRT itself is not installable here)."""
import importlib.util
import json

import pytest

from hydranet_ros.inference.backend_base import BackendError
from hydranet_ros.inference.tensorrt_engine import (EngineKey, ShapeProfile, current_platform, needs_rebuild,
                                                    sidecar, write_engine)


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

    def __init__(self):
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

        class Config:
            progress_monitor = None

            def set_memory_pool_limit(self, pool, size):
                fake.calls.append(("set_memory_pool_limit", pool, size))

            def add_optimization_profile(self, profile):
                fake.calls.append(("add_optimization_profile",))

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

        self.module = types.SimpleNamespace(
            Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
            Builder=Builder, OnnxParser=OnnxParser, IProgressMonitor=IProgressMonitor,
            NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1),
            MemoryPoolType=types.SimpleNamespace(WORKSPACE="workspace"),
            BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8"),
            __version__="10.13.0")


@pytest.mark.parametrize("precision", ["fp16", "fp32", "int8"])
def test_every_engine_is_built_strongly_typed_from_its_onnx_without_precision_flags(tmp_path, monkeypatch,
                                                                                      precision):
    import sys
    from hydranet_ros.inference.tensorrt_engine import build_engine, read_key
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    onnx_path = tmp_path / "graph.onnx"
    onnx_path.write_bytes(b"onnx bytes")
    key = _key(precision=precision, profile=ShapeProfile((480, 640), (480, 640), (480, 640)))
    engine = tmp_path / key.file_name()
    build_engine(onnx_path, engine, key, workspace_gib=1.5)
    assert fake.calls[1] == ("create_network", 1 << 1)  # STRONGLY_TYPED, nothing else
    assert ("parse", b"onnx bytes") in fake.calls
    assert ("set_memory_pool_limit", "workspace", int(1.5 * (1 << 30))) in fake.calls
    assert ("set_shape", "image", (1, 480, 640, 3), (1, 480, 640, 3), (1, 480, 640, 3)) in fake.calls
    assert not [c for c in fake.calls if c[0] in ("set_flag", "int8_calibrator")]  # the ONNX types decide
    assert engine.read_bytes() == b"serialized engine" and read_key(engine) == key  # the one writer
    assert needs_rebuild(engine, key) is None


def test_engine_for_onnx_builds_under_its_lock_once_then_reuses_the_cache(tmp_path, monkeypatch):
    import sys
    from hydranet_ros.inference import tensorrt_engine
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    monkeypatch.setattr(tensorrt_engine, "current_platform", lambda: ("10.13.0", "NVIDIA H100 80GB HBM3", "90"))
    onnx_path = tmp_path / "graph.onnx"
    onnx_path.write_bytes(b"onnx bytes")
    profile = ShapeProfile((480, 640), (480, 640), (480, 640))
    first = tensorrt_engine.engine_for_onnx(onnx_path, "fp16", profile, directory=tmp_path / "engines")
    again = tensorrt_engine.engine_for_onnx(onnx_path, "fp16", profile, directory=tmp_path / "engines")
    assert first == again and first.read_bytes() == b"serialized engine"
    assert [c for c in fake.calls if c[0] == "build_serialized_network"] == [("build_serialized_network", "network")]
    assert first.with_name(first.name + ".lock").is_file()  # the lock a second node would wait on
