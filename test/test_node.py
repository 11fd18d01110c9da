"""perception_node in its own process, fed real KITTI frames over DDS."""
import cv2
import numpy as np
import pytest

from conftest import shared_path
from ros_harness import NodeProcess, OUTPUTS, RosClient, camera_info_message, image_message
from hydranet_ros.data.kitti import read_tracking_calibration
from hydranet_ros.ros.conversions import pointcloud2_to_array

rclpy = pytest.importorskip("rclpy")


def _kitti_frames(count):
    root = shared_path("data", "kitti_tracking_0001")
    paths = sorted((root / "image_2" / "0001").glob("*.png"))[:count]
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    frames = [cv2.imread(str(p)) for p in paths]
    return frames, calibration.intrinsics(frames[0].shape[1], frames[0].shape[0])


def test_every_output_arrives_with_type_encoding_size_and_the_input_header(ros, street_model_file):
    frames, intrinsics = _kitti_frames(6)
    with NodeProcess(street_model_file, {"backend": "onnxruntime"}) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        sent = []
        for index, bgr in enumerate(frames):
            stamp = 1_700_000_000_000_000_000 + index * 100_000_000  # 10 Hz
            msg = image_message(bgr, stamp)
            tester.info_pub.publish(camera_info_message(intrinsics, msg.header))
            tester.spin(0.05)
            tester.image_pub.publish(msg)
            sent.append(stamp)
            assert tester.wait_for(lambda: all(stamp in tester.stamps(t) for t in OUTPUTS), 20.0), \
                {t: len(v) for t, v in tester.received.items()}
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0, output
    height, width = frames[0].shape[:2]
    for topic in OUTPUTS:
        assert tester.stamps(topic) <= set(sent)
        for msg in tester.received[topic]:
            assert msg.header.frame_id == "camera_optical"
    expected = {"segmentation": "mono8", "segmentation/color": "rgb8", "segmentation/overlay": "rgb8", "depth": "32FC1"}
    for topic, encoding in expected.items():
        msg = tester.received[topic][-1]
        assert (msg.encoding, msg.width, msg.height) == (encoding, width, height)
    depth = np.frombuffer(bytes(tester.received["depth"][-1].data), np.float32)
    assert np.isfinite(depth).any()
    info = tester.received["depth/camera_info"][-1]
    assert (info.width, info.height) == (width, height) and np.isclose(info.k[0], intrinsics.fx)
    cloud = tester.received["points"][-1]
    assert (cloud.height, cloud.width) == (-(-height // 2), -(-width // 2))  # points_stride 2, organised
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label"]
    points = pointcloud2_to_array(cloud)
    finite = np.isfinite(points["x"]) & np.isfinite(points["y"]) & np.isfinite(points["z"])
    assert cloud.is_dense == bool(finite.all())  # dense only when no point is NaN
    assert set(np.unique(points["label"])) <= set(range(6))
    obstacles = pointcloud2_to_array(tester.received["points/obstacles"][-1])
    kept = np.isfinite(obstacles["z"])
    assert not np.isin(obstacles["label"][kept], [0, 2, 3]).any()  # no sky, road or sidewalk
    assert "HydraNet ready" in output


def test_network_resolution_scales_the_camera_info(ros, street_model_file):
    frames, intrinsics = _kitti_frames(1)
    with NodeProcess(street_model_file, {"backend": "onnxruntime", "output_resolution": "network"}) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        msg = image_message(frames[0], 5)
        tester.info_pub.publish(camera_info_message(intrinsics, msg.header))
        tester.spin(0.1)
        tester.image_pub.publish(msg)
        assert tester.wait_for(lambda: tester.received["depth/camera_info"] and tester.received["depth"], 20.0)
        node.stop()
        tester.destroy()
    depth, info = tester.received["depth"][-1], tester.received["depth/camera_info"][-1]
    assert (depth.width, depth.height) == (320, 96) == (info.width, info.height)
    assert np.isclose(info.k[0], intrinsics.fx * 320 / 1242)
