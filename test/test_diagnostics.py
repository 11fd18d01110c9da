"""/diagnostics over DDS: it must say when the node is blind or broken, not OK."""
import numpy as np
import pytest
import torch

from ros_harness import InProcessNode, RosClient, image_message, node_status
from hydranet_ros.ros.health import ERROR, OK, WARN, HealthMonitor, InputLoss

rclpy = pytest.importorskip("rclpy")


def _wait_for_level(tester, level: bytes, timeout: float):
    reached = tester.wait_for(lambda: node_status(tester)[0] is not None and node_status(tester)[0].level == level,
                              timeout)
    assert reached, node_status(tester)[0]
    return node_status(tester)


def test_diagnostics_say_blind_stopped_and_running_also_with_sim_time_and_no_clock(ros, street_model_file):
    from diagnostic_msgs.msg import DiagnosticStatus
    params = {"backend": "onnxruntime", "diagnostics_period": 0.2, "stale_after_periods": 5, "use_sim_time": "true"}
    frame = np.random.default_rng(0).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    with InProcessNode(street_model_file, params) as node:
        tester = RosClient(topics=["segmentation"])
        assert tester.wait_for_node(), node.stop()[1]
        status, _ = _wait_for_level(tester, DiagnosticStatus.ERROR, 30.0)  # no /clock: the timer still fires
        assert "no image received on /hydranet/image" in status.message
        assert status.name == "/hydranet/perception_node: HydraNet perception"  # namespaced: never collides
        assert status.hardware_id.startswith("/hydranet/perception_node on ")
        for index in range(30):  # 3 s at 10 Hz
            tester.image_pub.publish(image_message(frame, 1_000 + index))
            tester.spin(0.1)
        status, values = _wait_for_level(tester, DiagnosticStatus.OK, 30.0)
        assert status.message == "running" and float(values["fps"]) > 0
        status, values = _wait_for_level(tester, DiagnosticStatus.WARN, 30.0)  # the camera stopped
        assert "no frame processed for" in status.message
        tester.spin(6.0)  # past the rate window
        assert float(node_status(tester)[1]["fps"]) == 0.0
        node.stop()
        tester.destroy()


def test_reliable_frames_sent_unevenly_are_not_reported_as_lost(ros, street_model_file):
    """A driver that publishes every 50 ms and 400 ms in turn, reliably: nothing was lost (the stamp-gap
    estimate reported about 76 % of the frames as lost)."""
    from diagnostic_msgs.msg import DiagnosticStatus
    frame = np.random.default_rng(0).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    with InProcessNode(street_model_file, {"backend": "onnxruntime", "diagnostics_period": 0.3}) as node:
        tester = RosClient(topics=["segmentation"])
        assert tester.wait_for_node(), node.stop()[1]
        stamp = 1_700_000_000_000_000_000
        for index in range(20):
            stamp += 50_000_000 if index % 2 else 400_000_000
            tester.image_pub.publish(image_message(frame, stamp))
            tester.spin(0.05 if index % 2 else 0.4)
        assert tester.wait_for(lambda: stamp in tester.stamps("segmentation"), 20.0)
        status, values = _wait_for_level(tester, DiagnosticStatus.OK, 10.0)
        node.stop()
        tester.destroy()
    assert values["frames_lost_before_node"] == "0" and status.message == "running", (status.message, values)


def test_a_model_that_gives_only_nan_depth_is_an_error(ros, tmp_path):
    from diagnostic_msgs.msg import DiagnosticStatus
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.model.model_file import ModelSpec, load_label_space, save_model
    model = HydraNet(6)
    with torch.no_grad():
        model.depth.weight.fill_(float("nan"))
    path = save_model(tmp_path / "nan.pt", model, ModelSpec(["segmentation", "depth"], load_label_space("kitti6"),
                                                            (96, 320)))
    frame = np.random.default_rng(1).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    with InProcessNode(path, {"backend": "onnxruntime", "diagnostics_period": 0.2}) as node:
        tester = RosClient(topics=["depth/image"])
        assert tester.wait_for_node(), node.stop()[1]
        for index in range(5):
            tester.image_pub.publish(image_message(frame, 1_000 + index))
            assert tester.wait_for(lambda: 1_000 + index in tester.stamps("depth/image"), 60.0)
        status, _ = _wait_for_level(tester, DiagnosticStatus.ERROR, 10.0)
        assert "no valid depth" in status.message
        node.stop()
        tester.destroy()


def test_health_rules_on_a_fake_clock():
    now = [0.0]
    monitor = HealthMonitor(window_s=5.0, stale_after_s=1.0, clock=lambda: now[0])
    assert monitor.report("/image").level == WARN
    now[0] = 2.0
    assert monitor.report("/image").level == ERROR
    for _ in range(10):
        monitor.frame_received()
        monitor.frame_processed(True)
        now[0] += 0.1
    report = monitor.report("/image")
    assert (report.level,
            report.message) == (OK, "running") and report.fps == pytest.approx(10 / 3.0)  # 3 s since start
    monitor.frame_received()
    monitor.frame_refused("bad encoding")
    assert monitor.report("/image").level == WARN and "bad encoding" in monitor.report("/image").message
    now[0] += 6.0
    monitor.frame_received()
    monitor.frame_refused("bad encoding")
    assert monitor.report("/image").level == ERROR  # every frame of the window refused


def test_input_loss_comes_from_evidence_not_from_uneven_spacing():
    """Frames sent reliably every 50 ms and 400 ms in turn used to read as "about 76 % never reached the
    node": uneven spacing is no evidence. The middleware's lost-sample count is, and so is a declared rate."""
    stamps, t = [], 0
    for i in range(40):
        t += 50_000_000 if i % 2 else 400_000_000
        stamps.append(t)
    uneven = InputLoss()
    for stamp in stamps:
        uneven.add(stamp)
    assert uneven.lost == 0
    uneven.middleware_reported(5)  # the subscription's message_lost event
    assert uneven.lost == 5
    declared = InputLoss(declared_rate_hz=10.0)
    kept = [i * 100_000_000 for i in range(100) if i % 3 != 1]  # 10 Hz, a third lost on the way
    for stamp in kept:
        declared.add(stamp)
    assert declared.lost == 33 and declared.arrived == 67
    monitor = HealthMonitor(window_s=5.0, stale_after_s=1.0, clock=lambda: 0.0)
    monitor.frame_received()
    monitor.frame_processed(True)
    report = monitor.report("/image", declared)
    assert report.level == WARN and "about 33% of the camera's frames never reached the node" in report.message
    assert monitor.report("/image", InputLoss()).level == OK


def test_log_throttle_lets_one_line_per_kind_through_per_period():
    """One throttle per kind: a flood of bad frames must not hide a bad camera_info (rclpy throttles per
    call site, and every refusal is logged from one)."""
    from hydranet_ros.ros.health import LogThrottle
    now = [100.0]
    throttle = LogThrottle(5.0, clock=lambda: now[0])
    assert throttle.allow("bad_input") and not throttle.allow("bad_input")
    assert throttle.allow("bad_camera_info")  # another kind, within the same 5 s
    now[0] += 4.9
    assert not throttle.allow("bad_input") and not throttle.allow("bad_camera_info")
    now[0] += 0.2
    assert throttle.allow("bad_input") and throttle.allow("bad_camera_info")


def test_frame_stats_split_a_frames_time_into_stages_and_say_them_in_diagnostics():
    """Decoding counts as pre-processing, the node's time after the pipeline as post, total from arrival;
    copy is reported only by a backend that measures it; every counter and the input loss are there."""
    from hydranet_ros.ros.frame_stats import FRAME_FATES, FrameStats
    from hydranet_ros.ros.health import HealthReport
    stats = FrameStats()
    report = HealthReport(OK, "running", 9.5)
    empty = stats.diagnostic_values(report, "onnxruntime on cpu (fp32)", "cpu", InputLoss())
    assert empty["latency_total_ms"] == "nan" and "latency_copy_ms" not in empty
    stats.frame_timed({"pre": 2.0, "inference": 10.0}, received_at=1.000, start=1.004, decoded=1.005, end=1.020)
    stats.frame_timed({"pre": 4.0, "inference": 12.0}, received_at=2.000, start=2.001, decoded=2.002, end=2.021)
    stats.counts["received"] += 2
    stats.counts["processed"] += 2
    loss = InputLoss(10.0)
    for stamp in (0, 100_000_000, 300_000_000):  # at 10 Hz, one frame of four missing
        loss.add(stamp)
    values = stats.diagnostic_values(report, "onnxruntime on cpu (fp32)", "cpu", loss)
    assert values["latency_pre_ms"] == "4.00"  # medians of (2 + 1, 4 + 1)
    assert values["latency_inference_ms"] == "11.00"
    assert values["latency_post_ms"] == "3.00"  # (16 - 3 - 10, 20 - 5 - 12)
    assert values["latency_total_ms"] == "20.50"  # (20, 21)
    assert "latency_copy_ms" not in values
    assert values["fps"] == "9.50" and values["backend"] == "onnxruntime on cpu (fp32)" and values["device"] == "cpu"
    assert values["frames_received"] == values["frames_processed"] == "2"
    assert all(values[f"frames_{fate}"] == "0" for fate in FRAME_FATES[1:])
    assert values["frames_lost_before_node"] == "1"
    stats.frame_timed({"pre": 1.0, "inference": 5.0, "copy": 0.5}, 3.0, 3.0, 3.0, 3.01)
    assert stats.diagnostic_values(report, "torch on cuda", "cuda", loss)["latency_copy_ms"] == "0.50"
