"""hydranet benchmark --node: latency through perception_node in its own process.

For each size, the bare backend (ONNX Runtime session.run on the node's graph) is timed in this
process first; then the node runs with the same backend and network size. Frames are sent one at
a time (the next after all outputs of the previous arrived), so the figures hold no queueing. We
report the end-to-end latency per output (publish -> receive in this process) and the node's own
stage timings from /diagnostics: its overhead is pre + post (conversion, post-processing, clouds,
publishing) relative to inference.
"""
from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from hydranet_ros.apps.common import guess_intrinsics
from hydranet_ros.apps.demo import OUTPUTS, Recorder, start_node, stop_node, wait_until_ready
from hydranet_ros.inference.backends import create_backend
from hydranet_ros.inference.benchmark import camera_frame, percentiles
from hydranet_ros.inference.graph import INPUT_NAME
from hydranet_ros.model.model_file import load_model


def bare_backend_ms(model_path: Path, size: tuple[int, int], iterations: int) -> dict:
    backend, _ = create_backend(model_path, "onnxruntime", "cpu", output="input", input_size=size)
    rgb = np.ascontiguousarray(camera_frame(*size)[..., ::-1])[None]
    samples = []
    for index in range(iterations + 3):
        start = time.perf_counter()
        backend.session.run(None, {INPUT_NAME: rgb})
        if index >= 3:
            samples.append((time.perf_counter() - start) * 1e3)
    return percentiles(samples)


def benchmark_node(model_path: Path, sizes: list[tuple[int, int]], iterations: int) -> list[dict]:
    import rclpy
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    spec = load_model(model_path)[1]
    records = []
    rclpy.init()
    try:
        for height, width in sizes:
            bare = bare_backend_ms(model_path, (height, width), iterations)
            log = Path(tempfile.mkdtemp()) / "node.log"
            node = start_node(model_path, "onnxruntime", log, {"input_size": f"[{height},{width}]",
                                                                "points_stride": 2, "diagnostics_period": 0.5})
            recorder = Recorder(None)
            try:
                wait_until_ready(recorder, node, log)
                frame = camera_frame(height, width)
                intrinsics = guess_intrinsics(spec, width, height)
                for index in range(iterations + 3):
                    stamp = 1_000_000_000 * (index + 1)
                    recorder.publish(frame, intrinsics, stamp)
                    deadline = time.perf_counter() + 30
                    while not all((name, stamp) in recorder.arrival for name in OUTPUTS) and time.perf_counter() < deadline:
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
                    "size": f"{width}x{height}", "frames": len(sent), "bare_backend": bare,
                    "end_to_end_all_outputs": percentiles([v * 1e3 for v in last]),
                    "end_to_end_per_output": end_to_end,
                    "node_stage_median_ms": {k: float(diagnostics[f"latency_{k}_ms"]) for k in ("pre", "inference", "post")},
                    "node_overhead_over_inference": round(overhead / inference, 3),
                    "frames_dropped": int(diagnostics["frames_dropped"]),
                })
            finally:
                stop_node(node)
                recorder.close()
    finally:
        rclpy.try_shutdown()
    return records
