"""A KITTI tracking or raw sequence as a rosbag2 (MCAP or SQLite3), written with rosbags.

    /kitti/camera/image_raw (or .../compressed)  sensor_msgs/Image bgr8 (or JPEG), frame camera_color_left
    /kitti/camera/camera_info                     sensor_msgs/CameraInfo of the rectified left colour camera
    /kitti/velodyne/points                        sensor_msgs/PointCloud2 x, y, z, intensity (float32), frame velodyne
    /tf_static                                    velodyne -> camera_color_left (REP 103 optical frame)

KITTI's images are rectified: the camera_info has no distortion and P = K [I | 0]. The 6 cm between the
rectified reference camera and the left colour camera (P2's last column) goes into the transform, so a
LiDAR point transformed into camera_color_left and projected with K lands where P2 R_rect Tr_velo_cam puts
it. The tracking benchmark has no time stamps: frames are 0.1 s apart (KITTI records at 10 Hz), and each
scan has its image's stamp (KITTI triggers the cameras from the LiDAR).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from hydranet_ros.camera.transforms import matrix_to_quaternion
from hydranet_ros.data.kitti import Calibration, read_velodyne

CAMERA_FRAME, LIDAR_FRAME = "camera_color_left", "velodyne"
IMAGE_TOPIC, CAMERA_INFO_TOPIC, LIDAR_TOPIC = "/kitti/camera/image_raw", "/kitti/camera/camera_info", \
    "/kitti/velodyne/points"
FIRST_STAMP_NS = 1_317_000_000_000_000_000  # September 2011, when KITTI was recorded
FRAME_PERIOD_NS = 100_000_000


def camera_from_lidar(calibration: Calibration) -> np.ndarray:
    """4 x 4 rigid transform: LiDAR coordinates -> the left colour camera's (rectified) optical frame."""
    k = calibration.p2[:, :3]
    offset = np.linalg.solve(k, calibration.p2[:, 3])  # P2 = K [I | offset]
    transform = calibration.r_rect @ calibration.velo_to_cam
    transform[:3, 3] += offset
    return transform


def write_kitti_bag(images: Path, velodyne: Path | None, calibration: Calibration, destination: Path,
                    storage: str = "mcap", compressed: bool = False,
                    frames: tuple[int, int] | None = None) -> list[int]:
    """Writes the sorted PNG images of one sequence (frames START..STOP-1) with their scans; returns the
    stamps of the frames written (ns). A frame without a scan has its image and camera_info only."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    types = typestore.types
    paths = sorted(images.glob("*.png"))
    if frames:
        paths = paths[frames[0]:frames[1]]
    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3

    def header(stamp: int, frame_id: str):
        return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
            sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=frame_id)

    with Writer(destination, version=9, storage_plugin=plugin) as writer:
        connections = {
            "image": writer.add_connection(IMAGE_TOPIC + ("/compressed" if compressed else ""), image_type,
                                           typestore=typestore),
            "info": writer.add_connection(CAMERA_INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=typestore),
            "lidar": writer.add_connection(LIDAR_TOPIC, "sensor_msgs/msg/PointCloud2", typestore=typestore),
            "tf": writer.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=typestore,
                                        offered_qos_profiles=[tf_static_qos()])}
        writer.write(connections["tf"], FIRST_STAMP_NS, typestore.serialize_cdr(
            tf_static_message(types, header(FIRST_STAMP_NS, LIDAR_FRAME), calibration), "tf2_msgs/msg/TFMessage"))
        stamps = [FIRST_STAMP_NS + index * FRAME_PERIOD_NS for index in range(len(paths))]
        for path, stamp in zip(tqdm(paths, desc="kitti-bag", unit="frame"), stamps):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            height, width = bgr.shape[:2]
            camera = header(stamp, CAMERA_FRAME)
            writer.write(connections["info"], stamp, typestore.serialize_cdr(
                camera_info_message(types, camera, calibration, width, height), "sensor_msgs/msg/CameraInfo"))
            if compressed:
                image = types[image_type](header=camera, format="jpeg", data=np.frombuffer(
                    cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(), np.uint8))
            else:
                image = types[image_type](header=camera, height=height, width=width, encoding="bgr8",
                                          is_bigendian=0, step=width * 3, data=bgr.reshape(-1))
            writer.write(connections["image"], stamp, typestore.serialize_cdr(image, image_type))
            scan = velodyne / f"{path.stem}.bin" if velodyne else None
            if scan is not None and scan.is_file():
                writer.write(connections["lidar"], stamp, typestore.serialize_cdr(
                    lidar_message(types, header(stamp, LIDAR_FRAME), read_velodyne(scan)),
                    "sensor_msgs/msg/PointCloud2"))
    return stamps


def tf_static_qos():
    """/tf_static is latched: reliable, transient local, depth 1, as tf2's static broadcaster offers it, so
    that `ros2 bag play` serves it to late subscribers."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    infinite = QosTime(sec=2147483647, nsec=4294967295)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=infinite, lifespan=infinite,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=infinite,
               avoid_ros_namespace_conventions=False)


def tf_static_message(types, header, calibration: Calibration):
    """velodyne (parent) -> camera_color_left (child): the child's pose in the parent's frame."""
    lidar_from_camera = np.linalg.inv(camera_from_lidar(calibration))
    x, y, z, w = matrix_to_quaternion(lidar_from_camera[:3, :3])
    tx, ty, tz = lidar_from_camera[:3, 3]
    transform = types["geometry_msgs/msg/TransformStamped"](
        header=header, child_frame_id=CAMERA_FRAME, transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=float(tx), y=float(ty), z=float(tz)),
            rotation=types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)))
    return types["tf2_msgs/msg/TFMessage"](transforms=[transform])


def camera_info_message(types, header, calibration: Calibration, width: int, height: int):
    k = calibration.p2[:, :3]
    projection = np.hstack([k, np.zeros((3, 1))])
    return types["sensor_msgs/msg/CameraInfo"](
        header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5), k=k.ravel(),
        r=np.eye(3).ravel(), p=projection.ravel(), binning_x=0, binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def lidar_message(types, header, points: np.ndarray):
    """N x 4 float32 (x, y, z, reflectance) -> an unorganised PointCloud2 of x, y, z, intensity."""
    field = types["sensor_msgs/msg/PointField"]
    fields = [field(name=name, offset=4 * index, datatype=7, count=1)  # 7: FLOAT32
              for index, name in enumerate(("x", "y", "z", "intensity"))]
    data = np.ascontiguousarray(points, dtype="<f4")
    return types["sensor_msgs/msg/PointCloud2"](
        header=header, height=1, width=len(data), fields=fields, is_bigendian=False, point_step=16,
        row_step=16 * len(data), data=data.view(np.uint8).reshape(-1), is_dense=True)
