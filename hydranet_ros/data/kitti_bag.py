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

from hydranet_ros.data.bags import (CAMERA_INFO_TYPE, POINTCLOUD_TYPE, TF_TYPE, header_message, lidar_message,
                                    pinhole_camera_info_message, raw_image_message, tf_static_qos, transform_message)
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
    with Writer(destination, version=9, storage_plugin=plugin) as writer:
        connections = {
            "image": writer.add_connection(IMAGE_TOPIC + ("/compressed" if compressed else ""), image_type,
                                           typestore=typestore),
            "info": writer.add_connection(CAMERA_INFO_TOPIC, CAMERA_INFO_TYPE, typestore=typestore),
            "lidar": writer.add_connection(LIDAR_TOPIC, POINTCLOUD_TYPE, typestore=typestore),
            "tf": writer.add_connection("/tf_static", TF_TYPE, typestore=typestore,
                                        offered_qos_profiles=[tf_static_qos()])}
        lidar_from_camera = np.linalg.inv(camera_from_lidar(calibration))
        tf_static = types[TF_TYPE](transforms=[transform_message(
            types, header_message(types, FIRST_STAMP_NS, LIDAR_FRAME), CAMERA_FRAME, lidar_from_camera)])
        writer.write(connections["tf"], FIRST_STAMP_NS, typestore.serialize_cdr(tf_static, TF_TYPE))
        stamps = [FIRST_STAMP_NS + index * FRAME_PERIOD_NS for index in range(len(paths))]
        for path, stamp in zip(tqdm(paths, desc="kitti-bag", unit="frame"), stamps):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            height, width = bgr.shape[:2]
            camera = header_message(types, stamp, CAMERA_FRAME)
            writer.write(connections["info"], stamp, typestore.serialize_cdr(
                pinhole_camera_info_message(types, camera, calibration.p2[:, :3], width, height), CAMERA_INFO_TYPE))
            if compressed:
                image = types[image_type](header=camera, format="jpeg", data=np.frombuffer(
                    cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(), np.uint8))
            else:
                image = raw_image_message(types, camera, bgr)
            writer.write(connections["image"], stamp, typestore.serialize_cdr(image, image_type))
            scan = velodyne / f"{path.stem}.bin" if velodyne else None
            if scan is not None and scan.is_file():
                writer.write(connections["lidar"], stamp, typestore.serialize_cdr(
                    lidar_message(types, header_message(types, stamp, LIDAR_FRAME), read_velodyne(scan)),
                    POINTCLOUD_TYPE))
    return stamps
