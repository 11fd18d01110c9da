"""Depth of a flat ground seen by a level camera at a known height (pure numpy).

A camera h metres above a flat ground, optical axis parallel to it, sees the ground point of image
row v at depth z = fy * h / (v - cy): the ground is the plane y = h in the optical frame (y down).
Rows at or above the horizon (v <= cy) see no ground.
"""
from __future__ import annotations

import numpy as np

from hydranet_ros.camera.intrinsics import Intrinsics


def ground_plane_depth(intrinsics: Intrinsics, heights: np.ndarray, max_depth: float) -> np.ndarray:
    """float32 depth (z, metres) of each pixel on a ground plane `heights` metres below the camera
    (an H x W array: a pixel's height, or NaN where it is not ground); 0 where a pixel is not ground,
    at or above the horizon or further than max_depth."""
    if heights.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(f"heights are {heights.shape[1]}x{heights.shape[0]}, intrinsics are for "
                         f"{intrinsics.width}x{intrinsics.height}")
    below_horizon = np.arange(intrinsics.height, dtype=np.float64)[:, None] - intrinsics.cy
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(below_horizon > 0, intrinsics.fy * heights / below_horizon, np.nan)
    return np.where(np.isfinite(depth) & (depth > 0) & (depth <= max_depth), depth, 0.0).astype(np.float32)
