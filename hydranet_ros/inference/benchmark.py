"""hydranet benchmark: per-stage timings of the per-frame path, per backend and size; JSON out.

Stages (inference/pipeline.py): pre (camera layout -> RGB), inference (the backend: on-device
resize and normalisation, the network, argmax, colours, depth upsampling), post (REP 118 depth,
overlay, point cloud at stride 2). For ONNX Runtime the bare session.run on the same graph and input
is timed in alternation with our path, so the overhead ratio is measured side by side.
With --node the same is done through perception_node in its own process (see node_benchmark.py).
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hydranet_ros.cli.errors import CommandError
from hydranet_ros.inference.backends import AUTO_ORDER, BackendError, create_backend, onnxruntime_session
from hydranet_ros.inference.graph import INPUT_NAME
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.inference.postprocess import CloudSettings
from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import load_model

SIZES = ((352, 1200), (480, 640), (240, 320))  # (height, width): camera image = network input


def percentiles(samples_ms: list[float]) -> dict:
    values = np.asarray(samples_ms)
    return {"median_ms": round(float(np.median(values)), 3), "p90_ms": round(float(np.percentile(values, 90)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3)}


def camera_frame(height: int, width: int) -> np.ndarray:
    """A BGR frame with structure (gradients and noise), as a camera driver would publish it."""
    rng = np.random.default_rng(height * width)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def benchmark_backend(model_path: Path, name: str, device: str, size: tuple[int, int], iterations: int,
                      warmup: int, precision: str) -> dict:
    backend, _ = create_backend(model_path, name, device, precision, "input", input_size=size)
    perception = Perception(backend, load_model(model_path)[1])
    height, width = size
    frame = camera_frame(height, width)
    from hydranet_ros.apps.common import guess_intrinsics
    intrinsics = guess_intrinsics(perception.spec, width, height)
    cloud_settings = CloudSettings(stride=2, max_depth=perception.spec.label_space.depth_range_m[1])
    bare = onnxruntime_session(backend, size)
    rgb = np.ascontiguousarray(frame[..., ::-1])[None]
    stages = {"pre": [], "inference": [], "post": [], "total": []}
    bare_ms = []
    for index in range(warmup + iterations):
        start = time.perf_counter()
        result = perception.process(frame, "bgr8", overlay_alpha=0.5, camera=intrinsics)
        perception.cloud(result, cloud_settings)
        total = (time.perf_counter() - start) * 1e3
        if bare is not None:  # the same graph and input, straight into ONNX Runtime
            bare_start = time.perf_counter()
            bare.run(None, {INPUT_NAME: rgb})
            bare_time = (time.perf_counter() - bare_start) * 1e3
        if index < warmup:
            continue
        timings = result.timings_ms
        stages["pre"].append(timings["pre"])
        stages["inference"].append(timings["inference"])
        stages["post"].append(total - timings["pre"] - timings["inference"])  # includes the cloud
        stages["total"].append(total)
        if bare is not None:
            bare_ms.append(bare_time)
    record = {"backend": backend.describe(), "size": f"{width}x{height}",
              **{stage: percentiles(values) for stage, values in stages.items()}}
    record["fps"] = round(1000.0 / record["total"]["median_ms"], 2)
    if bare_ms:
        record["bare_session_run"] = percentiles(bare_ms)
        record["total_over_bare_session_run"] = round(record["total"]["median_ms"] / record["bare_session_run"]["median_ms"], 3)
    return record


def machine() -> dict:
    import os
    info = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    import onnxruntime
    info["onnxruntime"] = onnxruntime.__version__
    return info


def format_table(records: list[dict]) -> str:
    lines = [f"{'backend':<44} {'size':>9} {'pre':>7} {'infer':>8} {'post':>7} {'total':>8} {'p90':>8} {'p99':>8} {'FPS':>6} {'vs bare':>8}"]
    for r in records:
        ratio = f"{r['total_over_bare_session_run']:.3f}x" if "total_over_bare_session_run" in r else ""
        lines.append(f"{r['backend']:<44} {r['size']:>9} {r['pre']['median_ms']:>7.2f} {r['inference']['median_ms']:>8.2f} "
                     f"{r['post']['median_ms']:>7.2f} {r['total']['median_ms']:>8.2f} {r['total']['p90_ms']:>8.2f} "
                     f"{r['total']['p99_ms']:>8.2f} {r['fps']:>6.1f} {ratio:>8}")
    lines.append("(milliseconds; medians unless p90/p99; total = pre + inference + post incl. point cloud)")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--model", default="hydranet_street.pt", help="model file or shipped name")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="backend/device pairs, e.g. onnxruntime/cpu torch/cuda (default: every one available)")
    parser.add_argument("--sizes", nargs="+", default=None, help="WIDTHxHEIGHT (default 1200x352 640x480 320x240)")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", choices=["fp16", "fp32", "int8"], default="fp16", help="GPU precision")
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
        from hydranet_ros.apps.node_benchmark import benchmark_delivery
        size = sizes[0] if args.sizes else (375, 1242)
        result = {"machine": machine(), "delivery": benchmark_delivery(model_path, args.iterations, args.rate, size)}
        print(json.dumps(result, indent=1))
    elif args.node:
        from hydranet_ros.apps.node_benchmark import benchmark_node
        result = {"machine": machine(), "node": benchmark_node(model_path, sizes, args.iterations)}
        print(json.dumps(result, indent=1))
    else:
        pairs = [tuple(p.split("/")) for p in args.backends] if args.backends else list(AUTO_ORDER)
        records, skipped = [], []
        for (name, device), size in tqdm([(p, s) for p in pairs for s in sizes], desc="benchmark", unit="case"):
            try:
                records.append(benchmark_backend(model_path, name, device, size, args.iterations, args.warmup, args.precision))
            except (BackendError, ImportError) as error:
                skipped.append(f"{name}/{device} {size[1]}x{size[0]}: {error}")
        result = {"machine": machine(), "model": model_path.name, "results": records, "skipped": skipped}
        print(json.dumps(result, indent=1))
        print(format_table(records))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))
