"""Pinhole camera geometry: intrinsics scaling and depth -> 3-D points (pure numpy)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of width x height pixels (REP 103 optical frame)."""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def scaled_to(self, width: int, height: int) -> "Intrinsics":
        """The intrinsics of the same camera after resizing the image to width x height.

        Pixel centres map as u' = (u + 0.5) * s - 0.5, which is how OpenCV's and PyTorch's
        (align_corners=False) resizing place samples.
        """
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5, width, height)

    def is_valid(self) -> bool:
        values = np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)
        return bool(np.all(np.isfinite(values)) and self.fx > 0 and self.fy > 0
                    and self.width > 0 and self.height > 0)

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)


def pixel_rays(intrinsics: Intrinsics, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(x/z, y/z) for the pixel centres of every stride-th row and column."""
    u = np.arange(0, intrinsics.width, stride, dtype=np.float32)
    v = np.arange(0, intrinsics.height, stride, dtype=np.float32)
    return (u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy


def depth_to_points(depth: np.ndarray, intrinsics: Intrinsics, stride: int = 1) -> np.ndarray:
    """Organised (H/stride) x (W/stride) x 3 float32 points in the optical frame (x right, y down,
    z forward). depth is z in metres; NaN depth gives NaN points."""
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(f"depth is {depth.shape[1]}x{depth.shape[0]}, intrinsics are for "
                         f"{intrinsics.width}x{intrinsics.height}")
    x_over_z, y_over_z = pixel_rays(intrinsics, stride)
    z = depth[::stride, ::stride].astype(np.float32, copy=False)
    points = np.empty(z.shape + (3,), dtype=np.float32)
    np.multiply(z, x_over_z[None, :], out=points[..., 0])
    np.multiply(z, y_over_z[:, None], out=points[..., 1])
    points[..., 2] = z
    return points
