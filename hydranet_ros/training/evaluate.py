"""hydranet evaluate MODEL DATA: segmentation and depth metrics, as a table and JSON.

Measured as the node sees it: each image whole, at its own resolution, through the per-frame path.
"""
from __future__ import annotations


import numpy as np
import torch
from tqdm import tqdm

from hydranet_ros.data.dataset import FolderDataset, check_labels
from hydranet_ros.inference.backends.torch_backend import TorchBackend
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.model.model_file import ModelSpec
from hydranet_ros.training.metrics import DepthMetrics, SegmentationMetrics, garg_crop_mask


def evaluate_model(model, spec: ModelSpec, datasets: list[FolderDataset], max_depth: float,
                   device: torch.device, garg_crop: bool = False, progress: bool = False,
                   shard: tuple[int, int] = (0, 1), reduce=None) -> dict:
    """Metrics of the model's outputs at each image's full resolution, through the node's own
    per-frame path (inference.pipeline with the PyTorch backend): the same resizing, depth rescaled
    to each sample's camera when it has intrinsics, NaN (no depth) where the model sees sky; depth
    is scored only where there is ground truth and a prediction.

    shard=(rank, world) scores every world-th sample from rank; reduce sums an array over the ranks
    (training under torchrun), so every rank returns the metrics of all samples."""
    model.eval()
    backend = TorchBackend(model, spec, str(device), "fp32", "input", channels_last=False, cuda_graphs=False)
    perception = Perception(backend, spec)
    segmentation = SegmentationMetrics(spec.num_classes)
    depth = DepthMetrics(max_depth)
    seen = {"segmentation": False, "depth": False}
    rank, world = shard
    for dataset in datasets:
        for index in tqdm(range(rank, len(dataset), world), desc=f"evaluating {dataset.root.name}",
                          disable=not progress, leave=False):
            sample = dataset[index]
            if sample.segmentation is not None:
                check_labels(sample.segmentation, spec.num_classes, dataset.root / "labels" / sample.name)
            frame = perception.process(sample.image, "rgb8", camera=sample.intrinsics)
            if "segmentation" in spec.tasks and sample.segmentation is not None:
                segmentation.update(frame.labels, sample.segmentation)
                seen["segmentation"] = True
            if "depth" in spec.tasks and sample.depth is not None:
                mask = garg_crop_mask(*sample.depth.shape) if garg_crop else None
                depth.update(frame.depth, sample.depth, mask)
                seen["depth"] = True
    if reduce is not None:
        segmentation.confusion = reduce(segmentation.confusion).astype(np.int64)
        sums = reduce(np.array(list(depth.sums.values()) + [depth.count]))
        depth.sums, depth.count = dict(zip(depth.sums, sums[:-1].tolist())), int(sums[-1])
        seen = dict(zip(seen, reduce(np.array(list(seen.values()), dtype=np.float64)) > 0))
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


CHANGE_ROWS = (("segmentation", "miou", "mIoU", 100.0, "%"),
               ("segmentation", "pixel_accuracy", "pixel accuracy", 100.0, "%"),
               ("depth", "rmse", "depth RMSE", 1.0, "m"),
               ("depth", "abs_rel", "depth abs rel", 1.0, ""),
               ("depth", "delta1", "depth d<1.25", 1.0, ""))


def format_metrics_change(before: dict, after: dict) -> str:
    """A before / after table of the headline metrics both results have."""
    lines = [f"  {'':<16}{'before':>10}{'after':>10}"]
    for task, key, name, scale, unit in CHANGE_ROWS:
        if key in before.get(task, {}) and key in after.get(task, {}):
            lines.append(f"  {name:<16}{before[task][key] * scale:>10.3f}{after[task][key] * scale:>10.3f} {unit}")
    return "\n".join(lines)
