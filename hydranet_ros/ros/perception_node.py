"""perception_node: camera images in; segmentation, depth and point clouds out.

A thin layer over inference.pipeline.Perception. The subscription callback only keeps the
newest frame; one worker thread processes it, so the node never builds a backlog and counts
every frame it replaced unprocessed. Topics and parameters: docs/perception_node.md.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import rclpy
import rclpy.executors
from rclpy.clock import Clock, ClockType
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
try:  # Iron and later; Humble has the same names in rclpy.qos_event
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks, UnsupportedEventTypeError
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from hydranet_ros.camera.calibration import CameraCalibration
from hydranet_ros.camera.intrinsics import CalibrationError, Intrinsics, fallback_intrinsics
from hydranet_ros.camera.pairing import CameraInfoMatch
from hydranet_ros.inference.backends import BackendError, BackendOptions, create_backend
from hydranet_ros.inference.pipeline import Perception, PreparedFrame
from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import ModelFileError, load_model
from hydranet_ros.ros import parameters
from hydranet_ros.ros.conversions import (ImageFormatError, array_to_image, camera_info_to_calibration,
                                          cloud_to_pointcloud2, input_image_to_array, stamp_ns)
from hydranet_ros.ros.camera_stream import CameraStream
from hydranet_ros.ros.health import ERROR, OK, WARN, InputLoss, LogThrottle
from hydranet_ros.ros.output_topics import CLOUD_TOPICS, OUTPUTS
from hydranet_ros.ros.outputs import (CLOUD_PARAMETERS, OutputRequest, cloud_filters, cloud_output_request,
                                      frame_messages, label_info, label_info_types)

# rclpy's standard per-topic QoS overrides on every output (qos_overrides./ns/topic.publisher.reliability
# and the others, in the parameter file), over the output_qos_* defaults.
OUTPUT_QOS_OVERRIDES = QoSOverridingOptions.with_default_policies()
PR_SET_PDEATHSIG = 1  # linux/prctl.h
WORKER_JOIN_S = 5.0  # how long a stop waits for the frame in flight
ERROR_LOG_THROTTLE_S = 5.0
# How long the worker waits for a late camera_info when the calibration changes over time.
CAMERA_INFO_WAIT_S = 0.1
# Without publisher matched events (Humble), how often the outputs' subscriber counts are polled.
SUBSCRIBER_POLL_S = 0.5


@dataclass
class FrameJob:
    """One camera's frame between its pre stage and its outputs."""

    camera: CameraStream
    header: object           # the input's std_msgs/Header: every output carries it
    request: OutputRequest
    alpha: float | None      # overlay_alpha when the overlay is wanted
    frame: PreparedFrame
    received_at: float
    start: float             # before decoding
    decoded: float


def camera_info_qos(latched: bool, reliability, depth: int) -> QoSProfile:
    """camera_info's subscription QoS: transient local for latched publishers, and then reliable (a late
    joiner gets the stored sample only over a reliable reader); volatile with `reliability` otherwise."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if latched else reliability,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class StartupError(RuntimeError):
    """The node cannot start; the message names the file or parameter and the fix."""


class PerceptionCore:
    """The node's work, in the steps of a managed node's transitions: load (configure), start
    (activate), stop (deactivate), unload (cleanup). PerceptionNode runs them all at start; the
    managed node (managed_perception_node.py) on request. Mixed into an rclpy Node or LifecycleNode.
    One model and backend serve every camera of `cameras` (ros/camera_stream.py)."""

    # Parameters that take effect on load: read-only in a node that loads once, settable while a
    # managed node is unconfigured (cleanup, set, configure switches model, backend or precision).
    RESTART_PARAMETERS_SETTABLE = False

    def _setup(self):
        """Parameters, declared once for the node's life (both variants, at construction)."""
        self._lock = threading.Condition()
        self.cameras: list[CameraStream] = []
        self._subscriber_poll_timer = None
        self._worker = None
        self._diagnostics_timer = None
        self.perception = None
        self.diagnostics_pub = None
        self._declare_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _output_publisher(self, message_type, topic: str, qos):
        """A publisher of an output; the managed node's publish only while it is active."""
        return self.create_publisher(message_type, topic, qos, qos_overriding_options=OUTPUT_QOS_OVERRIDES,
                                     event_callbacks=self._matched_events())

    def _matched_events(self):
        """Publisher events that call _follow_subscribers when an output gains or loses a subscriber
        (rclpy's matched event, Iron and later); None on Humble, where _start polls instead."""
        try:
            return PublisherEventCallbacks(matched=lambda _: self._follow_subscribers())
        except TypeError:  # Humble's PublisherEventCallbacks has no matched event
            return None

    def _destroy_output_publisher(self, publisher) -> None:
        self.destroy_publisher(publisher)

    def _load(self):
        """Model, backend and publishers; raises StartupError with the fix, leaving nothing loaded."""
        p = self._value
        cameras = [CameraStream(name) for name in p("cameras")]
        try:
            model_path = resolve_model_path(p("model_path"))
            _, spec = load_model(model_path)
            input_size = tuple(p("input_size")) if any(p("input_size")) else None
            sizes = [tuple(p("image_size"))] if any(p("image_size")) else \
                self._camera_sizes_from_camera_info(cameras, p("camera_info_wait"))
            if p("engine_cache"):
                os.environ["HYDRANET_CACHE"] = p("engine_cache")  # read by the backends' caches
            backend, skipped = create_backend(model_path, BackendOptions(
                backend=p("backend"), device=p("device"), precision=p("precision"), output=p("output_resolution"),
                input_size=input_size, calibration=p("int8_calibration") or None,
                camera_size=sizes[0] if sizes else None, batch=len(cameras) if p("batch_cameras") else 1))
            for size in sizes[1:]:  # the other cameras' sizes
                backend.prepare(size)
        except (ModelFileError, BackendError) as error:
            raise StartupError(str(error)) from None
        if input_size:
            spec = spec.with_pixel_budget(input_size)
        for reason in skipped:
            self.get_logger().info(f"backend skipped: {reason}")
        self.spec = spec
        self._resolve_class_parameters()  # raises before anything is kept: the backend goes with it
        self.perception = Perception(backend, spec)
        if not self.has_parameter("class_names"):  # the model's, for tools that map ids to names
            self.declare_parameter("class_names", list(spec.label_space.class_names), ParameterDescriptor(
                description="The model's class names; index = class id in segmentation and the clouds' label.",
                read_only=True), ignore_override=True)

        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p("output_qos_depth"),
                                reliability=ReliabilityPolicy.RELIABLE if p("output_qos_reliability") == "reliable"
                                else ReliabilityPolicy.BEST_EFFORT)
        classes = {"Image": Image, "CameraInfo": CameraInfo, "PointCloud2": PointCloud2}
        self.cameras = cameras
        for camera in cameras:
            own = camera.parameter(parameters.PER_CAMERA)
            if camera.name and not self.has_parameter(own):  # a parameter file's front.fallback_intrinsics
                self.declare_parameter(own, [0.0] * 4, ParameterDescriptor(
                    description=f"{parameters.PER_CAMERA} of camera {camera.name}; zeros: the node's"))
                reason = parameters.validate(own, self._value(own))
                if reason:
                    raise StartupError(f"parameter {reason}")
            camera.pub = {topic.name: self._output_publisher(classes[topic.type_name], camera.topic(topic.name),
                                                             output_qos) for topic in OUTPUTS}
            camera.label_info_pub = self._label_info_publisher(camera)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        prepared = ", ".join(f"{w}x{h}" for h, w in sizes) + " camera images" if sizes else \
            "the model's input size (the camera's size is prepared on its first frame)"
        h, w = spec.input_size
        size = "the camera's own size" if spec.native_resolution else f"about {w}x{h} pixels, aspect ratio kept"
        focal = f"{spec.focal_length_px:.1f} px" if spec.focal_length_px else "not recorded: depth is not rescaled"
        served = "one camera" if cameras[0].name == "" else f"cameras {', '.join(c.name for c in cameras)}"
        self.get_logger().info(
            f"HydraNet ready: model {model_path} ({spec.label_space.name}, {spec.num_classes} classes), backend "
            f"{backend.describe()}, prepared for {prepared}, network input {size}, training camera focal length "
            f"{focal}, outputs at {p('output_resolution')} resolution, serving {served}")

    def _camera_sizes_from_camera_info(self, cameras: list[CameraStream], timeout: float) -> list[tuple[int, int]]:
        """The distinct (height, width) of the images the cameras' camera_info describe, waiting up to
        timeout seconds in all for one of each. Messages are taken from the subscriptions directly: a
        managed node's configure runs in the executor, which cannot deliver to a callback meanwhile."""
        if timeout <= 0:
            return []
        deadline = time.monotonic() + timeout
        waiting = {camera.name: [None, None, None] for camera in cameras}  # subscription, latched, message
        try:
            while time.monotonic() < deadline and any(entry[2] is None for entry in waiting.values()):
                for camera in cameras:
                    entry = waiting[camera.name]
                    if entry[2] is not None:
                        continue
                    latched = self._camera_info_publishers_latched(camera)
                    if entry[0] is None or latched != entry[1]:  # a latched publisher found: match it
                        if entry[0] is not None:
                            self.destroy_subscription(entry[0])
                        entry[0], entry[1] = self.create_subscription(
                            CameraInfo, camera.topic("camera_info"), lambda _: None,
                            camera_info_qos(latched, ReliabilityPolicy.BEST_EFFORT, depth=1)), latched
                    with entry[0].handle:
                        taken = entry[0].handle.take_message(CameraInfo, False)
                    entry[2] = taken[0] if taken is not None else None
                time.sleep(0.02)
        finally:
            for entry in waiting.values():
                if entry[0] is not None:
                    self.destroy_subscription(entry[0])
        sizes = []
        for camera in cameras:
            topic, message = self.resolve_topic_name(camera.topic("camera_info")), waiting[camera.name][2]
            if message is None:
                self.get_logger().info(f"no camera_info on {topic} within camera_info_wait ({timeout:g} s) and "
                                       "image_size is not set: the camera's size is prepared on its first frame "
                                       "(seconds on a CPU, minutes for a TensorRT engine)")
                continue
            try:
                width, height = camera_info_to_calibration(message).image_size()
            except CalibrationError as error:
                self.get_logger().warning(f"camera_info on {topic} is unusable ({error}): the camera's size is "
                                          "prepared on its first frame")
                continue
            if (height, width) not in sizes:
                sizes.append((height, width))
        return sizes

    def _label_info_publisher(self, camera: CameraStream):
        """The publisher of vision_msgs/LabelInfo on segmentation/label_info, reliable and transient local
        (late joiners get it); None without vision_msgs 4.1+."""
        types = label_info_types()
        if isinstance(types, str):
            self.get_logger().info(f"{types}: segmentation/label_info is not published "
                                   "(the class names are in the class_names parameter)", once=True)
            return None
        self._label_info_types = types
        return self._output_publisher(types[0], camera.topic("segmentation/label_info"), QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))

    def _publish_label_info(self) -> None:
        """The class map, once per start: it does not change while the model is loaded."""
        header = Header(stamp=self.get_clock().now().to_msg())
        for camera in self.cameras:
            if camera.label_info_pub is not None:
                camera.label_info_pub.publish(label_info(*self._label_info_types, self.spec.label_space.class_names,
                                                         header))

    def _start(self):
        """The class map, subscriptions, the worker thread and /diagnostics: frames flow."""
        p = self._value
        if self._worker is not None:  # the last deactivate left it finishing a frame: one worker, always
            self.get_logger().info("waiting for the frame in flight since the last deactivate")
            self._worker.join()
            self._worker = None
        self._publish_label_info()
        reliability = ReliabilityPolicy.RELIABLE if p("image_qos_reliability") == "reliable" \
            else ReliabilityPolicy.BEST_EFFORT
        self._input_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p("image_qos_depth"),
                                     reliability=reliability)
        self._camera_info_reliability = reliability
        self._stopping = False
        period = p("diagnostics_period")
        self.log_throttle = LogThrottle(ERROR_LOG_THROTTLE_S)
        for camera in self.cameras:
            camera.reset(p("camera_info_tolerance"), max(5.0, 5 * period), p("stale_after_periods") * period,
                         p("camera_rate_hz"))
        self._worker = threading.Thread(target=self._work, name="hydranet_worker")
        self._worker.start()
        for camera in self.cameras:
            camera.camera_info_subscription = self._subscribe_camera_info(camera)
        # A steady clock: with use_sim_time and no /clock a ROS-time timer would never fire.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._diagnostics_timer = self.create_timer(period, self._publish_diagnostics, clock=steady)
        if p("lazy_subscription") and self._matched_events() is None:
            self._subscriber_poll_timer = self.create_timer(SUBSCRIBER_POLL_S, self._follow_subscribers, clock=steady)
        self._follow_subscribers()

    def _follow_subscribers(self):
        """With lazy_subscription, a camera's image is subscribed only while one of its outputs has a
        subscriber (as depth_image_proc's nodes do): nobody listening, no frame is copied into Python."""
        if self._worker is None or self._stopping:  # not started: _start subscribes
            return
        for camera in self.cameras:
            if self._wanted(camera) or not self._value("lazy_subscription"):
                if camera.image_subscription is None:
                    self._subscribe_image(camera)
                continue
            if camera.image_subscription is not None:
                self.destroy_subscription(camera.image_subscription)
                camera.image_subscription = None
            if camera.health.idle_since is None:
                camera.health.idle()
                self.get_logger().info(f"{self._tag(camera)}no subscriber to any output: camera image unsubscribed "
                                       "until one comes")

    def _subscribe_image(self, camera: CameraStream):
        compressed = self._value("image_transport") == "compressed" or self._value("subscribe_compressed")
        topic, message_type = ("image/compressed", CompressedImage) if compressed else ("image", Image)
        camera.input_loss = InputLoss(self._value("camera_rate_hz"))  # a new subscription: a new count
        camera.health.resume()
        loss = camera.input_loss
        events = SubscriptionEventCallbacks(message_lost=lambda status: loss.middleware_reported(status.total_count))
        callback = lambda msg: self._on_image(camera, msg)  # noqa: E731
        try:  # the middleware's count of lost samples: evidence of transport loss
            camera.image_subscription = self.create_subscription(message_type, camera.topic(topic), callback,
                                                                 self._input_qos, event_callbacks=events)
        except UnsupportedEventTypeError:  # an rmw without the message_lost event
            camera.image_subscription = self.create_subscription(message_type, camera.topic(topic), callback,
                                                                 self._input_qos)

    def _subscribe_camera_info(self, camera: CameraStream):
        """camera_info with the durability its publishers offer, as a latched calibration needs: a
        driver that publishes it once as transient-local reaches only a transient-local subscription
        (a volatile one never gets the message sent before it), while a transient-local subscription
        would not match a volatile publisher. Several are kept: each image takes the one of its stamp."""
        latched = camera.camera_info_latched = self._camera_info_publishers_latched(camera)
        return self.create_subscription(CameraInfo, camera.topic("camera_info"),
                                        lambda msg: self._on_camera_info(camera, msg),
                                        camera_info_qos(latched, self._camera_info_reliability, depth=10))

    def _camera_info_publishers_latched(self, camera: CameraStream) -> bool:
        """Whether the camera's camera_info has publishers and every one of them is transient-local."""
        publishers = self.get_publishers_info_by_topic(self.resolve_topic_name(camera.topic("camera_info")))
        return bool(publishers) and all(
            info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for info in publishers)

    def _match_camera_info_durability(self, camera: CameraStream):
        """Until a camera_info arrives: a publisher discovered after the subscription was made may be a
        latched one, and the subscription is made again to match it."""
        if camera.camera_info_subscription is None or camera.camera_infos.has_any or camera.camera_info_latched:
            return
        if self._camera_info_publishers_latched(camera):
            self.destroy_subscription(camera.camera_info_subscription)
            camera.camera_info_subscription = self._subscribe_camera_info(camera)
            self.get_logger().info(f"{self._tag(camera)}camera_info is published transient-local (latched): "
                                   "subscribed to match")

    def _stop(self):
        """No more frames: subscriptions and the diagnostics timer go, the worker finishes its frame."""
        for camera in self.cameras:
            for subscription in (camera.image_subscription, camera.camera_info_subscription):
                if subscription is not None:
                    self.destroy_subscription(subscription)
            camera.image_subscription = camera.camera_info_subscription = None
        for timer in (self._diagnostics_timer, self._subscriber_poll_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._diagnostics_timer = self._subscriber_poll_timer = None
        if self._worker is not None:
            with self._lock:
                self._stopping = True
                self._lock.notify_all()
            self._worker.join(timeout=WORKER_JOIN_S)
            if self._worker.is_alive():  # a long frame (an engine build): the next _start waits for it
                self.get_logger().warning(f"the worker is still finishing a frame after {WORKER_JOIN_S:g} s; "
                                          "it publishes nothing more")
            else:
                self._worker = None

    def _unload(self):
        """Publishers and the backend go (GPU memory and engines are freed with it); safe whatever was
        loaded, also after a failed load."""
        for camera in self.cameras:
            for publisher in [*camera.pub.values(), camera.label_info_pub]:
                if publisher is not None:
                    self._destroy_output_publisher(publisher)
        if self.diagnostics_pub is not None:
            self.destroy_publisher(self.diagnostics_pub)
        self.cameras, self.diagnostics_pub = [], None
        self.perception = None

    @staticmethod
    def _tag(camera: CameraStream) -> str:
        """A log line's prefix naming the camera, when the node serves named ones."""
        return f"[{camera.name}] " if camera.name else ""

    def stop(self):
        self._stop()

    # Parameters -------------------------------------------------------------------------------
    def _declare_parameters(self):
        for spec in parameters.PARAMETERS:
            descriptor = ParameterDescriptor(description=spec.description,
                                             read_only=not spec.dynamic and not self.RESTART_PARAMETERS_SETTABLE,
                                             dynamic_typing=any(type(alias) is not type(spec.default)
                                                                for alias, _ in spec.aliases))
            if spec.choices:
                descriptor.additional_constraints = f"one of {list(spec.choices)}"
            if spec.minimum is not None:
                if isinstance(spec.default, int) and not isinstance(spec.default, bool):
                    descriptor.integer_range = [IntegerRange(from_value=int(spec.minimum), to_value=int(spec.maximum),
                                                             step=1)]
                else:
                    descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.minimum),
                                                                          to_value=float(spec.maximum), step=0.0)]
            try:
                self.declare_parameter(spec.name, spec.default, descriptor)
            except (InvalidParameterValueException, InvalidParameterTypeException) as error:
                raise StartupError(f"parameter {spec.name}: {error}") from None
            reason = parameters.validate(spec.name, self._value(spec.name))
            if reason:
                raise StartupError(f"parameter {reason}")

    def _value(self, name):
        value = self.get_parameter(name).value
        return parameters.BY_NAME[name].canonical(value) if name in parameters.BY_NAME else value

    def _resolve_class_parameters(self, overrides: dict | None = None):
        """Checks the class filters (also a change about to be set): an unknown class is a StartupError."""
        values = {n: self._value(n) for n in ("points_exclude_classes", "obstacle_exclude_classes")} | (overrides or {})
        try:
            cloud_filters(values, self.spec.label_space)
        except ValueError as error:
            raise StartupError(str(error)) from None

    def _on_set_parameters(self, changes) -> SetParametersResult:
        class_overrides = {}
        for change in changes:
            reason = parameters.validate(change.name, change.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            spec = parameters.BY_NAME.get(change.name)
            if spec is not None and not spec.dynamic and self.perception is not None:
                return SetParametersResult(successful=False, reason=f"{change.name} takes effect on configure: "
                                           "set it while the node is unconfigured (cleanup first)")
            if change.name in ("points_exclude_classes", "obstacle_exclude_classes"):
                class_overrides[change.name] = list(change.value)
        if class_overrides and self.perception is not None:  # else checked when the model loads
            try:
                self._resolve_class_parameters(class_overrides)
            except StartupError as error:
                return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    # Input ------------------------------------------------------------------------------------
    def _on_image(self, camera: CameraStream, msg):
        with self._lock:
            camera.stats.counts["received"] += 1
            camera.health.frame_received()
            camera.input_loss.add(stamp_ns(msg.header))
            if camera.pending is not None:
                camera.stats.counts["dropped"] += 1  # replaced before the worker took it
            camera.pending = (msg, time.perf_counter())
            self._lock.notify()

    def _on_camera_info(self, camera: CameraStream, msg: CameraInfo):
        try:
            calibration = camera_info_to_calibration(msg)
        except CalibrationError as error:
            camera.stats.counts["bad_camera_info"] += 1
            self._report(camera, "bad_camera_info", f"ignoring camera_info: {error}")
            return
        with self._lock:
            camera.camera_infos.add(stamp_ns(msg.header), msg.header.frame_id, calibration)
            self._lock.notify_all()

    def _report(self, camera: CameraStream, kind: str, text: str, refused_frame: bool = False):
        """Logs (one line per kind and camera per ERROR_LOG_THROTTLE_S) and tells the camera's
        /diagnostics status: a refused frame, or a camera_info problem."""
        if refused_frame:
            camera.health.frame_refused(text)
        else:
            camera.health.camera_problem(text)
        if self.log_throttle.allow(f"{camera.name}/{kind}"):
            self.get_logger().error(self._tag(camera) + text)

    # Processing -------------------------------------------------------------------------------
    def _work(self):
        """Rounds: each takes the newest frame of every camera that has one, in camera order; frames of
        one size go through the backend as one batch (batch_cameras), the other sizes in turn. A
        camera contributes at most one frame a round, so a fast camera cannot starve a slow one: a
        frame waits at most one round."""
        while True:
            with self._lock:
                while not any(camera.pending for camera in self.cameras) and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                round_ = [(camera, *camera.pending) for camera in self.cameras if camera.pending]
                for camera in self.cameras:
                    camera.pending = None
            jobs = [job for camera, msg, received_at in round_
                    if (job := self._safely([camera], lambda: self._prepare(camera, msg, received_at)))]
            groups: dict = {}
            for job in jobs:
                key = job.frame.rgb.shape[:2] if self._value("batch_cameras") else id(job)
                groups.setdefault(key, []).append(job)
            for group in groups.values():
                if self._safely([job.camera for job in group], lambda: self._infer_and_publish(group)) is False:
                    return
            for camera, _, _ in round_:  # a new size is prepared once its frame went through
                camera.health.preparing_for = None

    def _safely(self, cameras: list[CameraStream], step):
        """step()'s result, with a failure counted and reported for each camera it concerns (None); False
        when the node is shutting down."""
        try:
            return step()
        except ImageFormatError as error:
            for camera in cameras:
                camera.stats.counts["bad_input"] += 1
                self._report(camera, "bad_input", f"dropping frame: {error}", refused_frame=True)
        except Exception as error:  # keep serving; the next frame may be fine
            if self._stopping or not self.context.ok():
                return False  # shutting down: publishers are gone, nothing went wrong with the frame
            for camera in cameras:
                camera.stats.counts["errors"] += 1
                self._report(camera, "errors", f"processing failed: {error.__class__.__name__}: {error}",
                             refused_frame=True)
        return None

    def _wanted(self, camera: CameraStream) -> frozenset:
        """The camera's outputs switched on and subscribed to."""
        p = self._value
        return frozenset(topic.name for topic in OUTPUTS
                         if p(topic.toggle) and camera.pub[topic.name].get_subscription_count() > 0)

    def _camera_info_for(self, camera: CameraStream, header) -> CameraInfoMatch:
        """The CameraInfo paired with an image by stamp; waits briefly for a late one when the
        calibration changes over time (with one fixed calibration any CameraInfo applies)."""
        with self._lock:
            match = camera.camera_infos.wait_for_match(stamp_ns(header), self._lock, CAMERA_INFO_WAIT_S,
                                                       lambda: self._stopping)
        if match.status == "unmatched":
            camera.stats.counts["camera_info_unmatched"] += 1
            self.get_logger().warning(
                f"{self._tag(camera)}no camera_info within {self._value('camera_info_tolerance')} s of the image "
                f"stamp and the calibration changes over time: using the nearest, {match.offset_s:+.3f} s away",
                throttle_duration_sec=ERROR_LOG_THROTTLE_S)
        if match.calibration is not None and match.frame_id != header.frame_id:
            camera.stats.counts["camera_info_frame_mismatch"] += 1
            self.get_logger().warning(f"{self._tag(camera)}camera_info frame_id {match.frame_id!r} differs from the "
                                      f"image's {header.frame_id!r}", throttle_duration_sec=ERROR_LOG_THROTTLE_S)
        return match

    def _calibration(self, camera: CameraStream, header, width: int, height: int):
        """The image's calibration, else the fallback intrinsics, else None."""
        match = self._camera_info_for(camera, header)
        if match.calibration is not None:
            return match.calibration
        return self._fallback_camera(camera, width, height)

    def _fallback_camera(self, camera: CameraStream, width: int, height: int) -> Intrinsics | None:
        """The camera's <name>.fallback_intrinsics, else the node's fallback_intrinsics, for an image of
        this size; None when neither is set."""
        own = camera.parameter(parameters.PER_CAMERA)
        values = self._value(own) if camera.name and self.has_parameter(own) else []
        try:
            return fallback_intrinsics(values if any(values) else self._value(parameters.PER_CAMERA), width, height)
        except CalibrationError as error:
            self._report(camera, "fallback_intrinsics", str(error))
            return None

    def _output_request(self, wanted: frozenset, calibration) -> OutputRequest:
        """What to build for this frame; P's last column (a stereo baseline) comes from a calibration."""
        column = calibration.projection_column() if isinstance(calibration, CameraCalibration) else (0.0, 0.0, 0.0)
        values = {name: self._value(name) for name in CLOUD_PARAMETERS}
        return cloud_output_request(values, self.spec.label_space, wanted, column)

    def _prepare(self, camera: CameraStream, msg, received_at: float) -> FrameJob | None:
        """A frame decoded, paired with its calibration and through the pre stage; None when nobody
        wants its outputs."""
        wanted = self._wanted(camera)
        if not wanted:
            camera.stats.counts["skipped_no_subscribers"] += 1
            camera.health.frame_processed(None)
            return None
        start = time.perf_counter()
        image, encoding = input_image_to_array(msg, self._value("max_image_pixels"))
        decoded = time.perf_counter()
        height, width = image.shape[:2]
        if not self.perception.backend.prepared_for((height, width)):  # told in /diagnostics until done
            camera.health.preparing_for = f"{width}x{height}"
            self.get_logger().info(f"{self._tag(camera)}first {width}x{height} image: preparing the backend for "
                                   "this size (image_size or a camera_info at start prepares it before the first "
                                   "frame)")
        calibration = self._calibration(camera, msg.header, width, height)
        request = self._output_request(wanted, calibration)
        try:
            frame = self.perception.prepare(image, encoding, calibration, self._value("rectify"))
        except CalibrationError as error:  # a camera_info for another resolution, a ROI it cannot rectify
            camera.stats.counts["bad_camera_info"] += 1
            fallback = self._fallback_camera(camera, width, height)
            self._report(camera, "camera_info_size", f"camera_info does not fit the image, processing "
                         f"{'with fallback_intrinsics' if fallback else 'without it'}: {error}")
            request = self._output_request(wanted, fallback)
            frame = self.perception.prepare(image, encoding, fallback, "never")
        if frame.intrinsics is None and wanted & (CLOUD_TOPICS | {"depth/camera_info"}):
            self.get_logger().warning(f"{self._tag(camera)}no usable camera_info for this image (and no "
                                      "fallback_intrinsics set): points and depth/camera_info are not published",
                                      throttle_duration_sec=ERROR_LOG_THROTTLE_S)
        alpha = self._value("overlay_alpha") if "segmentation/overlay" in wanted else None
        return FrameJob(camera, msg.header, request, alpha, frame, received_at, start, decoded)

    def _infer_and_publish(self, jobs: list[FrameJob]):
        """Frames of one size through the backend at once, then each camera's outputs."""
        results = self.perception.process_batch([job.frame for job in jobs], [job.alpha for job in jobs],
                                                [job.request.clouds(self.perception) for job in jobs])
        if self._stopping:  # deactivated or stopping while these frames ran: nothing more goes out
            return
        for job, result in zip(jobs, results):
            camera = job.camera
            for topic, message in frame_messages(result, job.request, RclpyMessages(job.header)).items():
                camera.pub[topic].publish(message)
            camera.stats.frame_timed(result.timings_ms, job.received_at, job.start, job.decoded, time.perf_counter())
            camera.health.frame_processed(bool(np.isfinite(result.depth).any()))
            camera.stats.counts["processed"] += 1
            camera.stats.counts["batched"] += len(jobs) > 1

    # Diagnostics and shutdown -----------------------------------------------------------------
    def _publish_diagnostics(self):
        """One status per camera, so that a dead camera is named while the others go on."""
        self._follow_subscribers()  # a publish_* switched off or on changes what is wanted
        levels = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}
        # The fully qualified name (diagnostic_updater's use_fqn): two nodes of one name in two namespaces
        # must not overwrite each other's status in an aggregator or rqt_robot_monitor.
        node_name = self.get_fully_qualified_name()
        backend = self.perception.backend
        statuses = []
        for camera in self.cameras:
            self._match_camera_info_durability(camera)
            report = camera.health.report(self.resolve_topic_name(camera.topic("image")), camera.input_loss)
            status = DiagnosticStatus(name=f"{node_name}: HydraNet perception" + (f" ({camera.name})" if camera.name
                                                                                  else ""),
                                      hardware_id=f"{node_name} on {backend.device}",
                                      level=levels[report.level], message=report.message)
            values = camera.stats.diagnostic_values(report, backend.describe(), backend.device, camera.input_loss)
            status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
            statuses.append(status)
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)


class PerceptionNode(PerceptionCore, Node):
    """Loads the model and starts processing at construction."""

    def __init__(self, **kwargs):
        super().__init__("perception_node", **kwargs)
        self._setup()
        self._load()
        self._start()


class RclpyMessages:
    """frame_messages' factory for rclpy messages stamped with the input's header."""

    def __init__(self, header):
        self.header = header

    def image(self, array, encoding):
        return array_to_image(array, encoding, self.header)

    def camera_info(self, fields):
        return CameraInfo(header=self.header, **fields)

    def cloud(self, cloud):
        return cloud_to_pointcloud2(cloud, self.header)


def spin_until_shutdown(node_class, args=None) -> int:
    """Spins a node until Ctrl-C or SIGTERM; a StartupError is one line and exit code 1."""
    # rclpy's own handlers (SIGINT and SIGTERM, Humble and later) wake the executor at once; a Python
    # handler would replace them and run only when spin next returns (up to a timer period later).
    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        rclpy.spin(node)
    except StartupError as error:
        print(f"[perception_node] cannot start: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        ignore_stop_signals()
    finally:
        ignore_stop_signals()
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def ignore_stop_signals():
    """The node is stopping: a terminal's Ctrl-C reaches it twice (the process group's SIGINT, then the
    one launch forwards), and the second must not interrupt the teardown with a KeyboardInterrupt."""
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, signal.SIG_IGN)


def stop_with_parent():
    """SIGTERM to this process when the process that started it dies (Linux). `ros2 launch` answers
    SIGTERM (systemd's and docker's default stop signal) by cancelling itself without stopping what it
    started (launch_service.py `_on_sigterm`), and `ros2 run` dies on it at once; the node then stops
    cleanly through rclpy's SIGTERM handler instead of running on as an orphan."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def exit_process(code: int):
    """Ends the node's process once the node and rclpy have shut down, without finalizing the Python
    interpreter: tearing down torch, ONNX Runtime and OpenVINO took about 0.45 s of a 0.5 s shutdown
    (the node's own part: 0.04 s), and more on a loaded machine. The OS frees what they hold."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(args=None):
    stop_with_parent()
    exit_process(spin_until_shutdown(PerceptionNode, args))


if __name__ == "__main__":
    main()
