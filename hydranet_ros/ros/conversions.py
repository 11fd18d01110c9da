"""sensor_msgs <-> numpy without cv_bridge, and without rclpy.

Decoding reads only the message fields (encoding, width, height, step, is_bigendian, data), so it
works on any object with those attributes. Encoding imports the message classes lazily.
"""
from __future__ import annotations

import cv2
import numpy as np
import simplejpeg

from hydranet_ros.camera.calibration import CameraCalibration
from hydranet_ros.camera.intrinsics import Intrinsics

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1),
    "bayer_rggb8": (np.uint8, 1), "bayer_bggr8": (np.uint8, 1), "bayer_gbrg8": (np.uint8, 1),
    "bayer_grbg8": (np.uint8, 1), "yuv422": (np.uint8, 2), "yuv422_yuy2": (np.uint8, 2),
    "uyvy": (np.uint8, 2), "yuyv": (np.uint8, 2),
    "rgb16": (np.uint16, 3), "bgr16": (np.uint16, 3), "rgba16": (np.uint16, 4), "bgra16": (np.uint16, 4),
}
# What the network takes as is (inference/pipeline.to_rgb).
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
# Camera encodings converted to rgb8 with OpenCV. OpenCV names a Bayer pattern by the second row's
# second and third pixels, so ROS's RGGB is OpenCV's BG (test_conversions checks each against a mosaic).
CAMERA_CONVERSIONS = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB, "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB, "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
    # Jazzy names them uyvy and yuyv and deprecates the older names (sensor_msgs image_encodings.hpp)
    "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
YUV422_ENCODINGS = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
SIXTEEN_BIT_COLOR = {"rgb16": "rgb8", "bgr16": "bgr8", "rgba16": "rgba8", "bgra16": "bgra8"}
CAMERA_ENCODINGS = COLOR_ENCODINGS + tuple(CAMERA_CONVERSIONS) + tuple(SIXTEEN_BIT_COLOR)


class ImageFormatError(ValueError):
    """A message whose contents do not describe a usable image."""


def to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """uint8 image in rgb8, bgr8, rgba8, bgra8 or mono8 layout -> H x W x 3 RGB."""
    if encoding == "rgb8":
        return image
    conversions = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
                   "mono8": cv2.COLOR_GRAY2RGB}
    if encoding not in conversions:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: rgb8, {', '.join(conversions)}")
    return cv2.cvtColor(image, conversions[encoding])


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


def camera_image_to_array(msg, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """A camera's Image message -> (array, encoding) in one of COLOR_ENCODINGS: Bayer mosaics are
    demosaiced, YUV 4:2:2 converted to RGB, 16-bit colour scaled to 8 bits."""
    if msg.encoding not in CAMERA_ENCODINGS:
        raise ImageFormatError(f"encoding {msg.encoding!r} is not a camera image the node takes; accepted: "
                               f"{', '.join(CAMERA_ENCODINGS)}")
    array = image_to_array(msg, max_pixels)
    if msg.encoding in CAMERA_CONVERSIONS:
        if msg.encoding.startswith("bayer_") and min(array.shape) < 2:
            raise ImageFormatError(f"a {msg.encoding} image needs at least 2x2 pixels, not {msg.width}x{msg.height}")
        if msg.encoding in YUV422_ENCODINGS and msg.width % 2:
            raise ImageFormatError(f"a {msg.encoding} image has an even width (two pixels share U and V), "
                                   f"not {msg.width}")
        return cv2.cvtColor(array, CAMERA_CONVERSIONS[msg.encoding]), "rgb8"
    if msg.encoding in SIXTEEN_BIT_COLOR:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8), SIXTEEN_BIT_COLOR[msg.encoding]
    return array, msg.encoding


def input_image_to_array(msg, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """An Image or CompressedImage from a camera -> (array, encoding) in one of COLOR_ENCODINGS."""
    if hasattr(msg, "encoding"):
        return camera_image_to_array(msg, max_pixels)
    return compressed_to_array(msg, max_pixels)


def compressed_dimensions(data: bytes | np.ndarray) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR or a JPEG's frame header, read without decoding the pixels."""
    data = np.frombuffer(memoryview(data), dtype=np.uint8)
    head = data[:24].tobytes()
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:2] == b"\xff\xd8":  # libjpeg reads the markers; a large EXIF block before the frame is fine
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data, strict=False)
        except (ValueError, KeyError) as error:  # KeyError: a header cut before its colour space
            raise ImageFormatError(f"compressed image cannot be decoded: a JPEG without a readable frame "
                                   f"header ({error})") from None
        return width, height
    raise ImageFormatError("compressed image is neither JPEG nor PNG (what image_transport's compressed "
                           "transport sends)")


def compressed_to_array(msg, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """CompressedImage (JPEG/PNG) -> (BGR array, "bgr8"). The size is read from the header and
    checked against max_pixels before decoding, so a small file claiming a huge image costs nothing.
    A JPEG that libjpeg decodes only with a warning (corrupt entropy data) is refused, not served."""
    data = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if data.size == 0:
        raise ImageFormatError("compressed image is empty")
    width, height = compressed_dimensions(data)
    if width == 0 or height == 0:
        raise ImageFormatError(f"compressed image header says {width}x{height}")
    if max_pixels and width * height > max_pixels:
        raise ImageFormatError(f"compressed image header says {width}x{height}, which exceeds the limit of "
                               f"{max_pixels} pixels (max_image_pixels); not decoded")
    if data[:2].tobytes() == b"\xff\xd8":
        try:  # strict: libjpeg's recoverable errors ("Corrupt JPEG data") raise instead of warning
            return simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True), "bgr8"
        except (ValueError, KeyError) as error:
            raise ImageFormatError(f"compressed image cannot be decoded: corrupt JPEG ({error})") from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as error:
        raise ImageFormatError(f"compressed image cannot be decoded: {error.err}") from None
    if image is None:
        raise ImageFormatError(f"compressed image ({msg.format or 'unknown format'}, {data.size} bytes) "
                               "cannot be decoded: corrupt or truncated")
    if image.shape[:2] != (height, width):
        raise ImageFormatError(f"compressed image decodes to {image.shape[1]}x{image.shape[0]}, its header "
                               f"says {width}x{height}")
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


def stamp_ns(header) -> int:
    """A std_msgs/Header's stamp in nanoseconds (any object with stamp.sec and stamp.nanosec)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def camera_info_to_calibration(msg) -> CameraCalibration:
    """The checked calibration of a CameraInfo message (raises CalibrationError)."""
    roi = msg.roi
    return CameraCalibration.from_fields(msg.width, msg.height, msg.distortion_model, list(msg.d), list(msg.k),
                                         list(msg.r), list(msg.p), msg.binning_x, msg.binning_y,
                                         (roi.x_offset, roi.y_offset, roi.width, roi.height))


def output_camera_info_fields(intrinsics: Intrinsics, width: int, height: int,
                              projection_column: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> dict:
    """CameraInfo fields for outputs of width x height made from images with the pinhole camera
    `intrinsics` (rectified when the input was distorted): D zero, R the identity, K and P scaled,
    so depth_image_proc and Nav2 can use the outputs directly."""
    scaled = intrinsics.scaled_to(width, height)
    sx, sy = width / intrinsics.width, height / intrinsics.height
    p = np.hstack([scaled.matrix(), np.array([[projection_column[0] * sx], [projection_column[1] * sy],
                                              [projection_column[2]]])])
    return {"width": width, "height": height, "distortion_model": "plumb_bob", "d": [0.0] * 5,
            "k": scaled.matrix().ravel().tolist(), "r": np.eye(3).ravel().tolist(), "p": p.ravel().tolist()}


def output_camera_info(intrinsics: Intrinsics, width: int, height: int, header,
                       projection_column: tuple[float, float, float] = (0.0, 0.0, 0.0)):
    from sensor_msgs.msg import CameraInfo
    return CameraInfo(header=header, **output_camera_info_fields(intrinsics, width, height, projection_column))


# PointField datatypes (sensor_msgs/PointField): FLOAT32 = 7, UINT8 = 2.
CLOUD_FIELDS = (("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7), ("label", 16, 2))


def pointcloud2_fields(cloud: np.ndarray) -> dict:
    """PointCloud2 fields (without header and field list) for a CLOUD_DTYPE array (rows x cols)."""
    height, width = cloud.shape
    return {"height": height, "width": width, "is_bigendian": False, "point_step": cloud.dtype.itemsize,
            "row_step": cloud.dtype.itemsize * width,
            # Dense means every point is finite, whatever the cloud's shape.
            "is_dense": bool(np.isfinite(cloud["x"]).all() and np.isfinite(cloud["y"]).all()
                             and np.isfinite(cloud["z"]).all()),
            "data": np.ascontiguousarray(cloud).view(np.uint8).reshape(-1)}


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


class PointCloudFormatError(ValueError):
    """A PointCloud2 whose fields or data do not describe x, y, z points."""


# PointField datatype -> numpy type (sensor_msgs/PointField constants INT8 = 1 .. FLOAT64 = 8).
POINT_FIELD_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pointcloud2_xyz(msg) -> np.ndarray:
    """Any PointCloud2 with x, y, z fields (a LiDAR's, whatever else its points carry) -> N x 3 float64,
    row padding and non-finite points removed."""
    fields = {f.name: f for f in msg.fields}
    missing = [name for name in "xyz" if name not in fields]
    if missing:
        raise PointCloudFormatError(f"the point cloud has no {', '.join(missing)} field (fields: "
                                    f"{', '.join(fields) or 'none'})")
    order = ">" if msg.is_bigendian else "<"
    height, width, point_step, row_step = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    dtypes = {}
    for name in "xyz":
        field = fields[name]
        if field.datatype not in POINT_FIELD_TYPES:
            raise PointCloudFormatError(f"the point cloud's {name} field has an unknown datatype {field.datatype}")
        dtypes[name] = np.dtype(order + POINT_FIELD_TYPES[field.datatype])
        if field.offset + dtypes[name].itemsize > point_step:
            raise PointCloudFormatError(f"the point cloud's {name} field ({dtypes[name].itemsize} bytes at offset "
                                        f"{field.offset}) does not fit in its points of {point_step} bytes")
    data = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if width * point_step > row_step or data.size < row_step * height:
        raise PointCloudFormatError(f"the point cloud's data ({data.size} bytes) does not hold {height} x {width} "
                                    f"points of {point_step} bytes in rows of {row_step}")
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, width * point_step), strides=(row_step, 1))
    points = np.ascontiguousarray(rows).reshape(height * width, point_step)
    columns = []
    for name in "xyz":
        field, dtype = fields[name], dtypes[name]
        columns.append(points[:, field.offset:field.offset + dtype.itemsize].copy().view(dtype)[:, 0])
    xyz = np.stack(columns, axis=1).astype(np.float64)
    return xyz[np.isfinite(xyz).all(axis=1)]
