"""How a camera image becomes the network's input, and what that means for metric depth.

One policy serves the node, `infer`, `process-bag`, `evaluate` and training:

- Size: the image keeps its aspect ratio. A model has a pixel budget (its input_size, height x
  width); the image is scaled uniformly to about that many pixels, each side rounded to a multiple
  of 16. Models that run at the camera's own resolution (the authors' checkpoints) skip this.
- Downscaling is antialiased (inference/graph.py resize_antialiased, in the graph every backend runs).
- Focal length: a monocular network judges depth by apparent size, so it learns depth for the
  focal length it was trained with (in pixels at its input). For a camera whose focal length at
  the network input differs, depth scales by the ratio: Z = Z_network * f_camera / f_model.
"""
from __future__ import annotations

import math

from hydranet_ros.camera.intrinsics import Intrinsics

SIZE_MULTIPLE = 16
# What a network input (a pixel budget) may be: sides of 32 to 4096 pixels, at most 3840x2160 pixels.
MIN_INPUT_SIDE, MAX_INPUT_SIDE, MAX_INPUT_PIXELS = 32, 4096, 3840 * 2160


def input_size_problem(size) -> str | None:
    """Why (height, width) cannot be a network input's pixel budget, or None."""
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        return f"input_size must be [height, width], not {size!r}"
    if not (MIN_INPUT_SIDE <= height <= MAX_INPUT_SIDE and MIN_INPUT_SIDE <= width <= MAX_INPUT_SIDE) or \
            height * width > MAX_INPUT_PIXELS:
        return (f"input_size must be [height, width] with each side in [{MIN_INPUT_SIDE}, {MAX_INPUT_SIDE}] and "
                f"at most {MAX_INPUT_PIXELS} pixels, not {list(size)}")
    return None


def camera_size_problem(size) -> str | None:
    """Why (height, width) cannot be a camera image's size, or None: positive sides, at most the node's
    default max_image_pixels (3840x2160)."""
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        return f"an image size is [height, width], not {size!r}"
    if height < 1 or width < 1 or height * width > MAX_INPUT_PIXELS:
        return f"an image size needs positive sides and at most {MAX_INPUT_PIXELS} pixels (3840x2160), not " \
               f"{height} {width}"
    return None


def network_input_size(image_size: tuple[int, int], pixel_budget: tuple[int, int] | None) -> tuple[int, int]:
    """(height, width) the network sees an image of image_size=(height, width) at.

    pixel_budget (height, width) gives the number of pixels; None runs at the image's own size.
    """
    height, width = int(image_size[0]), int(image_size[1])
    if pixel_budget is None:
        return height, width
    scale = math.sqrt(pixel_budget[0] * pixel_budget[1] / (height * width))
    return (max(SIZE_MULTIPLE, round(height * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE),
            max(SIZE_MULTIPLE, round(width * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE))


def focal_at(intrinsics: Intrinsics, size: tuple[int, int]) -> float:
    """The camera's focal length in pixels of an image resized to size=(height, width)
    (geometric mean of fx and fy: rounding the sides may scale them very slightly differently)."""
    return math.sqrt(intrinsics.fx * size[1] / intrinsics.width * intrinsics.fy * size[0] / intrinsics.height)


def depth_scale(intrinsics: Intrinsics | None, size: tuple[int, int], model_focal_px: float | None) -> float:
    """Factor from the network's depth to metric depth for this camera at network size `size`;
    1 when the camera or the model's training camera is unknown."""
    if intrinsics is None or not model_focal_px:
        return 1.0
    return focal_at(intrinsics, size) / model_focal_px
