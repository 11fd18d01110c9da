"""Scores a per-frame path (inference.pipeline.Perception) on the real frames in ../shared/data.

Each image whole at its own resolution, with its camera's intrinsics where they are known (depth is
rescaled to them); depth is scored only where there is ground truth and the model predicts depth:
- street: CamVid val (KITTI-6 labels), KITTI 000099 (KITTI-6 labels), the KITTI semantics frames of
  two drives held back from training (their 19 classes mapped onto KITTI-6), the KITTI tracking
  sequence 0001 against its projected LiDAR: frames 20-30, which no training job used, and all 31
  frames; the three KITTI object frames of other drives against their LiDAR (never trained on);
- indoor: the NYUDv2 example frames.
The model card (scripts/model_card_metrics.py) and the int8/bf16 accuracy gate use the same code. Model-card
tooling, not part of the package a robot runs: it reads research data the package never ships.
"""
from __future__ import annotations

from pathlib import Path

from hydranet_ros.data.camvid import frame_names as camvid_frames, kitti6_lookup, read_frame
from hydranet_ros.data.dataset import read_rgb
from hydranet_ros.data.kitti import (project_lidar, read_kitti6_labels, read_tracking_calibration,
                                     read_trainid_labels_as_kitti6, read_velodyne)
from hydranet_ros.data.nyud import example_frame_names, read_example_frame
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.training.metrics import DepthMetrics, SegmentationMetrics

LIDAR_HELD_OUT = range(20, 31)  # frames of KITTI tracking 0001 that no training job used
# KITTI semantics frames no training job uses (by the number their file names start with): whole
# drives, told apart by what they show (consecutive frames of this set are often one drive): a city
# square (000002-000003), a city street lined with parked cars (000004-000006), a wide junction
# (000013-000017), one drive of 14 frames (000090-000103: its consecutive frames correlate at 0.4-0.97
# where neighbouring drives fall to 0.0-0.3) and the five frames of the two other recording days
# (000155-000159: 1224x370 and 1238x374, cameras no other frame has). Together they hold every class,
# sidewalk included. The other 115 of the 144 frames train.
KITTI_SEMANTICS_HELD_BACK = (2, 3, 4, 5, 6, 13, 14, 15, 16, 17) + tuple(range(90, 104)) + tuple(range(155, 160))


def summary(segmentation=None, depth=None, **extra) -> dict:
    out = {}
    if segmentation is not None:
        s = segmentation.summary()
        out.update(miou=s["miou"], pixel_accuracy=s["pixel_accuracy"], per_class_iou=s["per_class_iou"])
    if depth is not None:
        out.update(depth.summary())
    return out | extra


def camvid_val(perception: Perception, data: Path, limit: int | None = None) -> dict:
    segmentation = SegmentationMetrics(perception.spec.num_classes)
    lookup = kitti6_lookup()
    frames = camvid_frames(data / "camvid" / "val")[:limit]
    for image_path in frames:
        sample = read_frame(image_path, lookup)
        segmentation.update(perception.process(sample.image, "rgb8").labels, sample.segmentation)
    return summary(segmentation, frames=len(frames))


def kitti_000099(perception: Perception, data: Path) -> dict:
    segmentation = SegmentationMetrics(perception.spec.num_classes)
    frame = perception.process(read_rgb(data / "kitti" / "000099.png"), "rgb8")
    segmentation.update(frame.labels, read_kitti6_labels(data / "kitti" / "segm_gt_000099.png"))
    return summary(segmentation)


def kitti_semantics_trained_on(data: Path) -> tuple[int, ...]:
    """The KITTI semantics frames the round-3 runs train on: every one not held back (115)."""
    names = (data / "kitti_semantics" / "image_2").glob("*_10.png")
    return tuple(sorted(set(int(p.name[:6]) for p in names) - set(KITTI_SEMANTICS_HELD_BACK)))


def kitti_semantics(perception: Perception, data: Path, frames=KITTI_SEMANTICS_HELD_BACK) -> dict:
    segmentation = SegmentationMetrics(perception.spec.num_classes)
    root = data / "kitti_semantics"
    for index in frames:
        name = f"{index:06d}_10.png"
        frame = perception.process(read_rgb(root / "image_2" / name), "rgb8")
        segmentation.update(frame.labels, read_trainid_labels_as_kitti6(root / "semantic_trainid" / name))
    return summary(segmentation, frames=len(frames))


def kitti_other_drives(perception: Perception, data: Path) -> dict:
    """Depth metrics (cap 80 m) on the KITTI object frames of three other drives (never trained on)."""
    root = data / "kitti_object_lidar"
    depth = DepthMetrics(80.0)
    images = sorted((root / "image_2").glob("*.png"))
    for image in images:
        calibration = read_tracking_calibration(root / "calib" / f"{image.stem}.txt")
        rgb = read_rgb(image)
        height, width = rgb.shape[:2]
        frame = perception.process(rgb, "rgb8", camera=calibration.intrinsics(width, height))
        depth.update(frame.depth, project_lidar(read_velodyne(root / "velodyne" / f"{image.stem}.bin"), calibration,
                                                width, height))
    return summary(depth=depth, frames=len(images))


def kitti_lidar(perception: Perception, data: Path, frames=range(31)) -> dict:
    """Depth metrics (cap 80 m) against the projected LiDAR of the given frames of sequence 0001."""
    root = data / "kitti_tracking_0001"
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    depth = DepthMetrics(80.0)
    images = sorted((root / "image_2" / "0001").glob("*.png"))
    scans = sorted((root / "velodyne" / "0001").glob("*.bin"))
    for index in frames:
        rgb = read_rgb(images[index])
        height, width = rgb.shape[:2]
        frame = perception.process(rgb, "rgb8", camera=calibration.intrinsics(width, height))
        depth.update(frame.depth, project_lidar(read_velodyne(scans[index]), calibration, width, height))
    return summary(depth=depth, frames=len(frames), first_frame=frames[0], last_frame=frames[-1])


def nyud_examples(perception: Perception, data: Path) -> dict:
    segmentation, depth = SegmentationMetrics(perception.spec.num_classes), DepthMetrics(10.0)
    names = example_frame_names(data / "nyud")
    for name in names:
        sample = read_example_frame(data / "nyud", name)
        frame = perception.process(sample.image, "rgb8", camera=sample.intrinsics)
        if sample.segmentation is not None:
            segmentation.update(frame.labels, sample.segmentation)
        if sample.depth is not None:
            depth.update(frame.depth, sample.depth)
    return summary(segmentation, depth, frames=len(names))


def street_calibration_folder(data: Path, folder: Path) -> Path:
    """Links the street int8 calibration frames into folder: every 6th CamVid train frame and KITTI 0001
    frames 0-19, all frames the street model trained on (none that the gate scores)."""
    camvid = sorted((data / "camvid" / "train" / "images").glob("*.jpg"))[::6]
    kitti = sorted((data / "kitti_tracking_0001" / "image_2" / "0001").glob("*.png"))[:LIDAR_HELD_OUT.start]
    folder.mkdir(parents=True, exist_ok=True)
    for image in camvid + kitti:
        (folder / f"{image.parent.name}_{image.name}").symlink_to(image.resolve())
    return folder


def precision_gate(model_path: Path, data: Path, kind: str, calibration, precisions=("int8", "bf16"),
                   camvid_limit: int | None = None) -> dict:
    """Real-frame metrics of fp32 and of each lower precision through OpenVINO, and what each loses:
    mIoU in points, depth RMSE in percent. street: CamVid val and the held-out KITTI LiDAR frames;
    indoor: the NYUDv2 example frames."""
    from hydranet_ros.inference.backends import BackendOptions, create_backend
    from hydranet_ros.model.model_file import load_model
    spec = load_model(model_path)[1]
    scores = {}
    for precision in ("fp32",) + tuple(precisions):
        chosen, _ = create_backend(model_path, BackendOptions(backend="openvino", device="cpu", precision=precision,
                                                              calibration=calibration))
        perception = Perception(chosen, spec)
        if kind == "street":
            scores[f"{precision}: {chosen.describe()}"] = {
                "camvid_val_miou": camvid_val(perception, data, camvid_limit)["miou"],
                "kitti_lidar_heldout_rmse": kitti_lidar(perception, data, LIDAR_HELD_OUT)["rmse"]}
        else:
            nyud = nyud_examples(perception, data)
            scores[f"{precision}: {chosen.describe()}"] = {"nyud_miou": nyud["miou"], "nyud_rmse": nyud["rmse"]}
    reference = next(iter(scores.values()))
    for name, score in scores.items():
        score["miou_points_lost"] = round(100 * max(reference[k] - score[k] for k in score if k.endswith("miou")), 2)
        score["rmse_percent_lost"] = round(100 * max(score[k] / reference[k] - 1 for k in score if k.endswith("rmse")),
                                           2)
    return scores
