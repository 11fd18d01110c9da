"""The paper's losses: cross-entropy for segmentation, inverse Huber (berHu) for depth.

Both average over the pixels that carry a label, so a sample without a label contributes
nothing to that task's loss (its pixels are 255 / 0 after batching).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hydranet_ros.data.dataset import IGNORE_LABEL

BERHU_THRESHOLD = 0.2  # c = 0.2 x the largest absolute residual in the batch


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor,
                      class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax cross-entropy over labelled pixels; logits are upsampled to the target size. With
    class_weights, the weighted mean: each pixel counts with its class's weight."""
    logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    loss = F.cross_entropy(logits, target, weight=class_weights, ignore_index=IGNORE_LABEL, reduction="sum")
    labelled = target[target != IGNORE_LABEL]
    total_weight = labelled.numel() if class_weights is None else class_weights[labelled].sum()
    return loss / torch.as_tensor(total_weight, dtype=loss.dtype).clamp(min=1e-6)


def median_frequency_weights(pixel_counts: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """Median frequency balancing (Eigen and Fergus, ICCV 2015): freq(c) is the pixels of class c over
    the pixels of the images where c is present, weight(c) = median(freq) / freq(c). Rare classes
    (sidewalk, car in street scenes) weigh more. A class that never occurs gets weight 0."""
    present = pixel_counts > 0
    frequency = np.where(present, pixel_counts / np.maximum(image_pixels, 1), 0.0)
    median = np.median(frequency[present])
    return np.where(present, median / np.where(present, frequency, 1.0), 0.0)


def berhu_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Inverse Huber on pixels with target > 0; prediction N x 1 x h x w, target N x H x W."""
    prediction = F.interpolate(prediction, size=target.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    valid = target > 0
    if not valid.any():
        return prediction.sum() * 0.0  # keeps the graph for DDP, contributes nothing
    residual = (prediction[valid] - target[valid]).abs()
    c = (BERHU_THRESHOLD * residual.max()).detach().clamp(min=1e-6)
    quadratic = (residual ** 2 + c ** 2) / (2 * c)
    return torch.where(residual <= c, residual, quadratic).mean()


def joint_loss(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
               segmentation_weight: float = 0.5,
               class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """lambda * segmentation + (1 - lambda) * depth, over the tasks the model has. The parts returned
    for logging are only those the batch has labels for (a batch without depth reports no depth
    loss, rather than 0)."""
    parts = {}
    total = 0.0
    if "segmentation" in outputs:
        loss = segmentation_loss(outputs["segmentation"], batch["segmentation"], class_weights)
        total = total + segmentation_weight * loss
        if (batch["segmentation"] != IGNORE_LABEL).any():
            parts["segmentation"] = loss
    if "depth" in outputs:
        loss = berhu_loss(outputs["depth"], batch["depth"])
        total = total + (1 - segmentation_weight) * loss
        if (batch["depth"] > 0).any():
            parts["depth"] = loss
    return total, {k: float(v.detach()) for k, v in parts.items()}
