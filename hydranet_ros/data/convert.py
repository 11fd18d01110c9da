"""Real datasets -> our dataset folder (data/dataset.py), which train/evaluate read.

  nyud-mat       the official nyu_depth_v2_labeled.mat (+ a 895-entry class map, + split indices)
  nyud-examples  frames laid out like the examples published with the official models
  kitti          KITTI images with any of: KITTI-6 colour labels, Cityscapes train-id labels (KITTI
                 semantics), depth PNGs, raw LiDAR + calibration; labelled frames without depth may get
                 depth on their road and sidewalk from the flat ground below KITTI's camera
  camvid         a CamVid split folder (images/, labels/ with the 11 SegNet classes) -> KITTI-6 labels
  kitti-bag      a KITTI sequence (images, LiDAR, calibration) -> a rosbag2 (data/kitti_bag.py), to try the
                 recording-to-dataset workflow on public data
"""
from __future__ import annotations

import re
from pathlib import Path

from tqdm import tqdm

from hydranet_ros.errors import CommandError
from hydranet_ros.data import camvid
from hydranet_ros.data.dataset import Sample, read_png_unchanged, read_rgb, write_sample, writing_dataset
from hydranet_ros.data.kitti import (GEOMETRIC_GROUND, GEOMETRIC_STANDING, KITTI_DEPTH_SCALE, geometric_depth,
                                     ground_label_depth, kitti_camera, project_lidar, read_depth_png,
                                     read_kitti6_labels, read_tracking_calibration, read_velodyne,
                                     trainids_as_kitti6)
from hydranet_ros.data.nyud import NYUD_DEPTH_SCALE, convert_labelled_mat, example_frame_names, read_example_frame


def frame_number(image: Path) -> int | None:
    """The number a frame's file name starts with (000013_10.png: 13), or None."""
    digits = re.match(r"\d+", image.name)
    return int(digits.group()) if digits else None


def convert_dataset(kind: str, source: Path, out: Path, class_map=None, indices=None, labels=None,
                    trainid_labels=None, depth=None, velodyne=None, calib=None, frames=None,
                    frame_indices=None, ground_plane_height=None, storage="mcap", compressed=False,
                    hold_back=None, geometric_height=None) -> str:
    """One real dataset (kind: nyud-mat, nyud-examples, kitti, camvid) -> a dataset folder, or a KITTI sequence
    (kitti-bag) -> a rosbag2; says what it wrote."""
    if not source.exists():
        raise CommandError(f"{source} does not exist")
    if kind == "nyud-mat":
        if not class_map:
            raise CommandError("nyud-mat needs --class-map (docs/training.md, NYUDv2)")
        positions = [int(v) - 1 for v in Path(indices).read_text().split()] if indices else None
        convert_labelled_mat(source, class_map, out, positions)
        return f"wrote {out}"
    if kind == "nyud-examples":
        names = example_frame_names(source)
        if not names:
            raise CommandError(f"no NYUD example frames in {source}")
        with writing_dataset(out, "nyud40", NYUD_DEPTH_SCALE) as root:
            for name in tqdm(names, desc="nyud-examples"):
                write_sample(root, read_example_frame(source, name), NYUD_DEPTH_SCALE)
        return f"wrote {len(names)} frames to {out}"
    if kind == "camvid":
        images = camvid.frame_names(source) if (source / "images").is_dir() else []
        if not images:
            raise CommandError(f"no CamVid frames in {source / 'images'}")
        lookup = camvid.kitti6_lookup()
        with writing_dataset(out, "kitti6", KITTI_DEPTH_SCALE) as root:
            for path in tqdm(images, desc="camvid"):
                write_sample(root, camvid.read_frame(path, lookup), KITTI_DEPTH_SCALE)
        return f"wrote {len(images)} frames to {out}"
    if kind == "kitti-bag":
        if not calib:
            raise CommandError("kitti-bag needs --calib (the sequence's calibration file)")
        if out.exists():
            raise CommandError(f"{out} exists; give a new bag path")
        from hydranet_ros.data.kitti_bag import write_kitti_bag
        stamps = write_kitti_bag(source, Path(velodyne) if velodyne else None, read_tracking_calibration(calib),
                                 out, storage, compressed, tuple(frames) if frames else None)
        return f"wrote {len(stamps)} frames to the bag {out}"
    images = sorted(source.glob("*.png"))
    if frames:
        images = images[frames[0]:frames[1]]
    if frame_indices:
        picked = set(frame_indices)
        images = [image for index, image in enumerate(images) if index in picked]
    if hold_back:
        images = [image for image in images if frame_number(image) not in set(hold_back)]
    if not images:
        raise CommandError(f"no .png images in {source}")
    if velodyne and not calib:
        raise CommandError("--velodyne needs --calib")
    calibration = read_tracking_calibration(calib) if calib else None
    with writing_dataset(out, "kitti6", KITTI_DEPTH_SCALE) as root:
        for path in tqdm(images, desc="kitti"):
            image = read_rgb(path)
            sample, trainids = Sample(path.stem, image), None
            if labels and (Path(labels) / path.name).is_file():
                sample.segmentation = read_kitti6_labels(Path(labels) / path.name)
            elif trainid_labels and (Path(trainid_labels) / path.name).is_file():
                trainids = read_png_unchanged(Path(trainid_labels) / path.name)
                sample.segmentation = trainids_as_kitti6(trainids)
            if depth and (Path(depth) / path.name).is_file():
                sample.depth = read_depth_png(Path(depth) / path.name)
            elif velodyne and (Path(velodyne) / f"{path.stem}.bin").is_file():
                sample.depth = project_lidar(read_velodyne(Path(velodyne) / f"{path.stem}.bin"), calibration,
                                             image.shape[1], image.shape[0])
            if calibration is not None:
                sample.intrinsics = calibration.intrinsics(image.shape[1], image.shape[0])
            if geometric_height and sample.depth is None and trainids is not None:
                sample.intrinsics = sample.intrinsics or kitti_camera(image.shape[1], image.shape[0])
                sample.depth = geometric_depth(trainids, sample.intrinsics, geometric_height, GEOMETRIC_GROUND,
                                               GEOMETRIC_STANDING)
            if ground_plane_height and sample.depth is None and sample.segmentation is not None:
                sample.intrinsics = sample.intrinsics or kitti_camera(image.shape[1], image.shape[0])
                sample.depth = ground_label_depth(sample.segmentation, sample.intrinsics, ground_plane_height)
            write_sample(root, sample, KITTI_DEPTH_SCALE)
    return f"wrote {len(images)} frames to {out}"
