"""The per-frame path shared by the node, `hydranet infer`, process-bag and the benchmark.

    pre        camera image (any supported layout) -> contiguous RGB uint8, rectified when its
               CameraInfo says it is distorted (camera/calibration.py)
    inference  backend: on-device resize/normalise, network, argmax, colour, confidence, depth upsampling
    post       depth rescaled to the actual camera's focal length (camera/network_input.py),
               REP 118 depth, optional overlay, optional point clouds
Each stage is timed; the timings feed diagnostics and the benchmark.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from hydranet_ros.inference.backend_base import Backend, Prediction
from hydranet_ros.camera.calibration import CameraCalibration, Rectifier
from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.camera.network_input import depth_scale
from hydranet_ros.data.synth import FOCAL_PER_WIDTH
from hydranet_ros.inference.postprocess import CloudSettings, build_cloud, depth_for_ros, overlay, without_classes
from hydranet_ros.model.model_file import ModelSpec

SCENE_OF_LABEL_SPACE = {"kitti6": "street", "nyud40": "indoor"}


@dataclass
class FrameResult:
    rgb: np.ndarray                 # the input, RGB (rectified when it was distorted)
    labels: np.ndarray
    color: np.ndarray
    depth: np.ndarray               # NaN where invalid (REP 118)
    confidence: np.ndarray | None = None  # uint8, 255 x the highest class probability
    overlay: np.ndarray | None = None
    timings_ms: dict = field(default_factory=dict)
    depth_scale: float = 1.0        # applied to the network's depth for this camera
    intrinsics: Intrinsics | None = None  # pinhole camera of `rgb` (None: unknown)
    rectified: bool = False

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the outputs."""
        return self.labels.shape[1], self.labels.shape[0]


def to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """uint8 image in rgb8, bgr8, rgba8, bgra8 or mono8 layout -> H x W x 3 RGB."""
    if encoding == "rgb8":
        return image
    conversions = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
                   "mono8": cv2.COLOR_GRAY2RGB}
    if encoding not in conversions:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: rgb8, {', '.join(conversions)}")
    return cv2.cvtColor(image, conversions[encoding])


class Perception:
    def __init__(self, backend: Backend, spec: ModelSpec):
        self.backend = backend
        self.spec = spec
        space = spec.label_space
        self.sky_ids = space.ids(space.sky_classes)
        self.ground_ids = space.ids(space.ground_classes)
        self.rectifier = Rectifier()

    def process(self, image: np.ndarray, encoding: str = "rgb8", overlay_alpha: float | None = None,
                camera: CameraCalibration | Intrinsics | None = None, rectify: str = "auto") -> FrameResult:
        """camera: the image's calibration (from CameraInfo) or plain pinhole intrinsics. Without it,
        depth is for the camera the model was trained with and no cloud can be made."""
        start = time.perf_counter()
        rgb = np.ascontiguousarray(to_rgb(image, encoding))
        intrinsics, rectified = camera, False
        if isinstance(camera, CameraCalibration):
            camera.check_image(rgb.shape[1], rgb.shape[0])
            if camera.needs_rectification(rectify):
                rgb, rectified = self.rectifier(rgb, camera), True
            intrinsics = camera.pinhole()
        elif camera is not None and (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
            raise ValueError(f"intrinsics are for {camera.width}x{camera.height}, the image is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}")
        after_pre = time.perf_counter()
        prediction: Prediction = self.backend.infer(rgb)
        after_inference = time.perf_counter()
        scale = depth_scale(intrinsics, self.spec.network_size(rgb.shape[:2]), self.spec.focal_length_px)
        depth = depth_for_ros(prediction.depth, prediction.labels, self.sky_ids, scale=scale)
        blended = overlay(rgb, prediction.color, overlay_alpha) if overlay_alpha is not None else None
        end = time.perf_counter()
        return FrameResult(rgb, prediction.labels, prediction.color, depth, prediction.confidence, blended, {
            "pre": (after_pre - start) * 1e3, "inference": (after_inference - after_pre) * 1e3,
            "post": (end - after_inference) * 1e3}, scale, intrinsics, rectified)

    def cloud(self, result: FrameResult, settings: CloudSettings) -> np.ndarray:
        """Points in the camera's optical frame (the rectified camera's, when rectified)."""
        if result.intrinsics is None:
            raise ValueError("the frame has no intrinsics: a cloud needs camera_info or fallback intrinsics")
        width, height = result.output_size
        scaled = result.intrinsics.scaled_to(width, height)
        return build_cloud(result.depth, result.color, result.labels, scaled, settings)

    def obstacles(self, cloud: np.ndarray, exclude: tuple[int, ...] | None = None) -> np.ndarray:
        """The same cloud without the ground and sky classes (or `exclude`), for costmaps."""
        return without_classes(cloud, tuple(self.ground_ids + self.sky_ids) if exclude is None else exclude)


def guess_intrinsics(spec: ModelSpec, width: int, height: int) -> Intrinsics:
    """A centred pinhole camera whose focal length at the network input is the model's training
    camera's (so depth is taken as the network gives it); the generated scenes' field of view for
    models that do not record one."""
    if spec.focal_length_px:
        focal = spec.focal_length_px * width / spec.network_size((height, width))[1]
    else:
        focal = FOCAL_PER_WIDTH[SCENE_OF_LABEL_SPACE.get(spec.label_space.name, "street")] * width
    return Intrinsics(focal, focal, width / 2 - 0.5, height / 2 - 0.5, width, height)
