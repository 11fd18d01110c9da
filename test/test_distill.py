"""Hard knowledge distillation: our single-task depth copy and a real external segmentation teacher."""
import cv2
import numpy as np
import torch
import yaml

from conftest import shared_path
from hydranet_ros.data.dataset import FolderDataset, Sample, create_dataset_folder, write_sample
from hydranet_ros.data.kitti import read_kitti6_labels
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import ModelSpec, load_label_space, save_model
from hydranet_ros.training.distill import distill


def test_depth_only_copy_labels_the_segmentation_only_images(tmp_path):
    torch.manual_seed(0)
    model = HydraNet(6, ("depth",))
    with torch.no_grad():
        model.depth.bias.fill_(12.0)
    teacher = save_model(tmp_path / "depth_only.pt", model,
                         ModelSpec(["depth"], load_label_space("kitti6"), (64, 128)))
    root = create_dataset_folder(tmp_path / "set", "kitti6", 256.0)
    rgb = np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    write_sample(root, Sample("with_depth", rgb, depth=np.full((64, 128), 5.0, np.float32)), 256.0)
    write_sample(root, Sample("segmentation_only", rgb, segmentation=np.zeros((64, 128), np.uint8)), 256.0)
    assert distill(root, teacher, "depth", progress=False) == ["segmentation_only"]
    dataset = FolderDataset(root)
    distilled = dataset[dataset.names.index("segmentation_only")]
    assert distilled.depth is not None and distilled.depth.shape == (64, 128) and (distilled.depth > 0).all()
    assert np.allclose(dataset[dataset.names.index("with_depth")].depth, 5.0)  # human labels untouched
    provenance = yaml.safe_load((root / "provenance.yaml").read_text())
    assert provenance["depth"][0]["teacher"] == "depth_only.pt"
    assert provenance["depth"][0]["files"] == ["segmentation_only"]


def test_deeplab_pascal_teacher_finds_the_cars_of_a_real_kitti_frame(tmp_path):
    teacher = shared_path("weights", "coral_deeplabv3_mnv2_pascal_quant.tflite")
    rgb = cv2.cvtColor(cv2.imread(str(shared_path("data", "kitti", "000099.png"))), cv2.COLOR_BGR2RGB)
    root = create_dataset_folder(tmp_path / "set", "kitti6", 256.0)
    write_sample(root, Sample("000099", rgb), 256.0)
    assert distill(root, teacher, "segmentation", progress=False) == ["000099"]
    labels = FolderDataset(root)[0].segmentation
    assert set(np.unique(labels)) <= {4, 5, 255}  # car, vegetation (potted plant) or ignored
    truth_cars = read_kitti6_labels(shared_path("data", "kitti", "segm_gt_000099.png")) == 5
    predicted_cars = labels == 5
    iou = (truth_cars & predicted_cars).sum() / (truth_cars | predicted_cars).sum()
    assert iou > 0.5, iou
    provenance = yaml.safe_load((root / "provenance.yaml").read_text())
    assert provenance["segmentation"][0]["teacher"] == teacher.name
