"""config/perception.rviz made to follow the launch arguments (no rclpy).

The shipped view shows the default launch: the node in /hydranet, the camera on /camera/image_raw,
the fixed frame camera_optical_frame. rviz2 runs in the root namespace and reads topics and the
fixed frame only from its config, so the launch file writes a copy with the actual names.
"""
from __future__ import annotations

import yaml

DEFAULT_NAMESPACE = "/hydranet"
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_FRAME = "camera_optical_frame"


def absolute_namespace(namespace: str) -> str:
    """Namespace "hydranet" or "/hydranet/" -> "/hydranet"; "" or "/" -> "" (the root namespace)."""
    stripped = namespace.strip("/")
    return f"/{stripped}" if stripped else ""


def follow_launch(view_text: str, namespace: str, image_topic: str, frame: str) -> str:
    """The rviz config with the node's topics under `namespace`, the camera image on `image_topic`
    (relative names resolve in the root namespace, as rviz2 resolves them) and `frame` as fixed frame."""
    view = yaml.safe_load(view_text)
    manager = view["Visualization Manager"]
    for display in manager["Displays"]:
        topic = display.get("Topic")
        if not topic:
            continue
        if topic["Value"] == DEFAULT_IMAGE_TOPIC:
            topic["Value"] = "/" + image_topic.lstrip("/")
        elif topic["Value"].startswith(DEFAULT_NAMESPACE + "/"):
            topic["Value"] = absolute_namespace(namespace) + topic["Value"][len(DEFAULT_NAMESPACE):]
    manager["Global Options"]["Fixed Frame"] = frame
    return yaml.safe_dump(view, sort_keys=False)
