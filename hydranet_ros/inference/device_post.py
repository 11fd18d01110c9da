"""The per-frame post-processing on the backend's own device, for backends that run PyTorch tensors
(torch, TensorRT): REP 118 depth, overlay and both point clouds are finished where the network ran,
and every output then reaches the host in one copy.

    DevicePost(device, no_depth_classes)(frame, scale, overlay_alpha, intrinsics, clouds) -> HostOutputs

The arithmetic is postprocess.py's (tests hold the two to the same results); the host version
serves ONNX Runtime and OpenVINO, whose outputs are host arrays already. No rclpy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from hydranet_ros.camera.intrinsics import Intrinsics, pixel_rays
from hydranet_ros.inference.backends.base import DeviceFrame
from hydranet_ros.inference.backends.device import to_host
from hydranet_ros.inference.postprocess import CLOUD_DTYPE, MIN_DEPTH_M, CloudRequest, labels_in


@dataclass
class HostOutputs:
    labels: np.ndarray
    color: np.ndarray
    confidence: np.ndarray
    depth: np.ndarray                  # REP 118: NaN where invalid, scaled to the camera
    overlay: np.ndarray | None = None
    cloud: np.ndarray | None = None    # CLOUD_DTYPE
    obstacles: np.ndarray | None = None


@lru_cache(maxsize=8)  # one camera: the same two matrices every frame, made once (host float64 work)
def area_weights(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """size_out x size_in weights of a resize that averages each output pixel's footprint, weighting
    input pixels by the overlap (OpenCV's INTER_AREA when shrinking, the host overlay's resize)."""
    edges = torch.arange(size_out + 1, dtype=torch.float64) * (size_in / size_out)
    start, end = edges[:-1, None], edges[1:, None]
    pixel = torch.arange(size_in, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(end, pixel + 1) - torch.maximum(start, pixel)).clamp(min=0)
    return (overlap / overlap.sum(dim=1, keepdim=True)).float().to(device)


@lru_cache(maxsize=8)  # (intrinsics, stride) pairs: uploaded once, not every frame
def device_rays(intrinsics: Intrinsics, stride: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """pixel_rays on the device."""
    return tuple(torch.from_numpy(r).to(device) for r in pixel_rays(intrinsics, stride))


class StageClock:
    """Stage boundaries: CUDA events on a GPU (launches are asynchronous, so host clocks would time
    the launches only), host time on a CPU. Read after the outputs reached the host."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals_ms(self) -> list[float]:
        if self.cuda:
            self.marks[-1].synchronize()  # elapsed_time needs both events completed
        pairs = zip(self.marks, self.marks[1:])
        return [a.elapsed_time(b) if self.cuda else (b - a) * 1e3 for a, b in pairs]


class DevicePost:
    def __init__(self, device: str | torch.device, no_depth_classes: list[int]):
        self.device = torch.device(device)
        self.no_depth_classes = tuple(no_depth_classes)

    def depth_for_ros(self, depth: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
        """postprocess.depth_for_ros on the device: +Inf for sky, NaN for no measurement."""
        out = depth * scale
        out = out.masked_fill(~((out > MIN_DEPTH_M) & (out < float("inf"))), float("nan"))
        return out.masked_fill(labels_in(labels, self.no_depth_classes), float("inf"))

    @staticmethod
    def overlay(rgb: torch.Tensor, color: torch.Tensor, alpha: float) -> torch.Tensor:
        rgb = rgb.float()
        if rgb.shape != color.shape:  # outputs at the network's size: the image shrinks to them
            rows = area_weights(rgb.shape[0], color.shape[0], rgb.device)
            cols = area_weights(rgb.shape[1], color.shape[1], rgb.device)
            rgb = torch.einsum("hH,HWc,wW->hwc", rows, rgb, cols)
        blended = color.float() * alpha + rgb * (1.0 - alpha)
        return blended.round().clamp(0, 255).to(torch.uint8)

    def clouds(self, depth: torch.Tensor, color: torch.Tensor, labels: torch.Tensor, intrinsics: Intrinsics,
               request: CloudRequest) -> tuple[torch.Tensor, torch.Tensor | None]:
        """CLOUD_DTYPE records as bytes, rows x cols x itemsize (organised) or 1 x n x itemsize."""
        settings = request.settings
        s = settings.stride
        x_over_z, y_over_z = device_rays(intrinsics, s, self.device)
        z = depth[::s, ::s]
        xyz = torch.stack([z * x_over_z[None, :], z * y_over_z[:, None], z], dim=-1)
        sub_labels = labels[::s, ::s]
        sub_color = color[::s, ::s]
        invalid = ~torch.isfinite(z) | (z > settings.max_depth) | labels_in(sub_labels, settings.exclude_classes)
        zero = torch.zeros(z.shape + (1,), dtype=torch.uint8, device=z.device)
        # rgb as 0x00RRGGBB little-endian (B, G, R, 0), the label, three bytes of padding
        tail = torch.cat([sub_color.flip(-1), zero, sub_labels[..., None], zero.expand(*z.shape, 3)], dim=-1)

        def records(drop: torch.Tensor, organized: bool) -> torch.Tensor:
            if organized:
                points = xyz.masked_fill(drop[..., None], float("nan"))
                return torch.cat([points.contiguous().view(torch.uint8), tail], dim=-1)
            # One boolean selection per cloud (each waits for the device to count what it keeps)
            return torch.cat([xyz.contiguous().view(torch.uint8), tail], dim=-1)[~drop][None]

        cloud = records(invalid, settings.organized)
        obstacles = None
        if request.obstacle_classes is not None:
            obstacles = records(invalid | labels_in(sub_labels, request.obstacle_classes), request.obstacles_organized)
        return cloud, obstacles

    def __call__(self, frame: DeviceFrame, scale: float, overlay_alpha: float | None,
                 intrinsics: Intrinsics | None, clouds: CloudRequest | None, clock: StageClock) -> HostOutputs:
        """frame's outputs, finished, on the host; intrinsics are the outputs' (scaled to their size).
        Marks the clock after the device work and after the copy."""
        with torch.inference_mode():
            labels, color, confidence, depth = frame.outputs
            depth = self.depth_for_ros(depth, labels, scale)
            tensors = {"labels": labels, "color": color, "confidence": confidence, "depth": depth}
            if overlay_alpha is not None:
                tensors["overlay"] = self.overlay(frame.image, color, overlay_alpha)
            if clouds is not None and intrinsics is not None:
                tensors["cloud"], obstacles = self.clouds(depth, color, labels, intrinsics, clouds)
                if obstacles is not None:
                    tensors["obstacles"] = obstacles
            clock.mark()
            arrays = to_host(tensors)
            clock.mark()
        for name in ("cloud", "obstacles"):
            if name in arrays:
                arrays[name] = arrays[name].view(CLOUD_DTYPE)[..., 0]
        return HostOutputs(**arrays)
