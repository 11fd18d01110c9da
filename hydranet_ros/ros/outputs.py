"""One frame's result -> its output messages, for perception_node and process-bag alike (no rclpy).

The caller passes a factory bound to the input image's header that turns arrays into its own message
types: the node's makes rclpy messages, process-bag's rosbags ones. Keys are the output topics under
the node's namespace.
"""
from __future__ import annotations

from dataclasses import dataclass

from hydranet_ros.inference.pipeline import FrameResult, Perception
from hydranet_ros.inference.postprocess import CloudRequest, CloudSettings
from hydranet_ros.ros.conversions import output_camera_info_fields
from hydranet_ros.ros.output_topics import BY_NAME, CLOUD_TOPICS, DEPTH_IMAGE
from hydranet_ros.ros.parameters import BY_NAME as PARAMETERS, GROUND_AND_SKY

CLOUD_PARAMETERS = ("points_stride", "points_max_depth", "points_aligned", "points_organized",
                    "obstacles_organized", "points_exclude_classes", "obstacle_exclude_classes")


@dataclass(frozen=True)
class OutputRequest:
    wanted: frozenset            # which output topics to build (output_topics.OUTPUTS)
    cloud: CloudSettings
    obstacle_exclude: tuple[int, ...] | None = None  # None: the label space's ground and sky
    projection_column: tuple[float, float, float] = (0.0, 0.0, 0.0)  # P's last column (stereo baseline)
    obstacles_organized: bool = False

    def clouds(self, perception: Perception) -> CloudRequest | None:
        """What Perception.process should make for the wanted cloud topics (one back-projection for both)."""
        if not self.wanted & CLOUD_TOPICS:
            return None
        obstacles = perception.obstacle_classes(self.obstacle_exclude) if "points/obstacles" in self.wanted else None
        return CloudRequest(self.cloud, obstacles, self.obstacles_organized)


def class_ids(names, label_space, parameter: str) -> tuple[int, ...]:
    """Class names of a parameter -> ids; __ground_and_sky__ is the label space's ground and sky classes.
    Raises ValueError naming the parameter and the unknown classes."""
    names = list(names)
    if GROUND_AND_SKY in names:
        names = [n for n in names if n != GROUND_AND_SKY] + label_space.ground_classes + label_space.sky_classes
    names = [n for n in names if n]
    unknown = [n for n in names if n not in label_space.class_names]
    if unknown:
        raise ValueError(f"{parameter}: unknown classes {unknown}; the model's classes: {label_space.class_names}")
    return tuple(label_space.ids(names))


def cloud_filters(values: dict, label_space) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(points_exclude, obstacle_exclude) class ids from those two parameters' values; both are checked
    before either is used. A label space without sky quietly ignores the default ["sky"]."""
    points = [n for n in values["points_exclude_classes"] if n in label_space.class_names or n != "sky"]
    return (class_ids(points, label_space, "points_exclude_classes"),
            class_ids(values["obstacle_exclude_classes"], label_space, "obstacle_exclude_classes"))


def cloud_output_request(values: dict, label_space, wanted: frozenset,
                         projection_column=(0.0, 0.0, 0.0)) -> OutputRequest:
    """What the clouds are made of, from the node's parameter values (ros/parameters.py; a name missing
    from values takes the table's default): one rule for the node, process-bag and infer, so the same
    parameters give the same clouds everywhere."""
    values = {name: values.get(name, PARAMETERS[name].default) for name in CLOUD_PARAMETERS}
    points_exclude, obstacle_exclude = cloud_filters(values, label_space)
    # points_aligned: one point per segmentation pixel, as Nav2's semantic layer needs
    settings = CloudSettings(values["points_stride"], values["points_max_depth"], points_exclude,
                             values["points_organized"], values["points_aligned"])
    return OutputRequest(wanted, settings, obstacle_exclude, projection_column, values["obstacles_organized"])


def frame_messages(result: FrameResult, request: OutputRequest, factory) -> dict:
    """The wanted messages for one frame, processed with request.clouds(). Without intrinsics there is
    no depth/camera_info and no cloud."""
    wanted = request.wanted
    images = {"segmentation": result.labels, "segmentation/color": result.color,
              "segmentation/overlay": result.overlay, "segmentation/confidence": result.confidence,
              DEPTH_IMAGE: result.depth}
    messages = {topic: factory.image(array, BY_NAME[topic].encoding) for topic, array in images.items()
                if topic in wanted and array is not None}
    if result.intrinsics is None:
        return messages
    if "depth/camera_info" in wanted:
        width, height = result.output_size
        messages["depth/camera_info"] = factory.camera_info(
            output_camera_info_fields(result.intrinsics, width, height, request.projection_column))
    if "points" in wanted:
        messages["points"] = factory.cloud(result.cloud)
    if "points/obstacles" in wanted:
        messages["points/obstacles"] = factory.cloud(result.obstacles)
    return messages


def label_info(label_info_type, vision_class_type, class_names, header):
    """vision_msgs/LabelInfo for the model's classes, built with the caller's message types: class id
    = index in class_names = the value in segmentation and in the clouds' label field. threshold 0:
    every pixel gets its most probable class, none is left unlabelled."""
    return label_info_type(header=header, threshold=0.0, class_map=[
        vision_class_type(class_id=index, class_name=name) for index, name in enumerate(class_names)])


def label_info_types():
    """(LabelInfo, VisionClass) of the installed vision_msgs, or the reason there are none: LabelInfo
    came with vision_msgs 4.1.0 (package.xml asks for it; an older install, e.g. from source, has none)."""
    try:
        from vision_msgs import msg
    except ImportError:
        return "vision_msgs is not installed"
    if not hasattr(msg, "LabelInfo"):
        return "vision_msgs is older than 4.1.0 (it has no LabelInfo; update ros-$ROS_DISTRO-vision-msgs)"
    return msg.LabelInfo, msg.VisionClass
