"""From a robot's recording to a model for its camera: synth-bag -> dataset from-bag -> adapt (a small run)."""
import math

import pytest

from hydranet_ros.camera.network_input import focal_at
from hydranet_ros.cli.main import main as hydranet
from hydranet_ros.data.dataset import FolderDataset
from hydranet_ros.data.from_bag import FromBagOptions, dataset_from_bags
from hydranet_ros.data.synth.robot_bag import IMAGE_TOPIC, LIDAR_TOPIC, write_robot_bag
from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import load_model
from hydranet_ros.training.adapt import adapt, validation_metrics


@pytest.fixture(scope="module")
def robot_dataset(tmp_path_factory):
    """A 12-frame recording of a 0.6 m high camera with a 100 degree lens, labelled by from-bag with the
    shipped street model as the segmentation teacher."""
    work = tmp_path_factory.mktemp("robot")
    write_robot_bag(work / "bag", work / "truth", 12, seed=3, width=320, height=200, progress=False)
    options = FromBagOptions(IMAGE_TOPIC, lidar_topic=LIDAR_TOPIC, teacher=resolve_model_path("hydranet_street.pt"))
    dataset_from_bags([work / "bag"], work / "dataset", options, progress=False)
    return work


def test_the_robot_bag_becomes_a_dataset_with_lidar_depth_near_the_truth(robot_dataset):
    import numpy as np
    dataset = FolderDataset(robot_dataset / "dataset" / "train")
    truth = FolderDataset(robot_dataset / "truth")
    assert len(dataset) == 9 and len(FolderDataset(robot_dataset / "dataset" / "val")) == 3
    for index in (0, len(dataset) - 1):
        sample = dataset[index]
        exact = truth[truth.names.index(sample.name.rsplit("_", 1)[1])]
        assert np.array_equal(sample.image, exact.image)
        both = (sample.depth > 0) & (exact.depth > 0)
        assert both.sum() > 1000
        # The scan is taken 20 ms after the image (3 cm of walking) from 0.1 m higher: close, not equal.
        assert np.median(np.abs(sample.depth[both] - exact.depth[both]) / exact.depth[both]) < 0.02


def test_adapt_fits_the_street_model_to_the_robots_camera(robot_dataset, tmp_path):
    shipped = resolve_model_path("hydranet_street.pt")
    metrics = adapt(robot_dataset / "dataset", shipped, tmp_path / "robot.pt", tmp_path / "run", epochs=5, lr=3e-4,
                    batch_size=3)
    before, after = metrics["before"]["depth"], metrics["after"]["depth"]
    # The street model learned a camera 1.65 m up: for this one, 0.6 m up, it puts everything too far.
    assert after["abs_rel"] < 0.75 * before["abs_rel"] and after["rmse"] < before["rmse"], (before, after)
    model, spec = load_model(tmp_path / "robot.pt")
    _, shipped_spec = load_model(shipped)
    sample = FolderDataset(robot_dataset / "dataset" / "train")[0]
    expected = focal_at(sample.intrinsics, spec.network_size(sample.image.shape[:2]))
    assert math.isclose(spec.focal_length_px, expected, rel_tol=1e-6)  # the robot camera's, not KITTI's
    assert not math.isclose(spec.focal_length_px, shipped_spec.focal_length_px, rel_tol=0.05)
    assert spec.provenance["adapted_from"] == "hydranet_street.pt"
    assert spec.provenance["adapt_validation"] == metrics
    # Trained for the street model's camera, recorded for the robot's: the depth it gives is the same.
    _, trained_spec = load_model(tmp_path / "run" / "last.pt")
    assert trained_spec.focal_length_px == shipped_spec.focal_length_px
    recorded = validation_metrics(tmp_path / "robot.pt", robot_dataset / "dataset", 80.0)["depth"]
    assert recorded["abs_rel"] == pytest.approx(after["abs_rel"], rel=2e-3), (recorded, after)
    assert recorded["rmse"] == pytest.approx(after["rmse"], rel=2e-3), (recorded, after)


def test_adapt_says_in_one_line_what_is_wrong_with_its_dataset(tmp_path, capsys, robot_dataset):
    code = hydranet(["adapt", str(robot_dataset / "dataset" / "train"), "--from", "hydranet_street.pt",
                     "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "has no train/ dataset folder" in err and "\n" not in err
    code = hydranet(["adapt", str(robot_dataset / "dataset"), "--from", "hydranet_indoor.pt",
                     "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "labelled in kitti6, the model" in err and "nyud40" in err


def test_adapt_runs_under_torchrun_as_train_does(robot_dataset, tmp_path, street_model_file):
    """Two processes (DistributedDataParallel over gloo on CPU); the first writes the model and reports."""
    import subprocess
    import sys
    process = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "-m", "hydranet_ros.cli.main", "adapt", str(robot_dataset / "dataset"), "--from",
                              str(street_model_file), "--out", str(tmp_path / "robot.pt"), "--epochs", "1",
                              "--batch-size", "2"], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.count("wrote ") == 1 and "depth RMSE" in process.stdout, process.stdout
    _, spec = load_model(tmp_path / "robot.pt")
    assert spec.provenance["adapted_from"] == street_model_file.name
