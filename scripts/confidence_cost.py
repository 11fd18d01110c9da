"""What segmentation/confidence costs in the graph: ONNX Runtime runs the same post-processed graph
asking for every output, or for all but confidence (it then skips the softmax and its upsampling),
interleaved, at two camera sizes. Prints medians (ms) and their ratio as JSON.

    .venv/bin/python scripts/confidence_cost.py [--model hydranet_street.pt] [--iterations 25]
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort

from hydranet_ros.inference.export import onnx_for_model
from hydranet_ros.inference.graph import INPUT_NAME, OUTPUT_NAMES
from hydranet_ros.model.catalog import resolve_model_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hydranet_street.pt")
    parser.add_argument("--iterations", type=int, default=25)
    args = parser.parse_args()
    variants = {"all_outputs": list(OUTPUT_NAMES), "without_confidence": [n for n in OUTPUT_NAMES if n != "confidence"]}
    report = {}
    for height, width in [(375, 1242), (480, 640)]:
        session = ort.InferenceSession(str(onnx_for_model(resolve_model_path(args.model), "input", (height, width))),
                                       providers=["CPUExecutionProvider"])
        image = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        samples = {name: [] for name in variants}
        for iteration in range(args.iterations + 3):  # 3 warm-up rounds
            for name, outputs in variants.items():
                start = time.perf_counter()
                session.run(outputs, {INPUT_NAME: image})
                if iteration >= 3:
                    samples[name].append((time.perf_counter() - start) * 1e3)
        medians = {name: round(float(np.median(values)), 1) for name, values in samples.items()}
        report[f"{width}x{height}"] = medians | {
            "ratio": round(medians["all_outputs"] / medians["without_confidence"], 3)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
