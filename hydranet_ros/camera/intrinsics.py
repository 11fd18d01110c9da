"""Pinhole camera geometry: intrinsics, their sanity checks and scaling, depth -> 3-D points (pure numpy)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Focal length as a fraction of image width of the cameras the shipped data comes from: NYUDv2's
# Kinect (518.8 / 640) indoors, KITTI's (721.5 / 1242) on streets; the scene generator renders with them.
FOCAL_PER_WIDTH = {"indoor": 0.8106, "street": 0.5809}


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


class CalibrationError(ValueError):
    """Camera geometry that cannot be used; the message says why and what to do."""


# A focal length outside [MIN, MAX] x the image's larger side is not a camera (a 180-degree fisheye
# has about 0.3, a long telephoto a few tens).
FOCAL_PER_SIDE_RANGE = (0.02, 100.0)


def check_plausible(intrinsics: Intrinsics, source: str) -> Intrinsics:
    """The intrinsics if they describe a real camera: finite, positive focal lengths within sane
    bounds of the image size, principal point within the image's neighbourhood."""
    values = np.array([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy], dtype=np.float64)
    side = max(intrinsics.width, intrinsics.height)
    low, high = FOCAL_PER_SIDE_RANGE[0] * side, FOCAL_PER_SIDE_RANGE[1] * side
    if intrinsics.width <= 0 or intrinsics.height <= 0:
        raise CalibrationError(f"{source}: image size {intrinsics.width}x{intrinsics.height} is empty")
    if not np.all(np.isfinite(values)):
        raise CalibrationError(f"{source}: fx, fy, cx, cy {values.tolist()} are not all finite")
    if not (low <= intrinsics.fx <= high and low <= intrinsics.fy <= high):
        raise CalibrationError(f"{source}: focal length fx={intrinsics.fx:g}, fy={intrinsics.fy:g} px is not "
                               f"within [{low:g}, {high:g}] for a {intrinsics.width}x{intrinsics.height} image")
    if not (-intrinsics.width <= intrinsics.cx <= 2 * intrinsics.width
            and -intrinsics.height <= intrinsics.cy <= 2 * intrinsics.height):
        raise CalibrationError(f"{source}: principal point ({intrinsics.cx:g}, {intrinsics.cy:g}) is far outside "
                               f"the {intrinsics.width}x{intrinsics.height} image")
    return intrinsics


def fallback_intrinsics(values, width: int, height: int) -> Intrinsics | None:
    """The fallback_intrinsics parameter (fx, fy, cx, cy) for an image of width x height: None when it
    is not set (fx or fy 0); a CalibrationError when it is no camera's."""
    fx, fy, cx, cy = values
    if fx > 0 and fy > 0:
        return check_plausible(Intrinsics(fx, fy, cx, cy, width, height), "fallback_intrinsics")
    return None


def pixel_rays(intrinsics: Intrinsics, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(x/z, y/z) as float32 for the pixel centres of every stride-th row and column (float32 whatever
    type the intrinsics hold, so that host and device back-projections compute alike)."""
    u = np.arange(0, intrinsics.width, stride, dtype=np.float32)
    v = np.arange(0, intrinsics.height, stride, dtype=np.float32)
    return (((u - intrinsics.cx) / intrinsics.fx).astype(np.float32, copy=False),
            ((v - intrinsics.cy) / intrinsics.fy).astype(np.float32, copy=False))


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


def points_to_depth(points: np.ndarray, intrinsics: Intrinsics, projection_column=(0.0, 0.0, 0.0),
                    min_depth: float = 1e-3) -> np.ndarray:
    """Sparse depth image from N x 3 points in the (rectified) optical frame, as a LiDAR gives them:
    each point is projected with [K | column] to its nearest pixel; the nearest point of a pixel wins, so
    the points it hides are dropped, and points behind the camera or off the image are too. 0 = none."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1) & (points[:, 2] > min_depth)]
    pixels = points @ intrinsics.matrix().T + np.asarray(projection_column, np.float64)
    z = pixels[:, 2]
    u = np.round(pixels[:, 0] / z).astype(np.int64)
    v = np.round(pixels[:, 1] / z).astype(np.int64)
    inside = (u >= 0) & (u < intrinsics.width) & (v >= 0) & (v < intrinsics.height)
    u, v, z = u[inside], v[inside], z[inside]
    depth = np.zeros((intrinsics.height, intrinsics.width), np.float32)
    order = np.argsort(-z, kind="stable")  # far first, so nearer points overwrite them
    depth[v[order], u[order]] = z[order]
    return depth
