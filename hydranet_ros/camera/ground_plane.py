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


def stixel_depth(intrinsics: Intrinsics, labels: np.ndarray, ground_heights: dict[int, float],
                 standing: set[int] | frozenset[int], max_depth: float) -> np.ndarray:
    """float32 depth (z, metres) from a label image and the ground, by the stixel model of street scenes:
    a ground pixel (class c in ground_heights) lies on a flat ground ground_heights[c] metres below a
    level camera; a pixel of a standing class (cars, buildings, poles, ...) has, in its image column, the
    depth of the ground pixel just below the lowest pixel of its run of that class (its ground contact).
    0 where there is no such contact (a run that ends on another object or at the image's edge:
    occluded), for every other class, at or above the horizon and beyond max_depth."""
    heights = np.full(labels.shape, np.nan)
    for class_id, height in ground_heights.items():
        heights[labels == class_id] = height
    ground = ground_plane_depth(intrinsics, heights, max_depth)
    stands = np.isin(labels, list(standing))
    depth = ground.copy()
    contact = np.zeros(labels.shape[1], np.float32)  # the depth each column's current run stands at
    for row in range(labels.shape[0] - 2, -1, -1):  # bottom-up: a run inherits the contact below it
        below = labels[row + 1]
        continues = stands[row] & (labels[row] == below)
        starts = stands[row] & ~continues
        contact = np.where(continues, contact, np.where(starts, ground[row + 1], 0.0))
        depth[row] = np.where(stands[row], contact, depth[row])
    depth[-1] = np.where(stands[-1], 0.0, depth[-1])
    return depth
