"""Measures the shipped models for their model card; writes models/metrics.json.

    .venv/bin/python scripts/model_card_metrics.py

- held-out generated frames at the model's input size: datasets/synth_*_val (seed 2), never trained
  on but used to pick the best epoch, and datasets/synth_*_test (seed 3), used for nothing else;
- the real NYUDv2 example frames in ../shared (indoor model), full 640x480 outputs;
- the real KITTI frame 000099 (KITTI-6 labels) and the 31-frame KITTI sequence against its
  projected LiDAR (street model), full-resolution outputs as the node publishes them.
Real-frame metrics run through the node's own per-frame path (inference.pipeline, ONNX Runtime).
"""
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from hydranet_ros.data.dataset import FolderDataset  # noqa: E402
from hydranet_ros.data.kitti import project_lidar, read_kitti6_labels, read_tracking_calibration, read_velodyne  # noqa: E402
from hydranet_ros.data.dataset import read_rgb  # noqa: E402
from hydranet_ros.data.nyud import example_frame_names, read_example_frame  # noqa: E402
from hydranet_ros.inference.backends import create_backend  # noqa: E402
from hydranet_ros.inference.pipeline import Perception  # noqa: E402
from hydranet_ros.model.model_file import load_model  # noqa: E402
from hydranet_ros.training.evaluate import evaluate_model  # noqa: E402
from hydranet_ros.training.metrics import DepthMetrics, SegmentationMetrics  # noqa: E402


def summary(segmentation=None, depth=None):
    out = {}
    if segmentation is not None:
        s = segmentation.summary()
        out.update(miou=s["miou"], pixel_accuracy=s["pixel_accuracy"])
    if depth is not None:
        out.update({k: v for k, v in depth.summary().items()})
    return out


def perception_for(path, spec):
    backend, _ = create_backend(path, "onnxruntime", "cpu")
    return Perception(backend, spec)


def generated(model, spec, kind, max_depth):
    """Metrics on the validation frames (which chose the epoch) and on the untouched test frames."""
    return {split: evaluate_model(model, spec, [FolderDataset(REPO / "datasets" / f"synth_{kind}_{folder}")],
                                  max_depth, torch.device("cpu"), spec.input_size)
            for split, folder in (("synthetic_heldout", "val"), ("synthetic_test", "test"))}


def indoor(path):
    model, spec = load_model(path)
    result = generated(model, spec, "indoor", 10.0)
    perception = perception_for(path, spec)
    segmentation, depth = SegmentationMetrics(spec.num_classes), DepthMetrics(10.0)
    for name in example_frame_names(SHARED / "nyud"):
        sample = read_example_frame(SHARED / "nyud", name)
        frame = perception.process(sample.image, "rgb8")
        if sample.segmentation is not None:
            segmentation.update(frame.labels, sample.segmentation)
        if sample.depth is not None:
            depth.update(frame.depth, sample.depth)
    result["nyud_real_frames"] = summary(segmentation, depth) | {"frames": len(example_frame_names(SHARED / "nyud"))}
    return result


def street(path):
    model, spec = load_model(path)
    result = generated(model, spec, "street", 80.0)
    perception = perception_for(path, spec)
    segmentation = SegmentationMetrics(spec.num_classes)
    frame = perception.process(read_rgb(SHARED / "kitti" / "000099.png"), "rgb8")
    segmentation.update(frame.labels, read_kitti6_labels(SHARED / "kitti" / "segm_gt_000099.png"))
    result["kitti_000099_segmentation"] = summary(segmentation)
    root = SHARED / "kitti_tracking_0001"
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    depth = DepthMetrics(80.0)
    images = sorted((root / "image_2" / "0001").glob("*.png"))
    for image_path, scan in zip(images, sorted((root / "velodyne" / "0001").glob("*.bin"))):
        frame = perception.process(read_rgb(image_path), "rgb8")
        height, width = frame.depth.shape
        depth.update(frame.depth, project_lidar(read_velodyne(scan), calibration, width, height))
    result["kitti_tracking_0001_lidar"] = summary(depth=depth) | {"frames": len(images)}
    return result


def strip_per_class(value):
    if isinstance(value, dict):
        return {k: strip_per_class(v) for k, v in value.items() if k != "per_class_iou"}
    return value


def main():
    metrics = {"hydranet_indoor.pt": indoor(REPO / "models" / "hydranet_indoor.pt"),
               "hydranet_street.pt": street(REPO / "models" / "hydranet_street.pt")}
    metrics = strip_per_class(metrics)
    (REPO / "models" / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
