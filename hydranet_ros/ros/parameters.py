"""The perception node's parameters: one table, used by the node, the tests and docs/perception_node.md.

Plain data (no rclpy), so the launch file, config files and docs can be checked against it.
dynamic=False parameters are read-only after start: changing them needs a restart.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hydranet_ros.camera.intrinsics import FOCAL_PER_SIDE_RANGE
from hydranet_ros.camera.network_input import MAX_INPUT_PIXELS, input_size_problem


@dataclass(frozen=True)
class Parameter:
    name: str
    default: object
    description: str
    dynamic: bool = False
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple = ()  # (value, the choice it means): values also accepted, of any type

    def canonical(self, value):
        """The choice a value means (an alias's choice), or the value itself."""
        return next((choice for alias, choice in self.aliases if alias == value and type(alias) is type(value)),
                    value)


PARAMETERS = (
    Parameter("cameras", [""], "Cameras this node serves with one model: [\"\"] is one camera on image, camera_info "
              "and outputs in the node's namespace; names (e.g. [front, rear]) give each camera its own "
              "<name>/image, <name>/camera_info and outputs under <name>/, and its own /diagnostics status."),
    Parameter("batch_cameras", True, "With several cameras: frames of one size taken in one round go through the "
              "backend as one batch (ONNX Runtime, OpenVINO; the others run them in turn); false: one at a time."),
    Parameter("model_path", "", "Model file (.pt), or the name of a shipped one (hydranet_street.pt, "
              "hydranet_indoor.pt); empty: hydranet_street.pt."),
    Parameter("backend", "auto", "Inference backend; auto picks the fastest available and logs why.",
              choices=("auto", "tensorrt", "torch", "onnxruntime", "openvino")),
    Parameter("device", "auto", "Where to run: auto (GPU when present), cuda or cpu.", choices=("auto", "cuda", "cpu")),
    Parameter("precision", "fp16", "fp16 (GPU; fp32 on a CPU), fp32, bf16 (OpenVINO, CPUs that have it, else fp32), "
              "int8 (calibrated on int8_calibration's images).", choices=("fp16", "fp32", "bf16", "int8")),
    Parameter("int8_calibration", "", "Folder of camera images (PNG/JPEG) that calibrates int8, once per camera "
              "resolution (cached); needed for precision int8."),
    Parameter("input_size", [0, 0], "Pixel budget of the network input [height, width]: images keep their aspect "
              "ratio and are scaled to about height x width pixels; [0, 0] uses the model file's."),
    Parameter("image_size", [0, 0], "The camera's resolution [height, width], when known: the backend prepares "
              "its graph for it at start (TensorRT engine, int8 graph, OpenVINO model) instead of on the first "
              "frame; other sizes are still served, each prepared on its first frame. [0, 0]: from camera_info "
              "(camera_info_wait)."),
    Parameter("camera_info_wait", 5.0, "With image_size [0, 0]: seconds the start (a managed node's configure) waits "
              "for a camera_info to prepare the backend for that camera's size; none by then, or 0: the model's "
              "input size is prepared and the camera's on its first frame (a TensorRT engine build: minutes).",
              minimum=0.0, maximum=600.0),
    Parameter("output_resolution", "input", "Outputs at the camera image's size (input) or the network's (network).",
              choices=("input", "network")),
    Parameter("engine_cache", "", "Folder for ONNX exports and TensorRT engines; empty: ~/.cache/hydranet_ros."),
    Parameter("image_transport", "raw", "How images arrive, as image_transport names it: raw (image) or compressed "
              "(image/compressed, JPEG/PNG).", choices=("raw", "compressed")),
    Parameter("subscribe_compressed", False, "Deprecated (use image_transport: compressed): true subscribes to "
              "image/compressed."),
    Parameter("image_qos_reliability", "best_effort", "Reliability of the image and camera_info subscriptions.",
              choices=("best_effort", "reliable")),
    Parameter("image_qos_depth", 1, "History depth of the image subscription (keep last).", minimum=1, maximum=100),
    Parameter("lazy_subscription", True, "Subscribe to the camera image only while an output has a subscriber "
              "(matched events; polled every 0.5 s on Humble); false: always, e.g. to watch the camera's rate in "
              "/diagnostics with nobody listening."),
    Parameter("output_qos_reliability", "reliable", "Reliability of the outputs: reliable reaches reliable and "
              "best-effort subscribers; best_effort only best-effort ones.", choices=("reliable", "best_effort")),
    Parameter("output_qos_depth", 2, "History depth of the outputs (keep last).", minimum=1, maximum=100),
    Parameter("publish_segmentation", True, "Publish segmentation (mono8 class ids).", dynamic=True),
    Parameter("publish_color", True, "Publish segmentation/color (rgb8 palette colours).", dynamic=True),
    Parameter("publish_overlay", True, "Publish segmentation/overlay (colours blended on the image).", dynamic=True),
    Parameter("publish_confidence", False, "Publish segmentation/confidence (mono8: 255 x the highest class "
              "probability), e.g. for Nav2's semantic segmentation layer.", dynamic=True),
    Parameter("publish_depth", True, "Publish depth/image (32FC1 metres; +Inf sky, NaN invalid) and "
              "depth/camera_info.", dynamic=True),
    Parameter("publish_points", True, "Publish points (PointCloud2: x y z rgb label).", dynamic=True),
    Parameter("publish_obstacles", True, "Publish points/obstacles (points without the obstacle_exclude_classes).",
              dynamic=True),
    Parameter("overlay_alpha", 0.5, "Weight of the colour mask in segmentation/overlay.", dynamic=True,
              minimum=0.0, maximum=1.0),
    Parameter("points_stride", 2, "One point per n x n pixels of what the network predicted (its input size; "
              "at output_resolution input, the matching n x scale output pixels).", dynamic=True, minimum=1,
              maximum=16),
    Parameter("points_max_depth", 40.0, "Points farther than this (metres) are left out.", dynamic=True,
              minimum=0.1, maximum=1000.0),
    Parameter("points_aligned", False, "points is aligned pixel for pixel with segmentation: organised, one point "
              "per pixel (points_stride and points_organized are ignored), NaN where invalid or excluded.",
              dynamic=True),
    Parameter("points_organized", True,
              "points organised (NaN for invalid points, is_dense false) or only valid points.",
              dynamic=True),
    Parameter("obstacles_organized", False, "points/obstacles organised like points (NaN for every point that is "
              "not an obstacle) or only the obstacle points (Nav2's obstacle and voxel layers transform every "
              "point they get, NaN ones too).", dynamic=True),
    Parameter("points_exclude_classes", ["sky"], "Class names left out of points.", dynamic=True),
    Parameter("obstacle_exclude_classes", ["__ground_and_sky__"],
              "Class names left out of points/obstacles; __ground_and_sky__ means the model's ground and sky classes.",
              dynamic=True),
    # Not true/false: unquoted in YAML or `ros2 param set` those are booleans, which a string parameter
    # refuses; booleans (and the old strings) are still accepted for always/never.
    Parameter("rectify", "auto", "auto: undistort images whose camera_info has a non-zero D (or a rotating R); "
              "always: always remap through camera_info; never: images are already rectified (P is their camera). "
              "true and false (booleans too) mean always and never.",
              dynamic=True, choices=("auto", "always", "never"),
              aliases=((True, "always"), (False, "never"), ("true", "always"), ("false", "never"))),
    Parameter("camera_info_tolerance", 0.01, "Seconds by which a camera_info stamp may differ from its image's; "
              "beyond it a changing calibration is reported as unmatched.", minimum=0.0, maximum=1.0),
    Parameter("fallback_intrinsics", [0.0, 0.0, 0.0, 0.0],
              "[fx, fy, cx, cy] of the input image used when no camera_info arrives; zeros: none. A named camera "
              "of cameras takes <name>.fallback_intrinsics when that is set.", dynamic=True),
    Parameter("max_image_pixels", 8_294_400, "Images with more pixels are refused (default 3840x2160).",
              dynamic=True, minimum=1, maximum=100_000_000),
    Parameter("camera_rate_hz", 0.0, "The camera's frame rate, when the driver declares one: /diagnostics then also "
              "counts the frames its stamps span at that rate that never arrived. 0: unknown (only the "
              "middleware's count of lost samples).", minimum=0.0, maximum=1000.0),
    Parameter("diagnostics_period", 1.0, "Seconds between /diagnostics messages (wall clock, also with use_sim_time).",
              minimum=0.1, maximum=60.0),
    Parameter("autostart", False, "managed_perception_node: configure and activate itself once started, "
              "without a lifecycle manager."),
    Parameter("bond_heartbeat_period", 0.1, "managed_perception_node: seconds between the bond heartbeats Nav2's "
              "lifecycle manager waits for after activate (as Nav2's servers); 0: no bond.", minimum=0.0, maximum=10.0),
    Parameter("stale_after_periods", 3, "/diagnostics warns when no frame was processed for this many periods, and "
              "is an error when no image arrived at all by then.", minimum=1, maximum=1000),
)
BY_NAME = {p.name: p for p in PARAMETERS}
GROUND_AND_SKY = "__ground_and_sky__"
PER_CAMERA = "fallback_intrinsics"  # the parameter a named camera may set for itself: <name>.fallback_intrinsics


def validate(name: str, value) -> str | None:
    """None when the value is acceptable, else the reason."""
    if name.endswith("." + PER_CAMERA):  # <camera>.fallback_intrinsics: checked as the node's own
        problem = validate(PER_CAMERA, value)
        return problem and f"{name.rsplit('.', 1)[0]}.{problem}"
    spec = BY_NAME.get(name)
    if spec is None:
        return None  # parameters such as use_sim_time belong to rclpy
    if spec.choices and spec.canonical(value) not in spec.choices:
        return f"{name} must be one of {list(spec.choices)}, not {value!r}"
    if spec.minimum is not None and not (spec.minimum <= value <= spec.maximum):
        return f"{name} must be within [{spec.minimum}, {spec.maximum}], not {value}"
    if name == "cameras":
        return camera_names_problem(value)
    if name in ("input_size", "image_size") and list(value) != [0, 0]:
        problem = input_size_problem(value)
        if problem:
            return problem.replace("input_size", name, 1) + " ([0, 0]: the model's own size)"
    if name == "fallback_intrinsics":
        finite = len(value) == 4 and all(math.isfinite(v) for v in value)
        if not finite or (any(value) and (value[0] <= 0 or value[1] <= 0)):
            return (f"fallback_intrinsics must be finite [fx, fy, cx, cy] with fx, fy > 0, or all zeros, "
                    f"not {list(value)}")
        if any(value) and not fallback_fits_an_image(value):
            return (f"fallback_intrinsics {list(value)} are no camera's: no image of at most {MAX_INPUT_PIXELS} "
                    "pixels has that principal point with those focal lengths (every frame would be refused)")
    return None


# A ROS name token: what a namespace segment may be (letters, digits, underscores; no leading digit).
CAMERA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def camera_names_problem(names) -> str | None:
    """Why a `cameras` value cannot be used, or None: [""] (one unnamed camera) or distinct ROS names."""
    names = list(names)
    if names == [""]:
        return None
    bad = [name for name in names if not CAMERA_NAME.fullmatch(name)]
    if not names or bad:
        return (f"cameras must be [\"\"] (one camera, the node's own topics) or names of letters, digits and "
                f"underscores, not starting with a digit; not {bad or names}")
    if len(set(names)) != len(names):
        return f"cameras must be distinct, not {names}"
    return None


def fallback_fits_an_image(values) -> bool:
    """Whether [fx, fy, cx, cy] pass check_plausible (the test every frame applies) for some image of at
    most MAX_INPUT_PIXELS pixels (the default max_image_pixels): the smallest image whose neighbourhood
    holds the principal point, with a focal length within FOCAL_PER_SIDE_RANGE of a side it may have."""
    fx, fy, cx, cy = values
    width, height = max(1.0, abs(cx) / 2 if cx >= 0 else abs(cx)), max(1.0, abs(cy) / 2 if cy >= 0 else abs(cy))
    if width * height > MAX_INPUT_PIXELS:
        return False
    smallest_side, largest_side = max(width, height), MAX_INPUT_PIXELS / min(width, height)
    low, high = FOCAL_PER_SIDE_RANGE
    return all(low * smallest_side <= f <= high * largest_side for f in (fx, fy))


def _cell(value) -> str:
    import json
    return str(value).lower() if isinstance(value, bool) else json.dumps(value)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table() -> str:
    """The parameter table of docs/perception_node.md (a test keeps the two equal):
    python -m hydranet_ros.ros.parameters > table.md"""
    rows = ["| parameter | default | range | change | description |", "| --- | --- | --- | --- | --- |"]
    for spec in PARAMETERS:
        if spec.choices:
            allowed = " \\| ".join(spec.choices)
        elif spec.minimum is not None:
            allowed = f"{_number(spec.minimum)} … {_number(spec.maximum)}"
        else:
            allowed = ""
        change = "run time" if spec.dynamic else "restart"
        rows.append(f"| `{spec.name}` | `{_cell(spec.default)}` | {allowed} | {change} | {spec.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
