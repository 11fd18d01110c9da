"""ros2 launch hydranet_ros perception.launch.py [argument:=value ...]

Starts perception_node (managed_perception_node with lifecycle:=true) with a parameter file,
remaps its inputs to the camera's topics and, optionally, rviz with config/perception.rviz rewritten
for the namespace, image topic and frame given here. With large_data_transport (the default) the
processes it starts, and only those, use config/fastdds_large_data.xml, so multi-megabyte outputs
arrive on time on one host; a bringup that includes this file keeps its own environment.
`ros2 launch hydranet_ros perception.launch.py -s` lists the arguments.

Stop it with SIGINT (a terminal's Ctrl-C, `KillSignal=SIGINT` in systemd, `docker stop --signal
SIGINT`): launch then stops its processes in order. On SIGTERM launch only cancels itself and warns
that processes may be orphaned (launch_service.py `_on_sigterm`, the same in Humble, Jazzy and
rolling); perception_node ends with its parent then (docs/install.md, "Start at boot").
"""
import tempfile
from pathlib import Path

import yaml

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration
from ament_index_python.packages import get_package_share_directory
from launch_ros.actions import LifecycleNode, Node

from hydranet_ros.errors import UserError
from hydranet_ros.ros import parameters
from hydranet_ros.ros.camera_stream import camera_topics
from hydranet_ros.ros.discovery import fastdds_profile_variable
from hydranet_ros.ros.rviz_view import follow_launch

PACKAGE = "hydranet_ros"

ARGUMENTS = {
    "namespace": ("hydranet", "namespace of the node and its output topics (/ for the root namespace)"),
    "config": ("outdoor_kitti6.yaml", "parameter file: a path, or a name in share/hydranet_ros/config "
                                      "(outdoor_kitti6.yaml, indoor_nyud40.yaml)"),
    "model_path": ("", "model file; empty: the config's model_path"),
    "backend": ("", "auto, tensorrt, torch, onnxruntime or openvino; empty: the config's backend"),
    "image_size": ("", "the camera's [height, width], e.g. '[720, 1280]': the backend (a TensorRT engine) is "
                       "prepared for it at start; empty: the config's image_size, else the first camera_info's"),
    "cameras": ("", "several cameras served by one node, e.g. front,rear: each gets <name>/image, <name>/camera_info "
                    "and its outputs under <namespace>/<name>/; empty: one camera (the config's cameras)"),
    "image_topic": ("/camera/image_raw", "the camera's image topic (image/compressed is this + /compressed); with "
                                         "cameras, {camera} stands for each name (default /{camera}/image_raw)"),
    "camera_info_topic": ("/camera/camera_info", "the camera's CameraInfo topic; with cameras, {camera} stands for "
                                                 "each name (default /{camera}/camera_info)"),
    "use_sim_time": ("false", "use /clock, for bag playback"),
    "lifecycle": ("false", "start managed_perception_node, a lifecycle node that loads the model on configure "
                           "and subscribes on activate (for Nav2's lifecycle manager)"),
    "autostart": ("false", "with lifecycle:=true: the node configures and activates itself (no lifecycle manager)"),
    "rviz": ("false", "also start rviz2 with config/perception.rviz, showing this launch's topics (and switch on "
                      "segmentation/overlay, which it shows and the robot configs leave off)"),
    "frame": ("camera_optical_frame", "rviz's fixed frame: the camera's optical frame (the images' frame_id)"),
    "log_level": ("info", "the node's log level: debug, info, warn, error or fatal"),
    "use_respawn": ("false", "start the node again if it dies (not after a clean stop), as Nav2's bringup does"),
    "large_data_transport": ("true", "Fast DDS with large shared-memory segments and socket buffers "
                                     "(config/fastdds_large_data.xml) for the processes started here"),
}


def _share(*parts: str) -> str:
    return str(Path(get_package_share_directory(PACKAGE)).joinpath(*parts))


def _flag(value: dict, name: str) -> bool:
    """A boolean launch argument, by the rule launch's IfCondition applies to large_data_transport
    (launch/conditions/evaluate_condition_expression_impl.py): true or 1, false or 0, any case."""
    text = value[name].strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"launch argument {name}:={value[name]!r} must be true or false (or 1 or 0)")


def _config_file(name: str) -> str:
    """The parameter file config:= names: a path, or a file in share/hydranet_ros/config. A missing one
    stops the launch (launch_ros only warns and the node would start on its built-in defaults)."""
    if Path(name).is_file():
        return name
    shipped = Path(_share("config", name))
    if not shipped.is_file():
        names = sorted(p.name for p in shipped.parent.glob("*.yaml") if not p.name.startswith("train_"))
        raise FileNotFoundError(f"config:={name}: no such parameter file, neither a path nor one of {names}")
    return str(shipped)


def _process_environment(value: dict) -> dict:
    """Environment for the processes this file starts (not the launch's: an including bringup would
    inherit it): the large-data Fast DDS profile in the variable this distribution's Fast DDS reads."""
    if not _flag(value, "large_data_transport"):
        return {}
    return {fastdds_profile_variable(): _share("config", "fastdds_large_data.xml")}


def _perception_node(value: dict):
    config = _config_file(value["config"])
    overrides = {"use_sim_time": _flag(value, "use_sim_time"), "autostart": _flag(value, "autostart")}
    for name in ("model_path", "backend"):  # only when given, so the config file's values hold
        if value[name]:
            overrides[name] = value[name]
    if value["image_size"]:
        overrides["image_size"] = _image_size(value["image_size"])
    if _flag(value, "rviz"):  # the view shows the overlay, which the robot configs leave off
        overrides["publish_overlay"] = True
    remappings = _camera_remappings(value, overrides)  # sets the cameras parameter too
    managed = _flag(value, "lifecycle")
    node_action = LifecycleNode if managed else Node
    return node_action(
        package=PACKAGE,
        executable="managed_perception_node" if managed else "perception_node",
        name="perception_node",
        namespace=value["namespace"],
        parameters=[config, overrides],
        remappings=remappings,
        additional_env=_process_environment(value),
        ros_arguments=["--log-level", value["log_level"]],
        respawn=_flag(value, "use_respawn"),
        respawn_delay=2.0,
        output="screen",
        emulate_tty=True,
    )


def _camera_remappings(value: dict, overrides: dict) -> list:
    """The node's camera inputs remapped to the camera topics; with cameras:=a,b one pair per camera (and
    the cameras parameter set)."""
    cameras = _cameras(value)
    if not cameras[0][0]:
        _, image, info = cameras[0]
        return [("image", image), ("image/compressed", f"{image}/compressed"), ("camera_info", info)]
    overrides["cameras"] = [name for name, _, _ in cameras]
    remappings = []
    for name, image, info in cameras:
        remappings += [(f"{name}/image", image), (f"{name}/image/compressed", f"{image}/compressed"),
                       (f"{name}/camera_info", info)]
    return remappings


def _cameras(value: dict) -> list[tuple[str, str, str]]:
    """(name, image topic, camera_info topic) of each camera: one unnamed camera, or with cameras:=a,b the
    topics from templates where {camera} stands for the name."""
    try:
        return camera_topics(value["cameras"], value["image_topic"], value["camera_info_topic"])
    except UserError as error:
        raise ValueError(f"{error}; nothing was started") from None


def _image_size(text: str) -> list:
    """image_size:='[720, 1280]' (YAML, as in a parameter file) -> [720, 1280], or why not in one line."""
    try:
        size = yaml.safe_load(text)
    except yaml.YAMLError:
        size = None
    problem = "must be [height, width], e.g. '[720, 1280]'" if not (
        isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)) \
        else parameters.validate("image_size", size)
    if problem:
        raise ValueError(f"image_size:={text!r}: {problem}; nothing was started")
    return size


def _rviz_installed() -> bool:
    try:
        get_package_share_directory("rviz2")
    except LookupError:  # PackageNotFoundError
        return False
    return True


def _rviz(value: dict) -> list:
    cameras = [(name, image) for name, image, _ in _cameras(value) if name]
    view = follow_launch(Path(_share("config", "perception.rviz")).read_text(), value["namespace"],
                         value["image_topic"], value["frame"], cameras)
    with tempfile.NamedTemporaryFile("w", prefix="hydranet_", suffix=".rviz", delete=False) as handle:
        handle.write(view)
    copy = Path(handle.name)
    return [Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", str(copy)],
                 parameters=[{"use_sim_time": _flag(value, "use_sim_time")}],
                 additional_env=_process_environment(value)),
            RegisterEventHandler(OnShutdown(on_shutdown=lambda event, context: copy.unlink(missing_ok=True)))]


def _actions(context):
    """Every check first, then the actions: a refused argument starts nothing."""
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    with_rviz = _flag(value, "rviz")
    node = _perception_node(value)
    if with_rviz and not _rviz_installed():
        raise RuntimeError("rviz:=true, but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                           "nothing was started")
    return [node] + (_rviz(value) if with_rviz else [])


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_actions)])
