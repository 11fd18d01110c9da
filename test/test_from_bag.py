"""hydranet dataset from-bag on rosbag2 recordings written from the real KITTI sequence."""
import json

import cv2
import numpy as np
import pytest

from bag_helpers import CAMERA_INFO_TOPIC, IMAGE_TOPIC, kitti_bag, rewrite_bag
from conftest import shared_path
from hydranet_ros.cli.main import main as hydranet
from hydranet_ros.data.dataset import FolderDataset
from hydranet_ros.data.from_bag import FromBagOptions, dataset_from_bags
from hydranet_ros.data.kitti import read_tracking_calibration, read_velodyne
from hydranet_ros.data.kitti_bag import LIDAR_TOPIC
from hydranet_ros.training.distill import create_teacher

DEPTH_STEP = 1 / 256  # the dataset's depth PNGs hold metres x 256


def _kitti():
    return shared_path("data", "kitti_tracking_0001")


def _reference_depth(points, p2, r_rect, velo_to_cam, width, height):
    """Independent of the code under test: P2 R_rect Tr_velo_cam on the scan, nearest point per pixel."""
    homogeneous = np.hstack([points[:, :3], np.ones((len(points), 1))]).T
    camera = r_rect @ velo_to_cam @ homogeneous
    camera = camera[:, camera[2] > 1e-3]
    pixels = p2 @ camera
    z = pixels[2]
    u, v = np.round(pixels[0] / z).astype(int), np.round(pixels[1] / z).astype(int)
    keep = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    depth = np.full((height, width), np.inf)
    np.minimum.at(depth, (v[keep], u[keep]), z[keep])
    return np.where(np.isfinite(depth), depth, 0)


def _check_depth(dataset, index, scan, p2, calibration):
    sample = dataset[index]
    height, width = sample.image.shape[:2]
    expected = _reference_depth(scan, p2, calibration.r_rect, calibration.velo_to_cam, width, height)
    labelled = (sample.depth > 0) & (expected > 0)
    error = np.abs(sample.depth[labelled] - expected[labelled])
    assert np.all(error <= 1e-3 * expected[labelled] + DEPTH_STEP / 2 + 1e-6), error.max()
    # A point a hair from a pixel border may round to the neighbouring pixel in one of the two float paths
    # (quaternions in the bag's /tf_static, matrices here): then the same depth sits one pixel over.
    for v, u in np.argwhere((sample.depth > 0) != (expected > 0)):
        label = max(sample.depth[v, u], expected[v, u])
        other = (expected if sample.depth[v, u] > 0 else sample.depth)[max(0, v - 1):v + 2, max(0, u - 1):u + 2]
        assert np.any(np.abs(other - label) <= 1e-3 * label + DEPTH_STEP), (v, u)
    assert np.sum((sample.depth > 0) != (expected > 0)) <= 4
    return labelled.sum()


def _frames(dataset):
    return {name: index for index, name in enumerate(dataset.names)}


def test_kitti_bag_depth_labels_equal_an_independent_projection_and_teacher_labels_the_teacher(tmp_path):
    root = _kitti()
    teacher_path = shared_path("weights", "espnetv2_s_2.0_city_1024x512.onnx")
    kitti_bag(root, tmp_path / "bag", count=4, lidar=True)
    options = FromBagOptions(IMAGE_TOPIC, lidar_topic=LIDAR_TOPIC, teacher=teacher_path)
    summary = dataset_from_bags([tmp_path / "bag"], tmp_path / "data", options, progress=False)
    assert summary["train"] == 3 and summary["val"] == 1  # the last 0.1 s of 0.3 s is validation
    report = summary["bags"][0]
    assert report["with_depth"] == 4 and report["clock_jumps"] == 0 and report["calibrations"] == 1
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    teacher = create_teacher(teacher_path, "segmentation", "kitti6", min_confidence=0.5,
                             default_map="cityscapes19.yaml")
    images = sorted((root / "image_2" / "0001").glob("*.png"))
    checked = 0
    for split in ("train", "val"):
        dataset = FolderDataset(tmp_path / "data" / split)
        for name, index in _frames(dataset).items():
            position = int(name.rsplit("_", 1)[1])
            assert (split == "val") == (position == 3)
            scan = read_velodyne(root / "velodyne" / "0001" / f"{images[position].stem}.bin")
            assert _check_depth(dataset, index, scan, calibration.p2, calibration) > 10000
            rgb = cv2.cvtColor(cv2.imread(str(images[position])), cv2.COLOR_BGR2RGB)
            sample = dataset[index]
            assert np.array_equal(sample.image, rgb)  # KITTI's images are rectified already
            assert np.array_equal(sample.segmentation, teacher(rgb))
            assert 0.01 < np.mean(sample.segmentation == 255) < 0.5  # the unsure pixels are ignored
            assert sample.intrinsics.fx == pytest.approx(calibration.p2[0, 0])
            checked += 1
    assert checked == 4


def _shift_stamp(msg, seconds):
    stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec + int(seconds * 1e9)
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // 10**9, stamp % 10**9


def test_a_clock_jump_and_a_camera_info_that_changes_mid_bag_are_followed(tmp_path):
    root = _kitti()
    kitti_bag(root, tmp_path / "bag", count=4, lidar=True)
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")

    def edit(topic, msg, index):
        if topic in (IMAGE_TOPIC, CAMERA_INFO_TOPIC, LIDAR_TOPIC) and index >= 2:
            _shift_stamp(msg, -100.0)  # the clock went back 100 s after frame 1
        if topic == CAMERA_INFO_TOPIC and index >= 1:  # a new calibration from frame 1 on
            msg.k = msg.k * np.array([1.1] + [1] * 8)
            msg.p = msg.p * np.array([1.1] + [1] * 11)
    rewrite_bag(tmp_path / "bag", tmp_path / "edited", edit=edit)
    options = FromBagOptions(IMAGE_TOPIC, lidar_topic=LIDAR_TOPIC, split_at_s=10.0)
    summary = dataset_from_bags([tmp_path / "edited"], tmp_path / "data", options, progress=False)
    report = summary["bags"][0]
    assert report["clock_jumps"] == 1 and report["calibrations"] == 2
    assert report["with_depth"] == 4 and summary["train"] == 4
    dataset = FolderDataset(tmp_path / "data" / "train")
    images = sorted((root / "image_2" / "0001").glob("*.png"))
    camera = calibration.p2[:, :3]
    offset = np.linalg.solve(camera, calibration.p2[:, 3])  # P2 = K [I | offset]; the bag's tf holds the offset
    for name, index in _frames(dataset).items():
        position = int(name.rsplit("_", 1)[1])
        k = camera.copy()
        if position >= 1:
            k[0, 0] *= 1.1
        p2 = k @ np.hstack([np.eye(3), offset[:, None]])
        assert dataset.intrinsics(name).fx == pytest.approx(k[0, 0])
        scan = read_velodyne(root / "velodyne" / "0001" / f"{images[position].stem}.bin")
        _check_depth(dataset, index, scan, p2, calibration)


def test_frames_without_a_scan_near_them_have_no_depth_label(tmp_path):
    root = _kitti()
    kitti_bag(root, tmp_path / "bag", count=3, lidar=True)
    rewrite_bag(tmp_path / "bag", tmp_path / "late", edit=lambda topic, msg, index: _shift_stamp(msg, 0.06)
                if topic == LIDAR_TOPIC and index == 1 else None)
    options = FromBagOptions(IMAGE_TOPIC, lidar_topic=LIDAR_TOPIC, every=1, split_at_s=10.0)
    summary = dataset_from_bags([tmp_path / "late"], tmp_path / "data", options, progress=False)
    assert summary["bags"][0]["with_depth"] == 2
    dataset = FolderDataset(tmp_path / "data" / "train")
    assert [dataset.has("depth", name) for name in dataset.names] == [True, False, True]


def _run(capsys, *args):
    capsys.readouterr()  # what the bag writer printed before
    code = hydranet(["dataset", "from-bag", *map(str, args)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_bags_stop_with_one_line_that_names_the_topic(tmp_path, capsys):
    root = _kitti()
    kitti_bag(root, tmp_path / "bag", count=2, lidar=True)
    bag = tmp_path / "bag"
    err = _run(capsys, bag, "--out", tmp_path / "a", "--image-topic", "/camera/image_raw")
    assert "no image topic /camera/image_raw" in err and IMAGE_TOPIC in err
    err = _run(capsys, bag, "--out", tmp_path / "b", "--image-topic", IMAGE_TOPIC, "--lidar-topic", CAMERA_INFO_TOPIC)
    assert f"{CAMERA_INFO_TOPIC} in {bag} is sensor_msgs/msg/CameraInfo" in err and "PointCloud2" in err
    rewrite_bag(bag, tmp_path / "no_info", drop=(CAMERA_INFO_TOPIC,))
    err = _run(capsys, tmp_path / "no_info", "--out", tmp_path / "c", "--image-topic", IMAGE_TOPIC)
    assert f"the images on {IMAGE_TOPIC} have no camera_info" in err and CAMERA_INFO_TOPIC in err
    rewrite_bag(bag, tmp_path / "no_tf", drop=("/tf_static",))
    err = _run(capsys, tmp_path / "no_tf", "--out", tmp_path / "d", "--image-topic", IMAGE_TOPIC,
               "--lidar-topic", LIDAR_TOPIC)
    assert "the LiDAR's frame velodyne has no transform to the camera's camera_color_left" in err
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    source = next(bag.glob("*.mcap"))
    (truncated / source.name).write_bytes(source.read_bytes()[:source.stat().st_size // 2])
    (truncated / "metadata.yaml").write_bytes((bag / "metadata.yaml").read_bytes())
    err = _run(capsys, truncated, "--out", tmp_path / "e", "--image-topic", IMAGE_TOPIC)
    assert f"cannot read bag {truncated}" in err and "cut off" in err
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x").write_text("")
    err = _run(capsys, bag, "--out", tmp_path / "f", "--image-topic", IMAGE_TOPIC)
    assert "is not empty" in err


def _files(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_workers_and_a_local_ray_give_the_same_dataset_as_one_process(tmp_path):
    pytest.importorskip("ray")
    root = _kitti()
    bags = []
    for index in range(2):
        bags.append(tmp_path / f"bag{index}")
        kitti_bag(root, bags[-1], count=2, lidar=True)
    options = FromBagOptions(IMAGE_TOPIC, lidar_topic=LIDAR_TOPIC)
    results = {}
    for label, workers, ray in (("one", 1, None), ("workers", 2, None), ("ray", 2, "local")):
        summary = dataset_from_bags(bags, tmp_path / label, options, workers=workers, ray_address=ray, progress=False)
        assert summary["train"] + summary["val"] == 4
        results[label] = _files(tmp_path / label)
    assert len(results["one"]) > 8
    assert results["workers"] == results["one"] and results["ray"] == results["one"]


def test_a_sqlite3_bag_of_jpeg_images_gives_the_same_frames(tmp_path):
    root = _kitti()
    kitti_bag(root, tmp_path / "bag", storage="sqlite3", count=2, compressed=True, lidar=True)
    options = FromBagOptions(IMAGE_TOPIC + "/compressed", lidar_topic=LIDAR_TOPIC, split_at_s=10.0)
    summary = dataset_from_bags([tmp_path / "bag"], tmp_path / "data", options, progress=False)
    assert summary["camera_info_topic"] == CAMERA_INFO_TOPIC  # found beside the image topic, /compressed or not
    assert summary["train"] == 2 and summary["bags"][0]["with_depth"] == 2
    dataset = FolderDataset(tmp_path / "data" / "train")
    images = sorted((root / "image_2" / "0001").glob("*.png"))
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    for index in range(2):
        rgb = cv2.cvtColor(cv2.imread(str(images[index])), cv2.COLOR_BGR2RGB)
        assert np.abs(dataset[index].image.astype(int) - rgb).mean() < 6  # JPEG at quality 95, 4:2:0
        scan = read_velodyne(root / "velodyne" / "0001" / f"{images[index].stem}.bin")
        _check_depth(dataset, index, scan, calibration.p2, calibration)
    values = json.loads((tmp_path / "data" / "train" / "intrinsics" / f"{dataset.names[0]}.json").read_text())
    assert (values["width"], values["height"], values["fx"]) == (1242, 375, pytest.approx(721.5377))


def test_stamps_read_from_the_first_bytes_equal_the_deserialized_headers(tmp_path):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
    from hydranet_ros.data.bags import cdr_header
    from hydranet_ros.ros.conversions import stamp_ns
    kitti_bag(_kitti(), tmp_path / "bag", count=2, lidar=True)
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    checked = 0
    with AnyReader([tmp_path / "bag"], default_typestore=typestore) as reader:
        for connection, _, raw in reader.messages():
            if connection.topic == "/tf_static":
                continue
            msg = reader.deserialize(raw, connection.msgtype)
            for little_endian in (True, False):
                data = typestore.serialize_cdr(msg, connection.msgtype, little_endian=little_endian)
                assert cdr_header(data) == (stamp_ns(msg.header), msg.header.frame_id)
            checked += 1
    assert checked == 6


def test_every_and_max_frames_thin_the_recording_evenly(tmp_path):
    kitti_bag(_kitti(), tmp_path / "bag", count=7)
    options = FromBagOptions(IMAGE_TOPIC, every=2, max_frames=3, split_at_s=10.0)
    dataset_from_bags([tmp_path / "bag"], tmp_path / "data", options, progress=False)
    names = FolderDataset(tmp_path / "data" / "train").names
    # of 0, 2, 4, 6, three from first to last: positions 0, 1.5 and 3 of them, 1.5 rounded to even
    assert [int(name.rsplit("_", 1)[1]) for name in names] == [0, 4, 6]


def test_distorted_images_are_rectified_with_the_bags_camera_info(tmp_path):
    from hydranet_ros.camera.calibration import Rectifier
    from hydranet_ros.ros.conversions import camera_info_to_calibration
    root = _kitti()
    kitti_bag(root, tmp_path / "bag", count=2, lidar=True)
    infos = []

    def distort(topic, msg, index):
        if topic == CAMERA_INFO_TOPIC:
            msg.d = np.array([-0.2, 0.05, 0.0, 0.0, 0.0])  # barrel distortion; K and P stay
            infos.append(camera_info_to_calibration(msg))
    rewrite_bag(tmp_path / "bag", tmp_path / "distorted", edit=distort)
    options = FromBagOptions(IMAGE_TOPIC, lidar_topic=LIDAR_TOPIC, split_at_s=10.0)
    dataset_from_bags([tmp_path / "distorted"], tmp_path / "data", options, progress=False)
    dataset = FolderDataset(tmp_path / "data" / "train")
    images = sorted((root / "image_2" / "0001").glob("*.png"))
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    for index in range(2):
        rgb = cv2.cvtColor(cv2.imread(str(images[index])), cv2.COLOR_BGR2RGB)
        rectified = Rectifier()(rgb, infos[index])
        assert not np.array_equal(rectified, rgb)
        assert np.array_equal(dataset[index].image, rectified)
        # P is the rectified camera: the scan projects with it as before
        scan = read_velodyne(root / "velodyne" / "0001" / f"{images[index].stem}.bin")
        _check_depth(dataset, index, scan, calibration.p2, calibration)


def test_a_lidar_transform_on_tf_moves_the_scan_with_time(tmp_path):
    """The LiDAR-camera transform on /tf at each frame, the LiDAR shifted 1 m further left each frame
    and the scan shifted back by as much: the labels are the static calibration's."""
    from hydranet_ros.camera.transforms import quaternion_to_matrix
    root = _kitti()
    kitti_bag(root, tmp_path / "bag", count=3, lidar=True)
    static = []

    def edit(topic, msg, index):
        if topic == "/tf_static":
            static.append(msg.transforms[0])
        elif topic == LIDAR_TOPIC:  # x, y, z, intensity float32 points, moved 1 m * index along the LiDAR's y
            points = np.frombuffer(bytes(msg.data), "<f4").reshape(-1, 4).copy()
            points[:, 1] -= index
            msg.data = points.view(np.uint8).reshape(-1)
    rewrite_bag(tmp_path / "bag", tmp_path / "moved", edit=edit, rename={"/tf_static": "/tf_unused"})
    transform = static[0]
    rotation = transform.transform.rotation
    camera_in_lidar = quaternion_to_matrix(rotation.x, rotation.y, rotation.z, rotation.w)
    from rosbags.rosbag2 import Writer
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
    from hydranet_ros.data.bags import header_message, transform_message
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    types = typestore.types
    with AnyReader([tmp_path / "moved"], default_typestore=typestore) as reader, \
            Writer(tmp_path / "tf", version=9) as writer:
        out = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=typestore) for c in reader.connections}
        tf = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=typestore)
        for connection, timestamp, raw in reader.messages():
            writer.write(out[connection.id], timestamp, raw)
            if connection.topic == LIDAR_TOPIC:
                index = (timestamp - reader.start_time) // 100_000_000
                pose = np.eye(4)  # velodyne -> camera_color_left: the camera's pose in the moved LiDAR's frame
                pose[:3, :3] = camera_in_lidar
                t = transform.transform.translation
                pose[:3, 3] = (t.x, t.y - index, t.z)
                message = types["tf2_msgs/msg/TFMessage"](transforms=[transform_message(
                    types, header_message(types, timestamp, "velodyne"), "camera_color_left", pose)])
                writer.write(tf, timestamp, typestore.serialize_cdr(message, "tf2_msgs/msg/TFMessage"))
    options = FromBagOptions(IMAGE_TOPIC, lidar_topic=LIDAR_TOPIC, split_at_s=10.0)
    summary = dataset_from_bags([tmp_path / "tf"], tmp_path / "data", options, progress=False)
    assert summary["bags"][0]["with_depth"] == 3
    dataset = FolderDataset(tmp_path / "data" / "train")
    images = sorted((root / "image_2" / "0001").glob("*.png"))
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    for index in range(3):
        scan = read_velodyne(root / "velodyne" / "0001" / f"{images[index].stem}.bin")
        _check_depth(dataset, index, scan, calibration.p2, calibration)
