"""Depth + K -> PointCloud2: points reproject to their pixels; colours and labels read back."""
import numpy as np
from std_msgs.msg import Header

from hydranet_ros.camera.intrinsics import Intrinsics, depth_to_points
from hydranet_ros.inference.postprocess import CloudSettings, build_cloud, depth_for_ros
from hydranet_ros.ros.conversions import cloud_to_pointcloud2, pointcloud2_to_array

K = Intrinsics(fx=200.0, fy=180.0, cx=31.5, cy=23.5, width=64, height=48)


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 30.0, (48, 64)).astype(np.float32)
    labels = rng.integers(0, 6, (48, 64)).astype(np.uint8)
    color = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    return depth, labels, color


def test_points_reproject_to_their_pixels():
    depth, _, _ = _scene()
    points = depth_to_points(depth, K, stride=2)
    u = K.fx * points[..., 0] / points[..., 2] + K.cx
    v = K.fy * points[..., 1] / points[..., 2] + K.cy
    rows, cols = np.mgrid[0:48:2, 0:64:2]
    assert np.allclose(u, cols, atol=1e-3) and np.allclose(v, rows, atol=1e-3)
    assert np.allclose(points[..., 2], depth[::2, ::2])


def test_organised_cloud_message_reads_back_with_colours_labels_and_nan():
    depth, labels, color = _scene()
    depth = depth_for_ros(depth, labels, no_depth_classes=[0])  # class 0 (sky) has no depth
    cloud = build_cloud(depth, color, labels, K, CloudSettings(stride=2, max_depth=25.0, exclude_classes=(5,)))
    msg = cloud_to_pointcloud2(cloud, Header(frame_id="cam"))
    assert (msg.height, msg.width, msg.point_step) == (24, 32, 20) and not msg.is_dense
    assert [(f.name, f.offset) for f in msg.fields] == [("x", 0), ("y", 4), ("z", 8), ("rgb", 12), ("label", 16)]
    back = pointcloud2_to_array(msg)
    sub_labels, sub_depth, sub_color = labels[::2, ::2], depth[::2, ::2], color[::2, ::2]
    packed = back["rgb"].view(np.uint32)
    assert np.array_equal((packed >> 16) & 255, sub_color[..., 0])
    assert np.array_equal((packed >> 8) & 255, sub_color[..., 1])
    assert np.array_equal(packed & 255, sub_color[..., 2])
    assert np.array_equal(back["label"], sub_labels)
    invalid = (sub_labels == 0) | (sub_labels == 5) | (sub_depth > 25.0)
    assert np.isnan(back["z"][invalid]).all() and np.isfinite(back["z"][~invalid]).all()
    assert np.allclose(back["z"][~invalid], sub_depth[~invalid])


def test_unorganised_cloud_keeps_only_valid_points():
    depth, labels, color = _scene(1)
    cloud = build_cloud(depth, color, labels, K, CloudSettings(stride=1, max_depth=10.0, organized=False))
    msg = cloud_to_pointcloud2(cloud, Header())
    assert msg.height == 1 and msg.is_dense and msg.width == int((depth <= 10.0).sum())
    assert np.all(pointcloud2_to_array(msg)["z"] <= 10.0)


def test_obstacles_are_the_points_without_the_excluded_classes():
    from hydranet_ros.inference.postprocess import without_classes
    depth, labels, color = _scene(2)
    for organized in (True, False):
        cloud = build_cloud(depth, color, labels, K, CloudSettings(stride=2, max_depth=25.0, organized=organized))
        obstacles = without_classes(cloud, (2, 3), organized)
        kept = np.isfinite(obstacles["z"])
        assert not np.isin(obstacles["label"][kept], [2, 3]).any()
        expected = np.isfinite(cloud["z"]) & ~np.isin(cloud["label"], [2, 3])
        assert kept.sum() == expected.sum() > 0
        if organized:
            assert obstacles.shape == cloud.shape and np.array_equal(obstacles["rgb"], cloud["rgb"])
    bottom = slice(depth.shape[0] - 2, None)  # two rows: a cloud of one row at stride 2
    one_row = build_cloud(depth[bottom], color[bottom], labels[bottom], K.scaled_to(K.width, 2),
                          CloudSettings(stride=2, max_depth=25.0, organized=True))
    ground = np.isin(one_row["label"], [2, 3])
    assert one_row.shape == (1, -(-depth.shape[1] // 2)) and ground.any() and (~ground).any()
    obstacles = without_classes(one_row, (2, 3), organized=True)
    assert obstacles.shape == one_row.shape  # organised, a single row: it stays organised
    assert np.isnan(obstacles["z"][ground]).all() and np.array_equal(obstacles["rgb"], one_row["rgb"])


def test_cloud_bytes_are_reproducible_and_is_dense_tells_the_truth():
    from hydranet_ros.ros.conversions import pointcloud2_fields
    depth = np.full((48, 64), 5.0, np.float32)
    depth[0, :8] = np.nan
    color = np.zeros((48, 64, 3), np.uint8)
    labels = np.ones((48, 64), np.uint8)
    one_row = build_cloud(depth[:1], color[:1], labels[:1], Intrinsics(200.0, 180.0, 31.5, 0.0, 64, 1),
                          CloudSettings(stride=1, max_depth=20.0))
    fields = pointcloud2_fields(one_row)
    assert fields["height"] == 1 and not fields["is_dense"]  # an organised row with NaN points
    assert bytes(fields["data"].reshape(-1, 20)[:, 17:].tobytes()) == bytes(3 * 64)  # padding is zeros
    settings = CloudSettings(stride=2, max_depth=20.0)
    clouds = [pointcloud2_fields(build_cloud(depth, color, labels, K, settings))["data"].tobytes()
              for _ in range(2)]
    assert clouds[0] == clouds[1]
    dense = build_cloud(depth, color, labels, K, CloudSettings(stride=2, max_depth=20.0, organized=False))
    assert pointcloud2_fields(dense)["is_dense"]


def test_depth_for_ros_marks_sky_as_out_of_range_and_bad_predictions_as_invalid():
    """REP 117 (which REP 118 defers to): +Inf is "no return / out of range", NaN "invalid measurement"."""
    from hydranet_ros.inference.postprocess import depth_for_ros
    depth = np.array([[5.0, 0.0, np.nan, 7.0], [np.inf, 3.0, 2.0, 1e-4]], np.float32)
    labels = np.array([[1, 1, 1, 0], [2, 0, 3, 3]], np.uint8)  # class 0: sky
    out = depth_for_ros(depth, labels, [0], scale=2.0)
    assert out[0, 0] == 10.0 and out[1, 2] == 4.0
    assert np.isposinf(out[0, 3]) and np.isposinf(out[1, 1])  # sky, whatever the network said
    assert np.isnan(out[0, 1]) and np.isnan(out[0, 2]) and np.isnan(out[1, 0]) and np.isnan(out[1, 3])


def test_clouds_hold_a_point_per_stride_network_pixels_and_obstacles_only_their_points(street_model_file):
    """The clouds sample what the network predicted, whatever the outputs' size: a 1242x375 camera's
    outputs at its own size or at the network's give clouds of the same shape (points_stride in network
    pixels), not four times the points from upsampled depth. points/obstacles holds only its points by
    default (no NaN for Nav2's layers to transform); points_aligned stays pixel for pixel with
    segmentation."""
    from hydranet_ros.inference.backends import BackendOptions, create_backend
    from hydranet_ros.inference.pipeline import Perception, guess_intrinsics
    from hydranet_ros.model.model_file import load_model
    from hydranet_ros.ros.outputs import cloud_output_request
    _, spec = load_model(street_model_file)
    height, width = 375, 1242
    network_height, network_width = spec.network_size((height, width))
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    camera = guess_intrinsics(spec, width, height)
    wanted = frozenset({"points", "points/obstacles"})
    shapes = {}
    for output in ("input", "network"):
        backend, _ = create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu",
                                                                      output=output, camera_size=(height, width)))
        perception = Perception(backend, spec)
        request = cloud_output_request({}, spec.label_space, wanted)  # the node's defaults: stride 2
        result = perception.process(image, "rgb8", camera=camera, clouds=request.clouds(perception))
        shapes[output] = result.cloud.shape
        assert result.obstacles.shape[0] == 1 and np.isfinite(result.obstacles["z"]).all()
        assert 0 < result.obstacles.shape[1] <= np.isfinite(result.cloud["z"]).sum()
        aligned = cloud_output_request({"points_aligned": True}, spec.label_space, wanted)
        result = perception.process(image, "rgb8", camera=camera, clouds=aligned.clouds(perception))
        assert result.cloud.shape == result.labels.shape == ((height, width) if output == "input"
                                                             else (network_height, network_width))
    assert shapes["network"] == ((network_height + 1) // 2, (network_width + 1) // 2)
    # The stride in camera pixels is rounded (1242 / 320 x 2 = 7.76 -> 8): within 5 % per side.
    assert np.allclose(shapes["input"], shapes["network"], rtol=0.05), shapes
