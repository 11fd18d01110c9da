"""How accurate depth labels from labels and geometry are (hydranet_ros.camera.ground_plane.stixel_depth),
per Cityscapes class, against real depth; prints JSON. Model-card tooling: it reads ../shared.

    .venv/bin/python scripts/geometric_depth_accuracy.py [--camera-height 1.65]

- stereo: KITTI stereo 2015 frame 000005_10 with its human labels (KITTI semantics), depth from the
  ground-truth disparity (fx B / d, ../shared/README.md);
- lidar: KITTI tracking 0001 frames 0, 10, 20, 30 and the three KITTI object frames of other drives,
  labelled by the ESPNetv2 Cityscapes teacher, against their projected LiDAR (cap 80 m).
For each class: abs rel, d<1.25 and the share of its pixels with real depth that got a label (coverage).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TEACHER = REPO.parent / "shared" / "weights" / "espnetv2_s_2.0_city_1600x480.onnx"
sys.path.insert(0, str(REPO))

from hydranet_ros.data.dataset import read_png_unchanged, read_rgb  # noqa: E402
from hydranet_ros.data.kitti import (CITYSCAPES_NAMES, geometric_depth, kitti_camera, project_lidar,  # noqa: E402
                                     read_tracking_calibration, read_velodyne)

STEREO_FOCAL_BASELINE = 721.5377 * 0.5327  # fx * B of the 2011_09_26 cameras (../shared/README.md)


def stereo_frame():
    root = DATA / "kitti_stereo2015"
    disparity = read_png_unchanged(root / "disp_occ_0" / "000005_10.png").astype(np.float64) / 256.0
    with np.errstate(divide="ignore"):
        depth = np.where(disparity > 0, STEREO_FOCAL_BASELINE / disparity, 0.0)
    labels = read_png_unchanged(DATA / "kitti_semantics" / "semantic_trainid" / "000005_10.png")
    height, width = labels.shape
    return [(labels, kitti_camera(width, height), depth)]


def lidar_frames():
    from hydranet_ros.training.distill import ExternalSegmentationTeacher
    teacher = ExternalSegmentationTeacher(TEACHER, np.arange(256, dtype=np.uint8))  # Cityscapes ids as they are
    frames = []
    tracking = DATA / "kitti_tracking_0001"
    sources = [(tracking / "image_2" / "0001" / f"{i:06d}.png", tracking / "velodyne" / "0001" / f"{i:06d}.bin",
                tracking / "calib" / "0001.txt") for i in (0, 10, 20, 30)]
    other = DATA / "kitti_object_lidar"
    sources += [(other / "image_2" / f"{i:06d}.png", other / "velodyne" / f"{i:06d}.bin",
                 other / "calib" / f"{i:06d}.txt") for i in range(3)]
    for image, scan, calib in sources:
        rgb = read_rgb(image)
        calibration = read_tracking_calibration(calib)
        height, width = rgb.shape[:2]
        frames.append((teacher(rgb), calibration.intrinsics(width, height),
                       project_lidar(read_velodyne(scan), calibration, width, height)))
    return frames


def accuracy(frames, camera_height: float) -> dict:
    per_class = {}
    for labels, intrinsics, truth in frames:
        labelled = geometric_depth(labels, intrinsics, camera_height)
        for class_id in np.unique(labels):
            if class_id >= len(CITYSCAPES_NAMES):
                continue
            measured = (labels == class_id) & (truth > 0) & (truth <= 80)
            both = measured & (labelled > 0)
            entry = per_class.setdefault(CITYSCAPES_NAMES[class_id], {"measured": 0, "ratios": []})
            entry["measured"] += int(measured.sum())
            entry["ratios"].append(labelled[both] / truth[both])
    table = {}
    for name, entry in per_class.items():
        ratios = np.concatenate(entry["ratios"])
        if entry["measured"] == 0:
            continue
        table[name] = {"pixels_with_truth": entry["measured"], "coverage": round(len(ratios) / entry["measured"], 3)}
        if len(ratios):
            table[name] |= {"abs_rel": round(float(np.mean(np.abs(ratios - 1))), 3),
                            "median_ratio": round(float(np.median(ratios)), 3),
                            "d1": round(float(np.mean(np.maximum(ratios, 1 / ratios) < 1.25)), 3)}
    everything = np.concatenate([r for e in per_class.values() for r in e["ratios"]])
    table["all labelled"] = {"abs_rel": round(float(np.mean(np.abs(everything - 1))), 3),
                             "d1": round(float(np.mean(np.maximum(everything, 1 / everything) < 1.25)), 3),
                             "pixels": len(everything)}
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera-height", type=float, default=1.65)
    args = parser.parse_args()
    print(json.dumps({"stereo_000005_human_labels": accuracy(stereo_frame(), args.camera_height),
                      "lidar_7_frames_teacher_labels": accuracy(lidar_frames(), args.camera_height)}, indent=1))


if __name__ == "__main__":
    main()
