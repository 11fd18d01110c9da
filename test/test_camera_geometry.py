"""Camera geometry in the per-frame path: aspect ratio, antialiasing, focal length, distortion,
camera_info pairing. Real models and real KITTI frames where the property depends on them."""
import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, shared_path
from hydranet_ros.camera.calibration import CameraCalibration
from hydranet_ros.camera.intrinsics import CalibrationError, Intrinsics
from hydranet_ros.camera.network_input import network_input_size
from hydranet_ros.inference.graph import resize_antialiased
from hydranet_ros.camera.pairing import CameraInfoBuffer
from hydranet_ros.data.dataset import read_rgb
from hydranet_ros.data.kitti import read_tracking_calibration
from hydranet_ros.data.synth import default_intrinsics, render_frame
from hydranet_ros.inference.backends.torch_backend import TorchBackend
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.inference.postprocess import CloudRequest, CloudSettings
from hydranet_ros.model.model_file import load_model

STREET_MODEL = REPO / "models" / "hydranet_street.pt"


@pytest.mark.parametrize("image, budget", [((375, 1242), (176, 608)), ((1080, 1920), (176, 608)),
                                           ((480, 640), (240, 320)), ((360, 480), (176, 608)),
                                           ((2160, 3840), (240, 320))])
def test_network_size_keeps_the_aspect_ratio_and_the_pixel_budget(image, budget):
    height, width = network_input_size(image, budget)
    assert height % 16 == 0 and width % 16 == 0
    assert abs((width / height) / (image[1] / image[0]) - 1) < 0.1
    assert abs(height * width / (budget[0] * budget[1]) - 1) < 0.15
    assert network_input_size(image, None) == image  # native-resolution models


def test_downscaling_is_antialiased():
    """A one-pixel checkerboard shrunk 4x is uniform grey, not a moire of black and white."""
    board = (np.indices((400, 800)).sum(0) % 2).astype(np.float32)[None, None] * 255
    small = resize_antialiased(torch.from_numpy(board), (100, 200))
    assert small.shape == (1, 1, 100, 200)
    assert float(small.std()) < 1.0 and abs(float(small.mean()) - 127.5) < 1.0
    plain = torch.nn.functional.interpolate(torch.from_numpy(board), size=(97, 203), mode="bilinear")
    assert float(plain.std()) > 30  # what the graph did before


def test_camera_info_pairing_by_stamp():
    a = CameraCalibration.from_fields(640, 480, "plumb_bob", [0] * 5, [500, 0, 320, 0, 500, 240, 0, 0, 1],
                                      np.eye(3).ravel(), [500, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0])
    b = CameraCalibration.from_fields(640, 480, "plumb_bob", [0] * 5, [800, 0, 320, 0, 800, 240, 0, 0, 1],
                                      np.eye(3).ravel(), [800, 0, 320, 0, 0, 800, 240, 0, 0, 0, 1, 0])
    buffer = CameraInfoBuffer(tolerance_s=0.01)
    assert buffer.match(0).status == "none"
    buffer.add(1_000_000_000, "cam", a)
    assert buffer.match(1_000_000_000).status == "exact"
    assert buffer.match(1_005_000_000).status == "nearest"
    assert buffer.match(9_000_000_000).status == "static"  # one calibration ever: it applies (latched driver)
    buffer.add(3_000_000_000, "cam", b)  # out of order is fine: stamps decide
    buffer.add(2_000_000_000, "cam", a)
    assert buffer.match(3_000_000_000).calibration == b and buffer.match(2_000_000_000).calibration == a
    late = buffer.match(9_000_000_000)
    assert late.status == "unmatched" and late.calibration == b and np.isclose(late.offset_s, -6.0)


def _pinhole_calibrations(*focal_lengths):
    """640x480 pinhole calibrations without distortion, one per focal length."""
    return [CameraCalibration.from_fields(640, 480, "plumb_bob", [0] * 5, [f, 0, 320, 0, f, 240, 0, 0, 1],
                                          np.eye(3).ravel(), [f, 0, 320, 0, 0, f, 240, 0, 0, 0, 1, 0])
            for f in focal_lengths]


def test_an_image_waits_briefly_for_its_late_camera_info_only_when_the_calibration_changes():
    """wait_for_match: a CameraInfo that arrives during the wait is taken; with one fixed calibration,
    or when the caller stops, there is no wait; without one it gives up after the timeout."""
    import threading
    import time
    a, b = _pinhole_calibrations(500, 800)
    arrived = threading.Condition()
    buffer = CameraInfoBuffer(tolerance_s=0.01)
    with arrived:
        start = time.monotonic()
        assert buffer.wait_for_match(5, arrived, 0.2).status == "none"
        assert time.monotonic() - start >= 0.2
    buffer.add(1_000_000_000, "cam", a)
    with arrived:
        start = time.monotonic()
        assert buffer.wait_for_match(7_000_000_000, arrived, 5.0).status == "static"  # one calibration: no wait
        assert time.monotonic() - start < 0.1
    buffer.add(2_000_000_000, "cam", b)

    def camera_info_arrives():
        time.sleep(0.05)
        with arrived:
            buffer.add(3_000_000_000, "cam", a)
            arrived.notify_all()
    sender = threading.Thread(target=camera_info_arrives)
    with arrived:
        sender.start()
        match = buffer.wait_for_match(3_000_000_000, arrived, 5.0)
    sender.join()
    assert match.status == "exact" and match.calibration == a
    with arrived:
        start = time.monotonic()
        assert buffer.wait_for_match(9_000_000_000, arrived, 5.0, stopping=lambda: True).status == "unmatched"
        assert time.monotonic() - start < 0.1


def test_the_frame_where_a_streamed_calibration_changes_waits_for_its_own_camera_info():
    """CameraInfos streaming with one calibration, then the camera's calibration changes and the new one
    arrives 30 ms after its image: the image takes the new one (exact), not the previous fx."""
    import threading
    import time
    old, new = _pinhole_calibrations(500, 800)
    arrived = threading.Condition()
    buffer = CameraInfoBuffer(tolerance_s=0.01)
    for stamp in (1_000_000_000, 1_100_000_000):
        buffer.add(stamp, "cam", old)

    def camera_info_arrives():
        time.sleep(0.03)
        with arrived:
            buffer.add(1_200_000_000, "cam", new)
            arrived.notify_all()
    sender = threading.Thread(target=camera_info_arrives)
    with arrived:
        sender.start()
        match = buffer.wait_for_match(1_200_000_000, arrived, 0.1)
    sender.join()
    assert match.status == "exact" and match.calibration == new


def test_fallback_intrinsics_are_unset_at_zero_and_refused_when_no_camera_has_them():
    from hydranet_ros.camera.intrinsics import fallback_intrinsics
    assert fallback_intrinsics([0.0, 0.0, 0.0, 0.0], 640, 480) is None
    assert fallback_intrinsics([500.0, 500.0, 320.0, 240.0], 640, 480) == Intrinsics(500, 500, 320, 240, 640, 480)
    with pytest.raises(CalibrationError, match="fallback_intrinsics: focal length"):
        fallback_intrinsics([5.0, 5.0, 320.0, 240.0], 640, 480)


@pytest.fixture(scope="module")
def street():
    if not STREET_MODEL.is_file():
        pytest.skip("the shipped street model is absent")
    model, spec = load_model(STREET_MODEL)
    return Perception(TorchBackend(model, spec, "cpu"), spec)


def test_depth_is_rescaled_to_the_cameras_focal_length(street):
    """Generated streets seen through the training camera and through one with twice its focal
    length: without rescaling the zoomed views come out about twice too near."""
    errors = {"training camera": [], "zoomed, rescaled": [], "zoomed, not rescaled": []}
    width, height = 608, 176
    for seed in range(3):
        base = default_intrinsics("street", width, height)
        zoomed = Intrinsics(base.fx * 2, base.fy * 2, base.cx, base.cy, width, height)
        for name, camera in (("training camera", base), ("zoomed, rescaled", zoomed)):
            frame = render_frame("street", 100 + seed, width, height, camera)
            result = street.process(frame.rgb, "rgb8", camera=camera)
            valid = (frame.depth > 0) & np.isfinite(result.depth)
            errors[name].append(np.abs(result.depth[valid] / frame.depth[valid] - 1))
            if name.startswith("zoomed"):
                unscaled = result.depth[valid] / result.depth_scale
                errors["zoomed, not rescaled"].append(np.abs(unscaled / frame.depth[valid] - 1))
    median = {k: float(np.median(np.concatenate(v))) for k, v in errors.items()}
    print("median relative depth error:", median)
    assert median["zoomed, rescaled"] * 3 <= median["zoomed, not rescaled"], median
    assert median["zoomed, rescaled"] < 2 * median["training camera"] + 0.05, median


def _distort(image: np.ndarray, k: np.ndarray, d: np.ndarray) -> np.ndarray:
    """What a camera with distortion d would have captured of the pinhole image (camera k)."""
    height, width = image.shape[:2]
    u, v = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    pixels = np.stack([u.ravel(), v.ravel()], axis=1)[:, None, :]
    undistorted = cv2.undistortPoints(pixels, k, d, P=k).reshape(height, width, 2)
    return cv2.remap(image, undistorted[..., 0], undistorted[..., 1], cv2.INTER_LINEAR)


def test_distorted_images_are_rectified_and_their_clouds_land_where_the_geometry_says(street):
    root = shared_path("data", "kitti_tracking_0001")
    rgb = read_rgb(root / "image_2" / "0001" / "000000.png")
    pinhole = read_tracking_calibration(root / "calib" / "0001.txt").intrinsics(rgb.shape[1], rgb.shape[0])
    k = pinhole.matrix()
    d = np.array([-0.25, 0.08, 0.0005, -0.0005, 0.0])
    distorted = _distort(rgb, k, d)
    p = np.hstack([k, np.zeros((3, 1))]).ravel()
    calibration = CameraCalibration.from_fields(rgb.shape[1], rgb.shape[0], "plumb_bob", d, k.ravel(),
                                                np.eye(3).ravel(), p)
    reference_camera = CameraCalibration.from_fields(rgb.shape[1], rgb.shape[0], "plumb_bob", [0.0] * 5, k.ravel(),
                                                     np.eye(3).ravel(), p)
    clouds = CloudRequest(CloudSettings(stride=4, max_depth=80.0))
    reference = street.process(rgb, "rgb8", camera=reference_camera, clouds=clouds).cloud
    errors = {}
    for mode in ("auto", "never"):
        result = street.process(distorted, "rgb8", camera=calibration, rectify=mode, clouds=clouds)
        assert result.rectified == (mode == "auto")
        cloud = result.cloud
        # Compare inside the frame's centre 80 %, where the rectified image has content.
        rows, cols = cloud.shape
        window = (slice(rows // 10, rows - rows // 10), slice(cols // 10, cols - cols // 10))
        a = np.stack([reference[axis][window] for axis in "xyz"], -1)
        b = np.stack([cloud[axis][window] for axis in "xyz"], -1)
        valid = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
        a, b = a[valid], b[valid]
        distance = np.linalg.norm(a - b, axis=-1) / a[:, 2]
        errors[mode] = {"median": float(np.median(distance)), "p90": float(np.percentile(distance, 90)),
                        "bias": float(np.median(b[:, 2] / a[:, 2]) - 1)}
        centre = (slice(rgb.shape[0] // 10, -rgb.shape[0] // 10), slice(rgb.shape[1] // 10, -rgb.shape[1] // 10))
        errors[mode]["image"] = float(np.median(np.abs(result.rgb[centre].astype(int) - rgb[centre])))
    # Rectified, the image is the pinhole image again (up to resampling blur) and the points land
    # where the undistorted geometry puts them: per point the network's depth differs by about what
    # the blur of two resamplings costs it, and its overall bias from that blur stays within 2 %
    # (model-dependent: -0.4 % and -1.2 % for the last two street models). Unrectified, points are far off.
    assert errors["auto"]["image"] <= 3 < errors["never"]["image"], errors
    assert abs(errors["auto"]["bias"]) < 0.02 and errors["auto"]["median"] < 0.02, errors
    # Distortion grows towards the edges: there, unrectified points are far off.
    assert errors["never"]["p90"] > 3 * errors["auto"]["p90"], errors
    print("point errors relative to depth:", errors)


def test_fisheye_is_rectified_with_the_fisheye_model_and_unknown_models_are_refused():
    k = [300.0, 0, 320, 0, 300.0, 240, 0, 0, 1]
    p = [300.0, 0, 320, 0, 0, 300.0, 240, 0, 0, 0, 1, 0]
    fisheye = CameraCalibration.from_fields(640, 480, "equidistant", [0.1, -0.05, 0.01, 0.0], k, np.eye(3).ravel(), p)
    assert fisheye.needs_rectification("auto")
    from hydranet_ros.camera.calibration import Rectifier
    image = np.full((480, 640, 3), 200, np.uint8)
    out = Rectifier()(image, fisheye)
    assert out.shape == image.shape and out[240, 320].tolist() == [200, 200, 200]
    with pytest.raises(CalibrationError, match="distortion model 'kannala'"):
        CameraCalibration.from_fields(640, 480, "kannala", [0.1, 0, 0, 0], k, np.eye(3).ravel(), p)
    binned = CameraCalibration.from_fields(640, 480, "plumb_bob", [0.1, 0, 0, 0, 0], k, np.eye(3).ravel(), p,
                                           binning_x=2, binning_y=2)
    with pytest.raises(CalibrationError, match="binned or ROI"):
        Rectifier()(np.zeros((240, 320, 3), np.uint8), binned)


@pytest.mark.parametrize("model, count", [("plumb_bob", 1000), ("plumb_bob", 4), ("rational_polynomial", 5),
                                          ("equidistant", 5), ("kannala", 15)])
def test_a_distortion_vector_of_the_wrong_length_is_refused_where_it_enters(model, count):
    """1000 coefficients used to be accepted, and every frame paired with them then failed in OpenCV."""
    k = [300.0, 0, 320, 0, 300.0, 240, 0, 0, 1]
    p = [300.0, 0, 320, 0, 0, 300.0, 240, 0, 0, 0, 1, 0]
    with pytest.raises(CalibrationError, match=f"camera_info has {count} distortion coefficients for '{model}'"):
        CameraCalibration.from_fields(640, 480, model, [0.01] * count, k, np.eye(3).ravel(), p)
    for good_model, good_count in (("plumb_bob", 5), ("plumb_bob", 0), ("rational_polynomial", 8), ("equidistant", 4)):
        CameraCalibration.from_fields(640, 480, good_model, [0.0] * good_count, k, np.eye(3).ravel(), p)


def test_ground_plane_depth_equals_the_ray_cast_depth_of_a_flat_road():
    """A level camera 1.65 m above the generated street's flat ground: every road pixel's ray-cast
    depth is the ground-plane depth of its row; sky rows above the horizon get none."""
    from hydranet_ros.camera.ground_plane import ground_plane_depth
    from hydranet_ros.data.synth import BUILDERS, Texturer, render
    rng = np.random.default_rng(7)
    builder = BUILDERS["street"]()
    scene = builder.build(rng)
    intrinsics = Intrinsics(300.0, 300.0, 303.5, 87.5, 608, 176)
    frame = render(scene, intrinsics, np.array([0.0, 1.65, 10.0]), 0.0, 0.0, 0.0, rng, Texturer(rng))
    road = frame.labels == 2
    heights = np.where(road, 1.65, np.nan)
    plane = ground_plane_depth(intrinsics, heights, max_depth=40.0)
    near = road & (frame.depth > 0) & (frame.depth <= 39.0)
    assert near.sum() > 5000
    assert np.allclose(plane[near], frame.depth[near], rtol=1e-3)
    assert not plane[: int(intrinsics.cy) + 1].any() and not plane[~road].any()
    assert plane.max() <= 40.0 and plane.dtype == np.float32


def _rotation_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def test_quaternions_round_trip_also_near_half_turns():
    from hydranet_ros.camera.transforms import matrix_to_quaternion, quaternion_to_matrix
    rng = np.random.default_rng(3)
    rotations = [np.linalg.qr(rng.normal(size=(3, 3)))[0] for _ in range(50)]
    rotations = [r * np.sign(np.linalg.det(r)) for r in rotations]  # proper rotations
    rotations += [np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), _rotation_z(np.pi - 1e-9)]
    for rotation in rotations:
        assert np.allclose(quaternion_to_matrix(*matrix_to_quaternion(rotation)), rotation, atol=1e-9)
    assert np.allclose(matrix_to_quaternion(_rotation_z(np.pi / 2)), (0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)))


def test_transform_buffer_chains_static_and_moving_frames_and_interpolates_in_time():
    """map -> odom -> base_link (moving) with two static sensors on base_link: a point seen by the LiDAR
    lands in the camera's and the map's frames as the matrices multiplied by hand say."""
    from hydranet_ros.camera.transforms import TransformBuffer, matrix_to_quaternion
    buffer = TransformBuffer(max_gap_s=1.0)
    camera_mount = np.eye(4)
    camera_mount[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0.0]])  # optical frame on a forward body
    camera_mount[:3, 3] = (0.3, 0.0, 1.2)
    lidar_mount = np.eye(4)
    lidar_mount[:3, 3] = (0.0, 0.1, 1.6)
    for name, mount in (("camera_optical", camera_mount), ("velodyne", lidar_mount)):
        buffer.add("base_link", name, 0, mount[:3, 3], matrix_to_quaternion(mount[:3, :3]), static=True)
    for stamp in (1_000_000_000, 2_000_000_000):
        buffer.add("/map", "odom", stamp, (1.0, 2.0, 0.0), (0, 0, 0, 1))
    buffer.add("odom", "base_link", 1_000_000_000, (0.0, 0.0, 0.0), matrix_to_quaternion(_rotation_z(0.0)))
    buffer.add("odom", "base_link", 1_500_000_000, (2.0, 0.0, 0.0), matrix_to_quaternion(_rotation_z(np.pi / 2)))
    point = np.array([5.0, -1.0, 0.5, 1.0])  # in the LiDAR's frame
    in_camera = buffer.lookup("camera_optical", "velodyne", 1_200_000_000) @ point
    assert np.allclose(in_camera, np.linalg.inv(camera_mount) @ lidar_mount @ point)  # static: any time
    halfway = np.eye(4)
    halfway[:3, :3], halfway[:3, 3] = _rotation_z(np.pi / 4), (1.0, 0.0, 0.0)  # slerp and lerp at 1.25 s
    odom = np.eye(4)
    odom[:3, 3] = (1.0, 2.0, 0.0)
    in_map = buffer.lookup("map", "velodyne", 1_250_000_000) @ point
    assert np.allclose(in_map, odom @ halfway @ lidar_mount @ point)
    there_and_back = buffer.lookup("velodyne", "map", 1_250_000_000) @ buffer.lookup("map", "velodyne", 1_250_000_000)
    assert np.allclose(there_and_back, np.eye(4))
    assert buffer.frames() == ["base_link", "camera_optical", "map", "odom", "velodyne"]


def test_transform_buffer_says_which_transform_is_missing():
    from hydranet_ros.camera.transforms import TransformBuffer, TransformError, TransformTimeError
    buffer = TransformBuffer(max_gap_s=0.5)
    buffer.add("base_link", "camera_optical", 0, (0, 0, 0), (0, 0, 0, 1), static=True)
    buffer.add("odom", "base_link", 0, (0, 0, 0), (0, 0, 0, 1))
    buffer.add("odom", "base_link", 3_000_000_000, (1, 0, 0), (0, 0, 0, 1))
    buffer.add("lidar_mount", "velodyne", 0, (0, 0, 0), (0, 0, 0, 1), static=True)
    with pytest.raises(TransformError, match="from velodyne to camera_optical: no chain of transforms joins them") \
            as missing:
        buffer.lookup("camera_optical", "velodyne", 0)
    assert not isinstance(missing.value, TransformTimeError)  # a missing frame is not a matter of time
    with pytest.raises(TransformError, match="radar is in no transform"):
        buffer.lookup("camera_optical", "radar", 0)
    with pytest.raises(TransformTimeError, match="odom -> base_link at 1.500 s: no sample between 0.000 and 3.000 s"):
        buffer.lookup("odom", "camera_optical", 1_500_000_000)
    with pytest.raises(TransformTimeError, match="known from 0.000 to 3.000 s"):
        buffer.lookup("odom", "camera_optical", 4_000_000_000)
    assert np.allclose(buffer.lookup("odom", "camera_optical", 3_400_000_000)[:3, 3], (1, 0, 0))  # within the gap


def test_points_to_depth_keeps_the_nearest_point_of_each_pixel_and_drops_those_behind():
    from hydranet_ros.camera.intrinsics import points_to_depth
    camera = Intrinsics(100.0, 100.0, 1.5, 1.5, 4, 4)
    points = np.array([[0.0, 0.0, 4.0],     # pixel (1.5, 1.5) rounds to (2, 2)
                       [0.0, 0.0, 2.0],     # the same pixel, nearer: it wins
                       [-0.015, -0.015, 1.0],  # pixel (0, 0)
                       [0.0, 0.0, -3.0],    # behind the camera
                       [1.0, 0.0, 1.0],     # off the image
                       [np.nan, 0.0, 1.0]])
    depth = points_to_depth(points, camera)
    expected = np.zeros((4, 4), np.float32)
    expected[2, 2], expected[0, 0] = 2.0, 1.0
    np.testing.assert_array_equal(depth, expected)
    # P's fourth column (a stereo baseline) shifts the pixels: -fx * 0.01 m moves a 1 m point one pixel left
    shifted = points_to_depth(points[2:3] + [0.01, 0, 0], camera, (-1.0, 0.0, 0.0))
    assert shifted[0, 0] == 1.0


def test_stixel_depth_gives_standing_things_the_depth_of_their_ground_contact():
    """Columns of a level camera 1.5 m up (fy 100, cy 10): a car run on the road takes the road's depth
    just below it; a building run that ends on the car (occluded contact), a run at the image's bottom
    edge, vegetation and sky get none; ground pixels keep the plane's depth."""
    from hydranet_ros.camera.ground_plane import ground_plane_depth, stixel_depth
    road, car, building, vegetation, sky = 0, 13, 2, 8, 10
    labels = np.full((20, 4), sky, np.uint8)
    labels[12:, :] = road
    labels[5:9, 0] = building           # stands on the car below it: occluded
    labels[9:15, 0] = car               # contact: the road pixel of row 15
    labels[6:15, 1] = building          # contact row 15 as well
    labels[8:15, 2] = vegetation        # never labelled
    labels[14:, 3] = car                # runs to the bottom edge: no contact
    intrinsics = Intrinsics(100.0, 100.0, 2.0, 10.0, 4, 20)
    depth = stixel_depth(intrinsics, labels, {road: 1.5}, {car, building}, max_depth=40.0)
    contact = 100.0 * 1.5 / (15 - 10)
    assert np.allclose(depth[9:15, 0], contact) and np.allclose(depth[6:15, 1], contact)
    assert not depth[5:9, 0].any() and not depth[8:15, 2].any() and not depth[14:, 3].any()
    assert not depth[labels == sky].any()
    plane = ground_plane_depth(intrinsics, np.where(labels == road, 1.5, np.nan), 40.0)
    assert np.array_equal(depth[labels == road], plane[labels == road])


def test_geometric_depth_labels_are_accurate_where_the_stereo_frame_measures_them(tmp_path):
    """`convert kitti --geometric-depth` on KITTI semantics frame 000005 (human labels) against the stereo
    ground truth of the same frame: road and car within 0.08 abs rel, nothing but road, sidewalk and car
    labelled (the classes kept, GEOMETRIC_STANDING), and cars labelled at all."""
    from hydranet_ros.cli.main import main as hydranet
    from hydranet_ros.data.dataset import FolderDataset, read_png_unchanged
    from hydranet_ros.data.kitti import TRAINID_TO_KITTI6
    root, stereo = shared_path("data", "kitti_semantics"), shared_path("data", "kitti_stereo2015")
    assert hydranet(["convert", "kitti", str(root / "image_2"), "--trainid-labels", str(root / "semantic_trainid"),
                     "--frame-indices", "5", "--geometric-depth", "1.65", "--out", str(tmp_path / "geo")]) == 0
    [sample] = list(FolderDataset(tmp_path / "geo"))
    disparity = read_png_unchanged(stereo / "disp_occ_0" / "000005_10.png") / 256.0
    truth = np.where(disparity > 0, 721.5377 * 0.5327 / np.maximum(disparity, 1e-6), 0.0)
    labelled = sample.depth > 0
    road, sidewalk, car = (TRAINID_TO_KITTI6[i] for i in (0, 1, 13))
    assert set(np.unique(sample.segmentation[labelled])) <= {road, sidewalk, car}
    for class_id in (road, car):
        both = labelled & (truth > 0) & (sample.segmentation == class_id)
        assert both.sum() > 1000
        assert np.mean(np.abs(sample.depth[both] / truth[both] - 1)) < 0.08
