"""hydranet demo: the whole product in one command, with no camera, GPU or download.

1. Renders a street (or room) sequence with our scene generator, or reads --input.
2. Starts perception_node in its own process with the shipped model on the best backend, with the
   large-data Fast DDS profile the launch file gives it (for the recorder too).
3. Plays the frames on /camera/image_raw and /camera/camera_info at their real rate (10 Hz).
4. Records every input and output topic into an MCAP rosbag2.
5. Prints the latency per output, writes an overview picture per frame and a video.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from hydranet_ros.inference.pipeline import guess_intrinsics
from hydranet_ros.apps.infer_files import read_frames
from hydranet_ros.data.bags import cdr_header
from hydranet_ros.errors import CommandError
from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.inference.pipeline import FrameResult
from hydranet_ros.ros.conversions import to_rgb
from hydranet_ros.inference.visualize import overview
from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import load_model
from hydranet_ros.data.kinds import SCENE_OF_LABEL_SPACE
from hydranet_ros.ros.discovery import keep_graph_private, use_large_data_transport
from hydranet_ros.ros.frame_stats import FRAME_FATES
from hydranet_ros.ros.output_topics import DEPTH_IMAGE, message_types

NAMESPACE = "/hydranet"
CAMERA_FRAME = "camera_optical_frame"
# The node's /diagnostics counters of what became of each frame it received; received first.
FRAME_COUNTERS = ("received",) + FRAME_FATES
WARM_UP_STAMP = 1  # ns: the stamp of the one frame played before the timed sequence
DIAGNOSTICS_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
OUTPUTS = message_types()  # what the node publishes with its default parameters
INPUTS = {"/camera/image_raw": "sensor_msgs/msg/Image", "/camera/camera_info": "sensor_msgs/msg/CameraInfo"}
SYNTH_SIZE = {"street": (176, 608), "indoor": (240, 320)}


@dataclass
class Camera:
    frames: list[np.ndarray]   # BGR
    intrinsics: Intrinsics
    rate_hz: float


def generated_camera(scene: str, count: int, seed: int, rate_hz: float) -> Camera:
    from hydranet_ros.data.synth import render_sequence
    height, width = SYNTH_SIZE[scene]
    frames, intrinsics = [], None
    for frame in tqdm(render_sequence(scene, seed, width, height, count, rate_hz), total=count,
                      desc=f"rendering {scene} sequence", unit="frame"):
        frames.append(np.ascontiguousarray(frame.rgb[..., ::-1]))
        intrinsics = frame.intrinsics
    return Camera(frames, intrinsics, rate_hz)


def input_camera(source: Path, spec, count: int, rate_hz: float, image_topic: str | None) -> Camera:
    """Frames from a folder of images, a video or a bag (its image topic, and CameraInfo if any)."""
    frames, intrinsics = [], None
    if (source / "metadata.yaml").is_file() or source.suffix in (".mcap", ".db3"):
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
        from hydranet_ros.ros.conversions import camera_info_to_calibration, input_image_to_array
        with AnyReader([source], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
            images = [c for c in reader.connections if c.msgtype.endswith(("/Image", "/CompressedImage"))
                      and (image_topic is None or c.topic == image_topic)]
            if not images:
                raise CommandError(f"{source} has no image topic" + (f" {image_topic}" if image_topic else ""))
            infos = [c for c in reader.connections if c.msgtype.endswith("/CameraInfo")]
            for connection, _, raw in reader.messages(connections=images[:1] + infos[:1]):
                msg = reader.deserialize(raw, connection.msgtype)
                if connection.msgtype.endswith("CameraInfo"):
                    intrinsics = intrinsics or camera_info_to_calibration(msg).pinhole()
                elif len(frames) < count:
                    array, encoding = input_image_to_array(msg)
                    frames.append(np.ascontiguousarray(to_rgb(array, encoding)[..., ::-1]))
    else:
        for _, bgr in read_frames(source):
            frames.append(bgr)
            if len(frames) >= count:
                break
    if not frames:
        raise CommandError(f"no frames in {source}")
    height, width = frames[0].shape[:2]
    return Camera(frames, intrinsics or guess_intrinsics(spec, width, height), rate_hz)


class Recorder:
    """A ROS 2 node that plays the camera, records every topic to MCAP (when given a bag path) and
    notes arrival times and the node's diagnostics."""

    def __init__(self, bag_path: Path | None):
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        self.rclpy = rclpy
        self.node = rclpy.create_node("hydranet_demo")
        self.typestore = get_typestore(Stores.ROS2_HUMBLE)
        self.writer = Writer(bag_path, version=9, storage_plugin=StoragePlugin.MCAP) if bag_path else None
        if self.writer:
            self.writer.open()
        self.connections = {}
        self.pending: list = []
        self.message_types = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CameraInfo": CameraInfo,
                              "sensor_msgs/msg/PointCloud2": PointCloud2}
        # Reliable: best-effort samples of megabytes are dropped by small default socket buffers.
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "/camera/image_raw", reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, "/camera/camera_info", reliable)
        self.received: dict[str, dict[int, bytes]] = {name: {} for name in OUTPUTS}
        self.arrival: dict[tuple[str, int], float] = {}
        self.sent_at: dict[int, float] = {}
        for name, msgtype in OUTPUTS.items():
            self.node.create_subscription(self.message_types[msgtype], f"{NAMESPACE}/{name}",
                                          lambda raw, n=name: self._on_output(n, raw),
                                          QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                                     reliability=ReliabilityPolicy.RELIABLE), raw=True)
        from diagnostic_msgs.msg import DiagnosticArray
        self.message_types[DIAGNOSTICS_TYPE] = DiagnosticArray
        self.diagnostics: list = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10, raw=True)

    def _on_diagnostics(self, raw: bytes) -> None:
        """Kept for the summary and recorded: /diagnostics is one of the topics the bag holds."""
        from rclpy.serialization import deserialize_message
        self.diagnostics.append(deserialize_message(raw, self.message_types[DIAGNOSTICS_TYPE]))
        self._record("/diagnostics", DIAGNOSTICS_TYPE, time.time_ns(), raw)

    def _record(self, topic: str, msgtype: str, timestamp: int, raw: bytes) -> None:
        """Kept in memory and written to the bag after the run (write_bag): writing MCAP inside the
        subscription callbacks held the one executor thread, and every later output waited for it, so the
        latencies measured the recorder as well as the delivery."""
        if self.writer is not None:
            self.pending.append((topic, msgtype, timestamp, raw))

    def write_bag(self) -> None:
        for topic, msgtype, timestamp, raw in sorted(self.pending, key=lambda item: item[2]):
            if topic not in self.connections:
                self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
            self.writer.write(self.connections[topic], timestamp, raw)
        self.pending = []

    def _on_output(self, name: str, raw: bytes):
        now, wall = time.perf_counter(), time.time_ns()  # the arrival, before any work of ours
        stamp, _ = cdr_header(raw)  # the stamp from the header's bytes: no deserialization
        if stamp == WARM_UP_STAMP:
            self.warmed_up = True
            return
        self.arrival[(name, stamp)] = now
        self.received[name][stamp] = raw
        self._record(f"{NAMESPACE}/{name}", OUTPUTS[name], wall, raw)

    def warm_up(self, bgr: np.ndarray, intrinsics: Intrinsics, node: subprocess.Popen, log_path: Path,
                timeout: float = 600.0) -> None:
        """The node builds its graph for a camera resolution on that resolution's first frame (seconds
        on a CPU, minutes for a TensorRT engine): one frame, neither timed nor recorded, before playing."""
        self.warmed_up = False
        deadline = time.perf_counter() + timeout
        next_send = 0.0
        while not self.warmed_up:
            if node.poll() is not None or time.perf_counter() > deadline:
                raise CommandError(f"perception_node processed no frame; see {log_path}:\n"
                                   + log_path.read_text()[-2000:])
            if time.perf_counter() >= next_send:  # again every 2 s: a best-effort subscription may lose it
                self.publish(bgr, intrinsics, WARM_UP_STAMP, record=False)
                next_send = time.perf_counter() + 2.0
            self.spin_until(time.perf_counter() + 0.1)

    def publish(self, bgr: np.ndarray, intrinsics: Intrinsics, stamp_ns: int, record: bool = True) -> None:
        from rclpy.serialization import serialize_message
        from hydranet_ros.ros.conversions import array_to_image, output_camera_info
        from std_msgs.msg import Header
        header = Header(frame_id=CAMERA_FRAME)
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 10**9)
        image = array_to_image(bgr, "bgr8", header)
        info = output_camera_info(intrinsics, intrinsics.width, intrinsics.height, header)
        self.info_pub.publish(info)
        if record:
            self.sent_at[stamp_ns] = time.perf_counter()
        self.image_pub.publish(image)
        now = time.time_ns()
        if self.writer and record:
            self._record("/camera/camera_info", INPUTS["/camera/camera_info"], now, serialize_message(info))
            self._record("/camera/image_raw", INPUTS["/camera/image_raw"], now, serialize_message(image))

    def spin_until(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            self.rclpy.spin_once(self.node, timeout_sec=max(0.0, min(0.005, deadline - time.perf_counter())))

    def drain(self, quiet: float = 3.0, limit: float = 60.0) -> None:
        """Spin until every frame sent has all its outputs, or until nothing has arrived for `quiet`
        seconds (the node drops frames it could not keep up with): on a loaded machine the last
        clouds come seconds after their frame."""
        start = time.perf_counter()
        while time.perf_counter() < start + limit:
            if all(stamp in self.received[name] for stamp in self.sent_at for name in OUTPUTS):
                return
            if time.perf_counter() - max(self.arrival.values(), default=start) > quiet:
                return
            self.spin_until(time.perf_counter() + 0.1)

    def settled_counts(self, timeout: float = 10.0) -> dict:
        """The node's frame counters once every frame it received is accounted for (processed, dropped,
        refused, skipped), read from /diagnostics messages that arrive after this call."""
        deadline = time.perf_counter() + timeout
        while True:
            seen = len(self.diagnostics)
            while len(self.diagnostics) == seen and time.perf_counter() < deadline:
                self.spin_until(time.perf_counter() + 0.05)
            values = self.node_diagnostics()
            counts = {key: int(values.get(f"frames_{key}", 0)) for key in FRAME_COUNTERS}
            if counts["received"] == sum(counts[key] for key in FRAME_COUNTERS[1:]) or time.perf_counter() > deadline:
                return counts

    def node_ready(self) -> bool:
        return self.image_pub.get_subscription_count() > 0 and all(
            self.node.count_publishers(f"{NAMESPACE}/{name}") > 0 for name in OUTPUTS)

    def node_diagnostics(self) -> dict:
        """The key values of the node's latest /diagnostics status."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if "HydraNet" in status.name:
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def close(self):
        if self.writer:
            self.write_bag()
            self.writer.close()
        self.node.destroy_node()


def latency_summary(recorder: Recorder) -> dict:
    summary = {"frames_sent": len(recorder.sent_at)}
    for name in OUTPUTS:
        latencies = [(recorder.arrival[(name, stamp)] - sent) * 1e3 for stamp, sent in recorder.sent_at.items()
                     if (name, stamp) in recorder.arrival]
        summary[name] = {"received": len(latencies),
                         "median_ms": round(float(np.median(latencies)), 1) if latencies else None,
                         "p90_ms": round(float(np.percentile(latencies, 90)), 1) if latencies else None}
    return summary


def write_pictures(recorder: Recorder, camera: Camera, stamps: list[int], spec, out: Path) -> list[Path]:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image, PointCloud2
    from hydranet_ros.ros.conversions import image_to_array, pointcloud2_to_array
    folder = out / "frames"
    folder.mkdir(exist_ok=True)
    written = []
    for index, (bgr, stamp) in enumerate(zip(camera.frames, stamps)):
        raw = {name: recorder.received[name].get(stamp) for name in ("segmentation/overlay", DEPTH_IMAGE, "points")}
        if any(v is None for v in raw.values()):
            continue  # dropped by the node (newest-frame policy): nothing to draw
        overlay = image_to_array(deserialize_message(raw["segmentation/overlay"], Image))
        depth = image_to_array(deserialize_message(raw[DEPTH_IMAGE], Image))
        cloud = pointcloud2_to_array(deserialize_message(raw["points"], PointCloud2))
        result = FrameResult(bgr[..., ::-1], np.zeros(depth.shape, np.uint8), overlay, depth, overlay=overlay)
        picture = overview(result, cloud, spec.label_space.depth_range_m, caption=f"frame {index}")
        path = folder / f"{index:04d}.png"
        cv2.imwrite(str(path), picture[..., ::-1])
        written.append(path)
    return written


def write_video(pictures: list[Path], path: Path, rate_hz: float) -> Path | None:
    if not pictures:
        return None
    first = cv2.imread(str(pictures[0]))
    video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), rate_hz, (first.shape[1], first.shape[0]))
    for picture in pictures:
        video.write(cv2.imread(str(picture)))
    video.release()
    return path


def start_node(model_path: Path, backend: str, log_path: Path, parameters: dict | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "hydranet_ros.ros.perception_node", "--ros-args", "-r", f"__ns:={NAMESPACE}",
            "-r", "image:=/camera/image_raw", "-r", "camera_info:=/camera/camera_info",
            "-p", f"model_path:={model_path}", "-p", f"backend:={backend}", "-p", "image_qos_reliability:=reliable"]
    for name, value in (parameters or {}).items():
        args += ["-p", f"{name}:={value}"]
    return subprocess.Popen(args, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def wait_until_ready(recorder: Recorder, node: subprocess.Popen, log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while not recorder.node_ready():
        if node.poll() is not None or time.perf_counter() > deadline:
            raise CommandError(f"perception_node did not start; see {log_path}:\n" + log_path.read_text()[-2000:])
        recorder.spin_until(time.perf_counter() + 0.1)
    recorder.spin_until(time.perf_counter() + 1.0)  # the node's side of discovery


def stop_node(node: subprocess.Popen) -> int:
    node.send_signal(signal.SIGINT)
    try:
        return node.wait(timeout=10)
    except subprocess.TimeoutExpired:
        node.kill()
        return node.wait()


def run_demo(out: Path, model: str = "hydranet_street.pt", backend: str = "auto", frame_count: int = 60,
             rate: float = 10.0, seed: int = 3, source: Path | None = None, image_topic: str | None = None) -> int:
    """The demo, start to end; 0 when it wrote pictures."""
    import rclpy
    out.mkdir(parents=True, exist_ok=True)
    bag_path = out / "bag"
    if bag_path.exists():
        raise CommandError(f"{bag_path} exists from an earlier run; remove it or choose another --out")
    model_path = resolve_model_path(model)
    _, spec = load_model(model_path)
    scene = SCENE_OF_LABEL_SPACE.get(spec.label_space.name, "street")
    camera = input_camera(source, spec, frame_count, rate, image_topic) if source \
        else generated_camera(scene, frame_count, seed, rate)

    keep_graph_private()  # keep off other runs' topics, discovery on localhost
    profile = use_large_data_transport()  # for the node and the recorder, as the launch file does
    # A deep output history: the demo records every output, and its Python subscriber can lag behind.
    height, width = camera.frames[0].shape[:2]  # prepared at start, as image_size does on a robot
    node = start_node(model_path, backend, out / "node.log",
                      {"output_qos_depth": 10, "image_size": f"[{height},{width}]"})
    rclpy.init()
    recorder = Recorder(bag_path)
    stamps: list[int] = []
    try:
        print("waiting for perception_node to start and to prepare for this camera's resolution...")
        wait_until_ready(recorder, node, out / "node.log")
        recorder.warm_up(camera.frames[0], camera.intrinsics, node, out / "node.log")
        before = recorder.settled_counts()  # the warm-up frames are not the sequence's
        period = 1.0 / camera.rate_hz
        start = time.perf_counter()
        first_stamp = time.time_ns()
        for index, bgr in enumerate(tqdm(camera.frames, desc=f"playing at {camera.rate_hz:g} Hz", unit="frame")):
            recorder.spin_until(start + index * period)
            stamp = first_stamp + int(index * period * 1e9)
            recorder.publish(bgr, camera.intrinsics, stamp)
            stamps.append(stamp)
        recorder.drain()
        after = recorder.settled_counts()
        last_diagnostics = recorder.node_diagnostics()
    finally:
        stop_node(node)
        recorder.close()
        rclpy.try_shutdown()
    counted = {f"frames_{key}": after[key] - before[key] for key in ("received", "processed", "dropped")}
    summary = latency_summary(recorder) | {"fastdds_profile": profile, "node": counted}
    summary["node_latency_ms"] = {key[len("latency_"):-len("_ms")]: value for key, value in last_diagnostics.items()
                                  if key.startswith("latency_") and key.endswith("_ms")}
    counts = summary["node"]
    pictures = write_pictures(recorder, camera, stamps, spec, out)
    video = write_video(pictures, out / "demo.mp4", camera.rate_hz)
    (out / "latency.json").write_text(__import__("json").dumps(summary, indent=1))
    print(f"\ndelivery: from publishing an image to receiving each output here, over DDS "
          f"({summary['frames_sent']} frames sent; Fast DDS profile {profile}):")
    for name in OUTPUTS:
        s = summary[name]
        print(f"  {name:<22} received {s['received']:>3}   median {s['median_ms']} ms   p90 {s['p90_ms']} ms")
    stages = summary["node_latency_ms"]
    print("the node's own median per stage (its /diagnostics, last 100 frames): "
          + ", ".join(f"{stage} {value} ms" for stage, value in stages.items()))
    print(f"the node received {counts['frames_received']} of the {summary['frames_sent']} frames sent, processed "
          f"{counts['frames_processed']} and dropped {counts['frames_dropped']} (it keeps only the newest frame "
          "when it cannot keep up)")
    print(f"\nbag (MCAP):     {bag_path}  ->  ros2 bag play {bag_path}   or open the .mcap file in Foxglove")
    print(f"pictures:       {out / 'frames'} ({len(pictures)} frames)")
    print(f"video:          {video}")
    print(f"node log:       {out / 'node.log'}")
    print("rviz:           ros2 launch hydranet_ros perception.launch.py rviz:=true  (while playing the bag)")
    return 0 if pictures else 1
