"""Measures the shipped models for their model card; writes models/metrics.json.

    .venv/bin/python scripts/model_card_metrics.py

Real frames first, all through the node's own per-frame path (inference.pipeline with ONNX Runtime),
each image whole at its own resolution, with its camera's intrinsics where they are known (depth is
rescaled to them), depth scored only where there is ground truth and the model predicts depth (it
predicts none where it sees sky):
- street: CamVid val (101 frames, KITTI-6 labels), KITTI 000099 (KITTI-6 labels), and the KITTI
  tracking sequence 0001 against its projected LiDAR: frames 20-30, which no training job used, and
  all 31 frames (0-19 were trained on);
- indoor: the NYUDv2 example frames.
Then the generated frames: datasets/synth_*_val (seed 2, chose the epoch) and datasets/synth_*_test
(seed 3, used for nothing else).
"""
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from hydranet_ros.data.camvid import frame_names as camvid_frames, kitti6_lookup, read_frame  # noqa: E402
from hydranet_ros.data.dataset import FolderDataset, read_rgb  # noqa: E402
from hydranet_ros.data.kitti import project_lidar, read_kitti6_labels, read_tracking_calibration, read_velodyne  # noqa: E402
from hydranet_ros.data.nyud import example_frame_names, read_example_frame  # noqa: E402
from hydranet_ros.inference.backends import create_backend  # noqa: E402
from hydranet_ros.inference.pipeline import Perception  # noqa: E402
from hydranet_ros.model.model_file import load_model  # noqa: E402
from hydranet_ros.training.evaluate import evaluate_model  # noqa: E402
from hydranet_ros.training.metrics import DepthMetrics, SegmentationMetrics  # noqa: E402

LIDAR_HELD_OUT = range(20, 31)  # frames of KITTI tracking 0001 that no training job used


def summary(segmentation=None, depth=None, **extra):
    out = {}
    if segmentation is not None:
        s = segmentation.summary()
        out.update(miou=s["miou"], pixel_accuracy=s["pixel_accuracy"],
                   per_class_iou=s["per_class_iou"])
    if depth is not None:
        out.update(depth.summary())
    return out | extra


def generated(model, spec, kind, max_depth):
    """Metrics on the validation frames (which chose the epoch) and on the untouched test frames."""
    return {split: evaluate_model(model, spec, [FolderDataset(REPO / "datasets" / f"synth_{kind}_{folder}")],
                                  max_depth, torch.device("cpu"))
            for split, folder in (("synthetic_heldout", "val"), ("synthetic_test", "test"))}


def indoor(path):
    model, spec = load_model(path)
    perception = Perception(create_backend(path, "onnxruntime", "cpu")[0], spec)
    segmentation, depth = SegmentationMetrics(spec.num_classes), DepthMetrics(10.0)
    names = example_frame_names(SHARED / "nyud")
    for name in names:
        sample = read_example_frame(SHARED / "nyud", name)
        frame = perception.process(sample.image, "rgb8", camera=sample.intrinsics)
        if sample.segmentation is not None:
            segmentation.update(frame.labels, sample.segmentation)
        if sample.depth is not None:
            depth.update(frame.depth, sample.depth)
    return {"nyud_real_frames": summary(segmentation, depth, frames=len(names))} | generated(model, spec, "indoor", 10.0)


def street(path):
    model, spec = load_model(path)
    perception = Perception(create_backend(path, "onnxruntime", "cpu")[0], spec)
    result = {}
    segmentation = SegmentationMetrics(spec.num_classes)
    lookup = kitti6_lookup()
    frames = camvid_frames(SHARED / "camvid" / "val")
    for image_path in frames:
        sample = read_frame(image_path, lookup)
        segmentation.update(perception.process(sample.image, "rgb8").labels, sample.segmentation)
    result["camvid_val_segmentation"] = summary(segmentation, frames=len(frames))

    segmentation = SegmentationMetrics(spec.num_classes)
    frame = perception.process(read_rgb(SHARED / "kitti" / "000099.png"), "rgb8")
    segmentation.update(frame.labels, read_kitti6_labels(SHARED / "kitti" / "segm_gt_000099.png"))
    result["kitti_000099_segmentation"] = summary(segmentation)

    root = SHARED / "kitti_tracking_0001"
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    held_out, everything = DepthMetrics(80.0), DepthMetrics(80.0)
    images = sorted((root / "image_2" / "0001").glob("*.png"))
    scans = sorted((root / "velodyne" / "0001").glob("*.bin"))
    for index, (image_path, scan) in enumerate(zip(images, scans)):
        rgb = read_rgb(image_path)
        height, width = rgb.shape[:2]
        frame = perception.process(rgb, "rgb8", camera=calibration.intrinsics(width, height))
        truth = project_lidar(read_velodyne(scan), calibration, width, height)
        everything.update(frame.depth, truth)
        if index in LIDAR_HELD_OUT:
            held_out.update(frame.depth, truth)
    result["kitti_tracking_0001_lidar_heldout"] = summary(depth=held_out, frames=len(LIDAR_HELD_OUT),
                                                          first_frame=LIDAR_HELD_OUT[0], last_frame=LIDAR_HELD_OUT[-1])
    result["kitti_tracking_0001_lidar"] = summary(depth=everything, frames=len(images))
    return result | generated(model, spec, "street", 80.0)


def strip_per_class(value, keep: bool = False):
    """Per-class IoUs only for the real-frame segmentation results."""
    if isinstance(value, dict):
        return {k: strip_per_class(v, keep or k.endswith("_segmentation")) for k, v in value.items()
                if keep or k != "per_class_iou"}
    return value


def main():
    metrics = {"hydranet_street.pt": street(REPO / "models" / "hydranet_street.pt"),
               "hydranet_indoor.pt": indoor(REPO / "models" / "hydranet_indoor.pt")}
    metrics = strip_per_class(metrics)
    (REPO / "models" / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
