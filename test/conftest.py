"""Shared test helpers: the ../shared data folder (skipped when absent) and small fixtures."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "scripts"))  # the model-card tooling (real_frames.py) lives there, outside the package


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips the calling test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared holds research-only data, not in a fresh clone)")
    return path


@pytest.fixture(scope="session")
def street_model_file(tmp_path_factory):
    """A small KITTI-6 model file with fixed random weights (the shipped models may not exist yet)."""
    import torch
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.model.model_file import ModelSpec, load_label_space, save_model
    torch.manual_seed(0)
    model = HydraNet(6)
    # Bias the depth head so that depth is a plausible positive number of metres.
    with torch.no_grad():
        model.depth.bias.fill_(10.0)
    spec = ModelSpec(["segmentation", "depth"], load_label_space("kitti6"), (96, 320))
    return save_model(tmp_path_factory.mktemp("models") / "street.pt", model, spec)


@pytest.fixture(scope="session")
def ros_test_messages() -> dict:
    """PYTHONPATH and LD_LIBRARY_PATH for vision_msgs and bond, which PyPI has no wheel of: built once
    per version of scripts/build_test_messages.sh (about 35 s), or the build ROS_TEST_MESSAGES names.
    Suites running at once share one build (a file lock)."""
    import fcntl
    import hashlib
    import os
    import subprocess
    import tempfile
    prefix = os.environ.get("ROS_TEST_MESSAGES")
    if not prefix:
        script = REPO / "scripts" / "build_test_messages.sh"
        version = hashlib.sha256(script.read_bytes()).hexdigest()[:12]
        workspace = Path(tempfile.gettempdir()) / f"hydranet_test_messages_{version}"
        prefix = workspace / "install"
        workspace.mkdir(exist_ok=True)
        with open(workspace / "build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (workspace / "built").exists():
                build = subprocess.run(["bash", str(script), str(workspace)], capture_output=True, text=True,
                                       timeout=900)
                if build.returncode:
                    pytest.fail(f"{script.name} failed (or set ROS_TEST_MESSAGES to a build): "
                                f"{(build.stdout + build.stderr)[-2000:]}")
                (workspace / "built").touch()
    site = next(Path(prefix).glob("lib/python3*/site-packages"))
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "LD_LIBRARY_PATH": os.pathsep.join([str(Path(prefix) / "lib"), os.environ.get("LD_LIBRARY_PATH", "")])}


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """ONNX exports and engines go to a per-session temporary cache."""
    monkeypatch.setenv("HYDRANET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def ros():
    """rclpy in this process, on a ROS domain of its own with discovery on localhost."""
    rclpy = pytest.importorskip("rclpy")
    from ros_harness import isolate_ros_graph
    isolate_ros_graph()
    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture(scope="session")
def calibration_folder(tmp_path_factory):
    """Camera-like frames (gradients and noise) of a few sizes, written as PNG and JPEG."""
    import cv2
    import numpy as np
    from hydranet_ros.inference.benchmark import camera_frame
    folder = tmp_path_factory.mktemp("calibration")
    for index, (height, width) in enumerate([(96, 320), (120, 400), (96, 320), (200, 300)] * 3):
        frame = np.roll(camera_frame(height, width), index * 17, axis=1)
        cv2.imwrite(str(folder / f"frame_{index:02d}.{'png' if index % 2 else 'jpg'}"), frame)
    return folder
