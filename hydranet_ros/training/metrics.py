"""Segmentation and depth metrics, accumulated over a dataset (plain numpy)."""
from __future__ import annotations

import numpy as np

from hydranet_ros.data.dataset import IGNORE_LABEL


class SegmentationMetrics:
    """Confusion-matrix based mIoU, pixel accuracy and per-class IoU.

    mIoU averages over the classes that occur in the ground truth or the prediction; a class that
    never appears in either has no IoU (NaN in per_class_iou). A prediction outside the classes
    (255: no class, as teachers give) is a miss for the true class and a false positive for none.
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        # The extra last column counts predictions outside the classes.
        self.confusion = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        valid = target != IGNORE_LABEL
        predicted = np.minimum(prediction[valid].astype(np.int64), self.num_classes)
        index = target[valid].astype(np.int64) * (self.num_classes + 1) + predicted
        self.confusion += np.bincount(index, minlength=self.num_classes * (self.num_classes + 1)).reshape(
            self.num_classes, -1)

    def per_class_iou(self) -> np.ndarray:
        true_positive = np.diag(self.confusion).astype(np.float64)
        union = self.confusion[:, :-1].sum(0) + self.confusion.sum(1) - true_positive
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, true_positive / union, np.nan)

    def summary(self) -> dict:
        iou = self.per_class_iou()
        total = self.confusion.sum()
        return {
            "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "pixel_accuracy": float(np.diag(self.confusion).sum() / total) if total else float("nan"),
            "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
        }


class DepthMetrics:
    """Standard monocular depth errors over valid pixels (target > 0, capped at max_depth).

    RMSE, RMSE(log), abs rel, sq rel and the delta thresholds are computed over all valid pixels
    of the dataset together (pixel-weighted), not averaged per image.
    """

    def __init__(self, max_depth: float, min_depth: float = 1e-3):
        self.max_depth = max_depth
        self.min_depth = min_depth
        self.sums = dict.fromkeys(("sq", "sq_log", "abs_rel", "sq_rel", "d1", "d2", "d3"), 0.0)
        self.count = 0

    def update(self, prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> None:
        valid = (target > self.min_depth) & (target <= self.max_depth) & np.isfinite(prediction)
        if mask is not None:
            valid &= mask
        if not valid.any():
            return
        gt = target[valid].astype(np.float64)
        pred = np.clip(prediction[valid].astype(np.float64), self.min_depth, self.max_depth)
        ratio = np.maximum(pred / gt, gt / pred)
        self.sums["sq"] += np.sum((pred - gt) ** 2)
        self.sums["sq_log"] += np.sum((np.log(pred) - np.log(gt)) ** 2)
        self.sums["abs_rel"] += np.sum(np.abs(pred - gt) / gt)
        self.sums["sq_rel"] += np.sum((pred - gt) ** 2 / gt)
        for k, threshold in (("d1", 1.25), ("d2", 1.25 ** 2), ("d3", 1.25 ** 3)):
            self.sums[k] += np.sum(ratio < threshold)
        self.count += gt.size

    def summary(self) -> dict:
        if self.count == 0:
            return {"pixels": 0}
        n = self.count
        return {
            "rmse": float(np.sqrt(self.sums["sq"] / n)),
            "rmse_log": float(np.sqrt(self.sums["sq_log"] / n)),
            "abs_rel": float(self.sums["abs_rel"] / n),
            "sq_rel": float(self.sums["sq_rel"] / n),
            "delta1": float(self.sums["d1"] / n),
            "delta2": float(self.sums["d2"] / n),
            "delta3": float(self.sums["d3"] / n),
            "pixels": int(n),
        }


def garg_crop_mask(height: int, width: int) -> np.ndarray:
    """The crop of Garg et al. (ECCV 2016) used for KITTI depth evaluation."""
    mask = np.zeros((height, width), dtype=bool)
    mask[int(0.40810811 * height):int(0.99189189 * height), int(0.03594771 * width):int(0.96405229 * width)] = True
    return mask
