"""config/perception.rviz made to follow the launch arguments (no rclpy).

The shipped view shows the default launch: the node in /hydranet, the camera on /camera/image_raw,
the fixed frame camera_optical_frame. rviz2 runs in the root namespace and reads topics and the
fixed frame only from its config, so the launch file writes a copy with the actual names.
"""
from __future__ import annotations

import copy

import yaml

DEFAULT_NAMESPACE = "/hydranet"
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_FRAME = "camera_optical_frame"


def absolute_namespace(namespace: str) -> str:
    """Namespace "hydranet" or "/hydranet/" -> "/hydranet"; "" or "/" -> "" (the root namespace)."""
    stripped = namespace.strip("/")
    return f"/{stripped}" if stripped else ""


def renamed_topic(topic: str, outputs: str, image_topic: str) -> str:
    """A topic of a shipped view (the launch defaults) for this launch: the camera image on image_topic,
    the node's outputs under the namespace `outputs` (absolute; "" for the root)."""
    if topic == DEFAULT_IMAGE_TOPIC:
        return "/" + image_topic.lstrip("/")
    if topic.startswith(DEFAULT_NAMESPACE + "/"):
        return outputs + topic[len(DEFAULT_NAMESPACE):]
    return topic


def follow_launch(view_text: str, namespace: str, image_topic: str, frame: str,
                  cameras: list[tuple[str, str]] = ()) -> str:
    """The rviz config with the node's topics under `namespace`, the camera image on `image_topic`
    (relative names resolve in the root namespace, as rviz2 resolves them) and `frame` as fixed frame.
    cameras: (name, image topic) of a node's named cameras: each camera's displays once per camera,
    named after it, with its outputs under namespace/<name>/."""
    view = yaml.safe_load(view_text)
    manager = view["Visualization Manager"]
    displays = []
    for display in manager["Displays"]:
        if not display.get("Topic"):
            displays.append(display)
            continue
        for name, camera_image in cameras or [("", image_topic)]:
            shown = copy.deepcopy(display)
            outputs = absolute_namespace(namespace) + (f"/{name}" if name else "")
            shown["Topic"]["Value"] = renamed_topic(shown["Topic"]["Value"], outputs, camera_image)
            if name:
                shown["Name"] = f"{shown['Name']} ({name})"
            displays.append(shown)
    manager["Displays"] = displays
    manager["Global Options"]["Fixed Frame"] = frame
    return yaml.safe_dump(view, sort_keys=False)
