"""Host-side post-processing: overlay, REP 118 depth, and point clouds as PointCloud2-ready bytes.

Pure numpy/OpenCV; the ROS node wraps the results in messages.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from hydranet_ros.camera.intrinsics import Intrinsics, depth_to_points

# PointCloud2 layout: x, y, z float32; rgb packed in a float32 (0x00RRGGBB, as rviz reads it);
# label uint8; 3 bytes of padding keep every point 4-byte aligned.
CLOUD_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb", "label"],
                        "formats": ["<f4", "<f4", "<f4", "<f4", "u1"],
                        "offsets": [0, 4, 8, 12, 16], "itemsize": 20})


def overlay(rgb: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """Blends the colour mask over the image (resized to the mask's size): alpha = mask weight."""
    if rgb.shape[:2] != color.shape[:2]:
        rgb = cv2.resize(rgb, (color.shape[1], color.shape[0]), interpolation=cv2.INTER_AREA)
    return cv2.addWeighted(color, float(alpha), rgb, 1.0 - float(alpha), 0.0)


def labels_in(labels, classes):
    """Where labels (a numpy array or a torch tensor) is one of classes. One comparison per class: for
    the few classes a mask names (sky; ground and sky) this is 50x faster than np.isin, which sorts."""
    mask = labels != labels  # all False, of the labels' own kind
    for class_id in classes:
        mask |= labels == class_id
    return mask


MIN_DEPTH_M = 1e-3  # depth at or below this is no measurement (REP 118: NaN); device_post.py shares it


def depth_for_ros(depth: np.ndarray, labels: np.ndarray, no_depth_classes: list[int],
                  min_depth: float = MIN_DEPTH_M, scale: float = 1.0) -> np.ndarray:
    """depth x scale as float32 metres, with REP 118's invalid values as REP 117 defines them: +Inf
    where the class has no surface (sky: nothing in range), NaN where the prediction is no
    measurement (non-finite or <= min_depth)."""
    out = np.multiply(depth, np.float32(scale), dtype=np.float32)
    invalid = ~((out > min_depth) & (out < np.inf))  # NaN compares False
    np.copyto(out, np.float32(np.nan), where=invalid)
    if no_depth_classes:
        np.copyto(out, np.float32(np.inf), where=labels_in(labels, no_depth_classes))
    return out


def pack_rgb(color: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> H x W float32 holding 0x00RRGGBB bit-for-bit (little-endian, as the clouds
    are sent). Byte copies, not shifts of uint32 copies: 7x faster."""
    packed = np.zeros(color.shape[:2] + (4,), dtype=np.uint8)
    packed[..., 0], packed[..., 1], packed[..., 2] = color[..., 2], color[..., 1], color[..., 0]
    return packed.view(np.float32)[..., 0]


@dataclass(frozen=True)
class CloudSettings:
    """How a cloud is sampled; the node's values come from its parameters (ros/outputs.py). stride is
    in network pixels (what the network predicted), unless aligned: then one point per output pixel."""

    stride: int
    max_depth: float
    exclude_classes: tuple[int, ...] = ()
    organized: bool = True
    aligned: bool = False

    def on_outputs(self, output_width: int, network_width: int) -> "CloudSettings":
        """The stride in output pixels: outputs at the camera's size are the network's depth upsampled,
        and a point per upsampled pixel would repeat what the network predicted once (a 1080p camera:
        518,400 points at stride 2 from about 107,000 predicted depths)."""
        if self.aligned:
            return replace(self, stride=1, organized=True)
        return replace(self, stride=max(1, round(self.stride * output_width / network_width)))


@dataclass(frozen=True)
class CloudRequest:
    """The clouds a frame should come with: its points, and, unless obstacle_classes is None, the
    same points without those classes (for costmaps), organised or only the obstacle points."""

    settings: CloudSettings
    obstacle_classes: tuple[int, ...] | None = None
    obstacles_organized: bool = False

    def on_outputs(self, output_width: int, network_width: int) -> "CloudRequest":
        return replace(self, settings=self.settings.on_outputs(output_width, network_width))


def build_cloud(depth: np.ndarray, color: np.ndarray, labels: np.ndarray, intrinsics: Intrinsics,
                settings: CloudSettings) -> np.ndarray:
    """A structured CLOUD_DTYPE array: (rows, cols) when organised, else (1, n) of valid points.

    depth carries NaN where invalid. Points beyond max_depth and of excluded classes are invalid:
    NaN in an organised cloud, dropped from an unorganised one.
    """
    s = settings.stride
    points = depth_to_points(depth, intrinsics, s)
    sub_labels = labels[::s, ::s]
    invalid = ~np.isfinite(points[..., 2]) | (points[..., 2] > settings.max_depth)
    if settings.exclude_classes:
        invalid |= labels_in(sub_labels, settings.exclude_classes)
    cloud = np.zeros(points.shape[:2], dtype=CLOUD_DTYPE)  # zeros: the padding bytes go on the wire
    cloud["x"], cloud["y"], cloud["z"] = points[..., 0], points[..., 1], points[..., 2]
    cloud["rgb"] = pack_rgb(color[::s, ::s])
    cloud["label"] = sub_labels
    if settings.organized:
        for axis in ("x", "y", "z"):
            cloud[axis][invalid] = np.nan
        return cloud
    return cloud[~invalid][None, :]


def without_classes(cloud: np.ndarray, classes: tuple[int, ...], organized: bool) -> np.ndarray:
    """The cloud without points of the given classes: NaN in an organised result (also one of a single
    row); a flat result holds only the valid points left."""
    removed = labels_in(cloud["label"], classes)
    if not organized:
        return cloud[~removed & np.isfinite(cloud["z"])][None, :]
    out = cloud.copy()
    for axis in ("x", "y", "z"):
        out[axis][removed] = np.nan
    return out
