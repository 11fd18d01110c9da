"""hydranet benchmark --cameras N: one perception_node for N cameras against N nodes of one camera each.

Settings, each in a process of its own with the same model, backend (ONNX Runtime) and camera size:
one node serving N cameras with their frames batched (batch_cameras true), the same node one frame at a
time (batch_cameras false), and N single-camera nodes; all with the robot config the launch file starts
(config/outdoor_kitti6.yaml: outputs at the network's size) and again with the node's own defaults
(outputs at the camera's size, as `hydranet demo` runs). The cameras publish generated frames with their
camera_info at --rate Hz each, their phases spread over one period (cameras are not synchronised), and
a subscriber takes segmentation, depth/image and points of every camera, as a robot's consumers would.
Figures: frames processed per second in all, latency per camera from publishing to segmentation
(p50, p90), and the resident memory of the node processes (VmRSS, summed) at the end of the run.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hydranet_ros.apps.demo import stop_node
from hydranet_ros.apps.soak import rss_mib
from hydranet_ros.inference.benchmark import camera_frame, percentiles
from hydranet_ros.inference.pipeline import guess_intrinsics
from hydranet_ros.model.model_file import load_model
from hydranet_ros.apps.output_volume import parameter_set as parameter_set_values
from hydranet_ros.ros.discovery import keep_graph_private, use_large_data_transport

SETTINGS = ("one node, batched", "one node, one frame at a time", "one node per camera")
PARAMETER_SETS = ("outdoor_kitti6.yaml", "node defaults")
TOPICS = ("segmentation", "depth/image", "points")
NAMESPACE = "/hydranet"


def start_nodes(model_path: Path, setting: str, names: list[str], size: tuple[int, int], log: Path,
                parameter_set: str) -> list:
    """The node processes of a setting; every camera's topics are /hydranet/<name>/... in each. Their
    parameters in one file: the set's values with this run's (a -p beside a --params-file loses to it)."""
    values = parameter_set_values(parameter_set) | {
        "model_path": str(model_path), "backend": "onnxruntime", "image_qos_reliability": "reliable",
        "image_size": list(size), "diagnostics_period": 0.5}
    separate = setting == "one node per camera"
    if not separate:
        values |= {"cameras": names, "batch_cameras": setting == "one node, batched"}
    parameters_file = log.with_name("parameters.yaml")
    parameters_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    module = [sys.executable, "-m", "hydranet_ros.ros.perception_node", "--ros-args", "--params-file",
              str(parameters_file)]
    commands = [module + ["-r", f"__ns:={NAMESPACE}/{name}"] for name in names] if separate else \
        [module + ["-r", f"__ns:={NAMESPACE}"]]
    return [subprocess.Popen(command, stdout=open(log.with_suffix(f".{index}.log"), "w"), stderr=subprocess.STDOUT)
            for index, command in enumerate(commands)]


def measure_cameras(model_path: Path, setting: str, cameras: int, rate_hz: float, seconds: float,
                    size: tuple[int, int], parameter_set: str) -> dict:
    keep_graph_private()
    use_large_data_transport()
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from hydranet_ros.ros.conversions import array_to_image, output_camera_info, stamp_ns
    from std_msgs.msg import Header
    rclpy.init()
    names = [f"camera{index}" for index in range(cameras)]
    height, width = size
    frame = camera_frame(height, width)
    intrinsics = guess_intrinsics(load_model(model_path)[1], width, height)
    node = rclpy.create_node("camera_rig")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = {n: node.create_publisher(Image, f"{NAMESPACE}/{n}/image", qos) for n in names}
    info_pub = {n: node.create_publisher(CameraInfo, f"{NAMESPACE}/{n}/camera_info", qos) for n in names}
    arrival: dict = {}
    for name in names:
        for topic, kind in zip(TOPICS, (Image, Image, PointCloud2)):
            node.create_subscription(kind, f"{NAMESPACE}/{name}/{topic}", lambda msg, n=name, t=topic:
                                     arrival.setdefault((n, t, stamp_ns(msg.header)), time.perf_counter()), 10)
    sent: dict = {name: {} for name in names}

    def publish(name: str, stamp: int) -> None:
        header = Header(frame_id=f"{name}_optical")
        header.stamp.sec, header.stamp.nanosec = divmod(stamp, 10**9)
        info_pub[name].publish(output_camera_info(intrinsics, width, height, header))
        image_pub[name].publish(array_to_image(frame, "bgr8", header))
        sent[name][stamp] = time.perf_counter()

    def spin_until(deadline: float) -> None:
        while time.perf_counter() < deadline:
            rclpy.spin_once(node, timeout_sec=max(0.0, min(0.005, deadline - time.perf_counter())))

    log = Path(tempfile.mkdtemp()) / "node"
    processes = start_nodes(model_path, setting, names, size, log, parameter_set)
    try:
        deadline = time.perf_counter() + 300
        stamp = 1
        while not all(any(key[0] == n and key[1] == "points" for key in arrival) for n in names):  # warm-up
            if time.perf_counter() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"the nodes gave no output; see {log.parent}")
            for name in names:
                if image_pub[name].get_subscription_count():
                    publish(name, stamp)
            stamp += 1
            spin_until(time.perf_counter() + 0.5)
        spin_until(time.perf_counter() + 1.0)
        arrival.clear()
        for name in names:
            sent[name].clear()
        period = 1.0 / rate_hz
        start = time.perf_counter()
        ticks = [(index * period + camera * period / cameras, camera) for index in range(int(seconds * rate_hz))
                 for camera in range(cameras)]
        for offset, camera in sorted(ticks):
            spin_until(start + offset)
            publish(names[camera], 10**12 + int(offset * 1e9))
        spin_until(time.perf_counter() + 3.0)
        rss = sum(rss_mib(p.pid) for p in processes)
    finally:
        for process in processes:
            stop_node(process)
        node.destroy_node()
        rclpy.try_shutdown()
    served = {n: [s for s in sent[n] if all((n, t, s) in arrival for t in TOPICS)] for n in names}
    latency = {n: percentiles([(arrival[(n, "segmentation", s)] - sent[n][s]) * 1e3 for s in served[n]])
               if served[n] else None for n in names}
    return {"parameters": parameter_set, "setting": setting, "cameras": cameras, "size": f"{width}x{height}",
            "rate_hz_each": rate_hz, "seconds": seconds, "processes": len(processes), "rss_mib": round(rss, 1),
            "frames_sent": sum(len(s) for s in sent.values()),
            "frames_served": sum(len(s) for s in served.values()),
            "served_per_s": round(sum(len(s) for s in served.values()) / seconds, 2),
            "latency_ms_per_camera": {n: {k: v for k, v in latency[n].items() if k in ("median_ms", "p90_ms")}
                                      if latency[n] else None for n in names}}


def benchmark_cameras(model_path: Path, cameras: int = 4, rate_hz: float = 10.0, seconds: float = 20.0,
                      size: tuple[int, int] = (480, 640)) -> dict:
    """Every setting side by side in one run, each in a fresh process; ratios against N nodes."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    results, ratios = [], {}
    for parameter_set in PARAMETER_SETS:
        runs = []
        for setting in SETTINGS:
            with context.Pool(1) as pool:
                runs.append(pool.apply(measure_cameras, (model_path, setting, cameras, rate_hz, seconds, size,
                                                         parameter_set)))
        separate = runs[-1]
        ratios[parameter_set] = {
            r["setting"]: {"rss_over_separate_nodes": round(r["rss_mib"] / separate["rss_mib"], 3),
                           "served_per_s_over_separate_nodes": round(r["served_per_s"] / separate["served_per_s"], 3)
                           if separate["served_per_s"] else None} for r in runs[:-1]}
        results += runs
    return {"results": results, "ratios": ratios}
