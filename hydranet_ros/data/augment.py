"""Training augmentation (random scale, crop, mirror, colour jitter) and batching to tensors.

Depth stays metric: scaling an image changes its apparent size, not its distances, so depth
values are resampled (nearest, to keep invalid pixels out of averages) but never multiplied.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from hydranet_ros.data.dataset import IGNORE_LABEL, Sample


class Augmenter:
    def __init__(self, crop: tuple[int, int], scale: tuple[float, float] = (0.75, 1.25),
                 mirror: bool = True, jitter: float = 0.2, train: bool = True,
                 network_size: tuple[int, int] | None = None):
        """network_size (height, width): the size the whole image is resized to at inference
        (the model's input size); training scales are relative to it. Default: the crop."""
        self.crop = crop
        self.network_size = network_size or crop
        self.scale = scale
        self.mirror = mirror
        self.jitter = jitter
        self.train = train

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict:
        image, segmentation, depth = sample.image, sample.segmentation, sample.depth
        height, width = self.crop
        fit = max(height / image.shape[0], width / image.shape[1])  # the smallest scale that covers the crop
        # Training scales around the scale the network sees the image at, never below fit.
        inference = max(self.network_size[0] / image.shape[0], self.network_size[1] / image.shape[1])
        factor = max(inference * rng.uniform(*self.scale), fit) if self.train else fit
        size = (max(width, round(image.shape[1] * factor)), max(height, round(image.shape[0] * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        if segmentation is not None:
            segmentation = cv2.resize(segmentation, size, interpolation=cv2.INTER_NEAREST)
        if depth is not None:
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
        top = rng.integers(0, size[1] - height + 1) if self.train else (size[1] - height) // 2
        left = rng.integers(0, size[0] - width + 1) if self.train else (size[0] - width) // 2
        window = (slice(top, top + height), slice(left, left + width))
        image = image[window]
        segmentation = segmentation[window] if segmentation is not None else None
        depth = depth[window] if depth is not None else None
        if self.train and self.mirror and rng.random() < 0.5:
            image = image[:, ::-1]
            segmentation = segmentation[:, ::-1] if segmentation is not None else None
            depth = depth[:, ::-1] if depth is not None else None
        image = image.astype(np.float32) / 255.0
        if self.train and self.jitter > 0:
            gain = 1 + rng.uniform(-self.jitter, self.jitter, 3).astype(np.float32)  # per-channel colour
            brightness = np.float32(rng.uniform(-self.jitter, self.jitter) * 0.5)
            image = np.clip(image * gain + brightness, 0, 1)
        return {
            "image": np.ascontiguousarray(image.transpose(2, 0, 1)),
            "segmentation": np.ascontiguousarray(segmentation) if segmentation is not None
            else np.full((height, width), IGNORE_LABEL, np.uint8),
            "depth": np.ascontiguousarray(depth) if depth is not None else np.zeros((height, width), np.float32),
        }


def collate(items: list[dict], mean, std) -> dict[str, torch.Tensor]:
    image = torch.from_numpy(np.stack([i["image"] for i in items]))
    mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return {
        "image": (image - mean) / std,
        "segmentation": torch.from_numpy(np.stack([i["segmentation"] for i in items])).long(),
        "depth": torch.from_numpy(np.stack([i["depth"] for i in items])),
    }
