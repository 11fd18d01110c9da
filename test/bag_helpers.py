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


def rewrite_bag(source: Path, destination: Path, drop: tuple[str, ...] = (), edit=None,
                rename: dict[str, str] | None = None) -> None:
    """A copy of a bag without the `drop` topics and with the `rename` ones on new names, each message
    passed through edit(topic, msg, index of the message on its topic) first when given (edit changes the
    message in place)."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    with AnyReader([source], default_typestore=typestore) as reader, \
            Writer(destination, version=9) as writer:
        copies = {c.id: writer.add_connection((rename or {}).get(c.topic, c.topic), c.msgtype, typestore=typestore)
                  for c in reader.connections if c.topic not in drop}
        counts: dict[str, int] = {}
        for connection, timestamp, raw in reader.messages():
            if connection.id not in copies:
                continue
            if edit is not None:
                msg = reader.deserialize(raw, connection.msgtype)
                edit(connection.topic, msg, counts.setdefault(connection.topic, 0))
                counts[connection.topic] += 1
                raw = typestore.serialize_cdr(msg, connection.msgtype)
            writer.write(copies[connection.id], timestamp, raw)
