"""Reading rosbag2 recordings (MCAP or SQLite3) with rosbags, for process-bag and dataset from-bag.

rosbags reads and writes rosbag2 without a ROS install; these helpers turn what can go wrong with a
user's bag (a wrong path, a cut-off recording, a topic that is missing or of another type) into one
line that names the bag, the topic and what the bag holds instead.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

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


# Writing: the messages a recording of a camera and a LiDAR holds, as rosbags message objects.

def header_message(types, stamp_ns: int, frame_id: str):
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
        sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def tf_static_qos():
    """/tf_static is latched: reliable, transient local, depth 1, as tf2's static broadcaster offers it, so
    that `ros2 bag play` serves it to late subscribers."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    infinite = QosTime(sec=2147483647, nsec=4294967295)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=infinite, lifespan=infinite,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=infinite,
               avoid_ros_namespace_conventions=False)


def transform_message(types, header, child_frame: str, child_pose):
    """A TransformStamped: the child's pose (4 x 4, child -> parent coordinates) in header.frame_id."""
    from hydranet_ros.camera.transforms import matrix_to_quaternion
    x, y, z, w = matrix_to_quaternion(child_pose[:3, :3])
    tx, ty, tz = child_pose[:3, 3]
    return types["geometry_msgs/msg/TransformStamped"](
        header=header, child_frame_id=child_frame, transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=float(tx), y=float(ty), z=float(tz)),
            rotation=types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)))


def pinhole_camera_info_message(types, header, k: np.ndarray, width: int, height: int):
    """CameraInfo of a rectified (or distortion-free) camera: D zero, R the identity, P = K [I | 0]."""
    return types[CAMERA_INFO_TYPE](
        header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
        k=np.asarray(k, np.float64).ravel(), r=np.eye(3).ravel(),
        p=np.hstack([np.asarray(k, np.float64), np.zeros((3, 1))]).ravel(), binning_x=0, binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def raw_image_message(types, header, bgr: np.ndarray):
    height, width = bgr.shape[:2]
    return types["sensor_msgs/msg/Image"](header=header, height=height, width=width, encoding="bgr8",
                                          is_bigendian=0, step=width * 3, data=np.ascontiguousarray(bgr).reshape(-1))


def lidar_message(types, header, points: np.ndarray):
    """N x 4 float32 (x, y, z, intensity) -> an unorganised PointCloud2 of x, y, z, intensity."""
    field = types["sensor_msgs/msg/PointField"]
    fields = [field(name=name, offset=4 * index, datatype=7, count=1)  # 7: FLOAT32
              for index, name in enumerate(("x", "y", "z", "intensity"))]
    data = np.ascontiguousarray(points, dtype="<f4")
    return types[POINTCLOUD_TYPE](
        header=header, height=1, width=len(data), fields=fields, is_bigendian=False, point_step=16,
        row_step=16 * len(data), data=data.view(np.uint8).reshape(-1), is_dense=True)


def deserialize(reader, connection, receive_ns: int, raw):
    """reader.deserialize, with a message that cannot be read (cut off, of another type) as one line naming
    its topic and receive time."""
    try:
        return reader.deserialize(raw, connection.msgtype)
    except Exception as error:  # rosbags raises AnyReaderError, and struct/index errors on some layouts
        raise CommandError(f"the message on {connection.topic} received at {receive_ns / 1e9:.3f} s cannot be read "
                           f"as {connection.msgtype} ({error}): the recording is damaged there") from None


def message_header(connection, receive_ns: int, raw) -> tuple[int, str]:
    """cdr_header, with a message too short for its header as one line."""
    try:
        return cdr_header(raw)
    except (struct.error, IndexError):
        raise CommandError(f"the message on {connection.topic} received at {receive_ns / 1e9:.3f} s is cut off "
                           "before the end of its header: the recording is damaged there") from None


def cdr_header(raw: bytes | memoryview) -> tuple[int, str]:
    """(stamp ns, frame_id) of a serialized message that starts with a std_msgs/Header (Image,
    CompressedImage, CameraInfo, PointCloud2), read from its first bytes: a pass over a bag's stamps then
    costs nothing per image, whatever the image's size. CDR: a 4-byte encapsulation header (its second
    byte 1 for little-endian), int32 sec, uint32 nanosec, then the frame_id as a length-prefixed string."""
    order = "<" if raw[1] == 1 else ">"
    sec, nanosec, length = struct.unpack_from(order + "iII", raw, 4)
    frame_id = bytes(raw[16:16 + max(0, length - 1)]).decode("utf-8", "replace")  # the length counts the NUL
    return sec * 1_000_000_000 + nanosec, frame_id
