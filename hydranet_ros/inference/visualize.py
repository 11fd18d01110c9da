"""Pictures for people: colourised depth, a bird's-eye view of the cloud, a 2 x 2 overview."""
from __future__ import annotations

import cv2
import numpy as np

from hydranet_ros.inference.pipeline import FrameResult


def colorize_depth(depth: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    """RGB turbo colour map over depth_range (near = red); NaN pixels black."""
    low, high = depth_range
    scaled = np.clip((np.nan_to_num(depth, nan=high) - low) / max(high - low, 1e-6), 0, 1)
    color = cv2.applyColorMap(((1 - scaled) * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    color = np.ascontiguousarray(color)
    color[~np.isfinite(depth)] = 0
    return color


def birds_eye_view(cloud: np.ndarray, max_range: float, size: int = 400) -> np.ndarray:
    """Top view of an organised or flat CLOUD_DTYPE array: x right, z up the picture, camera at the
    bottom centre; points drawn in their colours, a grid ring every max_range/4 metres."""
    image = np.full((size, size, 3), 24, np.uint8)
    scale = (size - 10) / max_range
    centre = (size // 2, size - 5)
    for ring in range(1, 5):
        cv2.circle(image, centre, int(ring * max_range / 4 * scale), (70, 70, 70), 1)
    points = cloud.reshape(-1)
    points = points[np.isfinite(points["z"]) & (points["z"] < max_range)]
    u = (centre[0] + points["x"] * scale).astype(np.int32)
    v = (centre[1] - points["z"] * scale).astype(np.int32)
    keep = (u >= 0) & (u < size) & (v >= 0) & (v < size)
    packed = points["rgb"].view(np.uint32)[keep]
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8)
    image[v[keep], u[keep]] = rgb
    cv2.putText(image, f"bird's-eye view, {max_range:.0f} m", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (220, 220, 220), 1, cv2.LINE_AA)
    return image


MIN_PANEL_ASPECT, MAX_PANEL_ASPECT = 0.25, 2.0  # an overview panel's height over its width


def overview(result: FrameResult, cloud: np.ndarray | None, depth_range: tuple[float, float],
             width: int = 640, caption: str = "") -> np.ndarray:
    """2 x 2 RGB picture: camera image, segmentation overlay, colourised depth, bird's-eye view."""
    def fit(image):
        """width pixels wide and between MIN_PANEL_ASPECT and MAX_PANEL_ASPECT x width tall: a very tall
        or very wide image is scaled to fit and centred on a border (a 20x20000 image cannot make a picture
        of gigabytes, nor a 20000x20 one panels of one row)."""
        scale = min(width / image.shape[1], MAX_PANEL_ASPECT * width / image.shape[0])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        fitted = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        top = max(0, round(MIN_PANEL_ASPECT * width) - size[1]) // 2
        bottom = max(0, round(MIN_PANEL_ASPECT * width) - size[1] - top)
        left = (width - size[0]) // 2
        return np.pad(fitted, ((top, bottom), (left, width - size[0] - left), (0, 0)), constant_values=24)

    overlay = result.overlay if result.overlay is not None else result.color
    top = np.hstack([fit(result.rgb), fit(overlay)])
    depth = fit(colorize_depth(result.depth, depth_range))
    height = depth.shape[0]
    if cloud is not None:
        side = min(height, width)
        bev = birds_eye_view(cloud, depth_range[1], size=side)
        left = (width - side) // 2
        bev = np.pad(bev, ((0, height - side), (left, width - side - left), (0, 0)), constant_values=24)
    else:
        bev = np.zeros_like(depth)
    picture = np.vstack([top, np.hstack([depth, bev])])
    if caption:
        cv2.putText(picture, caption, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return picture
