"""Pairing images with their CameraInfo by time stamp (pure Python, no rclpy).

A camera publishes an image and its CameraInfo with the same stamp, but they arrive on two topics
in either order. The buffer keeps the recent CameraInfos and answers, for an image's stamp:
  exact      a CameraInfo with the same stamp
  nearest    the nearest one within the tolerance
  static     none near, but every CameraInfo seen holds the same calibration, so it applies to
             any frame (a latched driver that published once, or a slow camera_info rate)
  unmatched  none near and the calibration changes over time: the nearest one is returned and the
             caller warns
  none       no CameraInfo yet
An image may arrive before its CameraInfo: wait_for_match waits a little for it when the calibration
changes over time, and when CameraInfos stream with the images but none as new as the image has come
yet (the frame where a calibration changes is the first to differ: it must not take the previous one).
A CameraInfo published once (latched) is never waited on.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from hydranet_ros.camera.calibration import CameraCalibration


@dataclass(frozen=True)
class CameraInfoMatch:
    status: str                                   # exact, nearest, static, unmatched or none
    calibration: CameraCalibration | None = None
    frame_id: str = ""
    offset_s: float = 0.0                         # CameraInfo stamp minus image stamp


class CameraInfoBuffer:
    def __init__(self, tolerance_s: float, capacity: int = 32):
        self.tolerance_ns = int(round(tolerance_s * 1e9))
        self.capacity = capacity
        self._by_stamp: OrderedDict[int, tuple[CameraCalibration, str]] = OrderedDict()
        self._calibrations_seen: set[CameraCalibration] = set()

    def add(self, stamp_ns: int, frame_id: str, calibration: CameraCalibration) -> None:
        self._by_stamp[stamp_ns] = (calibration, frame_id)
        self._by_stamp.move_to_end(stamp_ns)
        while len(self._by_stamp) > self.capacity:
            self._by_stamp.popitem(last=False)
        if len(self._calibrations_seen) < 2:  # only whether more than one was ever seen matters
            self._calibrations_seen.add(calibration)

    @property
    def has_any(self) -> bool:
        return bool(self._by_stamp)

    @property
    def is_static(self) -> bool:
        return len(self._calibrations_seen) == 1

    def match(self, stamp_ns: int) -> CameraInfoMatch:
        if not self._by_stamp:
            return CameraInfoMatch("none")
        if stamp_ns in self._by_stamp:
            calibration, frame_id = self._by_stamp[stamp_ns]
            return CameraInfoMatch("exact", calibration, frame_id)
        nearest = min(self._by_stamp, key=lambda s: abs(s - stamp_ns))
        calibration, frame_id = self._by_stamp[nearest]
        offset = nearest - stamp_ns
        if abs(offset) <= self.tolerance_ns:
            status = "nearest"
        elif self.is_static:
            status = "static"
        else:
            status = "unmatched"
        return CameraInfoMatch(status, calibration, frame_id, offset / 1e9)

    def wait_for_match(self, stamp_ns: int, arrived: threading.Condition, timeout_s: float,
                       stopping=lambda: False) -> CameraInfoMatch:
        """match(stamp_ns), waiting up to timeout_s on `arrived` (held by the caller, notified by whoever
        adds a CameraInfo) while there is none near and the calibration changes over time."""
        deadline = time.monotonic() + timeout_s
        match = self.match(stamp_ns)
        while self._worth_waiting(match, stamp_ns) and not stopping() and \
                (remaining := deadline - time.monotonic()) > 0:
            arrived.wait(remaining)
            match = self.match(stamp_ns)
        return match

    def _worth_waiting(self, match: CameraInfoMatch, stamp_ns: int) -> bool:
        if match.status in ("unmatched", "none"):
            return not self.is_static
        streaming = len(self._by_stamp) > 1 and max(self._by_stamp) < stamp_ns  # its own is still to come
        return match.status == "static" and streaming
