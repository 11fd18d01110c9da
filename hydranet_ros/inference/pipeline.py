"""The per-frame path shared by the node, `hydranet infer`, process-bag and the benchmark.

    pre        camera image (any supported layout) -> contiguous RGB uint8, rectified when its
               CameraInfo says it is distorted (camera/calibration.py)
    inference  backend: on-device resize/normalise, network, argmax, colour, confidence, depth upsampling
    post       depth rescaled to the actual camera's focal length (camera/network_input.py),
               REP 118 depth, optional overlay, optional point clouds (all points, obstacles)
Backends that keep their outputs on a device (torch, TensorRT) post-process there too
(inference/device_post.py) and hand over finished outputs in one copy; the others' outputs are
host arrays, post-processed by inference/postprocess.py. Each stage is timed (on a GPU by CUDA
events); the timings feed diagnostics and the benchmark.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hydranet_ros.inference.backends.base import Backend, DeviceFrame, Prediction
from hydranet_ros.camera.calibration import CameraCalibration, Rectifier
from hydranet_ros.camera.intrinsics import FOCAL_PER_WIDTH, Intrinsics
from hydranet_ros.camera.network_input import depth_scale
from hydranet_ros.data.kinds import SCENE_OF_LABEL_SPACE
from hydranet_ros.inference.device_post import DevicePost, StageClock
from hydranet_ros.inference.postprocess import CloudRequest, build_cloud, depth_for_ros, overlay, without_classes
from hydranet_ros.model.model_file import ModelSpec
from hydranet_ros.ros.conversions import to_rgb


@dataclass
class PreparedFrame:
    """One frame after the pre stage, ready for the backend."""

    rgb: np.ndarray                   # RGB, rectified when its calibration asked
    intrinsics: Intrinsics | None     # pinhole camera of rgb
    rectified: bool
    scale: float                      # applied to the network's depth for this camera
    pre_ms: float


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
    cloud: np.ndarray | None = None       # CLOUD_DTYPE, in the camera's optical frame, when asked for
    obstacles: np.ndarray | None = None   # the cloud without the request's obstacle classes

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the outputs."""
        return self.labels.shape[1], self.labels.shape[0]


class Perception:
    def __init__(self, backend: Backend, spec: ModelSpec):
        self.backend = backend
        self.spec = spec
        space = spec.label_space
        self.sky_ids = space.ids(space.sky_classes)
        self.ground_ids = space.ids(space.ground_classes)
        self.rectifier = Rectifier()
        self.device_post = DevicePost(backend.device, self.sky_ids) if backend.device_frames else None

    def obstacle_classes(self, exclude: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """Classes the obstacle cloud leaves out: exclude, or by default the ground and the sky."""
        return tuple(self.ground_ids + self.sky_ids) if exclude is None else tuple(exclude)

    def process(self, image: np.ndarray, encoding: str = "rgb8", overlay_alpha: float | None = None,
                camera: CameraCalibration | Intrinsics | None = None, rectify: str = "auto",
                clouds: CloudRequest | None = None) -> FrameResult:
        """camera: the image's calibration (from CameraInfo) or plain pinhole intrinsics. Without it,
        depth is for the camera the model was trained with and no cloud can be made. clouds: the
        point clouds to make (in the optical frame of the camera, rectified when it was rectified)."""
        return self.process_batch([self.prepare(image, encoding, camera, rectify)], [overlay_alpha], [clouds])[0]

    def prepare(self, image: np.ndarray, encoding: str = "rgb8", camera: CameraCalibration | Intrinsics | None = None,
                rectify: str = "auto") -> PreparedFrame:
        """The pre stage of one frame: RGB, rectified when its calibration asks; raises CalibrationError
        (or ValueError for plain intrinsics) when the camera does not fit the image."""
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
        scale = depth_scale(intrinsics, self.spec.network_size(rgb.shape[:2]), self.spec.focal_length_px)
        return PreparedFrame(rgb, intrinsics, rectified, scale, (time.perf_counter() - start) * 1e3)

    def process_batch(self, frames: list[PreparedFrame], overlay_alphas: list, clouds: list) -> list[FrameResult]:
        """Prepared frames of one size through the backend as one batch (Backend.infer_batch; one at a
        time where the backend runs on its device), then each frame's post stage. Each result's
        inference time is the batch's."""
        if self.device_post is not None:
            if 1 < len(frames) <= self.backend.device_batch_limit(frames[0].rgb.shape[:2]):
                clock = StageClock(self.device_post.device)
                clock.mark()
                device_frames = self.backend.infer_batch_on_device([frame.rgb for frame in frames])
                clock.mark()
                return [self._on_device(frame, alpha, request, device_frame, clock)
                        for frame, alpha, request, device_frame in zip(frames, overlay_alphas, clouds, device_frames)]
            return [self._on_device(frame, alpha, request)
                    for frame, alpha, request in zip(frames, overlay_alphas, clouds)]
        after_pre = time.perf_counter()
        predictions = self.backend.infer_batch([frame.rgb for frame in frames])
        inference_ms = (time.perf_counter() - after_pre) * 1e3
        return [self._host_post(frame, prediction, alpha, request, inference_ms)
                for frame, prediction, alpha, request in zip(frames, predictions, overlay_alphas, clouds)]

    def _host_post(self, frame: PreparedFrame, prediction: Prediction, overlay_alpha: float | None,
                   clouds: CloudRequest | None, inference_ms: float) -> FrameResult:
        start = time.perf_counter()
        rgb, intrinsics = frame.rgb, frame.intrinsics
        depth = depth_for_ros(prediction.depth, prediction.labels, self.sky_ids, scale=frame.scale)
        blended = overlay(rgb, prediction.color, overlay_alpha) if overlay_alpha is not None else None
        result = FrameResult(rgb, prediction.labels, prediction.color, depth, prediction.confidence, blended,
                             {}, frame.scale, intrinsics, frame.rectified)
        if clouds is not None and intrinsics is not None:
            width, height = result.output_size
            clouds = self._on_outputs(clouds, width, rgb.shape[:2])
            result.cloud = build_cloud(depth, result.color, result.labels, intrinsics.scaled_to(width, height),
                                       clouds.settings)
            if clouds.obstacle_classes is not None:
                result.obstacles = without_classes(result.cloud, clouds.obstacle_classes, clouds.obstacles_organized)
        result.timings_ms = {"pre": frame.pre_ms, "inference": inference_ms,
                             "post": (time.perf_counter() - start) * 1e3}
        return result

    def _on_outputs(self, clouds: CloudRequest, output_width: int, image_size: tuple[int, int]) -> CloudRequest:
        """The clouds' stride in output pixels, for outputs output_width wide of an image of image_size."""
        return clouds.on_outputs(output_width, self.spec.network_size(image_size)[1])

    def _on_device(self, frame: PreparedFrame, overlay_alpha, clouds, device_frame: DeviceFrame | None = None,
                   batch_clock: StageClock | None = None) -> FrameResult:
        """One frame's inference (or its part of a batch's, device_frame, timed by batch_clock) and
        post-processing on the device."""
        rgb, pre_ms, scale, intrinsics, rectified = frame.rgb, frame.pre_ms, frame.scale, frame.intrinsics, \
            frame.rectified
        clock = StageClock(self.device_post.device)
        clock.mark()
        if device_frame is None:
            device_frame = self.backend.infer_on_device(rgb)
            clock.mark()
        height, width = device_frame.outputs[0].shape
        clouds = self._on_outputs(clouds, width, rgb.shape[:2]) if clouds is not None else None
        out = self.device_post(device_frame, scale, overlay_alpha,
                               intrinsics.scaled_to(width, height) if intrinsics is not None else None, clouds, clock)
        intervals = clock.intervals_ms()
        inference_ms, post_ms, copy_ms = intervals if batch_clock is None else \
            (batch_clock.intervals_ms()[0], *intervals)
        return FrameResult(rgb, out.labels, out.color, out.depth, out.confidence, out.overlay,
                           {"pre": pre_ms, "inference": inference_ms, "post": post_ms + copy_ms, "copy": copy_ms},
                           scale, intrinsics, rectified, out.cloud, out.obstacles)


def guess_intrinsics(spec: ModelSpec, width: int, height: int) -> Intrinsics:
    """A centred pinhole camera whose focal length at the network input is the model's training
    camera's (so depth is taken as the network gives it); the generated scenes' field of view for
    models that do not record one."""
    if spec.focal_length_px:
        focal = spec.focal_length_px * width / spec.network_size((height, width))[1]
    else:
        focal = FOCAL_PER_WIDTH[SCENE_OF_LABEL_SPACE.get(spec.label_space.name, "street")] * width
    return Intrinsics(focal, focal, width / 2 - 0.5, height / 2 - 0.5, width, height)
