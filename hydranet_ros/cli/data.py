"""Verbs that make datasets: synth (generated frames), convert (real datasets), dataset from-bag (recordings)."""
from __future__ import annotations

from pathlib import Path

from hydranet_ros.cli.common import existing_path, model_path, non_negative_float, positive_int
from hydranet_ros.errors import CommandError, UserError
from hydranet_ros.data.kinds import KINDS_OF_DATASET, SCENE_KINDS


def add_synth_arguments(parser):
    parser.add_argument("kind", choices=SCENE_KINDS, help="indoor rooms (NYUD-40 ids) or streets (KITTI-6 ids)")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--count", type=int, default=1000, help="number of frames (default 1000)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("HEIGHT", "WIDTH"),
                        help="frame size (default 240 320 indoor, 176 608 street)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same frames")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")


def run_synth(args):
    from hydranet_ros.data.synth_dataset import DEFAULT_SIZES, write_synth_dataset
    root = write_synth_dataset(args.kind, args.out, args.count, args.size, args.seed, args.workers)
    height, width = args.size or DEFAULT_SIZES[args.kind]
    print(f"wrote {args.count} {args.kind} frames ({width}x{height}) to {root}")


def add_synth_bag_arguments(parser):
    parser.add_argument("--out", required=True, help="rosbag2 folder to write (MCAP)")
    parser.add_argument("--truth", help="also write every camera frame's exact labels and depth to this dataset folder")
    parser.add_argument("--count", type=int, default=100, help="camera frames, at 10 Hz (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same street and recording")
    parser.add_argument("--size", type=int, nargs=2, default=(400, 640), metavar=("HEIGHT", "WIDTH"),
                        help="camera image size (default 400 640)")
    parser.add_argument("--camera-height", type=float, default=0.6, help="metres above the ground (default 0.6)")
    parser.add_argument("--fov", type=float, default=100.0, help="horizontal field of view, degrees (default 100)")
    parser.add_argument("--beams", type=int, default=16, help="LiDAR rings over +-15 degrees (default 16)")


def run_synth_bag(args):
    from hydranet_ros.data.synth.robot_bag import write_robot_bag
    out, truth = Path(args.out), Path(args.truth) if args.truth else None
    for path in (out, truth):
        if path is not None and path.exists():
            raise UserError(f"{path} exists; give a new path")
    frames = write_robot_bag(out, truth, args.count, args.seed, args.size[1], args.size[0], args.camera_height,
                             args.fov, args.beams)
    print(f"wrote {frames} frames of a sidewalk robot to the bag {out}"
          + (f", their truth to {truth}" if truth else ""))


def add_convert_arguments(parser):
    parser.add_argument("format", choices=KINDS_OF_DATASET)
    parser.add_argument("source", type=existing_path, help="the .mat file (nyud-mat) or the folder of images")
    parser.add_argument("--out", required=True, help="dataset folder to write (kitti-bag: the bag)")
    parser.add_argument("--class-map", help="nyud-mat: .npy of 895 entries, raw label id -> 0..39 or 255")
    parser.add_argument("--indices", help="nyud-mat: text file of 1-based frame numbers (e.g. the 795 train split)")
    parser.add_argument("--labels", help="kitti: folder of KITTI-6 colour label PNGs named like the images")
    parser.add_argument("--trainid-labels", help="kitti: folder of Cityscapes train-id label PNGs named like the "
                                                 "images (KITTI semantics), mapped onto KITTI-6")
    parser.add_argument("--depth", help="kitti: folder of depth PNGs (uint16 / 256) named like the images")
    parser.add_argument("--velodyne", help="kitti, kitti-bag: folder of LiDAR .bin scans named like the images")
    parser.add_argument("--calib", help="kitti, kitti-bag: calibration file (P2, R_rect, Tr_velo_cam)")
    parser.add_argument("--frames", type=int, nargs=2, metavar=("START", "STOP"),
                        help="kitti, kitti-bag: only the sorted images START..STOP-1 (e.g. to hold frames out)")
    parser.add_argument("--frame-indices", type=int, nargs="+", metavar="N",
                        help="kitti: only these positions (0-based) of the sorted images")
    parser.add_argument("--hold-back", type=int, nargs="+", metavar="N",
                        help="kitti: leave out the images whose file name starts with one of these numbers "
                             "(000013_10.png is 13), e.g. the drives kept for validation")
    parser.add_argument("--geometric-depth", type=float, metavar="HEIGHT",
                        help="kitti with --trainid-labels: labelled frames without depth get depth from their labels "
                             "and a flat ground HEIGHT m below a level camera: road and sidewalk on the ground, "
                             "cars and bicycles at their ground contact (stixels; models/README.md has its accuracy)")
    parser.add_argument("--ground-plane-depth", type=float, metavar="HEIGHT",
                        help="kitti: labelled frames without depth get depth on their road and sidewalk pixels "
                             "(up to 40 m) from a flat ground HEIGHT m below a level camera (KITTI's: 1.65)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="kitti-bag: bag storage")
    parser.add_argument("--compressed", action="store_true", help="kitti-bag: images as JPEG (CompressedImage)")


def run_convert(args):
    from hydranet_ros.data.convert import convert_dataset
    print(convert_dataset(args.format, args.source, Path(args.out), args.class_map, args.indices, args.labels,
                          args.trainid_labels, args.depth, args.velodyne, args.calib, args.frames, args.frame_indices,
                          args.ground_plane_depth, args.storage, args.compressed, args.hold_back,
                          args.geometric_depth))


def add_dataset_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    bag = actions.add_parser(
        "from-bag", help="a robot's rosbag2 recordings -> a dataset folder for its camera",
        description="Images (rectified with the bag's camera_info), depth labels from a LiDAR through the "
                    "bag's /tf_static and /tf, segmentation labels from a teacher; the later part of each "
                    "recording is validation. Writes OUT/train, OUT/val (dataset folders) and OUT/from_bag.yaml.")
    bag.add_argument("bags", nargs="+", type=existing_path, metavar="BAG", help="rosbag2 folders or .mcap/.db3 files")
    bag.add_argument("--out", required=True, help="new folder to write")
    bag.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    bag.add_argument("--camera-info-topic", help="CameraInfo topic (default: camera_info beside the image topic)")
    bag.add_argument("--lidar-topic", help="PointCloud2 topic of a LiDAR: depth labels (default: none)")
    bag.add_argument("--teacher", metavar="NAME|PATH",
                     help="segmentation labels from a teacher: an .onnx/.tflite Cityscapes model (e.g. "
                          "../shared/weights/espnetv2_s_2.0_city_1024x512.onnx) or a model file or shipped model "
                          "name (default: no segmentation labels)")
    bag.add_argument("--class-map", type=existing_path,
                     help="teacher-class map for .onnx/.tflite teachers (default: teacher_maps/cityscapes19.yaml)")
    bag.add_argument("--min-confidence", type=non_negative_float, default=0.5,
                     help="pixels where a teacher with scores is less sure than this become ignore (default 0.5)")
    bag.add_argument("--label-space", default="kitti6", help="label space of the dataset (default kitti6)")
    bag.add_argument("--every", type=positive_int, default=1, metavar="N", help="every N-th image (default 1)")
    bag.add_argument("--max-frames", type=positive_int, metavar="N", help="at most N images per bag, spread over it")
    bag.add_argument("--split-at", type=non_negative_float, metavar="SECONDS",
                     help="images recorded this long after a bag's first are validation (default: the last "
                          "fifth of each bag)")
    bag.add_argument("--lidar-tolerance", type=non_negative_float, default=0.05, metavar="SECONDS",
                     help="largest stamp difference of an image and its scan (default 0.05)")
    bag.add_argument("--workers", type=positive_int, default=1, help="bags processed in parallel (default 1)")
    bag.add_argument("--ray", metavar="ADDRESS",
                     help="run the bags as tasks on a Ray cluster: its address, auto, or local (a Ray of "
                          "--workers CPUs started here)")


def run_dataset(args):
    from hydranet_ros.data.from_bag import FromBagOptions, dataset_from_bags
    teacher = None
    if args.teacher:
        teacher = Path(args.teacher) if Path(args.teacher).suffix in (".onnx", ".tflite") else model_path(args.teacher)
    options = FromBagOptions(args.image_topic, args.camera_info_topic, args.lidar_topic, args.label_space, teacher,
                             args.class_map, args.min_confidence, args.every, args.max_frames, args.split_at,
                             args.lidar_tolerance)
    given = [bag.resolve() for bag in args.bags]
    twice = sorted({str(bag) for bag in args.bags if given.count(bag.resolve()) > 1})
    if twice:
        raise CommandError(f"a bag given twice would be used twice: {', '.join(twice)}")
    summary = dataset_from_bags(args.bags, Path(args.out), options, args.workers, args.ray)
    if summary["train"] + summary["val"] == 0:
        reasons = sorted({note for report in summary["bags"] for note in report.get("notes", [])})[:3]
        raise CommandError(f"no frame could be used, so {args.out} holds an empty dataset"
                           + (f": {'; '.join(reasons)}" if reasons else "") + f" (details in {args.out}/from_bag.yaml)")
    depth = sum(report["with_depth"] for report in summary["bags"])
    print(f"wrote {summary['train']} training and {summary['val']} validation frames ({depth} with LiDAR depth) "
          f"from {len(args.bags)} bag(s) to {args.out}; details in {Path(args.out) / 'from_bag.yaml'}")


VERBS = {
    "synth": ("generate labelled indoor or street frames with exact metric depth", add_synth_arguments, run_synth),
    "convert": ("turn NYUDv2 (.mat or example frames), KITTI or CamVid data into a dataset folder, or a KITTI "
                "sequence into a rosbag2",
                add_convert_arguments, run_convert),
    "synth-bag": ("generate a rosbag2 of a low robot with a wide lens and a LiDAR on a generated sidewalk",
                  add_synth_bag_arguments, run_synth_bag),
    "dataset": ("make a dataset folder from a robot's recordings (from-bag)", add_dataset_arguments, run_dataset),
}
