"""What /diagnostics says about the node: honest about a blind or broken node (no rclpy here).

Rates come from a wall-clock window, not from the last N frames, so a camera that stops shows as
0 FPS. The level:
  ERROR  no image ever arrived (after the grace time), every frame of the window was refused, or
         every frame of the window gave no valid depth (a broken model or input);
  WARN   waiting for the first image, preparing the backend for a new image size, no frame for
         `stale_after_s`, some frames refused, a camera_info that could not be used, or camera frames
         lost before they reached the node;
  OK     frames arrive and are processed, or the node is idle: nobody subscribes to any output and
         the camera is unsubscribed (lazy_subscription).
The message always says why.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

OK, WARN, ERROR = "OK", "WARN", "ERROR"
LOSS_WARN_FRAMES, LOSS_WARN_FRACTION = 10, 0.05  # input loss worth a warning


class LogThrottle:
    """At most one log line per kind of problem per period. rclpy's throttle_duration_sec throttles per
    call site, and every refusal is logged from one: a flood of one kind would hide every other kind."""

    def __init__(self, period_s: float, clock=time.monotonic):
        self.period_s = period_s
        self.clock = clock
        self.last = {}

    def allow(self, kind: str) -> bool:
        now = self.clock()
        if kind in self.last and now - self.last[kind] < self.period_s:
            return False
        self.last[kind] = now
        return True


@dataclass
class HealthReport:
    level: str
    message: str
    fps: float


class HealthMonitor:
    def __init__(self, window_s: float, stale_after_s: float, clock=time.monotonic):
        self.window_s = window_s
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.started = clock()
        # (time, detail) per event: whether depth was valid (None: not computed), why a frame was refused.
        self.received: deque[tuple[float, None]] = deque()
        self.processed: deque[tuple[float, bool | None]] = deque()
        self.refused: deque[tuple[float, str]] = deque()
        self.camera_problems: deque[tuple[float, str]] = deque()
        self.idle_since: float | None = None
        self.preparing_for: str | None = None  # "WxH" while the backend builds its graph for that size

    def idle(self) -> None:
        """Nobody listens to any output and the camera is unsubscribed: not blind, idle."""
        self.idle_since = self.clock()

    def resume(self) -> None:
        """Subscribed again: waiting for the first image, with a fresh grace time and window."""
        self.idle_since = None
        self.started = self.clock()
        for events in (self.received, self.processed, self.refused, self.camera_problems):
            events.clear()

    def frame_received(self) -> None:
        self.received.append((self.clock(), None))

    def frame_processed(self, depth_valid: bool | None) -> None:
        self.processed.append((self.clock(), depth_valid))

    def frame_refused(self, reason: str) -> None:
        self.refused.append((self.clock(), reason))

    def camera_problem(self, reason: str) -> None:
        """A camera_info that could not be used (the frames are still processed, without it)."""
        self.camera_problems.append((self.clock(), reason))

    def _trim(self, now: float) -> None:
        for events in (self.received, self.processed, self.refused, self.camera_problems):
            while events and now - events[0][0] > self.window_s:
                events.popleft()

    def report(self, topic: str, gaps: "InputLoss | None" = None) -> HealthReport:
        now = self.clock()
        if self.idle_since is not None:
            return HealthReport(OK, f"idle for {now - self.idle_since:.0f} s: no subscriber to any output, so "
                                    f"{topic} is not subscribed (lazy_subscription)", 0.0)
        if self.preparing_for is not None:
            return HealthReport(WARN, f"preparing the backend for {self.preparing_for} images, the first of that "
                                      "size (a TensorRT engine build takes minutes); outputs follow", 0.0)
        last_received = self.received[-1][0] if self.received else None
        last_processed = self.processed[-1][0] if self.processed else None
        self._trim(now)
        fps = len(self.processed) / min(self.window_s, max(now - self.started, 1e-9))
        if last_received is None:
            waited = now - self.started
            if waited > self.stale_after_s:
                return HealthReport(ERROR, f"no image received on {topic} in {waited:.0f} s since start", 0.0)
            return HealthReport(WARN, f"waiting for the first image on {topic}", 0.0)
        if self.refused and not self.processed and self.received:
            return HealthReport(ERROR, f"every frame of the last {self.window_s:g} s was refused: "
                                       f"{_reasons(self.refused)}", fps)
        depth_checked = [valid for _, valid in self.processed if valid is not None]
        if depth_checked and not any(depth_checked):
            return HealthReport(ERROR, f"no valid depth in any of the last {len(depth_checked)} frames (all NaN): "
                                       "the model or its input is broken", fps)
        if last_processed is None or now - last_processed > self.stale_after_s:
            since = now - (last_processed or last_received)
            return HealthReport(WARN, f"no frame processed for {since:.1f} s (camera stopped, or the node is stuck)",
                                fps)
        problems = ([f"{len(self.refused)} frame(s) refused in the last {self.window_s:g} s: "
                     f"{_reasons(self.refused)}"] if self.refused else []) + \
            ([_reasons(self.camera_problems)] if self.camera_problems else [])
        if problems:
            return HealthReport(WARN, " | ".join(problems), fps)
        if gaps is not None and gaps.lost > LOSS_WARN_FRAMES and gaps.lost_fraction > LOSS_WARN_FRACTION:
            return HealthReport(WARN, f"about {gaps.lost_fraction:.0%} of the camera's frames never reached the "
                                      "node (transport loss; docs/perception_node.md: QoS and transport)", fps)
        return HealthReport(OK, "running", fps)


def _reasons(events, most: int = 4) -> str:
    """The distinct reasons of a window's events, the latest first."""
    distinct = list(dict.fromkeys(reason for _, reason in reversed(events)))
    return " | ".join(distinct[:most]) + (f" (and {len(distinct) - most} more)" if len(distinct) > most else "")


class InputLoss:
    """Camera frames that never reached the node, from evidence only: the count of lost samples the
    middleware reports on the image subscription (its message_lost event), and, when the driver's rate
    is declared (camera_rate_hz), the frames its stamps span at that rate that did not arrive. Uneven
    spacing is no evidence (a driver may publish in bursts, or jitter), so without a declared rate
    nothing is inferred from the stamps."""

    def __init__(self, declared_rate_hz: float = 0.0):
        self.declared_rate_hz = declared_rate_hz
        self.first: int | None = None
        self.last: int | None = None
        self.arrived = 0
        self.middleware_lost = 0

    def add(self, stamp_ns: int) -> None:
        self.arrived += 1
        self.first = stamp_ns if self.first is None else min(self.first, stamp_ns)
        self.last = stamp_ns if self.last is None else max(self.last, stamp_ns)

    def middleware_reported(self, total_count: int) -> None:
        """The subscription's message_lost status: samples lost since it was created."""
        self.middleware_lost = max(self.middleware_lost, int(total_count))

    @property
    def lost(self) -> int:
        missing = 0
        if self.declared_rate_hz > 0 and self.first is not None:
            expected = round((self.last - self.first) * 1e-9 * self.declared_rate_hz) + 1
            missing = max(0, expected - self.arrived)
        return max(self.middleware_lost, missing)

    @property
    def lost_fraction(self) -> float:
        total = self.lost + self.arrived
        return self.lost / total if total else 0.0
