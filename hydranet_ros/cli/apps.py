"""Verbs that run a model: demo, infer, process-bag, benchmark, soak (apps/ and inference/benchmark.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from hydranet_ros.cli.common import (DEFAULT_MODEL, add_calibration_argument, add_model_arguments, existing_path,
                                     model_path, open_perception, positive_int)
from hydranet_ros.errors import CommandError
from hydranet_ros.inference.choices import BACKENDS, PRECISIONS
from hydranet_ros.ros.parameters import BY_NAME as NODE_PARAMETERS


def add_demo_arguments(parser):
    parser.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"model file or shipped name (default {DEFAULT_MODEL}; hydranet_indoor.pt for rooms)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--frames", type=int, default=60, help="number of frames (default 60: 6 s at 10 Hz)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    parser.add_argument("--seed", type=int, default=3, help="scene seed (default 3)")
    parser.add_argument("--input", type=existing_path,
                        help="a folder of images, a video or a rosbag2 instead of a generated sequence")
    parser.add_argument("--image-topic", help="with a bag --input: its image topic (default: the first)")


def run_demo(args):
    from hydranet_ros.apps.demo import run_demo as demo
    return demo(Path(args.out), args.model, args.backend, args.frames, args.rate, args.seed, args.input,
                args.image_topic)


def add_cloud_arguments(parser):
    """The node's cloud parameters, with the node's defaults: the same values give the node's clouds."""
    for name in ("points_stride", "points_max_depth"):
        spec = NODE_PARAMETERS[name]
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(spec.default), default=spec.default,
                            help=f"{spec.description} (the node's {name}; default {spec.default})")
    parser.add_argument("--points-exclude-classes", nargs="*", metavar="CLASS",
                        default=NODE_PARAMETERS["points_exclude_classes"].default,
                        help="class names left out of the points (the node's points_exclude_classes; default sky)")


def cloud_parameters(args) -> dict:
    return {"points_stride": args.points_stride, "points_max_depth": args.points_max_depth,
            "points_exclude_classes": args.points_exclude_classes}


def add_infer_arguments(parser):
    parser.add_argument("input", type=existing_path, help="an image, a folder of images or a video")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                        help="camera intrinsics of the input, for the point clouds (default: a guess from the "
                             "model's training camera's field of view)")
    add_cloud_arguments(parser)
    add_model_arguments(parser)


def run_infer(args):
    from hydranet_ros.apps.infer_files import check_output_folder, infer_files
    check_output_folder(args.input, Path(args.out))  # before the model loads
    count = infer_files(open_perception(args), args.input, Path(args.out), args.intrinsics, cloud_parameters(args))
    print(f"wrote outputs for {count} frame(s) to {args.out}")


def add_process_bag_arguments(parser):
    parser.add_argument("input", type=existing_path, help="rosbag2 folder or file (SQLite3 or MCAP)")
    parser.add_argument("output", help="new rosbag2 folder to write")
    parser.add_argument("--image-topic", required=True, nargs="+", metavar="TOPIC",
                        help="sensor_msgs/Image or CompressedImage topic; several for several cameras, each in a "
                             "namespace of its own (/front/image_raw /rear/image_raw: outputs under <prefix>/front/ "
                             "and <prefix>/rear/)")
    parser.add_argument("--camera-info-topic", nargs="+", metavar="TOPIC",
                        help="CameraInfo topic, one per --image-topic in its order (without it the intrinsics are "
                             "guessed)")
    parser.add_argument("--prefix", default="/hydranet", help="namespace of the added topics (default /hydranet)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="output format (default mcap)")
    add_cloud_arguments(parser)
    add_model_arguments(parser)


def run_process_bag(args):
    from hydranet_ros.apps.process_bag import check_paths, process_bag
    check_paths(args.input, Path(args.output))  # before the model loads: a wrong path fails at once
    perception = open_perception(args)
    counts = process_bag(args.input, Path(args.output), args.image_topic, args.camera_info_topic, perception,
                         args.prefix, args.storage, cloud_parameters(args))
    if counts["interrupted"]:
        print(f"interrupted: {args.output} is closed and readable, with the {counts['images']} frames processed "
              "so far", file=sys.stderr)
        return 130
    print(f"processed {counts['images']} images ({counts['unreadable_images']} unreadable), copied "
          f"{counts['copied']} messages; wrote {args.output}")


def add_benchmark_arguments(parser):
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model file or shipped name")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="backend/device pairs, e.g. onnxruntime/cpu torch/cuda (default: every one available)")
    parser.add_argument("--sizes", nargs="+", default=None, help="WIDTHxHEIGHT (default 1200x352 640x480 320x240)")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16",
                        help="fp16 (GPU; fp32 on CPUs), fp32, bf16, int8")
    parser.add_argument("--cpu", action="store_true",
                        help="every CPU backend and precision side by side, interleaved, with the ratio to ONNX "
                             "Runtime fp32 (int8 needs --calibration)")
    add_calibration_argument(parser, "camera images that calibrate int8")
    parser.add_argument("--network-input", choices=["camera", "model"], default="camera",
                        help="camera: the network runs at each camera size (default); model: at the model "
                             "file's pixel budget, as the node does with input_size [0, 0]")
    parser.add_argument("--node", action="store_true",
                        help="measure end to end through perception_node in another process (ROS 2)")
    parser.add_argument("--delivery", action="store_true",
                        help="outputs delivered on time through ROS 2 at --rate Hz, with Fast DDS's default "
                             "transport and with config/fastdds_large_data.xml (one size, default 1242x375)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate for --delivery (default 10 Hz)")
    parser.add_argument("--output-volume", action="store_true",
                        help="bytes per frame of every output, per camera size (default 1242x375 640x480 1280x720 "
                             "1920x1080), with the node's defaults and with config/outdoor_kitti6.yaml")
    parser.add_argument("--cameras", type=positive_int, metavar="N",
                        help="one node serving N cameras (batched, and one frame at a time) against N single-camera "
                             "nodes: frames per second, latency per camera, resident memory (camera --rate Hz each, "
                             "--seconds long, one size, default 640x480)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the --cameras run (default 20)")
    parser.add_argument("--first-output", action="store_true",
                        help="seconds from perception_node becoming active to its first output for a camera already "
                             "running (one size, default 1280x720), preparing on the first frame and at start")
    parser.add_argument("--json", dest="json_path", help="also write the results to this file")


def format_benchmark_table(records: list[dict]) -> str:
    lines = [f"{'backend':<44} {'size':>9} {'network':>9} {'pre':>7} {'infer':>8} {'post':>7} {'total':>8} "
             f"{'p90':>8} {'p99':>8} {'FPS':>6} {'vs bare':>8} {'vs ORT fp32':>11}"]
    for r in records:
        bare = f"{r['total_over_bare_session_run']:.3f}x" if "total_over_bare_session_run" in r else ""
        reference = f"{r['total_vs_onnxruntime_fp32']:.3f}x" if "total_vs_onnxruntime_fp32" in r else ""
        lines.append(f"{r['backend']:<44} {r['size']:>9} {r['network_input']:>9} {r['pre']['median_ms']:>7.2f} "
                     f"{r['inference']['median_ms']:>8.2f} {r['post']['median_ms']:>7.2f} "
                     f"{r['total']['median_ms']:>8.2f} {r['total']['p90_ms']:>8.2f} {r['total']['p99_ms']:>8.2f} "
                     f"{r['fps']:>6.1f} {bare:>8} {reference:>11}")
    lines.append("(milliseconds; medians unless p90/p99; total = pre + inference + post incl. point cloud)")
    return "\n".join(lines)


def run_benchmark(args):
    from tqdm import tqdm
    from hydranet_ros.apps.node_benchmark import benchmark_delivery, benchmark_first_output, benchmark_node
    from hydranet_ros.apps.output_volume import SIZES as VOLUME_SIZES, output_volume
    from hydranet_ros.inference.backends import BackendError, auto_order
    from hydranet_ros.inference.benchmark import SIZES, benchmark_backend, compare_cpu, machine
    path = model_path(args.model)
    try:
        sizes = [tuple(int(v) for v in s.lower().split("x"))[::-1] for s in args.sizes] if args.sizes else list(SIZES)
    except ValueError:
        raise CommandError(f"sizes are WIDTHxHEIGHT, e.g. 640x480, not {args.sizes}") from None
    calibration = [str(folder) for folder in args.calibration] if args.calibration else None
    if args.delivery:
        size = sizes[0] if args.sizes else (375, 1242)
        result = {"machine": machine(), "delivery": benchmark_delivery(path, args.iterations, args.rate, size)}
        print(json.dumps(result, indent=1))
    elif args.output_volume:
        result = {"machine": machine(), "output_volume": output_volume(path, sizes if args.sizes else VOLUME_SIZES)}
        print(json.dumps(result, indent=1))
    elif args.cameras:
        from hydranet_ros.apps.cameras_benchmark import benchmark_cameras
        result = {"machine": machine()} | benchmark_cameras(path, args.cameras, args.rate, args.seconds,
                                                            sizes[0] if args.sizes else (480, 640))
        print(json.dumps(result, indent=1))
    elif args.first_output:
        result = {"machine": machine(), "first_output": benchmark_first_output(path, sizes[0] if args.sizes
                                                                               else (720, 1280))}
        print(json.dumps(result, indent=1))
    elif args.cpu:
        result = {"machine": machine(), "model": path.name,
                  "cpu": [compare_cpu(path, size, args.iterations, args.warmup, calibration,
                                      args.network_input == "model") | {"size": f"{size[1]}x{size[0]}"}
                          for size in sizes]}
        print(json.dumps(result, indent=1))
        print(format_benchmark_table([r for entry in result["cpu"] for r in entry["results"]]))
    elif args.node:
        name = args.backends[0].split("/")[0] if args.backends else "onnxruntime"
        folder = calibration[0] if calibration else None  # the node takes one folder
        result = {"machine": machine(), "node": benchmark_node(path, sizes, args.iterations, name, args.precision,
                                                               folder, args.network_input == "model")}
        print(json.dumps(result, indent=1))
    else:
        pairs = [tuple(p.split("/")) for p in args.backends] if args.backends else list(auto_order(args.precision))
        records, skipped = [], []
        for (name, device), size in tqdm([(p, s) for p in pairs for s in sizes], desc="benchmark", unit="case"):
            try:
                records.append(benchmark_backend(path, name, device, size, args.iterations, args.warmup,
                                                 args.precision, calibration, args.network_input == "model"))
            except (BackendError, ImportError) as error:
                skipped.append(f"{name}/{device} {size[1]}x{size[0]}: {error}")
        result = {"machine": machine(), "model": path.name, "results": records, "skipped": skipped}
        print(json.dumps(result, indent=1))
        print(format_benchmark_table(records))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))


def add_soak_arguments(parser):
    parser.add_argument("--minutes", type=float, default=10.0, help="length after a 10 s warm-up (default 10)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per reported window (default 60)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--json", dest="json_path", help="also write the summary to this file")


def run_soak(args):
    from hydranet_ros.apps.soak import soak
    result = soak(model_path(args.model), args.minutes * 60, args.rate, args.window, args.backend,
                  Path("soak_node.log"))
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}, indent=1))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))
    return 0


def add_foxglove_layout_arguments(parser):
    parser.add_argument("--out", required=True, help="the layout file to write (JSON; Foxglove: Layouts, Import)")
    parser.add_argument("--namespace", default="hydranet", help="the node's namespace (default hydranet)")
    parser.add_argument("--cameras", default="", help="the node's cameras, e.g. front,rear: a row of panels each "
                                                      "(default: one camera on the node's own topics)")
    parser.add_argument("--image-topic", default="/camera/image_raw",
                        help="the camera image; with --cameras {camera} stands for each name (default "
                             "/camera/image_raw, with --cameras /{camera}/image_raw), as the launch file's image_topic")


def run_foxglove_layout(args):
    from hydranet_ros.cache import write_atomically
    from hydranet_ros.ros.camera_stream import DEFAULT_TOPICS, camera_topics
    from hydranet_ros.ros.foxglove_layout import layout_for
    from hydranet_ros.shipped import shipped_file
    topics = camera_topics(args.cameras, args.image_topic, DEFAULT_TOPICS[1], given_as="--cameras ")
    cameras = [(name, image) for name, image, _ in topics]
    layout = layout_for(json.loads(shipped_file("config", "foxglove_layout.json").read_text()), args.namespace,
                        cameras)
    write_atomically(Path(args.out), json.dumps(layout, indent=1).encode())
    print(f"wrote {args.out}: {len(cameras)} camera(s) under /{args.namespace.strip('/')}")


VERBS = {
    "demo": ("play a generated camera sequence through the ROS 2 node; record a bag, pictures and a video",
             add_demo_arguments, run_demo),
    "infer": ("run the model on an image, a folder or a video; write PNG/NPY/PLY files (no ROS)",
              add_infer_arguments, run_infer),
    "process-bag": ("add segmentation, depth and point cloud topics to a rosbag2 (SQLite3 or MCAP)",
                    add_process_bag_arguments, run_process_bag),
    "benchmark": ("time pre-processing, inference and post-processing per backend and size; JSON",
                  add_benchmark_arguments, run_benchmark),
    "soak": ("feed perception_node at the camera rate for minutes; latency and memory over time",
             add_soak_arguments, run_soak),
    "foxglove-layout": ("write a Foxglove layout for a node's namespace and cameras (config/foxglove_layout.json "
                        "renamed, a row of panels per camera)", add_foxglove_layout_arguments, run_foxglove_layout),
}
