"""process-bag on a bag made from the real KITTI sequence."""
import json

import cv2
import numpy as np
import pytest

from bag_helpers import CAMERA_INFO_TOPIC, IMAGE_TOPIC, kitti_bag
from conftest import REPO, shared_path
from hydranet_ros.apps.process_bag import OUTPUT_TYPES, process_bag
from hydranet_ros.errors import CommandError
from hydranet_ros.cli.main import main as hydranet
from hydranet_ros.data.kitti import project_lidar, read_tracking_calibration, read_velodyne
from hydranet_ros.inference.backends import BackendOptions, create_backend
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import load_model
from hydranet_ros.ros.conversions import pointcloud2_to_array, stamp_ns
from hydranet_ros.training.metrics import DepthMetrics


def _read(bag):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
    messages = {}
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        for connection, timestamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((timestamp, reader.deserialize(raw, connection.msgtype)))
    return messages


def _stamp(msg):
    return stamp_ns(msg.header)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_every_frame_gets_its_outputs_with_the_original_stamps(tmp_path, street_model_file, storage):
    root = shared_path("data", "kitti_tracking_0001")
    stamps = kitti_bag(root, tmp_path / "in", storage, count=4)
    backend, _ = create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu"))
    perception = Perception(backend, load_model(street_model_file)[1])
    counts = process_bag(tmp_path / "in", tmp_path / "out", IMAGE_TOPIC, CAMERA_INFO_TOPIC, perception,
                         storage=storage, progress=False)
    assert counts == {"images": 4, "unreadable_images": 0, "copied": 9, "interrupted": False}  # and /tf_static
    messages = _read(tmp_path / "out")
    assert len(messages[IMAGE_TOPIC]) == 4 and len(messages[CAMERA_INFO_TOPIC]) == 4
    for name in OUTPUT_TYPES:
        outputs = messages[f"/hydranet/{name}"]
        assert [_stamp(m) for _, m in outputs] == stamps, name
        assert all(m.header.frame_id == "camera_color_left" for _, m in outputs)
    depth = messages["/hydranet/depth/image"][0][1]
    assert (depth.encoding, depth.width, depth.height) == ("32FC1", 1242, 375)


def test_compressed_images_and_cli(tmp_path, street_model_file):
    kitti_bag(shared_path("data", "kitti_tracking_0001"), tmp_path / "in", count=2, compressed=True)
    assert hydranet(["process-bag", str(tmp_path / "in"), str(tmp_path / "out"), "--image-topic",
                     IMAGE_TOPIC + "/compressed", "--model", str(street_model_file), "--backend", "onnxruntime"]) == 0
    assert len(_read(tmp_path / "out")["/hydranet/points"]) == 2


def test_unreadable_inputs_are_clear_errors(tmp_path, street_model_file):
    perception = Perception(create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu"))[0],
                            load_model(street_model_file)[1])
    with pytest.raises(CommandError, match="does not exist"):
        process_bag(tmp_path / "none", tmp_path / "out", "/x", None, perception)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("not: a bag")
    with pytest.raises(CommandError, match="cannot read bag"):
        process_bag(tmp_path / "junk", tmp_path / "out", "/x", None, perception)
    kitti_bag(shared_path("data", "kitti_tracking_0001"), tmp_path / "in", count=1)
    with pytest.raises(CommandError, match="has no image topic /camera"):
        process_bag(tmp_path / "in", tmp_path / "out", "/camera", None, perception)


def test_shipped_street_model_depth_against_lidar_matches_the_model_card(tmp_path):
    model_path = resolve_model_path("hydranet_street.pt")
    card = REPO / "models" / "metrics.json"
    if not model_path.is_file() or not card.is_file():
        pytest.skip("the shipped street model and its metrics are not in models/ yet")
    stated = json.loads(card.read_text())["hydranet_street.pt"]["kitti_tracking_0001_lidar"]
    root = shared_path("data", "kitti_tracking_0001")
    kitti_bag(root, tmp_path / "in")
    backend, _ = create_backend(model_path, BackendOptions(backend="onnxruntime", device="cpu"))
    process_bag(tmp_path / "in", tmp_path / "out", IMAGE_TOPIC, CAMERA_INFO_TOPIC,
                Perception(backend, load_model(model_path)[1]), progress=False)
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    metrics = DepthMetrics(max_depth=80.0)
    scans = sorted((root / "velodyne" / "0001").glob("*.bin"))
    depths = _read(tmp_path / "out")["/hydranet/depth/image"]
    assert len(depths) == len(scans) == 31
    for scan, (_, msg) in zip(scans, depths):
        predicted = np.frombuffer(msg.data.tobytes(), np.float32).reshape(msg.height, msg.width)
        metrics.update(predicted, project_lidar(read_velodyne(scan), calibration, msg.width, msg.height))
    measured = metrics.summary()
    assert measured["rmse"] <= stated["rmse"] * 1.02 + 1e-6, (measured, stated)
    assert measured["delta1"] >= stated["delta1"] - 0.01


def test_ctrl_c_closes_the_bag_readable_and_exits_130(tmp_path, street_model_file):
    import re
    import signal
    import subprocess
    import sys
    import threading
    kitti_bag(shared_path("data", "kitti_tracking_0001"), tmp_path / "in")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    command = [sys.executable, "-m", "hydranet_ros.cli.main", "process-bag", str(tmp_path / "in")]
    options = ["--image-topic", IMAGE_TOPIC, "--camera-info-topic", CAMERA_INFO_TOPIC,
               "--model", str(street_model_file), "--backend", "onnxruntime"]
    refused = subprocess.run(command + [str(tmp_path / "taken")] + options, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "exists and is not an empty folder" in refused.stderr
    assert "model" not in refused.stdout  # refused before the model was loaded
    (tmp_path / "empty").mkdir()  # an existing empty folder is fine
    # SIGINT at its default in the child: a shell that starts the tests in the background ignores it,
    # and Python then installs no KeyboardInterrupt handler
    process = subprocess.Popen(command + [str(tmp_path / "empty")] + options, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stderr = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: process.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = __import__("time").monotonic() + 180
    while not re.search(r"\b([3-9]|[12][0-9])/31\b", "".join(stderr)):
        assert process.poll() is None and __import__("time").monotonic() < deadline, "".join(stderr)[-2000:]
        __import__("time").sleep(0.05)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    reader.join(timeout=10)
    text = "".join(stderr)
    assert code == 130, text[-2000:]
    assert "interrupted:" in text and "Traceback" not in text and "terminate called" not in text
    assert (tmp_path / "empty" / "metadata.yaml").is_file()
    messages = _read(tmp_path / "empty")  # rosbags reads it: the bag was closed properly
    depth = messages["/hydranet/depth/image"]
    assert 3 <= len(depth) < 31
    assert len(messages[IMAGE_TOPIC]) >= len(depth)


def test_process_bag_gives_the_nodes_clouds_for_the_same_parameters(ros, tmp_path, street_model_file):
    """Both build their clouds from the node's parameters by one rule (ros/outputs.py
    cloud_output_request): a KITTI frame through process-bag and through perception_node in its own
    process, with the same non-default stride, range and classes, gives the same points."""
    from ros_harness import InProcessNode, RosClient, image_message
    from sensor_msgs.msg import CameraInfo
    root = shared_path("data", "kitti_tracking_0001")
    [stamp] = kitti_bag(root, tmp_path / "in", count=1)
    chosen = {"points_stride": 3, "points_max_depth": 60.0, "points_exclude_classes": ["car"]}
    backend, _ = create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu"))
    perception = Perception(backend, load_model(street_model_file)[1])
    process_bag(tmp_path / "in", tmp_path / "out", IMAGE_TOPIC, CAMERA_INFO_TOPIC, perception,
                cloud_parameters=chosen, progress=False)
    from_bag = {topic: _read(tmp_path / "out")[f"/hydranet/{topic}"][0][1] for topic in ("points", "points/obstacles")}
    bgr = cv2.imread(str(sorted((root / "image_2" / "0001").glob("*.png"))[0]))
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    intrinsics = calibration.intrinsics(bgr.shape[1], bgr.shape[0])
    image = image_message(bgr, stamp, "camera_color_left")
    info = CameraInfo(header=image.header, width=bgr.shape[1], height=bgr.shape[0], distortion_model="plumb_bob",
                      d=[0.0] * 5, k=intrinsics.matrix().ravel().tolist(), r=np.eye(3).ravel().tolist(),
                      p=calibration.p2.ravel().tolist())
    node_parameters = {"backend": "onnxruntime", "points_stride": 3, "points_max_depth": 60.0,
                       "points_exclude_classes": "[car]"}
    with InProcessNode(street_model_file, node_parameters) as node:
        tester = RosClient(topics=("points", "points/obstacles"))
        assert tester.wait_for_node(), node.stop()[1]
        tester.info_pub.publish(info)
        tester.spin(0.05)
        tester.image_pub.publish(image)
        assert tester.wait_for(lambda: all(stamp in tester.stamps(t) for t in from_bag), 60.0), node.stop()[1]
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0, output
    for topic, bag_cloud in from_bag.items():
        node_cloud = next(m for m in tester.received[topic] if stamp_ns(m.header) == stamp)
        assert (node_cloud.height, node_cloud.width) == (bag_cloud.height, bag_cloud.width), topic
        ours, theirs = pointcloud2_to_array(node_cloud), pointcloud2_to_array(bag_cloud)
        assert np.array_equal(ours["label"], theirs["label"]), topic
        for axis in "xyz":
            assert np.allclose(ours[axis], theirs[axis], rtol=1e-4, atol=1e-4, equal_nan=True), (topic, axis)
    points = pointcloud2_to_array(from_bag["points"])
    labels = set(np.unique(points["label"][np.isfinite(points["z"])]))
    assert labels and 5 not in labels and np.nanmax(points["z"]) <= 60.0  # car (5) left out, the range kept


def test_the_kitti_bag_holds_images_camera_info_scans_and_the_transform_that_projects_them(tmp_path):
    """Read back with rosbags: the scan moved into the camera by /tf_static (quaternion turned into a
    matrix here, independently of the writer) and projected with the camera_info's K lands where KITTI's
    P2 R_rect Tr_velo_cam puts it, pixel for pixel, depth within 1e-3 relative."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
    from hydranet_ros.data.kitti import project_lidar, read_tracking_calibration, read_velodyne
    from hydranet_ros.data.kitti_bag import LIDAR_TOPIC
    root = shared_path("data", "kitti_tracking_0001")
    stamps = kitti_bag(root, tmp_path / "bag", storage="sqlite3", count=2, lidar=True)
    with AnyReader([tmp_path / "bag"], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        messages = {}
        for connection, timestamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((timestamp, reader.deserialize(raw, connection.msgtype)))
    assert {topic: len(items) for topic, items in messages.items()} == {
        IMAGE_TOPIC: 2, CAMERA_INFO_TOPIC: 2, LIDAR_TOPIC: 2, "/tf_static": 1}
    [(_, tf)] = messages["/tf_static"]
    [transform] = tf.transforms
    assert (transform.header.frame_id, transform.child_frame_id) == ("velodyne", "camera_color_left")
    q, t = transform.transform.rotation, transform.transform.translation
    x, y, z, w = q.x, q.y, q.z, q.w
    lidar_from_camera = np.eye(4)
    lidar_from_camera[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    lidar_from_camera[:3, 3] = (t.x, t.y, t.z)
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    for index in range(2):
        image, info, scan = (messages[topic][index][1] for topic in (IMAGE_TOPIC, CAMERA_INFO_TOPIC, LIDAR_TOPIC))
        assert stamp_ns(image.header) == stamp_ns(info.header) == stamp_ns(scan.header) == stamps[index]
        bgr = cv2.imread(str(sorted((root / "image_2" / "0001").glob("*.png"))[index]))
        assert np.array_equal(np.asarray(image.data).reshape(bgr.shape), bgr) and image.encoding == "bgr8"
        assert info.header.frame_id == "camera_color_left" and not np.any(info.d)
        points = np.frombuffer(np.asarray(scan.data).tobytes(), "<f4").reshape(-1, 4)
        expected_scan = read_velodyne(root / "velodyne" / "0001" / f"{index:06d}.bin")
        assert np.array_equal(points, expected_scan) and scan.header.frame_id == "velodyne"
        in_camera = (np.linalg.inv(lidar_from_camera) @ np.c_[points[:, :3], np.ones(len(points))].T)[:3]
        pixels = np.asarray(info.k).reshape(3, 3) @ in_camera
        homogeneous = np.c_[expected_scan[:, :3], np.ones(len(points))].T
        reference = calibration.p2 @ calibration.r_rect @ calibration.velo_to_cam @ homogeneous
        front = reference[2] > 1e-3
        assert front.sum() > 30_000 and np.array_equal(front, pixels[2] > 1e-3)
        # KITTI's rotations are orthonormal to about 1e-6; a quaternion is exactly: depth agrees within 10 micrometres
        assert np.allclose(pixels[2][front], reference[2][front], rtol=1e-5, atol=1e-5)
        u, v = reference[:2, front] / reference[2, front]
        seen = (u >= -0.5) & (u < info.width - 0.5) & (v >= -0.5) & (v < info.height - 0.5)  # in the image
        assert seen.sum() > 10_000
        assert np.abs(pixels[:2, front][:, seen] / pixels[2, front][seen] - np.stack([u, v])[:, seen]).max() < 1e-3
        assert (project_lidar(expected_scan, calibration, info.width, info.height) > 0).sum() > 10_000


def test_several_cameras_each_get_their_outputs_under_their_name(tmp_path, street_model_file):
    """Two cameras in one bag (--image-topic /front/image_raw /rear/image_raw): each image's outputs
    under /hydranet/<camera>/, with its header, paired with its own camera_info, and the same as a
    one-camera run gives for the same frames."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore
    stamps = kitti_bag(shared_path("data", "kitti_tracking_0001"), tmp_path / "one", count=2)
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    cameras = {"front": 1.0, "rear": 1.5}  # the rear camera's focal length is 1.5 times the front's
    with AnyReader([tmp_path / "one"], default_typestore=typestore) as reader, \
            Writer(tmp_path / "two", version=9) as writer:
        connections = {}
        for connection, timestamp, raw in reader.messages():
            if connection.topic not in (IMAGE_TOPIC, CAMERA_INFO_TOPIC):
                continue
            for camera, focal in cameras.items():
                topic = f"/{camera}/{'image_raw' if connection.topic == IMAGE_TOPIC else 'camera_info'}"
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, connection.msgtype, typestore=typestore)
                msg = reader.deserialize(raw, connection.msgtype)
                msg.header.frame_id = f"{camera}_optical"
                if connection.topic == CAMERA_INFO_TOPIC:
                    msg.k, msg.p = msg.k.copy(), msg.p.copy()
                    msg.k[[0, 4]] *= focal
                    msg.p[[0, 5]] *= focal
                writer.write(connections[topic], timestamp, typestore.serialize_cdr(msg, connection.msgtype))
    backend, _ = create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu"))
    perception = Perception(backend, load_model(street_model_file)[1])
    counts = process_bag(tmp_path / "two", tmp_path / "out", ["/front/image_raw", "/rear/image_raw"],
                         ["/front/camera_info", "/rear/camera_info"], perception, progress=False)
    assert counts["images"] == 4
    process_bag(tmp_path / "one", tmp_path / "single", IMAGE_TOPIC, CAMERA_INFO_TOPIC, perception, progress=False)
    two, single = _read(tmp_path / "out"), _read(tmp_path / "single")
    for camera, focal in cameras.items():
        for name in OUTPUT_TYPES:
            outputs = two[f"/hydranet/{camera}/{name}"]
            assert [_stamp(m) for _, m in outputs] == stamps, (camera, name)
            assert all(m.header.frame_id == f"{camera}_optical" for _, m in outputs), (camera, name)
        info = two[f"/hydranet/{camera}/depth/camera_info"][0][1]
        assert np.isclose(info.k[0], single["/hydranet/depth/camera_info"][0][1].k[0] * focal)
    front, alone = two["/hydranet/front/segmentation"][0][1], single["/hydranet/segmentation"][0][1]
    assert np.array_equal(front.data, alone.data)
    with pytest.raises(CommandError, match="do not name their cameras apart"):
        process_bag(tmp_path / "two", tmp_path / "refused", ["/front/image_raw", "/front/image_raw"], None, perception)
