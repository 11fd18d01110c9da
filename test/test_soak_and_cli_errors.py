"""A one-minute soak, backend fallback, and the CLI's one-line errors."""
import subprocess
import sys

import numpy as np
import pytest

from hydranet_ros.apps.soak import soak
from hydranet_ros.data.dataset import Sample, create_dataset_folder, write_sample
from hydranet_ros.inference import backends
from hydranet_ros.inference.backend_base import BackendError
from hydranet_ros.inference.backends import create_backend

pytest.importorskip("rclpy")


def test_half_minute_soak_keeps_memory_and_latency_flat(tmp_path, street_model_file, monkeypatch):
    """30 s at 10 Hz in 7.5 s windows; README gives a 10-minute run of the same command."""
    monkeypatch.setenv("ROS_DOMAIN_ID", "211")
    result = soak(street_model_file, 30.0, 10.0, 7.5, "onnxruntime", tmp_path / "node.log", print_windows=False)
    assert len(result["windows"]) >= 3
    assert all(w["processed"] > 0 for w in result["windows"])
    assert result["rss_growth"] < 0.05, result
    assert result["latency_drift"] < 1.5, result


def test_auto_falls_back_when_a_backend_fails_at_start(street_model_file, monkeypatch):
    """Out of GPU memory (or any start failure) in one backend: auto takes the next and says why."""
    real_build = backends._build

    def failing_build(name, device, *args):
        if name in ("openvino", "onnxruntime"):
            raise BackendError("out of GPU memory loading the model (simulated)")
        return real_build(name, device, *args)

    monkeypatch.setattr(backends, "_build", failing_build)
    backend, skipped = create_backend(street_model_file, "auto", "cpu")
    assert backend.name == "torch"
    assert [reason.split(":")[0] for reason in skipped] == ["onnxruntime/cpu", "openvino/cpu"]  # fp32 order
    assert all("out of GPU memory" in reason for reason in skipped)
    with pytest.raises(BackendError, match="out of GPU memory"):
        create_backend(street_model_file, "onnxruntime", "cpu")


def _run_cli(*args):
    process = subprocess.run([sys.executable, "-m", "hydranet_ros.cli.main", *args], capture_output=True, text=True,
                             timeout=120)
    return process.returncode, process.stdout + process.stderr


@pytest.mark.parametrize("args, message", [
    (["infer", "/nonexistent.png", "--out", "/tmp/x"], "does not exist"),
    (["evaluate", "/nonexistent.pt", "/tmp"], "model file /nonexistent.pt does not exist"),
    (["train", "/nonexistent.yaml"], "config /nonexistent.yaml does not exist"),
    (["process-bag", "/nonexistent_bag", "/tmp/out_bag", "--image-topic", "/x"], "does not exist"),
])
def test_cli_errors_are_one_line_without_traceback(args, message):
    code, output = _run_cli(*args)
    assert code == 2 and message in output and "Traceback" not in output, output


class _RunsCode:
    """A pickle that would run a shell command when loaded without weights_only."""

    def __reduce__(self):
        import os
        return os.system, ("touch /tmp/hydranet_pickle_ran",)


def test_a_plain_file_as_bag_and_a_malicious_checkpoint_are_one_line_errors(tmp_path):
    """process-bag on a text file gave rosbags' traceback after the model loaded; import-checkpoint on a
    pickle that runs code passed on torch's advice to load it with weights_only=False."""
    import torch
    plain = tmp_path / "notes.txt"
    plain.write_text("not a bag\n")
    code, output = _run_cli("process-bag", str(plain), str(tmp_path / "out"), "--image-topic", "/x")
    assert code == 2 and "notes.txt is not a rosbag2" in output and "Traceback" not in output, output
    assert "model hydranet_street.pt" not in output  # refused before the model loads
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": _RunsCode()}, evil)
    code, output = _run_cli("import-checkpoint", str(evil), "--out", str(tmp_path / "evil.pt"))
    assert code == 2 and "asks to run Python code (posix.system), so it was not loaded" in output, output
    assert "weights_only" not in output and "Traceback" not in output and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "evil.pt").exists()


def test_empty_datasets_and_out_of_range_labels_are_clear_errors(tmp_path, street_model_file):
    empty = create_dataset_folder(tmp_path / "empty", "kitti6", 256.0)
    code, output = _run_cli("evaluate", str(street_model_file), str(empty))
    assert code == 2 and "is empty" in output and "Traceback" not in output
    bad = create_dataset_folder(tmp_path / "bad", "kitti6", 256.0)
    write_sample(bad, Sample("a", np.zeros((96, 320, 3), np.uint8), np.full((96, 320), 9, np.uint8)), 256.0)
    code, output = _run_cli("evaluate", str(street_model_file), str(bad))
    assert code == 2 and "label ids [9] are out of range for 6 classes" in output and "Traceback" not in output


def test_help_explains_every_verb():
    code, output = _run_cli("--help")
    assert code == 0
    for verb in ("demo", "infer", "process-bag", "train", "distill", "evaluate", "export", "build-engine",
                 "benchmark", "synth", "soak", "import-checkpoint", "quantize"):
        assert verb in output, verb
