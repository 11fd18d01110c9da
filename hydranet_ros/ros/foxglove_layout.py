"""config/foxglove_layout.json for a node's namespace and cameras (no rclpy).

The shipped layout shows the launch defaults: the node in /hydranet, the camera on /camera/image_raw.
For other names, or several cameras of one node (each with its image, overlay, depth and clouds, one
row per camera, the diagnostics summary below them), `hydranet foxglove-layout` writes a copy.
"""
from __future__ import annotations

import copy

from hydranet_ros.ros.rviz_view import absolute_namespace, renamed_topic

DIAGNOSTICS_PANEL = "DiagnosticSummary!diagnostics"


def _split(panels: list, direction: str):
    """A Foxglove layout tree holding the panels in equal parts along one direction."""
    if len(panels) == 1:
        return panels[0]
    return {"direction": direction, "first": panels[0], "second": _split(panels[1:], direction),
            "splitPercentage": 100.0 / len(panels)}


def layout_for(layout: dict, namespace: str, cameras: list[tuple[str, str]]) -> dict:
    """The layout with the node's outputs under `namespace` and, per (camera name, image topic), the
    panels that show a camera: name "" is the node's one unnamed camera (the layout's own arrangement)."""
    outputs = absolute_namespace(namespace)
    result = copy.deepcopy(layout)
    panels = {panel: config for panel, config in layout["configById"].items() if panel != DIAGNOSTICS_PANEL}
    result["configById"] = {DIAGNOSTICS_PANEL: layout["configById"][DIAGNOSTICS_PANEL]}
    rows = []
    for name, image_topic in cameras:
        prefix = outputs + (f"/{name}" if name else "")
        row = []
        for panel, config in panels.items():
            shown = copy.deepcopy(config)
            if "imageMode" in shown:
                shown["imageMode"]["imageTopic"] = renamed_topic(shown["imageMode"]["imageTopic"], prefix,
                                                                 image_topic)
            if "topics" in shown:
                shown["topics"] = {renamed_topic(topic, prefix, image_topic): settings
                                   for topic, settings in shown["topics"].items()}
            panel_id = f"{panel}_{name}" if name else panel
            result["configById"][panel_id] = shown
            row.append(panel_id)
        rows.append(row)
    if len(cameras) == 1 and not cameras[0][0]:
        return result  # one camera: the shipped arrangement, renamed
    result["layout"] = {"direction": "column", "first": _split([_split(row, "row") for row in rows], "column"),
                        "second": DIAGNOSTICS_PANEL, "splitPercentage": 85}
    return result
