"""Writes the KITTI tracking sequence as a rosbag2: images at 10 Hz with CameraInfo."""
from pathlib import Path

import cv2
import numpy as np


def write_kitti_bag(root: Path, destination: Path, storage: str = "mcap", count: int | None = None,
                    compressed: bool = False) -> list[int]:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from hydranet_ros.data.kitti import read_tracking_calibration
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    types = typestore.types
    paths = sorted((root / "image_2" / "0001").glob("*.png"))[:count]
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    stamps = []
    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    with Writer(destination, version=9, storage_plugin=plugin) as writer:
        image_connection = writer.add_connection("/kitti/image" + ("/compressed" if compressed else ""),
                                                 image_type, typestore=typestore)
        info_connection = writer.add_connection("/kitti/camera_info", "sensor_msgs/msg/CameraInfo", typestore=typestore)
        for index, path in enumerate(paths):
            bgr = cv2.imread(str(path))
            height, width = bgr.shape[:2]
            stamp = 1_300_000_000_000_000_000 + index * 100_000_000
            stamps.append(stamp)
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9),
                frame_id="camera_color_left")
            intrinsics = calibration.intrinsics(width, height)
            k = intrinsics.matrix()
            info = types["sensor_msgs/msg/CameraInfo"](
                header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
                k=k.ravel(), r=np.eye(3).ravel(), p=calibration.p2.ravel(), binning_x=0, binning_y=0,
                roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                              do_rectify=False))
            if compressed:
                image = types["sensor_msgs/msg/CompressedImage"](
                    header=header, format="jpeg", data=np.frombuffer(cv2.imencode(".jpg", bgr)[1].tobytes(), np.uint8))
            else:
                image = types["sensor_msgs/msg/Image"](header=header, height=height, width=width, encoding="bgr8",
                                                       is_bigendian=0, step=width * 3, data=bgr.reshape(-1))
            writer.write(info_connection, stamp, typestore.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            writer.write(image_connection, stamp + 1000, typestore.serialize_cdr(image, image_type))
    return stamps
