"""perception_node fed real KITTI frames over DDS (in this process: nothing here needs a second one)."""
import cv2
import numpy as np
import pytest

from conftest import REPO, shared_path
from ros_harness import (InProcessNode, NodeProcess, OUTPUTS, RosClient, camera_encoded, camera_info_message,
                         image_message, node_status)
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
    # points_stride 2 counts network pixels: in camera pixels, 2 x the camera's width over the network's
    from hydranet_ros.model.model_file import load_model
    stride = round(2 * width / load_model(street_model_file)[1].network_size((height, width))[1])
    assert stride > 2 and (cloud.height, cloud.width) == (-(-height // stride), -(-width // stride))  # organised
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label"]
    points = pointcloud2_to_array(cloud)
    finite = np.isfinite(points["x"]) & np.isfinite(points["y"]) & np.isfinite(points["z"])
    assert cloud.is_dense == bool(finite.all())  # dense only when no point is NaN
    assert set(np.unique(points["label"])) <= set(range(6))
    obstacles = pointcloud2_to_array(tester.received["points/obstacles"][-1])
    assert obstacles.shape[0] == 1 and np.isfinite(obstacles["z"]).all()  # only the obstacle points
    assert not np.isin(obstacles["label"], [0, 2, 3]).any()  # no sky, road or sidewalk
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


@pytest.mark.parametrize("events", ["matched", "polled"])
def test_the_camera_is_subscribed_only_while_an_output_has_a_subscriber(ros, street_model_file, monkeypatch, events):
    """Nobody listens: the node does not subscribe to the image (no frame is copied into Python) and says
    it is idle; an output subscriber comes: it subscribes and serves; it goes: unsubscribed again. With
    rclpy's matched event, in a process of its own; polled, in this process with a PublisherEventCallbacks
    that has no matched event, as Humble's rclpy."""
    from diagnostic_msgs.msg import DiagnosticStatus
    from sensor_msgs.msg import Image
    parameters = {"backend": "onnxruntime", "diagnostics_period": 0.3}
    if events == "polled":
        from hydranet_ros.ros import perception_node

        class HumbleEventCallbacks(perception_node.SubscriptionEventCallbacks):
            def __init__(self, **kwargs):
                if "matched" in kwargs:
                    raise TypeError("__init__() got an unexpected keyword argument 'matched'")
                super().__init__(**kwargs)
        monkeypatch.setattr(perception_node, "PublisherEventCallbacks", HumbleEventCallbacks)
        started = InProcessNode(street_model_file, parameters)
    else:
        started = NodeProcess(street_model_file, parameters)
    frame = np.random.default_rng(0).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    with started as node:
        tester = RosClient(topics=())
        assert tester.wait_for(lambda: node_status(tester)[0] is not None, 60), node.stop()[1]
        tester.spin(1.0)
        for index in range(5):
            tester.image_pub.publish(image_message(frame, 1_000 + index))
            tester.spin(0.1)
        status, values = node_status(tester)
        assert status.level == DiagnosticStatus.OK and status.message.startswith("idle"), status.message
        assert tester.image_pub.get_subscription_count() == 0 and values["frames_received"] == "0"

        received = []
        subscription = tester.node.create_subscription(Image, "/hydranet/segmentation", received.append, 10)
        assert tester.wait_for(lambda: tester.image_pub.get_subscription_count() == 1, 10)
        tester.spin(0.5)
        stamp = 2_000
        while not received and stamp < 2_100:
            tester.image_pub.publish(image_message(frame, stamp))
            tester.wait_for(lambda: bool(received), 1.0)
            stamp += 1
        assert received and stamp_ns(received[0].header) >= 2_000
        assert tester.wait_for(lambda: node_status(tester)[0].message == "running", 10), node_status(tester)

        tester.node.destroy_subscription(subscription)
        assert tester.wait_for(lambda: tester.image_pub.get_subscription_count() == 0, 10)
        assert tester.wait_for(lambda: node_status(tester)[0].message.startswith("idle"), 10)
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0 and "camera image unsubscribed" in output, output[-2000:]


@pytest.mark.parametrize("case", ["streamed camera_info, plain node", "latched camera_info, managed node",
                                  "no camera_info"])
def test_the_backend_is_prepared_for_the_camera_at_start_from_its_camera_info(ros, street_model_file, tmp_path, case):
    """image_size [0, 0]: the start (a managed node's configure) waits for a camera_info and prepares the
    backend for that camera's size, so the first frame is not where an export (or a TensorRT engine
    build) happens; without one the log says so, and /diagnostics says WARN "preparing" while the first
    frame of the camera's size is prepared. A fresh engine_cache: every graph is exported anew."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo
    from hydranet_ros.camera.intrinsics import Intrinsics
    height, width = 120, 400
    intrinsics = Intrinsics(300.0, 300.0, 199.5, 59.5, width, height)
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    parameters = {"backend": "onnxruntime", "engine_cache": str(tmp_path / "cache"), "diagnostics_period": 0.1,
                  "camera_info_wait": 1.0 if case == "no camera_info" else 30.0}
    managed = case.endswith("managed node")
    if managed:
        parameters["autostart"] = True
    tester = RosClient()
    if case.startswith("latched"):
        tester.node.destroy_publisher(tester.info_pub)
        tester.info_pub = tester.node.create_publisher(CameraInfo, "/hydranet/camera_info", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        tester.info_pub.publish(camera_info_message(intrinsics, image_message(frame, 1).header))
    started = NodeProcess(street_model_file, parameters,
                          module="hydranet_ros.ros.managed_perception_node" if managed else
                          "hydranet_ros.ros.perception_node")
    with started as node:
        stamp = 1_000
        while not (tester.image_pub.get_subscription_count() and tester.node.count_publishers("/hydranet/points")):
            assert node.process.poll() is None and stamp < 1_000 + 600, node.stop()[1]  # 60 s at most
            if case.startswith("streamed"):  # a driver: camera_info with every frame, before the node is up
                tester.info_pub.publish(camera_info_message(intrinsics, image_message(frame, stamp).header))
            tester.spin(0.1)
            stamp += 1
        tester.spin(1.0)
        while not tester.received["points"] and stamp < 5_000:
            message = image_message(frame, stamp)
            tester.info_pub.publish(camera_info_message(intrinsics, message.header))
            tester.image_pub.publish(message)
            tester.wait_for(lambda: bool(tester.received["points"]), 0.3)
            stamp += 1
        messages = [status.message for array in tester.diagnostics for status in array.status]
        code, output, _ = node.stop()
    tester.destroy()
    assert tester.received["points"] and code == 0, output[-3000:]
    preparing = f"first {width}x{height} image: preparing the backend"
    if case == "no camera_info":
        assert "no camera_info on /hydranet/camera_info within camera_info_wait (1 s)" in output, output[-3000:]
        assert preparing in output and f"preparing the backend for {width}x{height} images" in " ".join(messages)
    else:
        assert f"prepared for {width}x{height} camera images" in output, output[-3000:]
        assert preparing not in output and not any("preparing" in m for m in messages), output[-3000:]
