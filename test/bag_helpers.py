"""The KITTI tracking sequence 0001 as a rosbag2, written by `hydranet convert kitti-bag`'s writer."""
from pathlib import Path

from hydranet_ros.data.kitti import read_tracking_calibration
from hydranet_ros.data.kitti_bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC, write_kitti_bag

__all__ = ["CAMERA_INFO_TOPIC", "IMAGE_TOPIC", "kitti_bag"]


def kitti_bag(root: Path, destination: Path, storage: str = "mcap", count: int | None = None,
              compressed: bool = False, lidar: bool = False) -> list[int]:
    """The first count frames (all by default), with their LiDAR scans when lidar; returns the image stamps."""
    return write_kitti_bag(root / "image_2" / "0001", root / "velodyne" / "0001" if lidar else None,
                           read_tracking_calibration(root / "calib" / "0001.txt"), destination, storage,
                           compressed, (0, count) if count else None)
