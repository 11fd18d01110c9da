"""Bad input, faults, overload and shutdown of perception_node over DDS; start-up faults, the engine cache
and signals in a process of its own."""
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ros_harness import (InProcessNode, NodeProcess, OUTPUTS, RosClient, camera_info_message,
                         corrupt_but_decodable_jpeg, image_message)
from hydranet_ros.camera.intrinsics import Intrinsics

rclpy = pytest.importorskip("rclpy")
K = Intrinsics(300.0, 300.0, 159.5, 47.5, 320, 96)


def _frame(seed=0, height=96, width=320):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _diagnostics(tester):
    for array in reversed(tester.diagnostics):
        for status in array.status:
            if "HydraNet" in status.name:
                return {kv.key: kv.value for kv in status.values}, status
    return {}, None


def _bad_messages():
    """(description, message) pairs, each of which the node must refuse and survive."""
    from sensor_msgs.msg import CompressedImage
    good = image_message(_frame(), 1)
    cases = []

    def variant(description, **changes):
        msg = image_message(_frame(), len(cases) + 10)
        for key, value in changes.items():
            setattr(msg, key, value)
        cases.append((description, msg))

    variant("unsupported encoding", encoding="nv21")
    variant("empty encoding", encoding="")
    variant("not a colour image", encoding="16UC1", step=320 * 2)
    variant("data shorter than step x height", data=bytes(good.data)[:-100])
    variant("step smaller than width x bytes per pixel", step=300)
    variant("zero width", width=0)
    variant("zero height", height=0)
    variant("above the size limit", height=96, width=320, step=960)  # limit lowered in the test
    compressed = CompressedImage(format="jpeg")
    compressed.data = b"\xff\xd8\xff\xe0" + bytes(50)  # a truncated JPEG
    return cases, compressed


def test_bad_frames_are_counted_and_the_next_good_frame_is_served(ros, street_model_file):
    cases, corrupt_jpeg = _bad_messages()
    with InProcessNode(street_model_file, {"backend": "onnxruntime", "diagnostics_period": 0.3}) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        tester.info_pub.publish(camera_info_message(K, image_message(_frame(), 0).header))
        stamp = 1000
        for description, bad in cases:
            if description == "above the size limit":
                continue  # needs its own node parameter, below
            tester.image_pub.publish(bad)
            tester.spin(0.3)
            stamp += 1
            good = image_message(_frame(stamp), stamp)
            tester.info_pub.publish(camera_info_message(K, good.header))
            tester.spin(0.05)
            tester.image_pub.publish(good)
            assert tester.wait_for(lambda: all(stamp in tester.stamps(t) for t in OUTPUTS), 20.0), description
        # CameraInfo with a zero K, a NaN K, a size that does not fit and 1000 distortion coefficients: no
        # cloud from them, no crash, the frame served without them.
        for info_change in ({"k": [0.0] * 9}, {"k": [math.nan] * 9}, {"width": 640}, {"d": [0.01] * 1000}):
            stamp += 1
            good = image_message(_frame(stamp), stamp)
            info = camera_info_message(K, good.header)
            for key, value in info_change.items():
                setattr(info, key, value)
            tester.info_pub.publish(info)
            tester.spin(0.1)
            tester.image_pub.publish(good)
            assert tester.wait_for(lambda: stamp in tester.stamps("depth/image"), 20.0), info_change
        tester.spin(1.0)
        values, status = _diagnostics(tester)
        reported = " | ".join(s.message for array in tester.diagnostics for s in array.status)
        code, output, _ = node.stop()
        tester.destroy()
    assert int(values["frames_bad_input"]) == len(cases) - 1
    assert int(values["frames_bad_camera_info"]) >= 4
    assert int(values["frames_errors"]) == 0
    assert code == 0 and "Traceback" not in output
    # Each refusal is reported in /diagnostics with its reason; the log is throttled, so a flood
    # of bad frames prints only a line every few seconds.
    for reason in ("'nv21' is not a camera image", "'16UC1' is not a camera image", "step 300 is smaller", "zero size",
                   "needs", "unusable K", "focal length fx=0", "camera_info is for 640x96",
                   "1000 distortion coefficients for 'plumb_bob'"):
        assert reason in reported, reason
    assert "accepted: rgb8, bgr8, rgba8, bgra8, mono8, bayer_rggb8" in output
    assert output.count("dropping frame") <= 3


def test_each_kind_of_refusal_is_logged_even_right_after_another_kind(ros, street_model_file):
    """A refused frame, then at once a refused camera_info: both lines are in the log (one throttle for
    all kinds hid the second for 5 s)."""
    with InProcessNode(street_model_file, {"backend": "onnxruntime"}) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        bad = image_message(_frame(), 10)
        bad.encoding = "nv21"
        tester.image_pub.publish(bad)
        tester.spin(0.5)
        info = camera_info_message(K, bad.header)
        info.k = [0.0] * 9
        tester.info_pub.publish(info)
        tester.spin(0.5)
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0, output
    assert "dropping frame: encoding 'nv21'" in output and "ignoring camera_info" in output, output


def test_size_limit_and_corrupt_compressed_images(ros, street_model_file):
    import cv2
    from sensor_msgs.msg import CompressedImage
    _, corrupt = _bad_messages()
    params = {"backend": "onnxruntime", "image_transport": "compressed", "max_image_pixels": 20000,
              "diagnostics_period": 0.2}
    with InProcessNode(street_model_file, params) as node:
        tester = RosClient()
        assert tester.wait_for(lambda: tester.compressed_pub.get_subscription_count() > 0, 60), node.stop()[1]
        tester.spin(1.0)
        big = CompressedImage(format="png")
        big.data = cv2.imencode(".png", _frame())[1].tobytes()  # 320 x 96 = 30720 pixels > 20000
        small = CompressedImage(format="png")
        small.data = cv2.imencode(".png", _frame(height=64, width=200))[1].tobytes()
        small.header.stamp.sec = 7
        bomb = CompressedImage(format="png")  # a tiny PNG whose header claims 40000 x 40000 pixels
        header = bytearray(small.data)
        header[16:24] = (40000).to_bytes(4, "big") * 2
        bomb.data = bytes(header)
        flipped = CompressedImage(format="jpeg")
        flipped.data = corrupt_but_decodable_jpeg(_frame(seed=1, height=64, width=200))
        for msg in (corrupt, big, bomb, flipped, small):
            tester.compressed_pub.publish(msg)
            tester.spin(0.6)
        assert tester.wait_for(lambda: tester.received["depth/image"], 20.0)
        reported = " | ".join(s.message for array in tester.diagnostics for s in array.status)
        code, output, _ = node.stop()
        tester.destroy()
    assert "cannot be decoded" in reported and "exceeds the limit of 20000 pixels" in reported
    assert ("header says 40000x40000, which exceeds the limit of 20000 pixels (max_image_pixels); not decoded"
            in reported)
    assert "corrupt JPEG (Corrupt JPEG data" in reported
    assert tester.received["depth/image"][-1].header.stamp.sec == 7 and code == 0


@pytest.mark.parametrize("parameters, message", [
    ({"model_path": "/nonexistent/model.pt"}, "/nonexistent/model.pt does not exist"),
    ({"backend": "tflite"}, "backend must be one of"),
    ({"points_stride": 0}, "points_stride"),
    ({"obstacle_exclude_classes": "[floor]"}, "unknown classes ['floor']"),
    ({"input_size": "[100000,100000]"}, "input_size must be [height, width]"),
    ({"input_size": "[1,1]"}, "input_size must be [height, width]"),
    ({"input_size": "[2,100000]"}, "input_size must be [height, width]"),
    ({"image_size": "[1,1]"}, "image_size must be [height, width]"),
    ({"model_path": "/tmp"}, "/tmp is a folder, not a model file"),
    ({"fallback_intrinsics": "[.nan,500.0,320.0,240.0]"}, "fallback_intrinsics must be finite"),
    ({"backend": "onnxruntime", "engine_cache": "/proc/hydranet"}, "cannot write the cache folder /proc/hydranet"),
    ({"backend": "openvino", "precision": "int8"}, "precision int8 needs calibration frames: set int8_calibration"),
])
def test_start_up_faults_exit_non_zero_naming_the_problem(ros, street_model_file, parameters, message):
    with NodeProcess(street_model_file, parameters) as node:
        code, output, _ = node.stop(timeout=60) if node.process.wait(timeout=60) is not None else (None, "", 0)
    assert code == 1, output
    assert message in output and "Traceback" not in output


def test_corrupt_model_file_is_named_with_the_fix(ros, tmp_path, street_model_file):
    import torch
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    bad_spec = tmp_path / "bad_spec.pt"  # the right format, a spec that is not one
    data = torch.load(street_model_file, weights_only=True)
    data["spec"]["label_space"] = {"name": "kitti6"}
    torch.save(data, bad_spec)
    nan_camera = tmp_path / "nan_camera.pt"  # valid in form, unusable in value: it ran with 0 % finite depth
    data = torch.load(street_model_file, weights_only=True)
    data["spec"]["focal_length_px"] = float("nan")
    torch.save(data, nan_camera)
    for path, message in ((broken, "hydranet train"), (bad_spec, "has a broken spec"),
                          (nan_camera, "has an unusable spec: focal_length_px nan")):
        with NodeProcess(path, {}) as node:
            node.process.wait(timeout=60)
            code, output, _ = node.stop()
        assert code == 1 and str(path) in output and message in output and "Traceback" not in output, output
    info = subprocess.run([sys.executable, "-m", "hydranet_ros.cli.main", "info", str(nan_camera)],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 2 and "focal_length_px nan" in info.stderr and len(info.stderr.splitlines()) == 1


def test_an_unwritable_cache_makes_auto_fall_back_to_a_backend_without_one(ros, street_model_file):
    with NodeProcess(street_model_file, {"engine_cache": "/proc/hydranet", "device": "cpu"}) as node:
        tester = RosClient(topics=["segmentation"])
        assert tester.wait_for_node(), node.stop()[1]
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0 and "cannot write the cache folder /proc/hydranet" in output and "torch on cpu" in output


def test_parameters_are_validated_at_run_time(ros, street_model_file):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    with InProcessNode(street_model_file, {"backend": "onnxruntime"}) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        client = tester.node.create_client(SetParameters, "/hydranet/perception_node/set_parameters")
        assert client.wait_for_service(timeout_sec=20)

        def set_parameter(name, kind, **value):
            future = client.call_async(SetParameters.Request(parameters=[
                Parameter(name=name, value=ParameterValue(type=kind, **value))]))
            assert tester.wait_for(future.done, 10)
            return future.result().results[0]

        accepted = set_parameter("overlay_alpha", ParameterType.PARAMETER_DOUBLE, double_value=0.3)
        out_of_range = set_parameter("points_stride", ParameterType.PARAMETER_INTEGER, integer_value=0)
        unknown_class = set_parameter("points_exclude_classes", ParameterType.PARAMETER_STRING_ARRAY,
                                      string_array_value=["unicorn"])
        read_only = set_parameter("backend", ParameterType.PARAMETER_STRING, string_value="torch")
        no_camera = set_parameter("fallback_intrinsics", ParameterType.PARAMETER_DOUBLE_ARRAY,
                                  double_array_value=[300.0, 300.0, 1e9, 1e9])
        a_camera = set_parameter("fallback_intrinsics", ParameterType.PARAMETER_DOUBLE_ARRAY,
                                 double_array_value=[721.5, 721.5, 609.6, 172.9])
        node.stop()
        tester.destroy()
    assert accepted.successful
    assert not out_of_range.successful and out_of_range.reason
    assert not unknown_class.successful and "unicorn" in unknown_class.reason
    assert not read_only.successful and "read-only" in read_only.reason.lower()
    assert not no_camera.successful and "are no camera's" in no_camera.reason and a_camera.successful


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("diagnostics_period", [1.0, 60.0])
def test_signals_stop_the_node_quickly_and_cleanly(ros, street_model_file, sig, diagnostics_period):
    """Within 2 s whatever the timers' periods (docker stop and systemd send SIGKILL after 10 s or
    less), with frames in flight, and without a spurious error for the frame being published."""
    with NodeProcess(street_model_file, {"backend": "onnxruntime", "diagnostics_period": diagnostics_period}) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        for stamp in range(1, 4):  # busy: frames in flight when the signal arrives
            tester.image_pub.publish(image_message(_frame(stamp), stamp))
            tester.spin(0.05)
        tester.spin(2.0)  # idle: the executor sleeps until its next timer
        for stamp in range(4, 7):
            tester.image_pub.publish(image_message(_frame(stamp), stamp))
            tester.spin(0.02)
        code, output, seconds = node.stop(sig)
        tester.destroy()
    assert seconds < 2.0, seconds
    assert code == 0 and "Traceback" not in output, output
    assert "processing failed" not in output, output


def test_overload_processes_the_newest_frame_without_backlog(ros, street_model_file):
    """A 100 Hz camera into a model that takes far longer than 10 ms per frame.

    Only segmentation (mono8) is subscribed, so the node computes and sends nothing else: latency
    then measures the node, not Fast DDS resending lost fragments of multi-megabyte outputs."""
    frames = [image_message(_frame(i, 375, 1242), 0) for i in range(4)]
    params = {"backend": "onnxruntime", "input_size": "[352,1216]", "diagnostics_period": 0.3}
    with InProcessNode(street_model_file, params) as node:
        tester = RosClient(topics=["segmentation"])
        assert tester.wait_for_node(), node.stop()[1]
        # The first frame of a camera resolution exports its graph (seconds): not what is measured here.
        warm_up = frames[0]
        warm_up.header.stamp.sec, warm_up.header.stamp.nanosec = 0, 9_999
        tester.image_pub.publish(warm_up)
        assert tester.wait_for(lambda: 9_999 in tester.stamps("segmentation"), 120.0), node.stop()[1]
        sent_at = {}
        start = time.perf_counter()
        index = 0
        while time.perf_counter() - start < 4.0:
            stamp = 10_000 + index
            msg = frames[index % 4]
            msg.header.stamp.sec, msg.header.stamp.nanosec = 0, stamp
            tester.image_pub.publish(msg)
            sent_at[stamp] = time.perf_counter()
            index += 1
            tester.spin(max(0.0, start + index * 0.01 - time.perf_counter()))
        tester.spin(2.0)
        values, _ = _diagnostics(tester)
        node.stop()
        tester.destroy()
    processed_stamps = sorted(tester.stamps("segmentation"))
    received, processed, dropped = (int(values[k]) for k in ("frames_received", "frames_processed", "frames_dropped"))
    assert len(sent_at) > 300
    assert processed >= 3 and dropped > 0
    assert received - 1 <= processed + dropped <= received  # at most one frame waiting when counted
    assert len(processed_stamps) == processed  # the warm-up frame included
    # Latency (publish -> segmentation received) stays under 2x one frame's (median) processing time for 90%
    # of the frames, and never grows into a backlog: a queue would add a frame's time per frame.
    processing_ms = sum(float(values[f"latency_{k}_ms"]) for k in ("pre", "inference", "post"))
    latencies = [(tester.arrival[("segmentation", stamp)] - sent_at[stamp]) * 1e3 for stamp in processed_stamps
                 if stamp in sent_at][1:]
    assert np.percentile(latencies, 90) < 2 * processing_ms, (latencies, processing_ms)
    assert max(latencies) < 3 * processing_ms, (latencies, processing_ms)
    # Newest frame: each processed frame is one of the latest sent when the worker took it, so
    # processed stamps step over the dropped ones instead of walking through the queue.
    assert processed_stamps[-1] - processed_stamps[0] > 5 * len(processed_stamps)
