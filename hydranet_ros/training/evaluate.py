"""hydranet evaluate MODEL DATA: segmentation and depth metrics, as a table and JSON."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from hydranet_ros.cli.errors import CommandError
from hydranet_ros.data.augment import Augmenter, collate
from hydranet_ros.data.dataset import FolderDataset, check_labels
from hydranet_ros.model.model_file import ModelSpec, load_model
from hydranet_ros.training.metrics import DepthMetrics, SegmentationMetrics, garg_crop_mask


@torch.no_grad()
def predict_full_resolution(model, spec: ModelSpec, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Labels (N x H x W) and |depth| in metres (N x H x W) at the size of the normalised images."""
    outputs = dict(zip(spec.tasks, model(images)))
    size = images.shape[-2:]
    result = {}
    if "segmentation" in outputs:
        logits = F.interpolate(outputs["segmentation"], size=size, mode="bilinear", align_corners=False)
        result["segmentation"] = logits.argmax(1)
    if "depth" in outputs:
        depth = F.interpolate(outputs["depth"], size=size, mode="bilinear", align_corners=False)
        result["depth"] = depth[:, 0].abs()
    return result


def evaluate_model(model, spec: ModelSpec, datasets: list[FolderDataset], max_depth: float,
                   device: torch.device, size: tuple[int, int], garg_crop: bool = False,
                   progress: bool = False) -> dict:
    """Runs the model at `size` (centre crop after resizing) over every sample with labels."""
    model.eval()
    segmentation = SegmentationMetrics(spec.num_classes)
    depth = DepthMetrics(max_depth)
    augmenter = Augmenter(size, train=False)
    rng = np.random.default_rng(0)
    seen = {"segmentation": False, "depth": False}
    for dataset in datasets:
        for index in tqdm(range(len(dataset)), desc=f"evaluating {dataset.root.name}", disable=not progress, leave=False):
            sample = dataset[index]
            if sample.segmentation is not None:
                check_labels(sample.segmentation, spec.num_classes, dataset.root / "labels" / sample.name)
            item = augmenter(sample, rng)
            batch = collate([item], spec.mean, spec.std)
            prediction = predict_full_resolution(model, spec, batch["image"].to(device))
            if "segmentation" in prediction and sample.segmentation is not None:
                segmentation.update(prediction["segmentation"][0].cpu().numpy(), item["segmentation"])
                seen["segmentation"] = True
            if "depth" in prediction and sample.depth is not None:
                mask = garg_crop_mask(*size) if garg_crop else None
                depth.update(prediction["depth"][0].cpu().numpy(), item["depth"], mask)
                seen["depth"] = True
    result = {}
    if seen["segmentation"]:
        result["segmentation"] = segmentation.summary()
    if seen["depth"]:
        result["depth"] = depth.summary()
    return result


def format_table(result: dict, class_names: list[str]) -> str:
    lines = []
    if "segmentation" in result:
        s = result["segmentation"]
        lines.append(f"segmentation  mIoU {s['miou'] * 100:6.2f} %   pixel accuracy {s['pixel_accuracy'] * 100:6.2f} %")
        for name, iou in zip(class_names, s["per_class_iou"]):
            if iou is not None:
                lines.append(f"  {name:<16} IoU {iou * 100:6.2f} %")
    if "depth" in result and result["depth"].get("pixels"):
        d = result["depth"]
        lines.append(f"depth  RMSE {d['rmse']:.3f} m   RMSE(log) {d['rmse_log']:.3f}   abs rel {d['abs_rel']:.3f}   "
                     f"sq rel {d['sq_rel']:.3f}   d<1.25 {d['delta1']:.3f}   d<1.25^2 {d['delta2']:.3f}   "
                     f"d<1.25^3 {d['delta3']:.3f}   ({d['pixels']} px)")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("model", help="model file (.pt)")
    parser.add_argument("data", nargs="+", help="dataset folder(s) (see `hydranet synth`, README: Data)")
    parser.add_argument("--max-depth", type=float, help="depth cap in metres (default: 10 for NYUD-40 models, 80 for KITTI-6)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), help="evaluation size (default: the model's input size)")
    parser.add_argument("--garg-crop", action="store_true", help="evaluate depth inside the Garg crop only (KITTI)")
    parser.add_argument("--json", dest="json_path", help="write the metrics to this JSON file")


def run(args):
    model, spec = load_model(args.model)
    datasets = [FolderDataset(p) for p in args.data]
    for dataset in datasets:
        if dataset.label_space != spec.label_space.name:
            raise CommandError(f"{dataset.root} is labelled in {dataset.label_space}, the model in {spec.label_space.name}")
    max_depth = args.max_depth or (80.0 if spec.label_space.name == "kitti6" else 10.0)
    size = tuple(args.size) if args.size else tuple(spec.input_size)
    result = evaluate_model(model, spec, datasets, max_depth, torch.device("cpu"), size, args.garg_crop, progress=True)
    print(format_table(result, spec.label_space.class_names))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json_path}")
