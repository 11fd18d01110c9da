"""Which convolutions int8 must leave in float: measures mIoU lost against fp32 and time for several choices.

    .venv/bin/python scripts/int8_sensitivity.py [--frames 40]

The shipped street model's graph for CamVid's 480x360, calibrated on every 6th CamVid train frame, run
through OpenVINO on the first CamVid val frames; times are medians of interleaved runs on one frame.
inference/quantize.py's FLOAT_PREFIXES keeps stages 1-3 in float as this measured; of the heads only the
depth head stays float, which scripts/model_card_metrics.py --precision-gate measured (docs/benchmarks.md).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from hydranet_ros.data.camvid import frame_names, kitti6_lookup, read_frame  # noqa: E402
from hydranet_ros.inference.export import onnx_for_model  # noqa: E402
from hydranet_ros.inference.graph import INPUT_NAME  # noqa: E402
from hydranet_ros.inference.quantize import calibration_images, quantize_graph  # noqa: E402
from hydranet_ros.training.metrics import SegmentationMetrics  # noqa: E402

HEADS_AND_FIRST = ("/model/layer1/", "/model/pre_segm/", "/model/segm/", "/model/pre_depth/", "/model/depth/")
STAGES = {n: f"/model/layer{n}/" for n in range(1, 9)}


def choices(graph) -> dict:
    convs = [n for n in graph.node if n.op_type == "Conv"]
    depthwise = [n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]

    def starting(prefixes):
        prefixes = tuple(prefixes)
        return [n.name for n in convs if n.name.startswith(prefixes)]
    return {"first conv, heads and depthwise in float": starting(HEADS_AND_FIRST) + depthwise,
            "encoder in float (decoder int8)": starting(HEADS_AND_FIRST) + starting(STAGES.values()),
            "first conv, heads, stages 1-5 in float":
                starting(HEADS_AND_FIRST) + starting(STAGES[n] for n in range(1, 6)),
            "first conv, heads, stages 1-3 in float":
                starting(HEADS_AND_FIRST) + starting(STAGES[n] for n in range(1, 4)),
            "first conv, heads, stages 1-2 in float":
                starting(HEADS_AND_FIRST) + starting(STAGES[n] for n in range(1, 3)),
            "first conv and heads in float": starting(HEADS_AND_FIRST)}


def main():
    import openvino
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    size = (360, 480)
    fp32 = onnx_for_model(REPO / "models" / "hydranet_street.pt", "input", size)
    images = calibration_images(SHARED / "camvid" / "train" / "images", limit=62)
    samples = [read_frame(p, kitti6_lookup()) for p in frame_names(SHARED / "camvid" / "val")[:args.frames]]
    core = openvino.Core()
    compiled, results = {}, {}

    def miou(path):
        model = core.compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        metrics = SegmentationMetrics(6)
        for sample in samples:
            labels = model({INPUT_NAME: np.ascontiguousarray(sample.image)[None]})[model.output("labels")][0]
            metrics.update(labels, sample.segmentation)
        return model, metrics.summary()["miou"]

    compiled["fp32"], reference = miou(fp32)
    with tempfile.TemporaryDirectory() as folder:
        for name, keep in choices(onnx.load(str(fp32)).graph).items():
            path = quantize_graph(fp32, Path(folder) / f"{len(compiled)}.onnx", images, size, keep_float=keep)
            compiled[name], score = miou(path)
            results[name] = {"float_convolutions": len(set(keep)),
                             "miou_points_lost": round(100 * (reference - score), 2)}
    frame = {INPUT_NAME: np.ascontiguousarray(samples[0].image)[None]}
    times = {name: [] for name in compiled}
    for _ in range(25):
        for name, model in compiled.items():
            start = time.perf_counter()
            model(frame)
            times[name].append(time.perf_counter() - start)
    for name in results:
        results[name]["time_vs_fp32"] = round(float(np.median(times[name]) / np.median(times["fp32"])), 3)
    print(json.dumps({"fp32_miou": round(100 * reference, 2), "frames": len(samples), "choices": results}, indent=1))


if __name__ == "__main__":
    main()
