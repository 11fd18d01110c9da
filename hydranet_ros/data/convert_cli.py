"""hydranet convert: real datasets -> our dataset folder (data/dataset.py), which train/evaluate read.

  nyud-mat       the official nyu_depth_v2_labeled.mat (+ a 895-entry class map, + split indices)
  nyud-examples  frames laid out like the examples published with the official models
  kitti          KITTI images with any of: KITTI-6 colour labels, Cityscapes train-id labels (KITTI
                 semantics), depth PNGs, raw LiDAR + calibration
  camvid         a CamVid split folder (images/, labels/ with the 11 SegNet classes) -> KITTI-6 labels
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from hydranet_ros.cli.errors import CommandError
from hydranet_ros.data import camvid
from hydranet_ros.data.dataset import Sample, create_dataset_folder, read_rgb, write_sample
from hydranet_ros.data.kitti import (KITTI_DEPTH_SCALE, project_lidar, read_depth_png, read_kitti6_labels,
                                     read_tracking_calibration, read_trainid_labels_as_kitti6, read_velodyne)
from hydranet_ros.data.nyud import NYUD_DEPTH_SCALE, convert_labelled_mat, example_frame_names, read_example_frame


def add_arguments(parser):
    parser.add_argument("format", choices=["nyud-mat", "nyud-examples", "kitti", "camvid"])
    parser.add_argument("source", help="the .mat file (nyud-mat) or the folder of images")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--class-map", help="nyud-mat: .npy of 895 entries, raw label id -> 0..39 or 255")
    parser.add_argument("--indices", help="nyud-mat: text file of 1-based frame numbers (e.g. the 795 train split)")
    parser.add_argument("--labels", help="kitti: folder of KITTI-6 colour label PNGs named like the images")
    parser.add_argument("--trainid-labels", help="kitti: folder of Cityscapes train-id label PNGs named like the "
                                                 "images (KITTI semantics), mapped onto KITTI-6")
    parser.add_argument("--depth", help="kitti: folder of depth PNGs (uint16 / 256) named like the images")
    parser.add_argument("--velodyne", help="kitti: folder of LiDAR .bin scans named like the images")
    parser.add_argument("--calib", help="kitti: calibration file for --velodyne (P2, R_rect, Tr_velo_cam)")
    parser.add_argument("--frames", type=int, nargs=2, metavar=("START", "STOP"),
                        help="kitti: only the sorted images START..STOP-1 (e.g. to hold frames out for testing)")
    parser.add_argument("--frame-indices", type=int, nargs="+", metavar="N",
                        help="kitti: only these positions (0-based) of the sorted images")


def run(args):
    source, out = Path(args.source), Path(args.out)
    if not source.exists():
        raise CommandError(f"{source} does not exist")
    if args.format == "nyud-mat":
        if not args.class_map:
            raise CommandError("nyud-mat needs --class-map (docs/training.md, NYUDv2)")
        indices = [int(v) - 1 for v in Path(args.indices).read_text().split()] if args.indices else None
        convert_labelled_mat(source, args.class_map, out, indices)
        print(f"wrote {out}")
        return
    if args.format == "nyud-examples":
        root = create_dataset_folder(out, "nyud40", NYUD_DEPTH_SCALE)
        names = example_frame_names(source)
        if not names:
            raise CommandError(f"no NYUD example frames in {source}")
        for name in tqdm(names, desc="nyud-examples"):
            write_sample(root, read_example_frame(source, name), NYUD_DEPTH_SCALE)
        print(f"wrote {len(names)} frames to {out}")
        return
    if args.format == "camvid":
        images = camvid.frame_names(source) if (source / "images").is_dir() else []
        if not images:
            raise CommandError(f"no CamVid frames in {source / 'images'}")
        root = create_dataset_folder(out, "kitti6", KITTI_DEPTH_SCALE)
        lookup = camvid.kitti6_lookup()
        for path in tqdm(images, desc="camvid"):
            write_sample(root, camvid.read_frame(path, lookup), KITTI_DEPTH_SCALE)
        print(f"wrote {len(images)} frames to {out}")
        return
    images = sorted(source.glob("*.png"))
    if args.frames:
        images = images[args.frames[0]:args.frames[1]]
    if args.frame_indices:
        picked = set(args.frame_indices)
        images = [image for index, image in enumerate(images) if index in picked]
    if not images:
        raise CommandError(f"no .png images in {source}")
    if args.velodyne and not args.calib:
        raise CommandError("--velodyne needs --calib")
    calibration = read_tracking_calibration(args.calib) if args.calib else None
    root = create_dataset_folder(out, "kitti6", KITTI_DEPTH_SCALE)
    for path in tqdm(images, desc="kitti"):
        image = read_rgb(path)
        sample = Sample(path.stem, image)
        if args.labels and (Path(args.labels) / path.name).is_file():
            sample.segmentation = read_kitti6_labels(Path(args.labels) / path.name)
        elif args.trainid_labels and (Path(args.trainid_labels) / path.name).is_file():
            sample.segmentation = read_trainid_labels_as_kitti6(Path(args.trainid_labels) / path.name)
        if args.depth and (Path(args.depth) / path.name).is_file():
            sample.depth = read_depth_png(Path(args.depth) / path.name)
        elif args.velodyne and (Path(args.velodyne) / f"{path.stem}.bin").is_file():
            sample.depth = project_lidar(read_velodyne(Path(args.velodyne) / f"{path.stem}.bin"), calibration,
                                         image.shape[1], image.shape[0])
        if calibration is not None:
            sample.intrinsics = calibration.intrinsics(image.shape[1], image.shape[0])
        write_sample(root, sample, KITTI_DEPTH_SCALE)
    print(f"wrote {len(images)} frames to {out}")
