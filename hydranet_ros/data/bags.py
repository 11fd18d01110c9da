"""Reading rosbag2 recordings (MCAP or SQLite3) with rosbags, for process-bag and dataset from-bag.

rosbags reads and writes rosbag2 without a ROS install; these helpers turn what can go wrong with a
user's bag (a wrong path, a cut-off recording, a topic that is missing or of another type) into one
line that names the bag, the topic and what the bag holds instead.
"""
from __future__ import annotations

from pathlib import Path

from hydranet_ros.errors import CommandError

BAG_FILE_SUFFIXES = (".mcap", ".db3")  # what rosbags reads as a one-file rosbag2
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINTCLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
TF_TYPE = "tf2_msgs/msg/TFMessage"
TF_TOPICS = ("/tf", "/tf_static")


def check_bag_path(source: Path) -> None:
    if not source.exists():
        raise CommandError(f"bag {source} does not exist")
    if source.is_file() and source.suffix not in BAG_FILE_SUFFIXES:
        raise CommandError(f"{source} is not a rosbag2: give its folder, or a {' or '.join(BAG_FILE_SUFFIXES)} file")


def open_bag(source: Path, typestore=None):
    """An opened rosbags AnyReader (close it); one line if the bag cannot be read."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
    check_bag_path(source)
    try:
        reader = AnyReader([source], default_typestore=typestore or get_typestore(Stores.ROS2_HUMBLE))
        reader.open()
    except Exception as error:  # rosbags raises several types for unreadable bags
        hint = " (the recording was cut off: `mcap recover` or `ros2 bag reindex` repairs it)" \
            if "magic" in str(error).lower() or "truncat" in str(error).lower() else ""
        raise CommandError(f"cannot read bag {source}: {error}{hint}") from None
    return reader


def bag_topics(reader) -> dict[str, str]:
    """topic -> message type."""
    return {c.topic: c.msgtype for c in reader.connections}


def describe_topics(topics: dict[str, str]) -> str:
    return ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"


def require_topic(topics: dict[str, str], source: Path, topic: str, accepted: tuple[str, ...], what: str) -> None:
    """A one-line error unless the bag has `topic` with one of the `accepted` message types."""
    if topic not in topics:
        raise CommandError(f"{source} has no {what} topic {topic}; its topics: {describe_topics(topics)}")
    if topics[topic] not in accepted:
        raise CommandError(f"{topic} in {source} is {topics[topic]}; a {what} topic must be "
                           f"{' or '.join(accepted)}")
