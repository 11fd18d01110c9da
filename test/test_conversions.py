"""Image <-> numpy for every supported encoding (row padding, big-endian), CameraInfo scaling."""
import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from ros_harness import camera_encoded, corrupt_but_decodable_jpeg
from hydranet_ros.camera.intrinsics import CalibrationError
from hydranet_ros.ros.conversions import (CAMERA_ENCODINGS, ENCODINGS, ImageFormatError, array_to_image,
                                          camera_image_to_array, camera_info_to_calibration, compressed_to_array,
                                          image_to_array, output_camera_info, to_rgb)


def _message(array, encoding, padding=0, bigendian=False):
    """An Image with `padding` extra bytes at the end of every row."""
    height, width = array.shape[:2]
    data = array.astype(array.dtype.newbyteorder(">" if bigendian else "<")).reshape(height, -1).view(np.uint8)
    padded = np.zeros((height, data.shape[1] + padding), np.uint8)
    padded[:, :data.shape[1]] = data
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("padding", [0, 7])
def test_every_encoding_round_trips_with_row_padding(encoding, padding):
    dtype, channels = ENCODINGS[encoding]
    shape = (5, 6, channels) if channels > 1 else (5, 6)
    rng = np.random.default_rng(0)
    array = (rng.random(shape) * 1000).astype(dtype) if dtype != np.uint8 else rng.integers(0, 256, shape).astype(dtype)
    assert np.array_equal(image_to_array(_message(array, encoding, padding)), array)
    assert np.array_equal(image_to_array(array_to_image(array, encoding, Header())), array)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1", "mono16"])
def test_big_endian_data_is_read_in_native_order(encoding):
    dtype, _ = ENCODINGS[encoding]
    array = np.arange(12, dtype=dtype).reshape(3, 4) * 3 + 1
    decoded = image_to_array(_message(array, encoding, padding=2, bigendian=True))
    assert np.array_equal(decoded, array) and decoded.dtype.isnative


def test_colour_layouts_become_the_same_rgb():
    rgb = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    layouts = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.dstack([rgb, np.full((4, 5), 9, np.uint8)]),
               "bgra8": np.dstack([rgb[..., ::-1], np.zeros((4, 5), np.uint8)])}
    for encoding, array in layouts.items():
        assert np.array_equal(to_rgb(image_to_array(_message(array, encoding)), encoding), rgb), encoding
    gray = rgb[..., 0].copy()
    assert np.array_equal(to_rgb(gray, "mono8"), np.dstack([gray] * 3))


def _smooth_rgb(height=48, width=64):
    """R rises left to right, B top to bottom, G constant: a swapped R and B shows at once."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 255 // (width - 1), np.full_like(x, 120), y * 255 // (height - 1)]).astype(np.uint8)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_mosaics_are_demosaiced_to_the_scene(pattern):
    rgb = _smooth_rgb()
    array, encoding = camera_image_to_array(_message(camera_encoded(rgb, f"bayer_{pattern}8"), f"bayer_{pattern}8",
                                                     padding=3))
    inner = (slice(2, -2), slice(2, -2))  # demosaicing guesses at the border
    error = np.abs(array[inner].astype(int) - rgb[inner].astype(int))
    assert encoding == "rgb8" and array.shape == rgb.shape
    assert error.max() <= 4, (pattern, error.max())


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2", "uyvy", "yuyv"])  # Jazzy: uyvy, yuyv
def test_yuv422_byte_orders_become_rgb(encoding):
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [200, 100, 50]], np.uint8)
    rgb = np.repeat(np.repeat(colours[None], 2, axis=1), 3, axis=0)  # two pixels of each colour share U, V
    array, out_encoding = camera_image_to_array(_message(camera_encoded(rgb, encoding), encoding))
    assert out_encoding == "rgb8"
    assert np.abs(array.astype(int) - rgb.astype(int)).max() <= 3


@pytest.mark.parametrize("encoding, expected", [("rgb16", "rgb8"), ("bgr16", "bgr8"), ("rgba16", "rgba8"),
                                                ("bgra16", "bgra8")])
def test_sixteen_bit_colour_is_scaled_to_eight_bits(encoding, expected):
    channels = ENCODINGS[encoding][1]
    eight = np.random.default_rng(3).integers(0, 256, (4, 5, channels), dtype=np.uint8)
    array, out_encoding = camera_image_to_array(_message(eight.astype(np.uint16) * 257, encoding, bigendian=True))
    assert out_encoding == expected and np.array_equal(array, eight)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1", "mono16", "8UC3", "nv21"])
def test_a_camera_image_in_another_encoding_is_refused_naming_what_is_accepted(encoding):
    dtype, channels = ENCODINGS.get(encoding, (np.uint8, 1))
    msg = _message(np.zeros((4, 4, channels) if channels > 1 else (4, 4), dtype), encoding)
    with pytest.raises(ImageFormatError) as refused:
        camera_image_to_array(msg)
    accepted = str(refused.value).split("accepted: ")[1].split(", ")
    assert accepted == list(CAMERA_ENCODINGS) and encoding not in accepted
    assert {"bayer_rggb8", "yuv422", "yuv422_yuy2", "rgb16", "bgr16", "rgb8", "mono8"} <= set(accepted)


def test_odd_sized_bayer_and_yuv_images_are_refused():
    for encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        with pytest.raises(ImageFormatError, match="even width"):
            camera_image_to_array(_message(np.zeros((2, 3, 2), np.uint8), encoding))
    with pytest.raises(ImageFormatError, match="at least 2x2"):
        camera_image_to_array(_message(np.zeros((1, 8), np.uint8), "bayer_rggb8"))


@pytest.mark.parametrize("mutate, message", [
    (lambda m: setattr(m, "encoding", "nv21"), "unsupported encoding"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "needs"),
    (lambda m: setattr(m, "step", 5), "step 5 is smaller"),
    (lambda m: setattr(m, "width", 0), "zero size"),
])
def test_malformed_images_are_refused_with_a_reason(mutate, message):
    msg = _message(np.zeros((4, 4, 3), np.uint8), "rgb8")
    mutate(msg)
    with pytest.raises(ImageFormatError, match=message):
        image_to_array(msg)


def test_size_limit():
    with pytest.raises(ImageFormatError, match="exceeds the limit"):
        image_to_array(_message(np.zeros((10, 10, 3), np.uint8), "rgb8"), max_pixels=99)


def test_compressed_images_decode_and_corrupt_ones_are_refused():
    rgb = np.random.default_rng(2).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    for fmt in ("png", "jpeg"):
        ok, encoded = cv2.imencode(".png" if fmt == "png" else ".jpg", rgb)
        msg = CompressedImage(format=fmt)
        msg.data = encoded.tobytes()
        image, encoding = compressed_to_array(msg)
        assert image.shape == (16, 24, 3) and encoding == "bgr8"
    msg.data = encoded.tobytes()[:40]
    with pytest.raises(ImageFormatError, match="cannot be decoded"):
        compressed_to_array(msg)


def test_a_corrupt_jpeg_that_libjpeg_decodes_with_a_warning_is_refused():
    msg = CompressedImage(format="jpeg")
    msg.data = corrupt_but_decodable_jpeg(np.random.default_rng(0).integers(0, 256, (96, 320, 3), np.uint8))
    with pytest.raises(ImageFormatError, match="corrupt JPEG .*Corrupt JPEG data"):
        compressed_to_array(msg)


def test_jpeg_size_is_read_past_a_large_exif_block():
    jpeg = cv2.imencode(".jpg", np.zeros((30, 50, 3), np.uint8))[1].tobytes()
    app1 = b"\xff\xe1" + (65535).to_bytes(2, "big") + bytes(65533)  # the largest APP1 segment, twice
    msg = CompressedImage(format="jpeg")
    msg.data = jpeg[:2] + app1 * 2 + jpeg[2:]
    assert compressed_to_array(msg, max_pixels=1500)[0].shape == (30, 50, 3)


def _camera_info(width=1242, height=375):
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.k = [721.5, 0.0, 609.5, 0.0, 721.5, 172.8, 0.0, 0.0, 1.0]
    info.p = [721.5, 0.0, 609.5, 44.9, 0.0, 721.5, 172.8, 0.2, 0.0, 0.0, 1.0, 0.003]
    info.d = [0.1, -0.2, 0.0, 0.0, 0.0]
    return info


@pytest.mark.parametrize("k, reason", [([0.0] * 9, "focal length"), ([float("nan")] + [0.0] * 8, "NaN or Inf"),
                                       ([1e-40, 0, 609.5, 0, 1e-40, 172.8, 0, 0, 1], "focal length"),
                                       ([721.5, 0, 1e30, 0, 721.5, 172.8, 0, 0, 1], "principal point")])
def test_unusable_camera_info_is_refused(k, reason):
    info = _camera_info()
    info.k = k
    with pytest.raises(CalibrationError, match=reason):
        camera_info_to_calibration(info)
    info = _camera_info()
    info.p = [float("nan")] * 12
    with pytest.raises(CalibrationError, match="unusable P"):
        camera_info_to_calibration(info)
    with pytest.raises(CalibrationError, match="is for 1242x375"):
        camera_info_to_calibration(_camera_info()).check_image(640, 480)


def test_binning_and_roi_give_the_pinhole_camera_of_the_image_actually_sent():
    info = _camera_info()
    info.d = [0.0] * 5
    info.binning_x = info.binning_y = 2
    calibration = camera_info_to_calibration(info)
    assert calibration.image_size() == (621, 187)
    pinhole = calibration.pinhole()
    assert (pinhole.fx, pinhole.cx, pinhole.width) == (721.5 / 2, 609.5 / 2, 621)
    info.binning_x = info.binning_y = 0
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 50, 640, 300
    calibration = camera_info_to_calibration(info)
    assert calibration.image_size() == (640, 300)
    assert np.allclose((calibration.pinhole().cx, calibration.pinhole().cy), (509.5, 122.8))
    with pytest.raises(CalibrationError, match=r"ROI \(100, 50, 640, 300\), which gives 640x300 images"):
        calibration.check_image(1242, 375)


def test_output_camera_info_is_the_rectified_pinhole_scaled_to_the_outputs():
    header = Header(frame_id="camera_optical")
    calibration = camera_info_to_calibration(_camera_info())
    scaled = output_camera_info(calibration.pinhole(), 621, 188, header, calibration.projection_column())
    k = np.array(scaled.k).reshape(3, 3)
    sx, sy = 621 / 1242, 188 / 375
    assert np.isclose(k[0, 0], 721.5 * sx) and np.isclose(k[1, 1], 721.5 * sy)
    assert np.isclose(k[0, 2], (609.5 + 0.5) * sx - 0.5) and np.isclose(k[1, 2], (172.8 + 0.5) * sy - 0.5)
    p = np.array(scaled.p).reshape(3, 4)
    assert np.allclose(p[:, :3], k) and np.isclose(p[0, 3], 44.9 * sx) and np.isclose(p[2, 3], 0.003)
    # The outputs are of the rectified image: no distortion, no rotation.
    assert list(scaled.d) == [0.0] * 5 and np.allclose(np.array(scaled.r).reshape(3, 3), np.eye(3))
    assert scaled.distortion_model == "plumb_bob" and scaled.header.frame_id == "camera_optical"


def _lidar_cloud(points: np.ndarray, dtype: str, big_endian: bool, row_padding: int):
    """A PointCloud2 of x, y, z and intensity in `dtype`, rows padded, built with the real message class."""
    from sensor_msgs.msg import PointCloud2, PointField
    order = ">" if big_endian else "<"
    item = np.dtype(order + dtype)
    layout = np.dtype({"names": ["x", "y", "z", "intensity"], "formats": [item] * 4,
                       "offsets": [0, item.itemsize, 2 * item.itemsize, 4 * item.itemsize],
                       "itemsize": 5 * item.itemsize})
    rows, width = points.shape[:2]
    cloud = np.zeros((rows, width), layout)
    for index, name in enumerate("xyz"):
        cloud[name] = points[..., index]
    row_bytes = width * layout.itemsize
    data = np.zeros((rows, row_bytes + row_padding), np.uint8)
    data[:, :row_bytes] = cloud.view(np.uint8).reshape(rows, row_bytes)
    datatype = {"f4": PointField.FLOAT32, "f8": PointField.FLOAT64}[dtype]
    fields = [PointField(name=name, offset=layout.fields[name][1], datatype=datatype, count=1)
              for name in ("x", "y", "z", "intensity")]
    return PointCloud2(height=rows, width=width, fields=fields, is_bigendian=big_endian,
                       point_step=layout.itemsize, row_step=row_bytes + row_padding, data=data.tobytes(),
                       is_dense=False)


@pytest.mark.parametrize("dtype, big_endian", [("f4", False), ("f8", True)])
def test_lidar_clouds_of_any_layout_give_their_finite_points(dtype, big_endian):
    from hydranet_ros.ros.conversions import pointcloud2_xyz
    points = np.random.default_rng(0).normal(0, 10, (3, 5, 3))
    points[1, 2] = np.nan  # a missing return of an organised scan
    xyz = pointcloud2_xyz(_lidar_cloud(points, dtype, big_endian, row_padding=7))
    expected = points.reshape(-1, 3)[np.isfinite(points.reshape(-1, 3)).all(axis=1)]
    assert xyz.shape == (14, 3)
    np.testing.assert_allclose(xyz, expected, rtol=1e-6 if dtype == "f4" else 0)


def test_a_cloud_without_z_is_refused_by_name():
    from sensor_msgs.msg import PointCloud2, PointField
    from hydranet_ros.ros.conversions import PointCloudFormatError, pointcloud2_xyz
    msg = PointCloud2(height=1, width=1, point_step=8, row_step=8, data=bytes(8),
                      fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                              for i, n in enumerate("xy")])
    with pytest.raises(PointCloudFormatError, match="no z field"):
        pointcloud2_xyz(msg)


@pytest.mark.parametrize("point_step, z_offset", [(0, 8), (8, 8), (16, 14), (16, 100)])
def test_a_cloud_whose_fields_do_not_fit_its_points_is_refused_in_one_line(point_step, z_offset):
    """point_step 0 or 8 with a z at offset 8, a z straddling or past the point's end: a PointCloudFormatError
    naming the field, not an IndexError or a reshape error."""
    from sensor_msgs.msg import PointCloud2, PointField
    from hydranet_ros.ros.conversions import PointCloudFormatError, pointcloud2_xyz
    fields = [PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1)
              for n, o in (("x", 0), ("y", 4), ("z", z_offset))]
    msg = PointCloud2(height=1, width=4, point_step=point_step, row_step=4 * point_step,
                      data=bytes(4 * point_step), fields=fields)
    with pytest.raises(PointCloudFormatError, match=f"field \\(4 bytes at offset \\d+\\) does not fit in its points "
                                                    f"of {point_step} bytes"):
        pointcloud2_xyz(msg)
