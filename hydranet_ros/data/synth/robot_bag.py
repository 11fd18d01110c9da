"""A generated recording of a small robot on a sidewalk: a rosbag2 with a camera, its camera_info, a
simulated multi-beam LiDAR and the robot's transforms, plus the exact truth of every camera frame.

The street model learned from cars: a camera 1.65 m above the road with KITTI's lens. This robot's
camera is low (0.6 m by default) with a wide lens, so a model that has only seen cars is wrong for it,
and the recording shows whether `hydranet dataset from-bag` and `hydranet adapt` fix that.

    /robot/camera/image_raw     sensor_msgs/Image bgr8, frame camera_optical_frame (REP 103 optical)
    /robot/camera/camera_info   no distortion, P = K [I | 0]
    /robot/lidar/points         sensor_msgs/PointCloud2 x, y, z, intensity in frame lidar (x forward, z up),
                                stamped 20 ms after each image and ray-cast at that moment
    /tf_static                  base_link -> camera_optical_frame, base_link -> lidar
    /tf                         odom -> base_link as the robot moves
The LiDAR has `beams` rings evenly spread over +-15 degrees of elevation (a VLP-16's), one return every
0.2 degrees of azimuth, over the front 120 degrees that the camera looks into. Points are ray-cast from
the LiDAR's own position, so they see round obstacles differently from the camera, as a real one does.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.camera.intrinsics import Intrinsics, pixel_rays
from hydranet_ros.data.bags import (CAMERA_INFO_TYPE, POINTCLOUD_TYPE, TF_TYPE, header_message, lidar_message,
                                    pinhole_camera_info_message, raw_image_message, tf_static_qos, transform_message)
from hydranet_ros.data.dataset import Sample, create_dataset_folder, write_sample
from hydranet_ros.data.kitti import KITTI_DEPTH_SCALE
from hydranet_ros.data.synth.materials import Texturer
from hydranet_ros.data.synth.raycast import cast_rays, rotation_matrix
from hydranet_ros.data.synth.render import render
from hydranet_ros.data.synth.street import StreetSceneBuilder

IMAGE_TOPIC, CAMERA_INFO_TOPIC, LIDAR_TOPIC = "/robot/camera/image_raw", "/robot/camera/camera_info", \
    "/robot/lidar/points"
CAMERA_FRAME, LIDAR_FRAME, BASE_FRAME, ODOM_FRAME = "camera_optical_frame", "lidar", "base_link", "odom"
FIRST_STAMP_NS = 1_750_000_000_000_000_000
FRAME_PERIOD_NS = 100_000_000       # 10 Hz
LIDAR_DELAY_NS = 20_000_000         # the scan is taken 20 ms after the image
SPEED_M_S = 1.5                     # walking pace
LIDAR_ABOVE_CAMERA_M, LIDAR_BEHIND_CAMERA_M = 0.1, 0.05
LIDAR_ELEVATION_DEG, LIDAR_AZIMUTH_DEG, LIDAR_STEP_DEG = 15.0, 60.0, 0.2
LIDAR_MAX_RANGE_M = 60.0
# body (x forward, y left, z up) <- optical (x right, y down, z forward)
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def wide_camera(width: int, height: int, horizontal_fov_deg: float) -> Intrinsics:
    f = (width / 2) / np.tan(np.radians(horizontal_fov_deg) / 2)
    return Intrinsics(float(f), float(f), width / 2 - 0.5, height / 2 - 0.5, width, height)


def lidar_returns(beams: int) -> tuple[Intrinsics, np.ndarray, np.ndarray]:
    """A pinhole grid fine enough for the beams (the ray caster works on pixel grids) and the pixel (row,
    column) of each return: `beams` elevations x one azimuth every LIDAR_STEP_DEG."""
    half_width = 400
    f = half_width / np.tan(np.radians(LIDAR_AZIMUTH_DEG))
    half_height = int(np.ceil(f * np.tan(np.radians(LIDAR_ELEVATION_DEG)) / np.cos(np.radians(LIDAR_AZIMUTH_DEG))))
    grid = Intrinsics(float(f), float(f), half_width - 0.5, half_height - 0.5, 2 * half_width, 2 * half_height)
    elevation = np.radians(np.linspace(-LIDAR_ELEVATION_DEG, LIDAR_ELEVATION_DEG, beams))
    azimuth = np.radians(np.arange(-LIDAR_AZIMUTH_DEG, LIDAR_AZIMUTH_DEG + 1e-9, LIDAR_STEP_DEG))
    a, e = np.meshgrid(azimuth, elevation)
    u = np.clip(np.round(f * np.tan(a) + grid.cx), 0, grid.width - 1).astype(int)
    v = np.clip(np.round(-f * np.tan(e) / np.cos(a) + grid.cy), 0, grid.height - 1).astype(int)
    return grid, v.ravel(), u.ravel()


def cast_scan(scene, origin: np.ndarray, rotation: np.ndarray, grid: Intrinsics, rows, cols) -> np.ndarray:
    """N x 3 points (optical axes of the LiDAR's position) where each return's ray meets the scene."""
    x = (cols - grid.cx) / grid.fx
    y = (rows - grid.cy) / grid.fy
    rays = np.stack([x, y, np.ones_like(x)], axis=1).astype(np.float32)
    # The caster culls objects by the grid's screen rectangle, so it casts the whole grid; returns are picked after.
    x_over_z, y_over_z = pixel_rays(grid)
    full = np.stack(np.broadcast_arrays(x_over_z[None, :], y_over_z[:, None], np.float32(1)), -1).reshape(-1, 3)
    directions = (full @ rotation.T).astype(np.float32)
    directions[np.abs(directions) < 1e-6] = 1e-6
    t = cast_rays(scene, origin.astype(np.float32), directions, rotation, grid).t
    t = t[rows * grid.width + cols]
    points = rays * t[:, None]
    keep = np.isfinite(t) & (np.linalg.norm(points, axis=1) < LIDAR_MAX_RANGE_M)
    return points[keep]


def write_robot_bag(destination: Path, truth: Path | None, frames: int, seed: int, width: int = 640,
                    height: int = 400, camera_height: float = 0.6, horizontal_fov_deg: float = 100.0,
                    beams: int = 16, progress: bool = True) -> int:
    """Writes the recording (and, with `truth`, a dataset folder of every camera frame's exact labels and
    depth, named by frame number); returns the number of frames."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from tqdm import tqdm
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    types = typestore.types
    rng = np.random.default_rng(seed)
    scene = StreetSceneBuilder().build(rng)
    texturer = Texturer(rng)
    camera = wide_camera(width, height, horizontal_fov_deg)
    grid, rows, cols = lidar_returns(beams)
    side = rng.choice([-1.0, 1.0])
    lane = side * (scene.road_half_width + 0.25 * scene.sidewalk_width)  # clear of the trees at the kerb
    lidar_offset = np.array([0.0, -LIDAR_ABOVE_CAMERA_M, -LIDAR_BEHIND_CAMERA_M])  # in the camera's optical axes
    camera_pose = np.eye(4)
    camera_pose[:3, :3] = BODY_FROM_OPTICAL
    camera_pose[2, 3] = camera_height
    lidar_pose = np.eye(4)
    lidar_pose[:3, 3] = camera_pose[:3, 3] + BODY_FROM_OPTICAL @ lidar_offset
    if truth is not None:
        create_dataset_folder(truth, "kitti6", KITTI_DEPTH_SCALE)

    def pose(time_s: float):
        """The camera's position and yaw in the scene: along the sidewalk, swaying a little."""
        yaw = 0.05 * np.sin(0.7 * time_s)
        return np.array([lane + 0.1 * np.sin(0.3 * time_s), camera_height, 2.0 + SPEED_M_S * time_s]), yaw

    with Writer(destination, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image_out = writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=typestore)
        info_out = writer.add_connection(CAMERA_INFO_TOPIC, CAMERA_INFO_TYPE, typestore=typestore)
        lidar_out = writer.add_connection(LIDAR_TOPIC, POINTCLOUD_TYPE, typestore=typestore)
        tf_out = writer.add_connection("/tf", TF_TYPE, typestore=typestore)
        static_out = writer.add_connection("/tf_static", TF_TYPE, typestore=typestore,
                                           offered_qos_profiles=[tf_static_qos()])
        base = header_message(types, FIRST_STAMP_NS, BASE_FRAME)
        writer.write(static_out, FIRST_STAMP_NS, typestore.serialize_cdr(types[TF_TYPE](transforms=[
            transform_message(types, base, CAMERA_FRAME, camera_pose),
            transform_message(types, base, LIDAR_FRAME, lidar_pose)]), TF_TYPE))
        for index in tqdm(range(frames), desc="robot bag", unit="frame", disable=not progress):
            stamp = FIRST_STAMP_NS + index * FRAME_PERIOD_NS
            position, yaw = pose(index * FRAME_PERIOD_NS / 1e9)
            frame = render(scene, camera, position, yaw, 0.0, 0.0, rng, texturer)
            odom = np.eye(4)
            odom[:3, :3] = [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]
            odom[:3, 3] = [position[2], -position[0], 0.0]  # scene z forward, x right -> odom x forward, y left
            writer.write(tf_out, stamp, typestore.serialize_cdr(types[TF_TYPE](transforms=[transform_message(
                types, header_message(types, stamp, ODOM_FRAME), BASE_FRAME, odom)]), TF_TYPE))
            optical = header_message(types, stamp, CAMERA_FRAME)
            writer.write(info_out, stamp, typestore.serialize_cdr(
                pinhole_camera_info_message(types, optical, camera.matrix(), width, height), CAMERA_INFO_TYPE))
            writer.write(image_out, stamp, typestore.serialize_cdr(
                raw_image_message(types, optical, cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)), "sensor_msgs/msg/Image"))
            scan_stamp = stamp + LIDAR_DELAY_NS
            scan_position, scan_yaw = pose((index * FRAME_PERIOD_NS + LIDAR_DELAY_NS) / 1e9)
            rotation = rotation_matrix(scan_yaw, 0.0, 0.0)
            origin = scan_position + rotation @ lidar_offset
            points = cast_scan(scene, origin, rotation, grid, rows, cols)
            in_lidar = points @ BODY_FROM_OPTICAL.T  # optical axes -> the LiDAR's x forward, z up
            scan = np.hstack([in_lidar, np.ones((len(in_lidar), 1))]).astype(np.float32)
            writer.write(lidar_out, scan_stamp, typestore.serialize_cdr(
                lidar_message(types, header_message(types, scan_stamp, LIDAR_FRAME), scan), POINTCLOUD_TYPE))
            if truth is not None:
                write_sample(truth, Sample(f"{index:06d}", frame.rgb, frame.labels, frame.depth, camera),
                             KITTI_DEPTH_SCALE)
    return frames
