"""Measures the shipped models for their model card; writes models/metrics.json.

    .venv/bin/python scripts/model_card_metrics.py
    .venv/bin/python scripts/model_card_metrics.py --precision-gate   # int8 against fp32 instead

Real frames first, all through the node's own per-frame path (inference.pipeline with ONNX Runtime),
scored by scripts/real_frames.py. Then the generated frames: datasets/synth_*_val (seed 2, chose
the epoch) and datasets/synth_*_test
(seed 3, used for nothing else).
--precision-gate prints the int8 accuracy gate of both models and how the street model's int8 graph for
TensorRT agrees with fp32 on real frames (docs/benchmarks.md), and writes nothing.
--unseen MODEL prints the figures that judge a candidate street model (held-back KITTI drives, other-drive
LiDAR, tracking 0001 frames 20-30, CamVid val), and how well it fits the 115 KITTI semantics frames the
round-3 runs train on beside them, and writes nothing.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
GPU_INPUT_SIZE = (352, 1216)  # near the paper's 1200x350 for KITTI
sys.path.insert(0, str(REPO))

from hydranet_ros.data.dataset import FolderDataset, read_rgb  # noqa: E402
from hydranet_ros.inference.backends import BackendOptions, create_backend  # noqa: E402
from hydranet_ros.inference.pipeline import Perception  # noqa: E402
from hydranet_ros.model.model_file import load_model  # noqa: E402
from hydranet_ros.training.evaluate import evaluate_model  # noqa: E402
from real_frames import (  # noqa: E402
    LIDAR_HELD_OUT, camvid_val, kitti_000099, kitti_lidar, kitti_other_drives, kitti_semantics, nyud_examples,
    kitti_semantics_trained_on, precision_gate, street_calibration_folder)


def generated(model, spec, kind, max_depth):
    """Metrics on the validation frames (which chose the epoch) and on the untouched test frames."""
    return {split: evaluate_model(model, spec, [FolderDataset(REPO / "datasets" / f"synth_{kind}_{folder}")],
                                  max_depth, torch.device("cpu"))
            for split, folder in (("synthetic_heldout", "val"), ("synthetic_test", "test"))}


def indoor(path):
    model, spec = load_model(path)
    perception = Perception(create_backend(path, BackendOptions(backend="onnxruntime", device="cpu"))[0], spec)
    return {"nyud_real_frames": nyud_examples(perception, SHARED)} | generated(model, spec, "indoor", 10.0)


def street_perception(path, input_size=None):
    """The node's per-frame path at the model's pixel budget, or at input_size (height, width)."""
    _, spec = load_model(path)
    backend = create_backend(path, BackendOptions(backend="onnxruntime", device="cpu", input_size=input_size))[0]
    return Perception(backend, spec.with_pixel_budget(input_size) if input_size else spec)


def street_at_gpu_budget(path):
    """The real-frame sets that judge unseen streets, at the GPU operating point near the paper's size."""
    perception = street_perception(path, GPU_INPUT_SIZE)
    return {"input_size": list(GPU_INPUT_SIZE),
            "kitti_semantics_heldback_segmentation": kitti_semantics(perception, SHARED),
            "kitti_object_other_drives_lidar": kitti_other_drives(perception, SHARED),
            "camvid_val_segmentation": camvid_val(perception, SHARED),
            "kitti_tracking_0001_lidar_heldout": kitti_lidar(perception, SHARED, LIDAR_HELD_OUT)}


def unseen(path):
    """The real-frame figures that decide whether a street model ships, and its fit on its KITTI frames."""
    perception = street_perception(path)
    return strip_per_class({
        "kitti_semantics_heldback_segmentation": kitti_semantics(perception, SHARED),
        "kitti_object_other_drives_lidar": kitti_other_drives(perception, SHARED),
        "kitti_tracking_0001_lidar_heldout": kitti_lidar(perception, SHARED, LIDAR_HELD_OUT),
        "camvid_val_segmentation": camvid_val(perception, SHARED),
        "kitti_semantics_training_frames_segmentation": kitti_semantics(perception, SHARED,
                                                                        kitti_semantics_trained_on(SHARED))})


def street(path):
    model, spec = load_model(path)
    perception = street_perception(path)
    return {"kitti_semantics_heldback_segmentation": kitti_semantics(perception, SHARED),
            "kitti_object_other_drives_lidar": kitti_other_drives(perception, SHARED),
            "camvid_val_segmentation": camvid_val(perception, SHARED),
            "kitti_000099_segmentation": kitti_000099(perception, SHARED),
            "kitti_tracking_0001_lidar_heldout": kitti_lidar(perception, SHARED, LIDAR_HELD_OUT),
            "kitti_tracking_0001_lidar": kitti_lidar(perception, SHARED),
            "gpu_operating_point": street_at_gpu_budget(path)} | generated(model, spec, "street", 80.0)


def strip_per_class(value, keep: bool = False):
    """Per-class IoUs only for the real-frame segmentation results."""
    if isinstance(value, dict):
        return {k: strip_per_class(v, keep or k.endswith("_segmentation")) for k, v in value.items()
                if keep or k != "per_class_iou"}
    return value


def tensorrt_recipe_agreement(model_path: Path, calibration: Path) -> dict:
    """The int8 graph made for TensorRT (no TensorRT here: ONNX Runtime runs it) against its fp32 graph on
    KITTI 0001 frames 20-30 at 1242x375: the share of labels that agree and the mean depth change."""
    import onnxruntime
    from hydranet_ros.inference.backends.tensorrt_backend import onnx_for_engine
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # ORT's notes on the fp16 constants it cannot fold on a CPU
    sessions = {precision: onnxruntime.InferenceSession(
        str(onnx_for_engine(model_path, "input", (375, 1242), precision, calibration)), options,
        providers=["CPUExecutionProvider"]) for precision in ("fp32", "int8")}
    images = sorted((SHARED / "kitti_tracking_0001" / "image_2" / "0001").glob("*.png"))[LIDAR_HELD_OUT.start:]
    agree, change = [], []
    for image in images:
        rgb = read_rgb(image)[None]
        (labels32, depth32), (labels8, depth8) = (sessions[precision].run(["labels", "depth"], {"image": rgb})
                                                  for precision in ("fp32", "int8"))
        agree.append(float((labels8 == labels32).mean()))
        change.append(float(np.nanmean(np.abs(depth8 - depth32)) / np.nanmean(depth32)))
    return {"frames": len(images), "labels_agree": float(np.mean(agree)), "mean_depth_change": float(np.mean(change))}


def int8_gate() -> dict:
    """Both through OpenVINO (auto's int8 choice); street calibrated on real frames it trained on, indoor
    on generated rooms. Beside it, the street model's int8 graph for TensorRT against fp32."""
    street = REPO / "models" / "hydranet_street.pt"
    with tempfile.TemporaryDirectory() as folder:
        calibration = street_calibration_folder(SHARED, Path(folder))
        return {"hydranet_street.pt": precision_gate(street, SHARED, "street", calibration, ("int8",)),
                "hydranet_street.pt, int8 graph for TensorRT": tensorrt_recipe_agreement(street, calibration),
                "hydranet_indoor.pt": precision_gate(REPO / "models" / "hydranet_indoor.pt", SHARED, "indoor",
                                                     REPO / "datasets" / "synth_indoor_val" / "rgb", ("int8",))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision-gate", action="store_true", help="int8 against fp32 on real frames instead")
    parser.add_argument("--unseen", type=Path, metavar="MODEL", help="a candidate street model's unseen-street figures")
    args = parser.parse_args()
    if args.precision_gate:
        print(json.dumps(int8_gate(), indent=1))
        return
    if args.unseen:
        print(json.dumps(unseen(args.unseen), indent=1))
        return
    metrics = {"hydranet_street.pt": street(REPO / "models" / "hydranet_street.pt"),
               "hydranet_indoor.pt": indoor(REPO / "models" / "hydranet_indoor.pt")}
    metrics = strip_per_class(metrics)
    (REPO / "models" / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
