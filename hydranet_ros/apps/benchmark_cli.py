"""hydranet benchmark: the per-frame path per backend and size, the CPU backends side by side, or
perception_node end to end and its output delivery; JSON out (inference/benchmark.py, apps/node_benchmark.py)."""
from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from hydranet_ros.apps.node_benchmark import benchmark_delivery, benchmark_node
from hydranet_ros.cli.errors import CommandError
from hydranet_ros.inference.backends import PRECISIONS, BackendError, auto_order
from hydranet_ros.inference.benchmark import SIZES, benchmark_backend, compare_cpu, machine
from hydranet_ros.model.catalog import resolve_model_path


def format_table(records: list[dict]) -> str:
    lines = [f"{'backend':<44} {'size':>9} {'network':>9} {'pre':>7} {'infer':>8} {'post':>7} {'total':>8} {'p90':>8} {'p99':>8} "
             f"{'FPS':>6} {'vs bare':>8} {'vs ORT fp32':>11}"]
    for r in records:
        bare = f"{r['total_over_bare_session_run']:.3f}x" if "total_over_bare_session_run" in r else ""
        reference = f"{r['total_vs_onnxruntime_fp32']:.3f}x" if "total_vs_onnxruntime_fp32" in r else ""
        lines.append(f"{r['backend']:<44} {r['size']:>9} {r['network_input']:>9} {r['pre']['median_ms']:>7.2f} {r['inference']['median_ms']:>8.2f} "
                     f"{r['post']['median_ms']:>7.2f} {r['total']['median_ms']:>8.2f} {r['total']['p90_ms']:>8.2f} "
                     f"{r['total']['p99_ms']:>8.2f} {r['fps']:>6.1f} {bare:>8} {reference:>11}")
    lines.append("(milliseconds; medians unless p90/p99; total = pre + inference + post incl. point cloud)")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--model", default="hydranet_street.pt", help="model file or shipped name")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="backend/device pairs, e.g. onnxruntime/cpu torch/cuda (default: every one available)")
    parser.add_argument("--sizes", nargs="+", default=None, help="WIDTHxHEIGHT (default 1200x352 640x480 320x240)")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16", help="fp16 (GPU; fp32 on CPUs), fp32, bf16, int8")
    parser.add_argument("--cpu", action="store_true",
                        help="every CPU backend and precision side by side, interleaved, with the ratio to ONNX "
                             "Runtime fp32 (int8 needs --calibration)")
    parser.add_argument("--calibration", nargs="+", metavar="DIR", help="camera images that calibrate int8")
    parser.add_argument("--network-input", choices=["camera", "model"], default="camera",
                        help="camera: the network runs at each camera size (default); model: at the model "
                             "file's pixel budget, as the node does with input_size [0, 0]")
    parser.add_argument("--node", action="store_true",
                        help="measure end to end through perception_node in another process (ROS 2)")
    parser.add_argument("--delivery", action="store_true",
                        help="outputs delivered on time through ROS 2 at --rate Hz, with Fast DDS's default "
                             "transport and with config/fastdds_large_data.xml (one size, default 1242x375)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate for --delivery (default 10 Hz)")
    parser.add_argument("--json", dest="json_path", help="also write the results to this file")


def run(args):
    model_path = resolve_model_path(args.model)
    if not model_path.is_file():
        raise CommandError(f"model {model_path} does not exist")
    try:
        sizes = [tuple(int(v) for v in s.lower().split("x"))[::-1] for s in args.sizes] if args.sizes else list(SIZES)
    except ValueError:
        raise CommandError(f"sizes are WIDTHxHEIGHT, e.g. 640x480, not {args.sizes}") from None
    if args.delivery:
        size = sizes[0] if args.sizes else (375, 1242)
        result = {"machine": machine(), "delivery": benchmark_delivery(model_path, args.iterations, args.rate, size)}
        print(json.dumps(result, indent=1))
    elif args.cpu:
        result = {"machine": machine(), "model": model_path.name,
                  "cpu": [compare_cpu(model_path, size, args.iterations, args.warmup, args.calibration,
                                      args.network_input == "model") | {"size": f"{size[1]}x{size[0]}"}
                          for size in sizes]}
        print(json.dumps(result, indent=1))
        print(format_table([r for entry in result["cpu"] for r in entry["results"]]))
    elif args.node:
        name = args.backends[0].split("/")[0] if args.backends else "onnxruntime"
        calibration = args.calibration[0] if args.calibration else None  # the node takes one folder
        result = {"machine": machine(), "node": benchmark_node(model_path, sizes, args.iterations, name,
                                                               args.precision, calibration,
                                                               args.network_input == "model")}
        print(json.dumps(result, indent=1))
    else:
        pairs = [tuple(p.split("/")) for p in args.backends] if args.backends else list(auto_order(args.precision))
        records, skipped = [], []
        for (name, device), size in tqdm([(p, s) for p in pairs for s in sizes], desc="benchmark", unit="case"):
            try:
                records.append(benchmark_backend(model_path, name, device, size, args.iterations, args.warmup,
                                                  args.precision, args.calibration, args.network_input == "model"))
            except (BackendError, ImportError) as error:
                skipped.append(f"{name}/{device} {size[1]}x{size[0]}: {error}")
        result = {"machine": machine(), "model": model_path.name, "results": records, "skipped": skipped}
        print(json.dumps(result, indent=1))
        print(format_table(records))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))
