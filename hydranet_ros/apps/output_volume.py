"""hydranet benchmark --output-volume: bytes per frame of the node's outputs, per camera size and parameter set.

The node's own path without a ROS graph: Perception with ONNX Runtime on a generated street frame of
each size, the node's frame_messages, serialized to CDR by rosbags as process-bag writes them (the
bytes DDS carries, less its headers). Parameter sets: the node's defaults (what `hydranet demo` runs)
and the shipped robot configs (config/*.yaml, as the launch file starts the node).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from hydranet_ros.apps.process_bag import BagMessages
from hydranet_ros.inference.backends import BackendOptions, create_backend
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.model.model_file import load_model
from hydranet_ros.ros.output_topics import OUTPUTS, POINT_CLOUD
from hydranet_ros.ros.outputs import cloud_output_request, frame_messages
from hydranet_ros.ros.parameters import PARAMETERS
from hydranet_ros.shipped import shipped_file

NODE_DEFAULTS = "node defaults"
SIZES = ((375, 1242), (480, 640), (720, 1280), (1080, 1920))  # (height, width)
GIGABIT_BYTES_PER_S = 125e6


def parameter_set(name: str) -> dict:
    """The node's parameter values: its defaults (NODE_DEFAULTS), overridden by a shipped config file's."""
    values = {spec.name: spec.default for spec in PARAMETERS}
    if name != NODE_DEFAULTS:
        values |= yaml.safe_load(shipped_file("config", name).read_text())["/**"]["ros__parameters"]
    return values


def street_frame(height: int, width: int):
    """A generated street (BGR) and its camera, of one size."""
    from hydranet_ros.data.synth import render_frame
    frame = render_frame("street", 3, width, height)
    return frame.rgb[..., ::-1].copy(), frame.intrinsics


def frame_bytes(model_path: Path, values: dict, size: tuple[int, int], typestore) -> dict:
    """Serialized bytes (and cloud points) of each output the parameter set switches on, for one frame."""
    _, spec = load_model(model_path)
    backend, _ = create_backend(model_path, BackendOptions(backend="onnxruntime", device="cpu",
                                                           output=values["output_resolution"], camera_size=size))
    perception = Perception(backend, spec)
    wanted = frozenset(topic.name for topic in OUTPUTS if values[topic.toggle])
    request = cloud_output_request(values, spec.label_space, wanted)
    bgr, intrinsics = street_frame(*size)
    alpha = values["overlay_alpha"] if "segmentation/overlay" in wanted else None
    result = perception.process(bgr, "bgr8", alpha, intrinsics, clouds=request.clouds(perception))
    header = typestore.types["std_msgs/msg/Header"](
        stamp=typestore.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="camera_optical_frame")
    messages = frame_messages(result, request, BagMessages(typestore, header))
    by_topic = {}
    for topic in OUTPUTS:
        if topic.name in messages:
            message = messages[topic.name]
            entry = {"bytes": len(typestore.serialize_cdr(message, topic.message_type))}
            if topic.message_type == POINT_CLOUD:
                entry["points"] = int(message.width * message.height)
            by_topic[topic.name] = entry
    total = sum(entry["bytes"] for entry in by_topic.values())
    width, height = result.output_size
    return {"camera": f"{size[1]}x{size[0]}", "outputs": f"{width}x{height}", "per_topic": by_topic,
            "total_bytes": total, "at_10_hz_share_of_1_gbit": round(total * 10 / GIGABIT_BYTES_PER_S, 3)}


def output_volume(model_path: Path, sizes=SIZES, sets=(NODE_DEFAULTS, "outdoor_kitti6.yaml")) -> list[dict]:
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    return [{"parameters": name} | frame_bytes(model_path, parameter_set(name), size, typestore)
            for name in sets for size in sizes]
