"""Generated scenes are exact and deterministic, and short CPU training lowers the loss on them."""
import json

import cv2
import numpy as np
import pytest
import yaml

from hydranet_ros.camera.intrinsics import depth_to_points
from hydranet_ros.cli.main import main as hydranet
from hydranet_ros.data.dataset import DatasetError
from hydranet_ros.data.synth import render_frame, render_sequence
from hydranet_ros.training.train import TrainingError, load_config, train


@pytest.mark.parametrize("kind", ["indoor", "street"])
def test_frames_are_deterministic_by_seed(kind):
    a, b = render_frame(kind, 7, 96, 64), render_frame(kind, 7, 96, 64)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.rgb, render_frame(kind, 8, 96, 64).rgb)


def test_indoor_depth_is_exact_metric_geometry():
    frame = render_frame("indoor", 3, 160, 120)
    points = depth_to_points(frame.depth, frame.intrinsics)
    floor = points[frame.labels == 1]  # floor: all its points lie on one plane
    assert len(floor) > 100
    centred = floor - floor.mean(0)
    smallest_singular_value = np.linalg.svd(centred, full_matrices=False)[1][-1]
    assert smallest_singular_value / np.sqrt(len(floor)) < 1e-3
    assert 0.3 < frame.depth.min() and frame.depth.max() < 12


def test_room_layout_keeps_standing_furniture_apart_and_inside_the_room():
    from hydranet_ros.data.synth.indoor import IndoorSceneBuilder, _RoomLayout
    from hydranet_ros.data.synth.scene import Box, Scene
    rng = np.random.default_rng(0)
    room = Box(np.array([-2.0, 0, -1.0]), np.array([2.0, 2.6, 5.0]), 0, None)
    layout, scene = _RoomLayout(room, rng), Scene("indoor", room=room)
    for _ in range(12):  # more than fit: the rest are skipped
        layout.add_to_wall(scene, 3, *IndoorSceneBuilder._bed(rng))
    layout.add_table_with_chairs(scene, 6, 4, IndoorSceneBuilder._chair)
    assert 2 <= len(layout.footprints) < 13
    for i, (x0, x1, z0, z1) in enumerate(layout.footprints):
        assert room.low[0] <= x0 < x1 <= room.high[0] and room.low[2] <= z0 < z1 <= room.high[2]
        for other in layout.footprints[i + 1:]:
            assert x1 <= other[0] or other[1] <= x0 or z1 <= other[2] or other[3] <= z0
    for box in scene.boxes:
        assert np.all(box.low >= room.low - 1e-9) and np.all(box.high <= room.high + 1e-9)


def test_windows_glow_with_daylight():
    frame = render_frame("indoor", 4, 160, 120)  # a room with a window in view
    window, wall = frame.labels == 8, frame.labels == 0
    assert window.sum() > 300 and frame.rgb[window].mean() > frame.rgb[wall].mean() + 30


def test_street_sky_has_no_depth_and_labels_are_kitti6():
    frame = render_frame("street", 5, 304, 88)
    assert set(np.unique(frame.labels)) <= set(range(6))
    sky = frame.labels == 0
    assert sky.any() and (frame.depth[sky] == 0).all()
    assert frame.depth.max() <= 80.0


def test_sequence_moves_the_camera_through_one_scene():
    frames = list(render_sequence("street", 1, 96, 32, 3))
    assert len(frames) == 3 and not np.array_equal(frames[0].rgb, frames[2].rgb)


def test_short_training_lowers_the_loss_and_resumes_from_its_checkpoint(tmp_path):
    assert hydranet(["synth", "indoor", "--out", str(tmp_path / "train"), "--count", "16",
                     "--size", "96", "128", "--workers", "1"]) == 0
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "model": {"label_space": "nyud40", "input_size": [96, 128]},
        "data": {"train": ["train"], "val": ["train"], "crop": [96, 128], "zoom": [1.0, 1.0], "jitter": 0.0},
        "optim": {"name": "adam", "lr": 0.002},
        "train": {"epochs": 5, "batch_size": 4, "out": "run", "seed": 1},
    }))
    best = train(load_config(config_path), stop_after=4)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    losses = [h["train_loss"] for h in history]
    assert len(history) == 4
    assert losses[-1] < 0.7 * losses[0], losses
    assert best.is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert history[-1]["val"]["segmentation"]["pixel_accuracy"] > history[0]["val"]["segmentation"]["pixel_accuracy"]

    train(load_config(config_path),
          resume=True)  # the fifth epoch from the checkpoint; the history keeps the first four
    resumed = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4, 5] and resumed[:4] == history


def test_mixed_precision_is_half_on_cuda_and_bfloat16_only_on_cpus_that_have_it(monkeypatch):
    import torch
    from hydranet_ros.training import train as train_module
    assert train_module.mixed_precision_dtype(torch.device("cuda")) == torch.float16
    monkeypatch.setattr(train_module, "_cpu_has_bf16", lambda: False)
    assert train_module.mixed_precision_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(train_module, "_cpu_has_bf16", lambda: True)
    assert train_module.mixed_precision_dtype(torch.device("cpu")) == torch.bfloat16


def _spec(input_size, focal=None):
    from hydranet_ros.model.model_file import ModelSpec, load_label_space
    return ModelSpec(["segmentation", "depth"], load_label_space("nyud40"), input_size, focal_length_px=focal)


def test_training_crops_keep_the_scale_the_network_runs_at():
    """Crops come from the image at the size the node would run it at, not shrunk to fit the crop."""
    from hydranet_ros.data.augment import Augmenter
    from hydranet_ros.data.dataset import Sample
    frame = render_frame("indoor", 1, 320, 240)
    augmenter = Augmenter(_spec((240, 320)), (180, 240), zoom=(1.0, 1.0), mirror=False, jitter=0.0)
    item = augmenter(Sample("a", frame.rgb, frame.labels, frame.depth), np.random.default_rng(0))
    crop = item["depth"]
    # At zoom 1 the crop is a window of the original depth, pixel for pixel.
    matches = [(top, left) for top in range(0, 61) for left in range(0, 81)
               if np.array_equal(frame.depth[top:top + 180, left:left + 240], crop)]
    assert matches
    # A frame twice the network's size is halved first, as the node would resize it.
    large = Sample("b", cv2.resize(frame.rgb, (640, 480)), depth=cv2.resize(frame.depth, (640, 480),
                                                                            interpolation=cv2.INTER_NEAREST))
    item = augmenter(large, np.random.default_rng(0))
    assert any(np.array_equal(frame.depth[t:t + 180, x:x + 240], item["depth"]) for t in range(61) for x in range(81))


def test_zoom_divides_the_depth_target_and_other_cameras_are_normalised_to_the_models():
    from hydranet_ros.data.augment import Augmenter, resize_depth
    from hydranet_ros.data.dataset import Sample
    frame = render_frame("indoor", 2, 320, 240)
    sample = Sample("a", frame.rgb, frame.labels, frame.depth)
    plain = Augmenter(_spec((240, 320)), (240, 320), zoom=(1.0, 1.0), mirror=False, jitter=0.0)(
        sample, np.random.default_rng(0))["depth"]
    # Zoom 2 with a crop of the whole zoomed image: things look twice as near, so depth halves.
    zoomed = Augmenter(_spec((240, 320)), (480, 640), zoom=(2.0, 2.0), mirror=False, jitter=0.0)(
        sample, np.random.default_rng(0))["depth"]
    assert np.array_equal(zoomed, resize_depth(frame.depth, (480, 640)) / 2)
    # With intrinsics, depth targets are for the model's camera: a sample whose camera has twice the
    # model's focal length at the network input gets half the depth.
    f = frame.intrinsics.fx
    with_camera = Sample("b", frame.rgb, frame.labels, frame.depth, frame.intrinsics)
    target = Augmenter(_spec((240, 320), focal=f / 2), (240, 320), zoom=(1.0, 1.0), mirror=False, jitter=0.0)(
        with_camera, np.random.default_rng(0))["depth"]
    assert np.allclose(target, plain / 2)


def test_sparse_depth_keeps_its_points_when_resized():
    from hydranet_ros.data.augment import resize_depth
    depth = np.zeros((375, 1242), np.float32)
    rng = np.random.default_rng(0)
    v, u = rng.integers(0, 375, 500), rng.integers(0, 1242, 500)
    depth[v, u] = rng.uniform(5, 50, 500).astype(np.float32)
    small = resize_depth(depth, (176, 592))
    kept = np.count_nonzero(small)
    assert kept >= 0.95 * np.count_nonzero(depth)  # nearest-neighbour sampling would keep about a fifth
    assert set(np.unique(small[small > 0])) <= set(np.unique(depth[depth > 0]))


def _tiny_config(tmp_path, **train):
    assert hydranet(["synth", "indoor", "--out", str(tmp_path / "data"), "--count", "8",
                     "--size", "64", "96", "--workers", "1"]) == 0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"label_space": "nyud40", "input_size": [64, 96]},
        "data": {"train": ["data"], "crop": [64, 96]},
        "optim": {"name": "adam", "lr": 0.002},
        "train": {"epochs": 3, "batch_size": 4, "out": "run", "seed": 3} | train}))
    return path


def test_imagenet_stages_bring_dead_encoder_stages_back_over_init_from(tmp_path):
    import torch
    from conftest import shared_path
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.model.imagenet_init import init_encoder_from_tflite
    from hydranet_ros.model.model_file import ModelSpec, load_label_space, save_model
    from hydranet_ros.training.train import DEFAULTS, build_model
    tflite = shared_path("weights", "coral_tf2_mobilenet_v2_1.0_224_ptq.tflite")
    torch.manual_seed(0)
    trained = HydraNet(6)
    with torch.no_grad():
        for block in trained.layer7:
            block.output[0][0].weight.zero_()  # an expansion that training left dead
    spec = ModelSpec(["segmentation", "depth"], load_label_space("kitti6"), (64, 96))
    model_cfg = dict(DEFAULTS["model"], init_from=str(save_model(tmp_path / "trained.pt", trained, spec)),
                     imagenet_init=str(tflite), imagenet_stages=[7, 8])
    model = build_model(spec, model_cfg, "cpu")
    imagenet = HydraNet(6)
    init_encoder_from_tflite(imagenet, tflite)
    for name, value in model.state_dict().items():
        expected = imagenet if name.startswith(("layer7.", "layer8.")) else trained
        assert torch.equal(value, expected.state_dict()[name]), name
    for wrong, message in (({"imagenet_init": None}, "needs both model.init_from and model.imagenet_init"),
                           ({"imagenet_stages": [9]}, r"encoder stages 1-8, not \[9\]")):
        with pytest.raises(TrainingError, match=message):
            build_model(spec, model_cfg | wrong, "cpu")


def test_adam_decay_shrinks_an_unused_weight_by_the_learning_rate_and_adamw_does_not():
    """Why M trains with AdamW: L2 through Adam is normalised like a gradient, so a weight the loss
    does not move loses ~lr every step (how K's deepest blocks reached zero)."""
    import torch
    from hydranet_ros.training.train import DEFAULTS, build_optimizer
    moved = {}
    for name in ("adam", "adamw"):
        layer = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.constant_(layer.weight, 0.05)
        start = layer.weight.item()
        optimizer = build_optimizer(layer, dict(DEFAULTS["optim"], name=name, lr=1e-4, weight_decay=1e-5))
        for _ in range(100):
            optimizer.zero_grad()
            (layer.weight * 0).sum().backward()  # no gradient from the loss
            optimizer.step()
        moved[name] = start - layer.weight.item()
    assert moved["adam"] == pytest.approx(100 * 1e-4, rel=0.1)
    assert abs(moved["adamw"]) < 1e-6
    with pytest.raises(TrainingError, match="sgd, adam or adamw, not 'rmsprop'"):
        build_optimizer(layer, dict(DEFAULTS["optim"], name="rmsprop"))


def test_a_resumed_run_continues_exactly_as_an_uninterrupted_one(tmp_path):
    config_path = _tiny_config(tmp_path)
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(load_config(config_path), resume=True)
    train(load_config(config_path))
    uninterrupted = [r["train_loss"] for r in json.loads((tmp_path / "run" / "history.json").read_text())]
    import shutil
    shutil.rmtree(tmp_path / "run")
    train(load_config(config_path), stop_after=1)
    train(load_config(config_path), resume=True)
    resumed = [r["train_loss"] for r in json.loads((tmp_path / "run" / "history.json").read_text())]
    assert np.allclose(resumed, uninterrupted, rtol=1e-5), (resumed, uninterrupted)
    assert not list((tmp_path / "run").glob(".*.tmp"))  # checkpoints are written whole, then renamed


def test_labels_outside_the_label_space_are_refused_before_training(tmp_path):
    config_path = _tiny_config(tmp_path)
    labels = next((tmp_path / "data" / "labels").glob("*.png"))
    bad = cv2.imread(str(labels), cv2.IMREAD_UNCHANGED)
    bad[0, 0] = 77
    cv2.imwrite(str(labels), bad)
    with pytest.raises(DatasetError, match=f"{labels.stem}.*label ids \\[77\\] are out of range for 40 classes"):
        train(load_config(config_path))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_batches_without_depth_report_no_depth_loss():
    import torch
    from hydranet_ros.training.losses import joint_loss
    outputs = {"segmentation": torch.randn(2, 6, 8, 8), "depth": torch.rand(2, 1, 8, 8)}
    batch = {"segmentation": torch.randint(0, 6, (2, 32, 32)), "depth": torch.zeros(2, 32, 32)}
    _, parts = joint_loss(outputs, batch)
    assert set(parts) == {"segmentation"}
    batch["depth"][0, 0, 0] = 5.0
    assert set(joint_loss(outputs, batch)[1]) == {"segmentation", "depth"}


def test_median_frequency_class_weights_are_counted_from_the_label_files(tmp_path):
    from hydranet_ros.data.dataset import FolderDataset, Sample, create_dataset_folder, write_sample
    from hydranet_ros.training.train import segmentation_class_weights
    root = create_dataset_folder(tmp_path / "data", "kitti6", 1000.0)
    mixed = np.zeros((4, 4), np.uint8)
    mixed[0] = 3
    for name, labels in (("a", mixed), ("b", np.zeros((4, 4), np.uint8)),
                         ("c", np.full((4, 4), 255, np.uint8))):  # unlabelled pixels count nowhere
        write_sample(root, Sample(name, np.zeros((4, 4, 3), np.uint8), segmentation=labels), 1000.0)
    write_sample(root, Sample("d", np.zeros((4, 4, 3), np.uint8)), 1000.0)  # no label file at all
    weights = segmentation_class_weights("median_frequency", [FolderDataset(root)], [2.0], 6)
    # sky: 28 of 32 pixels, sidewalk: 4 of 16 (see test_losses); the other classes never occur.
    assert np.allclose(weights, [0.5625 / 0.875, 0, 0, 0.5625 / 0.25, 0, 0])
    assert segmentation_class_weights(None, [FolderDataset(root)], [1.0], 6) is None
    with pytest.raises(TrainingError, match="lists 2 weights for 6 classes"):
        segmentation_class_weights([1, 2], [FolderDataset(root)], [1.0], 6)


def test_init_from_fine_tunes_a_trained_model_for_its_camera_and_refuses_another_label_space(tmp_path):
    import torch
    from hydranet_ros.model.model_file import load_model
    from hydranet_ros.training.train import FolderDataset, build_model, build_spec, training_focal_length
    config_path = _tiny_config(tmp_path)
    config = load_config(config_path)
    config["model"]["focal_length_px"] = 123.0  # not the camera of the data
    train(config, stop_after=1)
    config = load_config(config_path)
    config["model"]["init_from"] = str(tmp_path / "run" / "last.pt")
    spec = build_spec(config, [FolderDataset(tmp_path / "data")])
    # The fine-tune keeps the camera of the model it starts from, not its data's median.
    assert spec.focal_length_px == 123.0
    assert training_focal_length([FolderDataset(tmp_path / "data")], spec) not in (None, 123.0)
    config["model"]["focal_length_px"] = 200.0
    assert build_spec(config, [FolderDataset(tmp_path / "data")]).focal_length_px == 200.0
    config["model"]["focal_length_px"] = None
    trained, _ = load_model(tmp_path / "run" / "last.pt")
    model = build_model(spec, config["model"], "cpu")
    for name, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    config["model"]["label_space"] = "kitti6"
    with pytest.raises(TrainingError, match="predicts .* in nyud40; this config trains .* in kitti6"):
        build_model(build_spec(config, [FolderDataset(tmp_path / "data")]), config["model"], "cpu")
