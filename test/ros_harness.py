"""Starts perception_node, in its own process or in this one, and talks to it from this process over real DDS.

NodeProcess is for what needs a second process: exit codes, signals, start-up faults, environment
variables, the launch of a module. InProcessNode runs the same node with the same command-line
parameters in a thread of this process, without the start of a new interpreter."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from hydranet_ros.ros.conversions import stamp_ns
from hydranet_ros.ros.output_topics import OUTPUTS as OUTPUT_TOPICS

OUTPUTS = {topic.name: topic.type_name for topic in OUTPUT_TOPICS if topic.on_by_default}
OFF_BY_DEFAULT = {topic.name: topic.type_name for topic in OUTPUT_TOPICS if not topic.on_by_default}


def isolate_ros_graph() -> None:
    """A domain no other run on this machine uses (claimed with a lock file), discovery on localhost
    only (set before rclpy.init)."""
    from hydranet_ros.ros.discovery import claim_free_domain, keep_graph_private
    keep_graph_private(domain_id=claim_free_domain())


def ros_arguments(model_path, parameters: dict | None, namespace: str, params_file) -> list[str]:
    """The node's command line after the program name. Images travel reliably here: best-effort samples
    of megabytes are lost on this machine's loopback (its 208 KB default socket buffer holds a fraction
    of a frame)."""
    # camera_info_wait 0: these tests publish no camera_info before the node starts, and each start would
    # wait its 5 s for one (tested on its own in test_node.py).
    parameters = {"image_qos_reliability": "reliable", "camera_info_wait": 0.0} | (parameters or {})
    args = ["--ros-args", "-r", f"__ns:={namespace}", "-p", f"model_path:={model_path}"] + \
        (["--params-file", str(params_file)] if params_file else [])
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    return args


class NodeProcess:
    def __init__(self, model_path, parameters: dict | None = None, namespace: str = "/hydranet",
                 module: str = "hydranet_ros.ros.perception_node", env: dict | None = None, params_file=None):
        self.args = [sys.executable, "-m", module] + ros_arguments(model_path, parameters, namespace, params_file)
        self.env = os.environ | (env or {})
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=self.env)
        return self

    def stop(self, sig=None, timeout=10.0) -> tuple[int, str, float]:
        """Sends sig (SIGINT by default); returns (exit code, output, seconds to exit)."""
        import signal
        start = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig or signal.SIGINT)
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output, time.monotonic() - start

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.stop()


class InProcessNode:
    """perception_node (or node_class: "managed", the lifecycle node) in this process, after rclpy.init as
    the `ros` fixture does it, spun by an executor of its own in a thread; its log lines are what this
    process writes to stderr while it runs."""

    def __init__(self, model_path, parameters: dict | None = None, namespace: str = "/hydranet", params_file=None,
                 node_class: str = "plain"):
        self.args = ros_arguments(model_path, parameters, namespace, params_file)
        self.node_class = node_class
        self.node = None

    def __enter__(self):
        import tempfile
        import threading
        import rclpy.executors
        from hydranet_ros.ros.managed_perception_node import ManagedPerceptionNode
        from hydranet_ros.ros.perception_node import PerceptionNode
        node_class = {"plain": PerceptionNode, "managed": ManagedPerceptionNode}[self.node_class]
        self._log = tempfile.TemporaryFile()
        self._stderr = os.dup(2)
        os.dup2(self._log.fileno(), 2)
        try:
            self.node = node_class(cli_args=self.args, use_global_arguments=False)
        except BaseException:
            self._restore_stderr()
            raise
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, name="node_under_test", daemon=True)
        self.thread.start()
        return self

    def _restore_stderr(self) -> str:
        os.dup2(self._stderr, 2)
        os.close(self._stderr)
        self._log.seek(0)
        output = self._log.read().decode(errors="replace")
        self._log.close()
        return output

    def stop(self) -> tuple[int, str, float]:
        """Stops and destroys the node; returns (0, its log, seconds to stop), as NodeProcess.stop does."""
        if self.node is None:
            return 0, self.output, 0.0
        start = time.monotonic()
        self.executor.shutdown()
        self.thread.join(timeout=10.0)
        self.node.stop()
        self.node.destroy_node()
        self.node = None
        self.output = self._restore_stderr()
        return 0, self.output, time.monotonic() - start

    def __exit__(self, *exc):
        self.stop()


class RosClient:
    """Publishes images and camera_info; records every output message by topic."""

    def __init__(self, namespace: str = "/hydranet", image_reliable: bool = True, topics=tuple(OUTPUTS)):
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
        from sensor_msgs import msg as sensor
        from diagnostic_msgs.msg import DiagnosticArray
        self.rclpy = rclpy
        self.node = rclpy.create_node(f"tester_{os.getpid()}")
        self.topics = tuple(topics)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE if image_reliable else ReliabilityPolicy.BEST_EFFORT)
        self.image_pub = self.node.create_publisher(sensor.Image, f"{namespace}/image", qos)
        self.compressed_pub = self.node.create_publisher(sensor.CompressedImage, f"{namespace}/image/compressed", qos)
        self.info_pub = self.node.create_publisher(sensor.CameraInfo, f"{namespace}/camera_info", qos)
        self.received: dict[str, list] = {topic: [] for topic in OUTPUTS | OFF_BY_DEFAULT}
        self.arrival: dict[tuple[str, int], float] = {}
        for topic, type_name in ((t, (OUTPUTS | OFF_BY_DEFAULT)[t]) for t in topics):
            self.node.create_subscription(getattr(sensor, type_name), f"{namespace}/{topic}",
                                          lambda m, t=topic: self._record(t, m), 10)
        self.diagnostics = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def _record(self, topic, msg):
        self.received[topic].append(msg)
        self.arrival.setdefault((topic, stamp_ns(msg.header)), time.perf_counter())

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.01)

    def wait_for(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.rclpy.spin_once(self.node, timeout_sec=0.02)
        return predicate()

    def wait_for_node(self, timeout: float = 60.0) -> bool:
        """Until the node subscribes to our image topic and publishes every output to us."""
        namespace = self.image_pub.topic_name.rsplit("/", 1)[0]
        matched = self.wait_for(lambda: self.image_pub.get_subscription_count() > 0 and all(
            self.node.count_publishers(f"{namespace}/{topic}") > 0 for topic in self.topics), timeout)
        self.spin(1.0)  # lets the node's side of discovery see our subscriptions too
        return matched

    def call(self, service_type, name: str, request, timeout: float = 30.0):
        """Calls a service of the node and returns the response (None when it does not answer)."""
        client = self.node.create_client(service_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                return None
            future = client.call_async(request)
            self.wait_for(future.done, timeout)
            return future.result() if future.done() else None
        finally:
            self.node.destroy_client(client)

    def stamps(self, topic: str) -> set[int]:
        return {stamp_ns(m.header) for m in self.received[topic]}

    def destroy(self):
        self.node.destroy_node()


def node_status(tester):
    """The node's latest /diagnostics status received by a RosClient, and its key values."""
    for array in reversed(tester.diagnostics):
        for status in array.status:
            if "HydraNet" in status.name:
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


def image_message(bgr: np.ndarray, stamp_ns_value: int, frame_id: str = "camera_optical"):
    from sensor_msgs.msg import Image
    msg = Image(height=bgr.shape[0], width=bgr.shape[1], encoding="bgr8", step=bgr.shape[1] * 3)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns_value, 1_000_000_000)
    msg.data = bgr.tobytes()
    return msg


def camera_encoded(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """rgb (H x W x 3 uint8) as a camera would send it: a Bayer mosaic (bayer_rggb8, ...), packed
    YUV 4:2:2 in BT.601 video range (yuv422 and Jazzy's uyvy are UYVY, yuv422_yuy2 and yuyv YUYV), or rgb16.
    Written from the
    encodings' definitions, independently of the node's OpenCV conversions."""
    channel = {"r": 0, "g": 1, "b": 2}
    if encoding.startswith("bayer_"):
        mosaic = np.zeros(rgb.shape[:2], np.uint8)
        for index, letter in enumerate(encoding[6:10]):  # the 2x2 tile, row by row
            row, column = divmod(index, 2)
            mosaic[row::2, column::2] = rgb[row::2, column::2, channel[letter]]
        return mosaic
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        r, g, b = (rgb[..., i].astype(float) for i in range(3))
        luma = 0.299 * r + 0.587 * g + 0.114 * b
        planes = {"Y": luma * 219 / 255 + 16, "U": (b - luma) * 0.564 * 224 / 255 + 128,
                  "V": (r - luma) * 0.713 * 224 / 255 + 128}
        packed = np.zeros(rgb.shape[:2] + (2,))
        for position, letter in enumerate("UYVY" if encoding in ("yuv422", "uyvy") else "YUYV"):  # 4 bytes, 2 pixels
            pixel, byte = divmod(position, 2)
            packed[:, pixel::2, byte] = planes[letter][:, pixel::2] if letter == "Y" else \
                (planes[letter][:, 0::2] + planes[letter][:, 1::2]) / 2
        return np.round(packed).clip(0, 255).astype(np.uint8)
    if encoding == "rgb16":
        return rgb.astype(np.uint16) * 257
    raise ValueError(encoding)


def camera_info_message(intrinsics, header):
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo(width=intrinsics.width, height=intrinsics.height, distortion_model="plumb_bob")
    msg.header = header
    msg.k = intrinsics.matrix().ravel().tolist()
    msg.p = np.hstack([intrinsics.matrix(), np.zeros((3, 1))]).ravel().tolist()
    msg.r = np.eye(3).ravel().tolist()
    msg.d = [0.0] * 5
    return msg


def corrupt_but_decodable_jpeg(bgr: np.ndarray) -> bytes:
    """A JPEG of bgr with one byte of its entropy-coded data flipped: OpenCV still decodes it (libjpeg
    only warns "Corrupt JPEG data"), so a decoder that ignores the warning serves garbage."""
    import cv2
    data = bytearray(cv2.imencode(".jpg", bgr)[1].tobytes())
    data[len(data) // 2] ^= 0xFF
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    return bytes(data)
