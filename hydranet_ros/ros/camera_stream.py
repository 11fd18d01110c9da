"""One camera of perception_node: its topics, the frame waiting for the worker, its camera_info pairing,
counters and health. Plain state (no rclpy): the node makes and destroys the endpoints it holds.

A node serves one unnamed camera (`image`, `camera_info`, outputs at the node's namespace, as before
cameras existed) or several named ones, each under its name (`front/image`, `front/segmentation`, ...).
"""
from __future__ import annotations

from hydranet_ros.camera.pairing import CameraInfoBuffer
from hydranet_ros.errors import UserError
from hydranet_ros.ros.frame_stats import FrameStats
from hydranet_ros.ros.health import HealthMonitor, InputLoss
from hydranet_ros.ros.parameters import validate


DEFAULT_TOPICS = ("/camera/image_raw", "/camera/camera_info")  # one camera, the launch file's defaults


def camera_topics(cameras: str, image_topic: str, camera_info_topic: str,
                  given_as: str = "cameras:=") -> list[tuple[str, str, str]]:
    """(name, image topic, camera_info topic) of each camera of `cameras` ("front,rear"; "": one unnamed
    camera), for the launch file and the tools that follow it: the unnamed camera on the topics given,
    named ones on templates where {camera} stands for the name (the defaults become /{camera}/image_raw,
    /{camera}/camera_info). Raises UserError, in one line, for names or templates that cannot work
    (given_as: how the user wrote the cameras, to name it there)."""
    names = [name.strip() for name in cameras.split(",") if name.strip()]
    if not names:
        return [("", image_topic, camera_info_topic)]
    problem = validate("cameras", names)
    if problem:
        raise UserError(f"{given_as}{cameras!r}: {problem}")
    templates = []
    for topic, default, argument in zip((image_topic, camera_info_topic), DEFAULT_TOPICS,
                                        ("image_topic", "camera_info_topic")):
        if "{camera}" not in topic:
            if topic != default:
                raise UserError(f"{argument} {topic!r} names one topic for every camera of {','.join(names)}: write "
                                f"{{camera}} where each name goes, e.g. /{{camera}}/{default.rsplit('/', 1)[1]}")
            topic = "/{camera}/" + default.rsplit("/", 1)[1]
        templates.append(topic)
    return [(name, *(template.replace("{camera}", name) for template in templates)) for name in names]


class CameraStream:
    def __init__(self, name: str):
        self.name = name
        self.pub: dict = {}              # output topic -> publisher
        self.label_info_pub = None
        self.image_subscription = None
        self.camera_info_subscription = None
        self.camera_info_latched = False
        self.pending = None              # (message, receive time): the newest frame, not yet taken

    def topic(self, relative: str) -> str:
        """A topic of this camera, relative to the node's namespace."""
        return f"{self.name}/{relative}" if self.name else relative

    def parameter(self, name: str) -> str:
        """This named camera's own value of a node parameter: <camera>.<name>."""
        return f"{self.name}.{name}"

    def reset(self, camera_info_tolerance: float, window_s: float, stale_after_s: float, rate_hz: float) -> None:
        """Fresh counters, pairing and health, at each start."""
        self.pending = None
        self.camera_infos = CameraInfoBuffer(camera_info_tolerance)
        self.stats = FrameStats()
        self.health = HealthMonitor(window_s=window_s, stale_after_s=stale_after_s)
        self.input_loss = InputLoss(rate_hz)
