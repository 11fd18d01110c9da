"""The node's frame counters, its per-stage latency and the /diagnostics key-values they give (no rclpy).

Every frame the node receives is counted once more by what became of it (FRAME_FATES): processed,
dropped (replaced by a newer frame before the worker took it), bad_input (refused), errors (processing
failed) or skipped_no_subscribers. The camera_info counters count problems with the frames' calibration;
batched counts the processed frames that went through the backend with another camera's.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from hydranet_ros.ros.health import HealthReport, InputLoss

FRAME_FATES = ("processed", "dropped", "bad_input", "errors", "skipped_no_subscribers")
CAMERA_INFO_COUNTERS = ("bad_camera_info", "camera_info_unmatched", "camera_info_frame_mismatch")
# copy: device to host, measured only by backends that post-process on their device (torch, TensorRT)
LATENCY_STAGES = ("pre", "inference", "post", "copy", "total")
LATENCY_WINDOW = 100  # frames the latency medians are taken over


class FrameStats:
    def __init__(self):
        self.counts = dict.fromkeys(("received",) + FRAME_FATES + CAMERA_INFO_COUNTERS + ("batched",), 0)
        self.latency = {stage: deque(maxlen=LATENCY_WINDOW) for stage in LATENCY_STAGES}

    def frame_timed(self, pipeline_ms: dict, received_at: float, start: float, decoded: float, end: float) -> None:
        """One processed frame, times in seconds of one clock: received (the callback), start and
        decoded (the worker's image decoding), end (published). Decoding counts as pre-processing,
        everything after the pipeline's own stages as post-processing, total from arrival."""
        timings = dict(pipeline_ms)
        timings["pre"] += (decoded - start) * 1e3
        timings["post"] = (end - start) * 1e3 - timings["pre"] - timings["inference"]
        timings["total"] = (end - received_at) * 1e3
        for stage, value in timings.items():
            self.latency[stage].append(value)

    def diagnostic_values(self, report: HealthReport, backend_description: str, device: str,
                          input_loss: InputLoss) -> dict[str, str]:
        """The key-values of the node's DiagnosticStatus: rate, backend, median latency per stage
        (copy only where measured), the frame counters and the frames lost before the node."""
        values = {"fps": f"{report.fps:.2f}", "backend": backend_description, "device": device}
        for stage, samples in self.latency.items():
            if samples or stage != "copy":
                values[f"latency_{stage}_ms"] = f"{np.median(samples):.2f}" if samples else "nan"
        values.update({f"frames_{name}": str(count) for name, count in self.counts.items()})
        values["frames_lost_before_node"] = str(input_loss.lost)  # middleware count, or the declared rate
        return values
