"""hydranet soak: perception_node fed at the camera's rate for minutes; latency and memory over time.

Plays a generated sequence in a loop at --rate Hz. For every window it prints the latency
percentiles from publishing an image to receiving its depth and the node's CPU time per processed
frame; at the end the node's resident memory (RSS, from /proc) after warm-up and at the end, the
latency drift (last window's median over the first's) and the CPU drift (the same for CPU time per
frame). Latency also measures whatever else loads the machine; the node's own CPU time per frame
grows only when the node's work does (a leak, a growing structure), so it is what a check should use.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hydranet_ros.apps.demo import Recorder, generated_camera, start_node, stop_node, wait_until_ready
from hydranet_ros.errors import CommandError
from hydranet_ros.inference.benchmark import percentiles
from hydranet_ros.model.model_file import load_model
from hydranet_ros.ros.discovery import keep_graph_private, use_large_data_transport
from hydranet_ros.ros.output_topics import DEPTH_IMAGE

WARM_UP_S = 10.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise CommandError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak(model_path: Path, seconds: float, rate_hz: float, window_s: float, backend: str, log_path: Path,
         print_windows: bool = True) -> dict:
    import rclpy
    keep_graph_private()  # keep off other runs' topics, discovery on localhost
    use_large_data_transport()  # as the launch file starts the node
    spec = load_model(model_path)[1]
    scene = "indoor" if spec.label_space.name == "nyud40" else "street"
    camera = generated_camera(scene, 20, 5, rate_hz)
    height, width = camera.frames[0].shape[:2]
    node = start_node(model_path, backend, log_path, {"image_size": f"[{height},{width}]"})
    rclpy.init()
    recorder = Recorder(None)
    windows, rss_start = [], None
    try:
        wait_until_ready(recorder, node, log_path)
        recorder.warm_up(camera.frames[0], camera.intrinsics, node, log_path)
        start = time.perf_counter()
        window_start, index, cpu_start = start + WARM_UP_S, 0, None
        while (now := time.perf_counter()) < start + WARM_UP_S + seconds:
            if rss_start is None and now >= start + WARM_UP_S:
                rss_start, cpu_start = rss_mib(node.pid), cpu_seconds(node.pid)
            recorder.publish(camera.frames[index % len(camera.frames)], camera.intrinsics, (index + 1) * 10**6)
            index += 1
            recorder.spin_until(start + index / rate_hz)
            if time.perf_counter() >= window_start + window_s:
                cpu_now = cpu_seconds(node.pid)
                windows.append(_window(recorder, window_start, time.perf_counter(), cpu_now - cpu_start))
                cpu_start = cpu_now
                if print_windows:
                    print(json.dumps(windows[-1]), flush=True)
                window_start = time.perf_counter()
        recorder.spin_until(time.perf_counter() + 1.0)
        rss_end = rss_mib(node.pid)
    finally:
        stop_node(node)
        recorder.close()
        rclpy.try_shutdown()
    if not windows:
        raise CommandError("the soak ended before its first window")
    return {"seconds": seconds, "rate_hz": rate_hz, "backend": backend, "windows": windows,
            "rss_mib_after_warm_up": round(rss_start, 1), "rss_mib_end": round(rss_end, 1),
            "rss_growth": round(rss_end / rss_start - 1, 4),
            "latency_drift": round(windows[-1]["depth_latency"]["median_ms"]
                                   / windows[0]["depth_latency"]["median_ms"], 3),
            "cpu_drift": round(windows[-1]["node_cpu_ms_per_frame"] / windows[0]["node_cpu_ms_per_frame"], 3)}


def _window(recorder: Recorder, begin: float, end: float, node_cpu_s: float) -> dict:
    latencies = [(recorder.arrival[(DEPTH_IMAGE, stamp)] - sent) * 1e3 for stamp, sent in recorder.sent_at.items()
                 if begin <= sent < end and (DEPTH_IMAGE, stamp) in recorder.arrival]
    sent = sum(1 for t in recorder.sent_at.values() if begin <= t < end)
    return {"window_end_s": round(end - min(recorder.sent_at.values()), 1), "sent": sent, "processed": len(latencies),
            "depth_latency": percentiles(latencies) if latencies else {"median_ms": float("nan")},
            "node_cpu_ms_per_frame": round(node_cpu_s * 1e3 / len(latencies), 2) if latencies else float("nan")}
