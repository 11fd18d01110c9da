"""The node's output topics: one table for the node, process-bag, the demo, the benchmarks and the tests.

Plain data (no rclpy, no torch), so tools that only record or check topics import it cheaply. Names are
relative to the node's namespace; `toggle` is the parameter that switches the topic on (ros/parameters.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from hydranet_ros.ros.parameters import BY_NAME as PARAMETERS

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD = "sensor_msgs/msg/PointCloud2"


@dataclass(frozen=True)
class OutputTopic:
    name: str
    message_type: str          # ROS 2 type name, as rosbags and `ros2 topic` write it
    encoding: str | None       # sensor_msgs/Image encoding; None for other messages
    toggle: str                # the publish_* parameter that switches it on

    @property
    def type_name(self) -> str:
        """The message class name, "Image" for sensor_msgs/msg/Image."""
        return self.message_type.rsplit("/", 1)[1]

    @property
    def on_by_default(self) -> bool:
        return bool(PARAMETERS[self.toggle].default)


# depth/image beside depth/camera_info: the pair image_transport's camera publisher and
# depth_image_proc expect (REP 118 puts depth images in a camera namespace).
OUTPUTS = (
    OutputTopic("segmentation", IMAGE, "mono8", "publish_segmentation"),
    OutputTopic("segmentation/color", IMAGE, "rgb8", "publish_color"),
    OutputTopic("segmentation/overlay", IMAGE, "rgb8", "publish_overlay"),
    OutputTopic("segmentation/confidence", IMAGE, "mono8", "publish_confidence"),
    OutputTopic("depth/image", IMAGE, "32FC1", "publish_depth"),
    OutputTopic("depth/camera_info", CAMERA_INFO, None, "publish_depth"),
    OutputTopic("points", POINT_CLOUD, None, "publish_points"),
    OutputTopic("points/obstacles", POINT_CLOUD, None, "publish_obstacles"),
)
BY_NAME = {topic.name: topic for topic in OUTPUTS}
ALL_TOPICS = tuple(BY_NAME)
DEFAULT_TOPICS = tuple(topic.name for topic in OUTPUTS if topic.on_by_default)
CLOUD_TOPICS = frozenset(topic.name for topic in OUTPUTS if topic.message_type == POINT_CLOUD)
DEPTH_IMAGE = "depth/image"


def message_types(names=DEFAULT_TOPICS) -> dict[str, str]:
    """{topic: ROS 2 type name} for the named outputs."""
    return {name: BY_NAME[name].message_type for name in names}
