"""hydranet benchmark --node: latency through perception_node in its own process.

For each size, the bare backend (ONNX Runtime session.run on the node's graph) is timed in this
process first; then the node runs with the same backend and network size. Frames are sent one at
a time (the next after all outputs of the previous arrived), so the figures hold no queueing. We
report the end-to-end latency per output (publish -> receive in this process) and the node's own
stage timings from /diagnostics: its overhead is pre + post (conversion, post-processing, clouds,
publishing) relative to inference.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from hydranet_ros.inference.pipeline import guess_intrinsics
from hydranet_ros.apps.demo import OUTPUTS, Recorder, start_node, stop_node, wait_until_ready
from hydranet_ros.inference.backends import BackendOptions, create_backend
from hydranet_ros.inference.backends.onnxruntime_backend import onnxruntime_session
from hydranet_ros.inference.benchmark import camera_frame, network_input, percentiles
from hydranet_ros.inference.graph import INPUT_NAME
from hydranet_ros.model.model_file import load_model
from hydranet_ros.ros.conversions import stamp_ns
from hydranet_ros.ros.discovery import keep_graph_private, use_large_data_transport
from hydranet_ros.ros.output_topics import DEPTH_IMAGE
from hydranet_ros.ros.parameters import BY_NAME as PARAMETERS


def bare_backend_ms(model_path: Path, size: tuple[int, int], iterations: int, model_budget: bool = False) -> dict:
    backend, _ = create_backend(model_path, BackendOptions(backend="onnxruntime", device="cpu",
                                                           input_size=None if model_budget else size))
    rgb = np.ascontiguousarray(camera_frame(*size)[..., ::-1])[None]
    session = onnxruntime_session(backend, size)
    samples = []
    for index in range(iterations + 3):
        start = time.perf_counter()
        session.run(None, {INPUT_NAME: rgb})
        if index >= 3:
            samples.append((time.perf_counter() - start) * 1e3)
    return percentiles(samples)


def benchmark_node(model_path: Path, sizes: list[tuple[int, int]], iterations: int, backend: str = "onnxruntime",
                   precision: str = "fp32", calibration=None, model_budget: bool = False) -> list[dict]:
    """perception_node end to end with the given backend; beside it the bare ONNX Runtime fp32 session.
    model_budget: the network at the model file's pixel budget (the node's default), else at the camera's size."""
    import rclpy
    keep_graph_private()  # keep off other runs' topics, discovery on localhost
    spec = load_model(model_path)[1]
    records = []
    rclpy.init()
    try:
        for height, width in sizes:
            bare = bare_backend_ms(model_path, (height, width), iterations, model_budget)
            log = Path(tempfile.mkdtemp()) / "node.log"
            parameters = {"points_stride": 2, "diagnostics_period": 0.5, "precision": precision,
                          "image_size": f"[{height},{width}]"}
            if not model_budget:
                parameters["input_size"] = f"[{height},{width}]"
            if calibration:
                parameters["int8_calibration"] = calibration
            node = start_node(model_path, backend, log, parameters)
            recorder = Recorder(None)
            try:
                wait_until_ready(recorder, node, log)
                frame = camera_frame(height, width)
                intrinsics = guess_intrinsics(spec, width, height)
                recorder.warm_up(frame, intrinsics, node, log)
                for index in range(iterations + 3):
                    stamp = 1_000_000_000 * (index + 1)
                    recorder.publish(frame, intrinsics, stamp)
                    deadline = time.perf_counter() + 30
                    while (not all((name, stamp) in recorder.arrival for name in OUTPUTS)
                           and time.perf_counter() < deadline):
                        recorder.spin_until(time.perf_counter() + 0.002)
                recorder.spin_until(time.perf_counter() + 1.2)  # a last /diagnostics
                sent = {s: t for s, t in recorder.sent_at.items() if s > 3 * 1_000_000_000}  # after warm-up
                end_to_end = {name: percentiles([(recorder.arrival[(name, s)] - t) * 1e3 for s, t in sent.items()
                                                 if (name, s) in recorder.arrival]) for name in OUTPUTS}
                last = [max(recorder.arrival[(n, s)] for n in OUTPUTS) - t for s, t in sent.items()
                        if all((n, s) in recorder.arrival for n in OUTPUTS)]
                diagnostics = recorder.node_diagnostics()
                inference = float(diagnostics["latency_inference_ms"])
                overhead = float(diagnostics["latency_pre_ms"]) + float(diagnostics["latency_post_ms"])
                records.append({
                    "size": f"{width}x{height}", "backend": diagnostics["backend"], "frames": len(sent),
                    "network_input": network_input(spec, (height, width), model_budget),
                    "bare_onnxruntime_fp32": bare,
                    "end_to_end_all_outputs": percentiles([v * 1e3 for v in last]),
                    "end_to_end_per_output": end_to_end,
                    "node_stage_median_ms": {k: float(diagnostics[f"latency_{k}_ms"])
                                             for k in ("pre", "inference", "post", "copy")
                                             if f"latency_{k}_ms" in diagnostics},
                    "node_overhead_over_inference": round(overhead / inference, 3),
                    "frames_dropped": int(diagnostics["frames_dropped"]),
                })
            finally:
                stop_node(node)
                recorder.close()
    finally:
        rclpy.try_shutdown()
    return records


def measure_delivery(model_path: Path, transport: str, frames: int, rate_hz: float, size: tuple[int, int]) -> dict:
    """One delivery run: a camera at rate_hz publishing `size` images to perception_node with its
    default best-effort input, outputs received by reliable subscribers (rviz, recorders) and
    best-effort ones (Nav2's layers). Run in a fresh process: Fast DDS reads its profile when the
    first participant is created."""
    if transport == "large_data":
        use_large_data_transport()
    keep_graph_private()  # keep off other runs' topics, discovery on localhost
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2
    spec = load_model(model_path)[1]
    rclpy.init()
    log = Path(tempfile.mkdtemp()) / "node.log"
    parameters = {"image_qos_reliability": "best_effort", "diagnostics_period": 0.5,
                  "image_size": f"[{size[0]},{size[1]}]"}
    node = start_node(model_path, "onnxruntime", log, parameters)
    recorder = Recorder(None)
    best_effort = {}
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    for name, kind in ((DEPTH_IMAGE, Image), ("points", PointCloud2)):
        best_effort[name] = {}
        recorder.node.create_subscription(
            kind, f"/hydranet/{name}", lambda msg, n=name: best_effort[n].setdefault(
                stamp_ns(msg.header), time.perf_counter()), qos)
    try:
        wait_until_ready(recorder, node, log)
        height, width = size
        frame, intrinsics = camera_frame(height, width), guess_intrinsics(spec, width, height)
        recorder.warm_up(frame, intrinsics, node, log)
        start = time.perf_counter()
        for index in range(frames):
            recorder.spin_until(start + index / rate_hz)
            recorder.publish(frame, intrinsics, (index + 1) * 10**9 // int(rate_hz))
        recorder.spin_until(time.perf_counter() + 5.0)
        diagnostics = recorder.node_diagnostics()
    finally:
        stop_node(node)
        recorder.close()
        rclpy.try_shutdown()
    period = 1.0 / rate_hz
    processed = [s for s in recorder.sent_at if ("segmentation", s) in recorder.arrival]

    def on_time(arrivals: dict, stamp: int) -> bool:
        return stamp in arrivals and arrivals[stamp] - recorder.arrival[("segmentation", stamp)] <= period

    reliable = {name: {s: recorder.arrival[(name, s)] for s in processed if (name, s) in recorder.arrival}
                for name in OUTPUTS}
    share = lambda values: round(float(np.mean(values)), 3) if values else None  # noqa: E731
    spread = [max(arrivals[s] for arrivals in reliable.values() if s in arrivals)
              - recorder.arrival[("segmentation", s)] for s in processed]
    return {
        "transport": transport, "size": f"{width}x{height}", "rate_hz": rate_hz, "frames_sent": frames,
        "frames_reaching_node": int(diagnostics.get("frames_received", 0)),
        "frames_processed": len(processed),
        # Of the frames the node processed: the share of each output that arrived at all, and within one
        # frame period of the frame's first output (segmentation, sent first; the clouds follow it after
        # the node has built them, so this includes that time on the node too).
        "reliable_received": {name: share([s in reliable[name] for s in processed]) for name in OUTPUTS},
        "reliable_on_time": {name: share([on_time(reliable[name], s) for s in processed]) for name in OUTPUTS},
        "best_effort_received": {name: share([s in best_effort[name] for s in processed]) for name in best_effort},
        "best_effort_on_time": {name: share([on_time(best_effort[name], s) for s in processed])
                                for name in best_effort},
        "last_output_after_first_ms": percentiles([v * 1e3 for v in spread]) if spread else None,
    }


def benchmark_delivery(model_path: Path, frames: int = 100, rate_hz: float = 10.0,
                       size: tuple[int, int] = (375, 1242)) -> list[dict]:
    """measure_delivery with Fast DDS's defaults, then with config/fastdds_large_data.xml, each in
    a process of its own."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    results = []
    for transport in ("default", "large_data"):
        with context.Pool(1) as pool:
            results.append(pool.apply(measure_delivery, (model_path, transport, frames, rate_hz, size)))
    return results


def measure_first_output(model_path: Path, size: tuple[int, int], camera_info_wait: float, timeout: float = 300.0
                         ) -> dict:
    """A camera (images and camera_info at 10 Hz) running before perception_node starts, with image_size
    [0, 0] and a fresh engine cache: the time from the node subscribing to the camera (it is active) to
    its first output. camera_info_wait 0 prepares the camera's size on its first frame (as before the
    node waited for a camera_info at start). Run in a fresh process, as measure_delivery."""
    keep_graph_private()
    use_large_data_transport()
    import rclpy
    rclpy.init()
    height, width = size
    frame, intrinsics = camera_frame(height, width), guess_intrinsics(load_model(model_path)[1], width, height)
    cache = tempfile.mkdtemp()
    log = Path(cache) / "node.log"
    recorder = Recorder(None)
    started = time.perf_counter()
    node = start_node(model_path, "onnxruntime", log, {"camera_info_wait": camera_info_wait, "engine_cache": cache})
    active = first = None
    try:
        index = 0
        while first is None:
            if node.poll() is not None or time.perf_counter() - started > timeout:
                raise RuntimeError(f"perception_node gave no output; see {log}")
            recorder.publish(frame, intrinsics, (index + 1) * 100_000_000)
            index += 1
            deadline = time.perf_counter() + 0.1
            while time.perf_counter() < deadline and first is None:
                recorder.spin_until(time.perf_counter() + 0.005)
                if active is None and recorder.image_pub.get_subscription_count() > 0:
                    active = time.perf_counter()
                if recorder.arrival:
                    first = min(recorder.arrival.values())
    finally:
        stop_node(node)
        recorder.close()
        rclpy.try_shutdown()
    return {"camera": f"{width}x{height}", "camera_info_wait_s": camera_info_wait,
            "node_start_to_active_s": round(active - started, 3),
            "active_to_first_output_s": round(first - active, 3)}


def benchmark_first_output(model_path: Path, size: tuple[int, int] = (720, 1280)) -> list[dict]:
    """measure_first_output preparing on the first frame (camera_info_wait 0), then at start from the
    camera_info (the default wait), each in a process of its own."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    results = []
    for wait in (0.0, PARAMETERS["camera_info_wait"].default):
        with context.Pool(1) as pool:
            results.append(pool.apply(measure_first_output, (model_path, size, wait)))
    return results
