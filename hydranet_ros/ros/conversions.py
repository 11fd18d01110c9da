"""sensor_msgs <-> numpy without cv_bridge, and without rclpy.

Decoding reads only the message fields (encoding, width, height, step, is_bigendian, data), so it
works on any object with those attributes. Encoding imports the message classes lazily.
"""
from __future__ import annotations

import cv2
import numpy as np

from hydranet_ros.inference.geometry import Intrinsics

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


class ImageFormatError(ValueError):
    """A message whose contents do not describe a usable image."""


def image_to_array(msg, max_pixels: int | None = None) -> np.ndarray:
    """Image message -> H x W (x C) array in the message's encoding; row padding removed.

    Multi-byte data marked is_bigendian is byte-swapped to native order.
    """
    if msg.encoding not in ENCODINGS:
        raise ImageFormatError(f"unsupported encoding {msg.encoding!r}; supported: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[msg.encoding]
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if width <= 0 or height <= 0:
        raise ImageFormatError(f"image has zero size ({width}x{height})")
    if max_pixels and width * height > max_pixels:
        raise ImageFormatError(f"image {width}x{height} exceeds the limit of {max_pixels} pixels (max_image_pixels)")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise ImageFormatError(f"step {step} is smaller than width x bytes per pixel = {row_bytes}")
    data = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if data.size < step * height:
        raise ImageFormatError(f"data has {data.size} bytes, {msg.encoding} {width}x{height} with step {step} "
                               f"needs {step * height}")
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1))
    order = ">" if msg.is_bigendian else "<"
    array = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order))
    array = array.reshape(height, width, channels) if channels > 1 else array.reshape(height, width)
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def compressed_to_array(msg, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """CompressedImage (JPEG/PNG) -> (BGR array, "bgr8")."""
    data = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if data.size == 0:
        raise ImageFormatError("compressed image is empty")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageFormatError(f"compressed image ({msg.format or 'unknown format'}, {data.size} bytes) "
                               "cannot be decoded: corrupt or truncated")
    if max_pixels and image.shape[0] * image.shape[1] > max_pixels:
        raise ImageFormatError(f"image {image.shape[1]}x{image.shape[0]} exceeds the limit of {max_pixels} pixels")
    return image, "bgr8"


def image_fields(array: np.ndarray, encoding: str) -> dict:
    """The fields of an Image message holding array (little-endian, no row padding)."""
    dtype, channels = ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    height, width = array.shape[:2]
    return {"height": height, "width": width, "encoding": encoding, "is_bigendian": 0,
            "step": width * channels * array.dtype.itemsize, "data": array.view(np.uint8).reshape(-1)}


def array_to_image(array: np.ndarray, encoding: str, header):
    from sensor_msgs.msg import Image
    fields = image_fields(array, encoding)
    fields["data"] = fields["data"].tobytes()
    return Image(header=header, **fields)


def camera_info_to_intrinsics(msg, image_size: tuple[int, int] | None = None) -> Intrinsics:
    """Validated intrinsics from CameraInfo.k; image_size=(width, height) must match when given."""
    k = np.asarray(msg.k, dtype=np.float64)
    if k.shape != (9,) or not np.all(np.isfinite(k)) or k[0] <= 0 or k[4] <= 0:
        raise ImageFormatError(f"camera_info has an unusable K {k.tolist()} (zero, negative or NaN focal length)")
    if msg.width <= 0 or msg.height <= 0:
        raise ImageFormatError(f"camera_info has zero size ({msg.width}x{msg.height})")
    if image_size is not None and (msg.width, msg.height) != tuple(image_size):
        raise ImageFormatError(f"camera_info is for {msg.width}x{msg.height}, the image is "
                               f"{image_size[0]}x{image_size[1]}")
    return Intrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(msg.width), int(msg.height))


def scaled_camera_info_fields(source, width: int, height: int, fallback: Intrinsics | None = None) -> dict:
    """CameraInfo fields for outputs of width x height: K and P scaled from the input's (source, or
    fallback intrinsics when source is None); distortion and R kept."""
    if source is not None:
        intrinsics = camera_info_to_intrinsics(source)
        distortion_model, d, r = source.distortion_model, list(source.d), list(source.r)
        p = np.asarray(source.p, dtype=np.float64).reshape(3, 4)
    else:
        intrinsics = fallback
        distortion_model, d, r = "plumb_bob", [0.0] * 5, np.eye(3).ravel().tolist()
        p = np.zeros((3, 4))
    if not p.any():  # unrectified cameras may leave P empty
        p = np.hstack([intrinsics.matrix(), np.zeros((3, 1))])
    scaled = intrinsics.scaled_to(width, height)
    sx, sy = width / intrinsics.width, height / intrinsics.height
    p_scaled = p.copy()
    p_scaled[0, :] *= sx
    p_scaled[1, :] *= sy
    p_scaled[0, 2] = (p[0, 2] + 0.5) * sx - 0.5
    p_scaled[1, 2] = (p[1, 2] + 0.5) * sy - 0.5
    return {"width": width, "height": height, "distortion_model": distortion_model, "d": d,
            "k": scaled.matrix().ravel().tolist(), "r": r, "p": p_scaled.ravel().tolist()}


def scaled_camera_info(source, width: int, height: int, header, fallback: Intrinsics | None = None):
    from sensor_msgs.msg import CameraInfo
    return CameraInfo(header=header, **scaled_camera_info_fields(source, width, height, fallback))


# PointField datatypes (sensor_msgs/PointField): FLOAT32 = 7, UINT8 = 2.
CLOUD_FIELDS = (("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7), ("label", 16, 2))


def pointcloud2_fields(cloud: np.ndarray) -> dict:
    """PointCloud2 fields (without header and field list) for a CLOUD_DTYPE array (rows x cols)."""
    height, width = cloud.shape
    return {"height": height, "width": width, "is_bigendian": False, "point_step": cloud.dtype.itemsize,
            "row_step": cloud.dtype.itemsize * width,
            # Organised clouds may hold NaN points (and say so); unorganised ones hold valid points only.
            "is_dense": bool(height == 1), "data": np.ascontiguousarray(cloud).view(np.uint8).reshape(-1)}


def cloud_to_pointcloud2(cloud: np.ndarray, header):
    """A CLOUD_DTYPE structured array (rows x cols) -> PointCloud2 (organised when rows > 1)."""
    from sensor_msgs.msg import PointCloud2, PointField
    fields = pointcloud2_fields(cloud)
    fields["data"] = fields["data"].tobytes()
    point_fields = [PointField(name=n, offset=o, datatype=t, count=1) for n, o, t in CLOUD_FIELDS]
    return PointCloud2(header=header, fields=point_fields, **fields)


def pointcloud2_to_array(msg) -> np.ndarray:
    """The inverse of cloud_to_pointcloud2 for our layout (used by tests and tools)."""
    from hydranet_ros.inference.postprocess import CLOUD_DTYPE
    return np.frombuffer(bytes(msg.data), dtype=CLOUD_DTYPE).reshape(msg.height, msg.width)
