"""KITTI: annotated depth PNGs, KITTI-6 colour labels, and raw LiDAR projected into the image."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hydranet_ros.data.dataset import DatasetError
from hydranet_ros.data.dataset import read_png_unchanged, read_rgb
from hydranet_ros.data.labels import decode_color_labels
from hydranet_ros.camera.ground_plane import ground_plane_depth, stixel_depth
from hydranet_ros.camera.intrinsics import Intrinsics, points_to_depth
from hydranet_ros.model.model_file import load_label_space

KITTI_DEPTH_SCALE = 256.0
# The left colour camera (P_rect_02: fx, fy, cx, cy) by image size, which tells KITTI raw's recording day,
# for frames without their own calibration: 1242x375 (2011_09_26) and 1224x370 (2011_09_28) as the
# calibration files in ../shared give them (tracking 0001, object 000000); 1238x374 (2011_09_29) from
# that day's calib_cam_to_cam.txt as public copies of it quote P_rect_02.
KITTI_COLOUR_CAMERAS = {(1242, 375): (721.5377, 721.5377, 609.5593, 172.854),
                        (1224, 370): (707.0493, 707.0493, 604.0814, 180.5066),
                        (1238, 374): (718.3351, 718.3351, 600.3891, 181.5122)}
# Sidewalks stand a kerb above the road: fitted to the LiDAR of KITTI tracking 0001 frames 0-19, the
# camera is 1.72 m above its road pixels and 1.57 m above its sidewalk pixels.
KERB_HEIGHT = 0.15
GROUND_PLANE_MAX_DEPTH = 40.0  # further, a 0.5 degree pitch moves the depth by more than 10 %


def read_depth_png(path: str | Path) -> np.ndarray:
    """KITTI depth benchmark PNG: uint16 / 256 = metres, 0 = no measurement."""
    return read_png_unchanged(Path(path)).astype(np.float32) / KITTI_DEPTH_SCALE


def read_kitti6_labels(path: str | Path) -> np.ndarray:
    """KITTI-6 colour label image -> ids (sky, building, road, sidewalk, vegetation, car); others 255."""
    return decode_color_labels(read_rgb(Path(path)), load_label_space("kitti6").palette)


# KITTI semantics (Cityscapes train ids) onto KITTI-6, as ../shared/README.md gives it: road 0,
# sidewalk 1, building 2, vegetation 8, sky 10, car 13; every other id (and 255, void) is ignored.
TRAINID_TO_KITTI6 = {10: 0, 2: 1, 0: 2, 1: 3, 8: 4, 13: 5}


def trainids_as_kitti6(trainids: np.ndarray) -> np.ndarray:
    """Cityscapes train ids (255 void) -> KITTI-6 ids, others 255."""
    lookup = np.full(256, 255, np.uint8)
    for train_id, kitti6_id in TRAINID_TO_KITTI6.items():
        lookup[train_id] = kitti6_id
    return lookup[trainids]


def read_trainid_labels_as_kitti6(path: str | Path) -> np.ndarray:
    """A KITTI semantics label PNG (uint8 Cityscapes train ids, 255 void) -> KITTI-6 ids, others 255."""
    return trainids_as_kitti6(read_png_unchanged(Path(path)))


def kitti_camera(width: int, height: int) -> Intrinsics:
    """The intrinsics of KITTI's left colour camera for an image of that size."""
    if (width, height) not in KITTI_COLOUR_CAMERAS:
        raise DatasetError(f"a {width}x{height} image is not one of KITTI's sizes "
                           f"{sorted(f'{w}x{h}' for w, h in KITTI_COLOUR_CAMERAS)}: give its calibration")
    return Intrinsics(*KITTI_COLOUR_CAMERAS[width, height], width, height)


def ground_label_depth(labels: np.ndarray, intrinsics: Intrinsics, camera_height: float) -> np.ndarray:
    """Depth labels for the road and sidewalk pixels of a KITTI-6 label image, from a flat ground
    camera_height metres below a level camera (sidewalk a kerb higher); 0 elsewhere and beyond 40 m."""
    road, sidewalk = load_label_space("kitti6").ids(["road", "sidewalk"])
    heights = np.full(labels.shape, np.nan)
    heights[labels == road] = camera_height
    heights[labels == sidewalk] = camera_height - KERB_HEIGHT
    return ground_plane_depth(intrinsics, heights, GROUND_PLANE_MAX_DEPTH)


CITYSCAPES_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                    "bicycle")
# Ground in Cityscapes train ids, with its height below the camera less the camera's height: the road,
# and the sidewalk and terrain a kerb above it.
CITYSCAPES_GROUND = {0: 0.0, 1: -KERB_HEIGHT, 9: -KERB_HEIGHT}
# Classes that stand on the ground (vegetation does not count: a crown does not touch it).
CITYSCAPES_STANDING = frozenset({2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 18})


# What `convert kitti --geometric-depth` labels, kept where scripts/geometric_depth_accuracy.py measured abs
# rel <= 0.10: road (0.048 against stereo with human labels, 0.102 against LiDAR with teacher labels),
# sidewalk (0.136 against LiDAR: kept, as the ground-plane runs did), car (0.067 against stereo, 17 % of
# its pixels; 0.28 against LiDAR, where the teacher's labels blur the contact and the LiDAR passes
# through windows) and bicycle (0.088 against LiDAR). Terrain (0.25), building (0.22), pole (0.21),
# person (0.30) and the rest stay unlabelled.
GEOMETRIC_GROUND = (0, 1)
GEOMETRIC_STANDING = frozenset({13, 18})


def geometric_depth(trainids: np.ndarray, intrinsics: Intrinsics, camera_height: float,
                    ground=tuple(CITYSCAPES_GROUND), standing=CITYSCAPES_STANDING) -> np.ndarray:
    """Depth labels from a Cityscapes train-id label image and the ground below a level camera
    (camera/ground_plane.stixel_depth): the `ground` classes on the ground, the `standing` classes at
    their ground contact; 0 elsewhere and beyond 40 m."""
    heights = {class_id: camera_height + CITYSCAPES_GROUND[class_id] for class_id in ground}
    return stixel_depth(intrinsics, trainids, heights, set(standing), GROUND_PLANE_MAX_DEPTH)


@dataclass
class Calibration:
    p2: np.ndarray          # 3 x 4 projection of the left colour camera (rectified)
    r_rect: np.ndarray      # 4 x 4
    velo_to_cam: np.ndarray  # 4 x 4

    def intrinsics(self, width: int, height: int) -> Intrinsics:
        return Intrinsics(self.p2[0, 0], self.p2[1, 1], self.p2[0, 2], self.p2[1, 2], width, height)

    def velo_to_image(self) -> np.ndarray:
        """3 x 4: homogeneous LiDAR points -> homogeneous pixels of camera 2."""
        return self.p2 @ self.r_rect @ self.velo_to_cam


def read_tracking_calibration(path: str | Path) -> Calibration:
    """KITTI tracking calib file (P0..P3, R_rect, Tr_velo_cam, Tr_imu_velo); also the raw-data names."""
    values = {}
    for line in Path(path).read_text().splitlines():
        parts = line.replace(":", " ").split()
        if parts:
            values[parts[0]] = np.array([float(v) for v in parts[1:]])
    try:
        r_rect = values.get("R_rect", values.get("R0_rect"))
        velo = values.get("Tr_velo_cam", values.get("Tr_velo_to_cam"))
        r4, v4 = np.eye(4), np.eye(4)
        r4[:3, :3] = r_rect.reshape(3, 3)
        v4[:3, :4] = velo.reshape(3, 4)
        return Calibration(values["P2"].reshape(3, 4), r4, v4)
    except (KeyError, AttributeError, ValueError) as error:
        raise DatasetError(f"{path} is not a KITTI calibration file ({error})") from None


def read_velodyne(path: str | Path) -> np.ndarray:
    """N x 4 float32 (x, y, z, reflectance) in the LiDAR frame."""
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def project_lidar(points: np.ndarray, calibration: Calibration, width: int, height: int,
                  min_depth: float = 1e-3) -> np.ndarray:
    """Sparse depth image (z in the camera frame, metres, 0 = none); the nearest point wins."""
    homogeneous = np.hstack([points[:, :3], np.ones((len(points), 1))])
    cam = (calibration.r_rect @ calibration.velo_to_cam @ homogeneous.T)[:3].T
    return points_to_depth(cam, calibration.intrinsics(width, height), calibration.p2[:, 3], min_depth)
