"""Camera geometry through perception_node over DDS: stamp pairing of
camera_info and the invariance of metric depth to cropping and resizing a real KITTI frame."""
import json

import numpy as np
import pytest

from conftest import REPO, shared_path
from ros_harness import InProcessNode, RosClient, camera_info_message, image_message
from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.data.kitti import project_lidar, read_tracking_calibration, read_velodyne

rclpy = pytest.importorskip("rclpy")
T0 = 1_700_000_000_000_000_000


def _diagnostics(tester):
    for array in reversed(tester.diagnostics):
        for status in array.status:
            if "HydraNet" in status.name:
                return {kv.key: kv.value for kv in status.values}
    return {}


def _info(fx, header, width=320, height=96, frame_id=None):
    from std_msgs.msg import Header
    copy = Header(frame_id=frame_id if frame_id is not None else header.frame_id)
    copy.stamp.sec, copy.stamp.nanosec = header.stamp.sec, header.stamp.nanosec
    return camera_info_message(Intrinsics(fx, fx, width / 2 - 0.5, height / 2 - 0.5, width, height), copy)


def _set_stamp(msg, stamp):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    return msg


def test_camera_info_is_paired_by_stamp_out_of_order_late_and_frame_checked(ros, street_model_file):
    frame = np.random.default_rng(0).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    params = {"backend": "onnxruntime", "diagnostics_period": 0.2}
    with InProcessNode(street_model_file, params) as node:
        tester = RosClient(topics=["depth/camera_info"])
        assert tester.wait_for_node(), node.stop()[1]
        images = {i: image_message(frame, T0 + i * 100_000_000) for i in range(5)}
        # Out of order: the later calibration arrives first.
        tester.info_pub.publish(_info(400.0, images[1].header))
        tester.spin(0.1)
        tester.info_pub.publish(_info(300.0, images[0].header))
        tester.spin(0.1)
        fx = {}
        for i in (0, 1):
            tester.image_pub.publish(images[i])
            assert tester.wait_for(lambda: images[i].header.stamp.nanosec in
                                   {m.header.stamp.nanosec for m in tester.received["depth/camera_info"]}, 60.0)
        # Late: the image first, its camera_info 30 ms after (within the node's wait).
        tester.image_pub.publish(images[2])
        tester.spin(0.03)
        tester.info_pub.publish(_info(500.0, images[2].header))
        # Another frame_id; and an image whose stamp is far from every camera_info.
        tester.spin(0.3)
        tester.info_pub.publish(_info(600.0, images[3].header, frame_id="other_camera"))
        tester.spin(0.1)
        for i in (2, 3, 4):
            if i == 4:
                _set_stamp(images[4], T0 + 60 * 1_000_000_000)
            tester.image_pub.publish(images[i])
            stamp = images[i].header.stamp
            assert tester.wait_for(lambda: (stamp.sec, stamp.nanosec) in
                                   {(m.header.stamp.sec, m.header.stamp.nanosec)
                                    for m in tester.received["depth/camera_info"]}, 60.0)
        tester.spin(0.5)
        values = _diagnostics(tester)
        node.stop()
        tester.destroy()
    for msg in tester.received["depth/camera_info"]:
        fx[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg.k[0]
    stamp = lambda i: (images[i].header.stamp.sec, images[i].header.stamp.nanosec)  # noqa: E731
    assert [fx[stamp(i)] for i in range(4)] == [300.0, 400.0, 500.0, 600.0]
    assert fx[stamp(4)] == 600.0  # unmatched: the nearest, counted and warned
    assert int(values["frames_camera_info_unmatched"]) == 1
    assert int(values["frames_camera_info_frame_mismatch"]) >= 1


def test_a_camera_info_sent_once_serves_every_later_frame(ros, street_model_file):
    """Latched drivers publish camera_info once; its stamp is old, the calibration still applies."""
    frame = np.random.default_rng(1).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    with InProcessNode(street_model_file, {"backend": "onnxruntime", "diagnostics_period": 0.2}) as node:
        tester = RosClient(topics=["depth/camera_info"])
        assert tester.wait_for_node(), node.stop()[1]
        first = image_message(frame, T0)
        tester.info_pub.publish(_info(350.0, first.header))
        tester.spin(0.2)
        for i in range(1, 4):
            tester.image_pub.publish(image_message(frame, T0 + i * 1_000_000_000))
            assert tester.wait_for(lambda: len(tester.received["depth/camera_info"]) >= i, 60.0)
        tester.spin(0.5)
        values = _diagnostics(tester)
        node.stop()
        tester.destroy()
    assert [m.k[0] for m in tester.received["depth/camera_info"]] == [350.0] * 3
    assert int(values["frames_camera_info_unmatched"]) == 0


def test_rectify_true_unquoted_in_a_parameter_file_and_a_boolean_set_at_run_time_are_taken(ros, street_model_file,
                                                                                           tmp_path):
    """YAML's unquoted true and `ros2 param set ... rectify false` are booleans: the string parameter used
    to refuse them and the node stopped. With overlay_alpha 0 the overlay is the image the network saw."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    rectify: true\n    overlay_alpha: 0.0\n")
    rows, cols = np.mgrid[0:96, 0:320]
    frame = np.stack([rows * 2, cols * 255 // 320, (rows + cols) % 256], -1).astype(np.uint8)  # smooth, not noise
    overlays = []
    with InProcessNode(street_model_file, {"backend": "onnxruntime"}, params_file=params) as node:
        tester = RosClient(topics=["segmentation/overlay"])
        assert tester.wait_for_node(), node.stop()[1]
        for index in range(2):
            msg = image_message(frame[..., ::-1], T0 + index * 1_000_000_000)
            info = _info(300.0, msg.header)
            info.d = [-0.4, 0.15, 0.0, 0.0, 0.0]
            tester.info_pub.publish(info)
            tester.spin(0.05)
            tester.image_pub.publish(msg)
            assert tester.wait_for(lambda: len(tester.received["segmentation/overlay"]) > index, 60.0)
            overlay = tester.received["segmentation/overlay"][index]
            overlays.append(np.frombuffer(bytes(overlay.data), np.uint8).reshape(96, 320, 3).astype(int))
            if index == 0:
                request = SetParameters.Request(parameters=[Parameter("rectify", value=False).to_parameter_msg()])
                result = tester.call(SetParameters, "/hydranet/perception_node/set_parameters", request)
                assert result.results[0].successful, result.results[0].reason
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0, output
    assert np.abs(overlays[0] - frame).mean() > 2  # rectify: true undistorted the frame (3.5 here)
    assert np.abs(overlays[1] - frame).mean() < 0.5  # rectify set to false at run time: as sent


def test_a_camera_info_the_node_cannot_rectify_falls_back_to_fallback_intrinsics(ros, street_model_file):
    """A ROI camera_info with rectify: always cannot be rectified here: the frame used to be processed with
    no camera at all, fallback_intrinsics ignored (no depth/camera_info, no cloud)."""
    frame = np.random.default_rng(2).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    params = {"backend": "onnxruntime", "rectify": "always", "fallback_intrinsics": "[310.0, 310.0, 159.5, 47.5]"}
    with InProcessNode(street_model_file, params) as node:
        tester = RosClient(topics=["depth/camera_info", "points"])
        assert tester.wait_for_node(), node.stop()[1]
        msg = image_message(frame, T0)
        info = _info(300.0, msg.header, width=640, height=192)  # the full sensor; the image is its ROI
        info.roi.width, info.roi.height = 320, 96
        info.d = [-0.2, 0.05, 0.0, 0.0, 0.0]
        tester.info_pub.publish(info)
        tester.spin(0.1)
        tester.image_pub.publish(msg)
        assert tester.wait_for(lambda: T0 in tester.stamps("depth/camera_info") and T0 in tester.stamps("points"),
                               30.0), node.stop()[1]
        code, output, _ = node.stop()
        tester.destroy()
    assert [m.k[0] for m in tester.received["depth/camera_info"]] == [310.0]
    assert "processing with fallback_intrinsics" in output and "binned or ROI" in output


STREET_MODEL = REPO / "models" / "hydranet_street.pt"


def test_depth_is_invariant_to_cropping_and_resizing_a_real_frame(ros, tmp_path):
    """A KITTI frame that no training job used, through the node: (a) its central crop of half the
    width (same K, cx shifted) and (b) the frame halved with K halved give the same metric depth at
    the LiDAR points as the whole frame, within 10 % (median ratio)."""
    import cv2
    if not STREET_MODEL.is_file():
        pytest.skip("the shipped street model is absent")
    root = shared_path("data", "kitti_tracking_0001")
    image = cv2.imread(str(root / "image_2" / "0001" / "000025.png"))
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    height, width = image.shape[:2]
    full = calibration.intrinsics(width, height)
    lidar = project_lidar(read_velodyne(root / "velodyne" / "0001" / "000025.bin"), calibration, width, height)
    left = width // 4
    crop_width = width // 2
    variants = {
        "full": (image, full),
        "crop": (np.ascontiguousarray(image[:, left:left + crop_width]),
                 Intrinsics(full.fx, full.fy, full.cx - left, full.cy, crop_width, height)),
        "half": (cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA),
                 full.scaled_to(width // 2, height // 2)),
    }
    depth = {}
    with InProcessNode(STREET_MODEL, {"backend": "torch"}) as node:
        tester = RosClient(topics=["depth/image"])
        assert tester.wait_for_node(), node.stop()[1]
        for index, (name, (bgr, intrinsics)) in enumerate(variants.items()):
            msg = image_message(bgr, T0 + index)
            tester.info_pub.publish(camera_info_message(intrinsics, msg.header))
            tester.spin(0.1)
            tester.image_pub.publish(msg)
            assert tester.wait_for(lambda: T0 + index in tester.stamps("depth/image"), 120.0), node.stop()[1]
            out = next(m for m in tester.received["depth/image"] if m.header.stamp.nanosec == (T0 + index) % 10**9)
            depth[name] = np.frombuffer(bytes(out.data), np.float32).reshape(out.height, out.width)
        node.stop()
        tester.destroy()
    v, u = np.nonzero(lidar)
    at_points = {"full": depth["full"][v, u]}
    in_crop = (u >= left) & (u < left + crop_width)
    at_points["crop"] = np.full(len(u), np.nan, np.float32)
    at_points["crop"][in_crop] = depth["crop"][v[in_crop], u[in_crop] - left]
    half_u = np.clip(np.round((u + 0.5) / 2 - 0.5).astype(int), 0, width // 2 - 1)
    half_v = np.clip(np.round((v + 0.5) / 2 - 0.5).astype(int), 0, height // 2 - 1)
    at_points["half"] = depth["half"][half_v, half_u]
    ratios = {}
    for name in ("crop", "half"):
        valid = np.isfinite(at_points[name]) & np.isfinite(at_points["full"])
        ratios[name] = float(np.median(at_points[name][valid] / at_points["full"][valid]))
    lidar_valid = np.isfinite(at_points["full"])
    ratios["full_vs_lidar"] = float(np.median(at_points["full"][lidar_valid] / lidar[v, u][lidar_valid]))
    (tmp_path / "ratios.json").write_text(json.dumps(ratios))
    print("median depth ratios to the whole frame:", ratios)
    assert abs(ratios["crop"] - 1) < 0.10 and abs(ratios["half"] - 1) < 0.10, ratios
