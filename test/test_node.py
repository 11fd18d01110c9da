"""perception_node fed real KITTI frames over DDS (in this process: nothing here needs a second one)."""
import cv2
import numpy as np
import pytest

from conftest import REPO, shared_path
from ros_harness import (InProcessNode, NodeProcess, OUTPUTS, RosClient, camera_encoded, camera_info_message,
                         image_message)
from hydranet_ros.data.kitti import read_tracking_calibration
from hydranet_ros.ros.conversions import pointcloud2_to_array, stamp_ns

rclpy = pytest.importorskip("rclpy")


def _kitti_frames(count):
    root = shared_path("data", "kitti_tracking_0001")
    paths = sorted((root / "image_2" / "0001").glob("*.png"))[:count]
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    frames = [cv2.imread(str(p)) for p in paths]
    return frames, calibration.intrinsics(frames[0].shape[1], frames[0].shape[0])


def test_bayer_yuv422_and_16_bit_cameras_are_served_like_bgr8(ros):
    """The same KITTI frame sent as each camera encoding to the shipped street model: every output
    arrives, and the segmentation agrees with the bgr8 frame's (demosaicing and 4:2:2 chroma move
    class boundaries by a pixel here and there; a wrong Bayer pattern or byte order changes far more)."""
    frames, intrinsics = _kitti_frames(1)
    rgb = np.ascontiguousarray(frames[0][..., ::-1])
    encodings = ["bgr8", "bayer_rggb8", "bayer_grbg8", "yuv422", "yuv422_yuy2", "uyvy", "yuyv",
                 "rgb16"]  # Jazzy: uyvy, yuyv
    with InProcessNode(REPO / "models" / "hydranet_street.pt", {"backend": "onnxruntime"}) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        labels = {}
        for index, encoding in enumerate(encodings):
            stamp = 1_700_000_000_000_000_000 + index * 100_000_000
            msg = image_message(frames[0], stamp)
            if encoding != "bgr8":
                array = camera_encoded(rgb, encoding)
                msg.encoding, msg.step = encoding, array.shape[1] * array[0, 0].nbytes
                msg.data = array.tobytes()
            tester.info_pub.publish(camera_info_message(intrinsics, msg.header))
            tester.spin(0.05)
            tester.image_pub.publish(msg)
            assert tester.wait_for(lambda: all(stamp in tester.stamps(t) for t in OUTPUTS), 20.0), encoding
            segmentation = next(m for m in tester.received["segmentation"] if stamp_ns(m.header) == stamp)
            labels[encoding] = np.frombuffer(bytes(segmentation.data), np.uint8)
            if encoding == "bgr8":  # REP 117 in the depth image: +Inf where sky is seen, else metres
                depth = next(m for m in tester.received["depth/image"] if stamp_ns(m.header) == stamp)
                depth_bgr8 = np.frombuffer(bytes(depth.data), np.float32)
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0 and "dropping frame" not in output, output
    sky = labels["bgr8"] == 0
    assert sky.mean() > 0.01 and np.isposinf(depth_bgr8[sky]).all() and np.isfinite(depth_bgr8[~sky]).mean() > 0.99
    assert labels["rgb16"].tobytes() == labels["bgr8"].tobytes()  # 16-bit values that are 8-bit ones x 257
    assert labels["uyvy"].tobytes() == labels["yuv422"].tobytes()  # the same byte order by its Jazzy name
    assert labels["yuyv"].tobytes() == labels["yuv422_yuy2"].tobytes()
    for encoding in encodings[1:-1]:
        agreement = float((labels[encoding] == labels["bgr8"]).mean())
        assert agreement >= 0.9, (encoding, agreement)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])  # host post-processing; on the backend's device
def test_every_output_arrives_with_type_encoding_size_and_the_input_header(ros, street_model_file, backend):
    frames, intrinsics = _kitti_frames(6)
    with InProcessNode(street_model_file, {"backend": backend}) as node:
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
    expected = {"segmentation": "mono8", "segmentation/color": "rgb8", "segmentation/overlay": "rgb8",
                "depth/image": "32FC1"}
    for topic, encoding in expected.items():
        msg = tester.received[topic][-1]
        assert (msg.encoding, msg.width, msg.height) == (encoding, width, height)
    depth = np.frombuffer(bytes(tester.received["depth/image"][-1].data), np.float32)
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
    with InProcessNode(street_model_file, {"backend": "onnxruntime", "output_resolution": "network"}) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        msg = image_message(frames[0], 5)
        tester.info_pub.publish(camera_info_message(intrinsics, msg.header))
        tester.spin(0.1)
        tester.image_pub.publish(msg)
        assert tester.wait_for(lambda: tester.received["depth/camera_info"] and tester.received["depth/image"], 20.0)
        node.stop()
        tester.destroy()
    depth, info = tester.received["depth/image"][-1], tester.received["depth/camera_info"][-1]
    assert (depth.width, depth.height) == (320, 96) == (info.width, info.height)
    assert np.isclose(info.k[0], intrinsics.fx * 320 / 1242)


def test_a_calibration_latched_before_the_node_starts_reaches_it(ros, street_model_file):
    """A driver that publishes camera_info once, transient-local, before the node starts: the node
    subscribes with the durability the publisher offers, gets the stored message, and its clouds and
    depth/camera_info use that calibration (a volatile subscription never received it: depth images,
    no clouds)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo
    frames, intrinsics = _kitti_frames(3)
    tester = RosClient()
    tester.node.destroy_publisher(tester.info_pub)  # the driver's latched publisher is the only one
    latched = tester.node.create_publisher(CameraInfo, "/hydranet/camera_info", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    first = image_message(frames[0], 1_000_000_000)
    latched.publish(camera_info_message(intrinsics, first.header))
    tester.spin(0.5)
    with NodeProcess(street_model_file, {"backend": "onnxruntime"}) as node:
        assert tester.wait_for_node(), node.stop()[1]
        for index in range(60):  # a camera at about 3 Hz for up to 20 s
            tester.image_pub.publish(image_message(frames[index % 3], 2_000_000_000 + index * 100_000_000))
            if tester.wait_for(lambda: tester.received["points"] and tester.received["depth/camera_info"], 0.3):
                break
        arrived = bool(tester.received["points"])
        _, output, _ = node.stop()
    tester.destroy()
    assert arrived, output[-2000:]
    assert np.isclose(tester.received["depth/camera_info"][-1].k[0], intrinsics.fx)


def test_outputs_take_rclpys_standard_per_topic_qos_overrides(ros, street_model_file):
    """qos_overrides./hydranet/points.publisher.reliability (what a parameter file sets) changes that output
    alone; the others keep output_qos_reliability (reliable)."""
    from rclpy.qos import ReliabilityPolicy
    override = {"backend": "onnxruntime", "qos_overrides./hydranet/points.publisher.reliability": "best_effort",
                "qos_overrides./hydranet/points.publisher.depth": 1}
    with InProcessNode(street_model_file, override) as node:
        tester = RosClient()
        assert tester.wait_for_node(), node.stop()[1]
        offered = {topic: [info.qos_profile for info in tester.node.get_publishers_info_by_topic(f"/hydranet/{topic}")]
                   for topic in ("points", "segmentation")}
        node.stop()
        tester.destroy()
    assert [q.reliability for q in offered["points"]] == [ReliabilityPolicy.BEST_EFFORT]
    assert [q.reliability for q in offered["segmentation"]] == [ReliabilityPolicy.RELIABLE]
