"""The per-frame path on the backend's device (inference/device_post.py): on a CPU it must give what
the host path (inference/postprocess.py) gives; the GPU tests (pytest -m gpu) hold CUDA to the CPU."""
import numpy as np
import pytest
import torch

from conftest import shared_path
from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.inference.backends.base import Backend, DeviceFrame
from hydranet_ros.inference.backends.torch_backend import CUDA_GRAPHS_KEPT, TorchBackend
from hydranet_ros.inference.backends.device import to_host
from hydranet_ros.inference.device_post import DevicePost, StageClock
from hydranet_ros.inference.graph import fold_batchnorm
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.inference.postprocess import (CloudRequest, CloudSettings, build_cloud, depth_for_ros, overlay,
                                                without_classes)
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import load_model

CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
# fp16 against fp32, from the measured fp16 run in test_fp16_network_agrees_with_fp32_as_the_gpu_thresholds_assume
# (99.88 % of labels at worst, 8 mm median depth): about twice the measured deviation, since CUDA's
# kernels accumulate in other orders than the CPU's.
FP16_LABEL_AGREEMENT = 0.995
FP16_MEDIAN_DEPTH_M = 0.02


class HostPost(Backend):
    """The same backend's outputs as host arrays, so that Perception post-processes them on the host."""

    def __init__(self, backend):
        self.inner, self.name, self.device = backend, backend.name, "cpu"

    def infer(self, rgb):
        return self.inner.infer(rgb)


def _assert_clouds_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    for field in a.dtype.names:
        np.testing.assert_array_equal(a[field], b[field])  # NaN where NaN
    assert np.isfinite(a["z"]).any()


def _frame(height=60, width=90, seed=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, (height, width), dtype=np.uint8)
    depth = rng.uniform(0.5, 30.0, (height, width)).astype(np.float32)
    depth[rng.random((height, width)) < 0.05] = 0.0
    depth[rng.random((height, width)) < 0.05] = np.inf
    color = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return rgb, labels, color, depth


@pytest.mark.parametrize("organized", [True, False])
@pytest.mark.parametrize("stride", [1, 3])
def test_device_post_matches_the_host_post_processing(organized, stride):
    rgb, labels, color, depth = _frame()
    sky = [0]
    intrinsics = Intrinsics(np.float64(70.0), 72.0, np.float64(44.5), 29.0, 90, 60)  # as CameraInfo gives them
    request = CloudRequest(CloudSettings(stride, 20.0, (4,), organized), obstacle_classes=(2, 3),
                           obstacles_organized=organized)
    frame = DeviceFrame(torch.from_numpy(rgb), tuple(torch.from_numpy(a) for a in (labels, color, labels, depth)))
    clock = StageClock(torch.device("cpu"))
    out = DevicePost("cpu", sky)(frame, 1.3, 0.4, intrinsics, request, clock)
    assert len(clock.intervals_ms()) == 1  # marks after the device work and after the copy

    host_depth = depth_for_ros(depth, labels, sky, scale=1.3)
    np.testing.assert_array_equal(out.depth, host_depth)
    assert np.isnan(out.depth).any() and np.isfinite(out.depth).any()
    assert np.abs(out.overlay.astype(int) - overlay(rgb, color, 0.4)).max() <= 1  # float32 vs OpenCV's rounding
    host_cloud = build_cloud(host_depth, color, labels, intrinsics, request.settings)
    _assert_clouds_equal(out.cloud, host_cloud)
    _assert_clouds_equal(out.obstacles, without_classes(host_cloud, (2, 3), organized))


def test_an_unorganised_cloud_costs_one_boolean_selection():
    """Each boolean-mask selection makes a GPU backend wait for the device to count what it keeps:
    one per cloud (two before: points and their colour/label bytes apart)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Selections(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.index.Tensor and any(
                    isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
                Selections.count += 1
            return func(*args, **(kwargs or {}))

    rgb, labels, color, depth = _frame()
    intrinsics = Intrinsics(70.0, 72.0, 44.5, 29.0, 90, 60)
    request = CloudRequest(CloudSettings(1, 20.0, (4,), organized=False), obstacle_classes=(2, 3))
    post = DevicePost("cpu", [0])
    scaled = post.depth_for_ros(torch.from_numpy(depth), torch.from_numpy(labels), 1.0)
    with Selections():
        cloud, obstacles = post.clouds(scaled, torch.from_numpy(color), torch.from_numpy(labels), intrinsics, request)
    assert Selections.count == 2 and cloud.shape[0] == 1 and obstacles.shape[1] < cloud.shape[1]


def test_fp16_network_agrees_with_fp32_as_the_gpu_thresholds_assume():
    """The fp16 network (depth head in fp32, graph.half_network) on the CPU against fp32, on real KITTI
    frames: the figures the GPU tests' thresholds below were set from. Measured here on frames 0, 5, ...
    30 of tracking 0001: 99.88-99.93 % of labels agree, median depth difference 5.9-8.0 mm."""
    import copy
    import cv2
    from conftest import REPO
    from hydranet_ros.inference.graph import InferenceGraph, half_network
    model, spec = load_model(REPO / "models" / "hydranet_street.pt")
    full = InferenceGraph(model.eval(), spec).eval()
    half = InferenceGraph(half_network(copy.deepcopy(model)), spec).eval()
    folder = shared_path("data", "kitti_tracking_0001", "image_2", "0001")
    for name in ("000000.png", "000030.png"):
        rgb = torch.from_numpy(cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB))[None]
        with torch.no_grad():
            (labels32, _, _, depth32), (labels16, _, _, depth16) = full(rgb), half(rgb)
        assert (labels16 == labels32).float().mean() >= FP16_LABEL_AGREEMENT + 0.003, name
        assert (depth16 - depth32).abs().median() <= FP16_MEDIAN_DEPTH_M / 2, name


@pytest.mark.parametrize("output", ["input", "network"])
def test_torch_backend_post_processes_on_its_device_as_the_host_path_does(street_model_file, output):
    model, spec = load_model(street_model_file)
    backend = TorchBackend(model, spec, output=output)
    assert backend.device_frames
    on_device, on_host = Perception(backend, spec), Perception(HostPost(backend), spec)
    assert on_device.device_post is not None and on_host.device_post is None
    rgb = np.random.default_rng(0).integers(0, 256, (150, 500, 3), dtype=np.uint8)
    camera = Intrinsics(400.0, 400.0, 249.5, 74.5, 500, 150)
    request = CloudRequest(CloudSettings(2, 80.0), obstacle_classes=on_device.obstacle_classes())
    a = on_device.process(rgb, "rgb8", 0.5, camera, clouds=request)
    b = on_host.process(rgb, "rgb8", 0.5, camera, clouds=request)
    assert set(a.timings_ms) == {"pre", "inference", "post", "copy"}
    for name in ("labels", "color", "confidence"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.depth, b.depth)
    assert np.abs(a.overlay.astype(int) - b.overlay).max() <= 1
    _assert_clouds_equal(a.cloud, b.cloud)
    _assert_clouds_equal(a.obstacles, b.obstacles)


def test_folded_batchnorm_gives_the_same_network_and_leaves_the_model_alone():
    torch.manual_seed(1)
    model = HydraNet(6).eval()
    with torch.no_grad():  # statistics far from the identity, so that folding has work to do
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for expected, got in zip(model(x), folded(x)):
            assert torch.allclose(expected, got, atol=1e-4, rtol=1e-4)


def test_host_arrays_outlive_the_next_frame(street_model_file):
    backend = TorchBackend(*load_model(street_model_file))
    rng = np.random.default_rng(5)
    first = backend.infer(rng.integers(0, 256, (96, 320, 3), dtype=np.uint8))
    kept = first.depth.copy()
    backend.infer(rng.integers(0, 256, (96, 320, 3), dtype=np.uint8))
    np.testing.assert_array_equal(first.depth, kept)


# GPU: run with `pytest -m gpu`; skipped without CUDA ------------------------------------------------

def _street_frame():
    import cv2
    path = next(iter(sorted(shared_path("data", "kitti_tracking_0001", "image_2", "0001").glob("*.png"))))
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _shipped_street():
    from conftest import REPO
    return REPO / "models" / "hydranet_street.pt"


@pytest.mark.gpu
@gpu
def test_cuda_fp16_path_matches_the_cpu_path():
    rgb = _street_frame()
    height, width = rgb.shape[:2]
    camera = Intrinsics(721.5, 721.5, 609.6, 172.9, width, height)
    request = CloudRequest(CloudSettings(2, 80.0), obstacle_classes=None)
    cpu = Perception(TorchBackend(*load_model(_shipped_street())), load_model(_shipped_street())[1])
    cuda = Perception(TorchBackend(*load_model(_shipped_street()), device="cuda", precision="fp16"),
                      load_model(_shipped_street())[1])
    expected = cpu.process(rgb, "rgb8", 0.5, camera, clouds=request)
    for _ in range(2):  # the second frame replays the captured CUDA graph
        got = cuda.process(rgb, "rgb8", 0.5, camera, clouds=request)
    assert (got.labels == expected.labels).mean() >= FP16_LABEL_AGREEMENT
    both = np.isfinite(got.depth) & np.isfinite(expected.depth)
    assert both.mean() > 0.5
    assert np.median(np.abs(got.depth[both] - expected.depth[both])) <= FP16_MEDIAN_DEPTH_M
    assert got.cloud.shape == expected.cloud.shape
    agree = np.isfinite(got.cloud["z"]) & np.isfinite(expected.cloud["z"])
    assert np.median(np.abs(got.cloud["z"][agree] - expected.cloud["z"][agree])) <= FP16_MEDIAN_DEPTH_M
    assert set(got.timings_ms) == {"pre", "inference", "post", "copy"}


@pytest.mark.gpu
@gpu
def test_cuda_graph_path_matches_the_eager_path_and_keeps_a_bounded_cache():
    rgb = _street_frame()
    graphs = TorchBackend(*load_model(_shipped_street()), device="cuda", precision="fp16")
    eager = TorchBackend(*load_model(_shipped_street()), device="cuda", precision="fp16", cuda_graphs=False)
    a, b = graphs.infer(rgb), eager.infer(rgb)
    assert (a.labels == b.labels).mean() >= FP16_LABEL_AGREEMENT  # cudnn.benchmark may tune each to other kernels
    assert np.nanmax(np.abs(a.depth - b.depth)) <= 1e-2 * np.nanmax(b.depth)
    for size in range(CUDA_GRAPHS_KEPT + 2):
        graphs.infer(np.ascontiguousarray(rgb[: 200 + 8 * size]))
    assert len(graphs._captured) == CUDA_GRAPHS_KEPT


@pytest.mark.gpu
@gpu
def test_one_copy_to_pinned_host_memory_keeps_every_output():
    tensors = {"labels": torch.arange(7 * 5, dtype=torch.uint8, device="cuda").reshape(7, 5),
               "depth": torch.linspace(0, 1, 7 * 5, device="cuda").reshape(7, 5),
               "cloud": torch.arange(3 * 20, dtype=torch.uint8, device="cuda").reshape(1, 3, 20)}
    host = to_host(tensors)
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(host[name], tensor.cpu().numpy())


@pytest.mark.gpu
@gpu
def test_pinned_staging_reuses_one_buffer_per_shape_and_uploads_every_frame():
    from hydranet_ros.inference.backends.device import PinnedStaging
    staging = PinnedStaging(kept=2)
    rng = np.random.default_rng(2)
    target = torch.empty((40, 60, 3), dtype=torch.uint8, device="cuda")
    frames = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)]
    for frame in frames:
        staging.upload(frame, target)
        np.testing.assert_array_equal(target.cpu().numpy(), frame)
    buffer = staging._buffers[(40, 60, 3)][0]
    assert buffer.is_pinned() and len(staging._buffers) == 1
    for height in (10, 20, 30):
        staging.upload(frames[0][:height], torch.empty((height, 60, 3), dtype=torch.uint8, device="cuda"))
    assert len(staging._buffers) == 2


def test_frames_of_one_size_run_through_the_torch_graph_at_once_and_equal_one_at_a_time(street_model_file):
    """Several cameras of one size (issue 45) on a device backend: one graph call for the batch, then each
    frame's post-processing on the device; outputs equal to the frames run one at a time."""
    from hydranet_ros.inference.backends import BackendOptions, create_backend
    from hydranet_ros.inference.pipeline import Perception, guess_intrinsics
    from hydranet_ros.model.model_file import load_model
    from hydranet_ros.ros.outputs import cloud_output_request
    _, spec = load_model(street_model_file)
    backend, _ = create_backend(street_model_file, BackendOptions(backend="torch", device="cpu"))
    perception = Perception(backend, spec)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (120, 400, 3), dtype=np.uint8) for _ in range(3)]
    camera = guess_intrinsics(spec, 400, 120)
    clouds = cloud_output_request({}, spec.label_space, frozenset({"points", "points/obstacles"})).clouds(perception)
    alone = [perception.process(image, "rgb8", 0.5, camera, clouds=clouds) for image in images]
    graph, calls = backend.graph, []
    backend.graph = lambda batch: calls.append(tuple(batch.shape)) or graph(batch)
    together = perception.process_batch([perception.prepare(image, "rgb8", camera) for image in images],
                                        [0.5] * 3, [clouds] * 3)
    assert calls == [(3, 120, 400, 3)]
    for one, batched in zip(alone, together):
        for name in ("labels", "color", "confidence", "overlay"):
            np.testing.assert_array_equal(getattr(one, name), getattr(batched, name))
        np.testing.assert_array_equal(one.depth, batched.depth)
        _assert_clouds_equal(batched.cloud, one.cloud)
        _assert_clouds_equal(batched.obstacles, one.obstacles)
        assert set(batched.timings_ms) == {"pre", "inference", "post", "copy"}
