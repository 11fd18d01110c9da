"""Training augmentation (random zoom, crop, mirror, colour jitter) and batching to tensors.

Each image is first brought to the size the network sees it at in the node (the same policy,
camera/network_input.py), then zoomed at random around it and cropped. Depth targets stay
consistent with what the image shows: the network judges depth by apparent size, so
  - zooming by z makes things look z times nearer: the depth target is divided by z;
  - a camera whose focal length (pixels at the network input) differs from the model's training
    camera is normalised the same way: target = depth x f_model / f_sample.
At inference the node multiplies by f_camera / f_model, the inverse of the second rule.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from hydranet_ros.camera.network_input import focal_at
from hydranet_ros.inference.graph import resize_antialiased
from hydranet_ros.data.dataset import IGNORE_LABEL, Sample
from hydranet_ros.model.model_file import ModelSpec

SPARSE_DEPTH_FRACTION = 0.5  # depth maps with fewer valid pixels are resized point by point (LiDAR)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H x W x 3 uint8 -> size (height, width) x 3 float32 in [0, 1], resized as the inference graph does."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    return (resize_antialiased(x, size)[0].permute(1, 2, 0) / 255.0).clamp_(0, 1).numpy()


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth (0 = none) to size (height, width) without mixing valid and invalid values: dense maps
    by nearest neighbour, sparse ones (LiDAR) by moving each point, the nearest winning."""
    height, width = size
    valid = depth > 0
    if valid.mean() >= SPARSE_DEPTH_FRACTION:
        return cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    v, u = np.nonzero(valid)
    z = depth[v, u]
    u2 = np.clip(np.round((u + 0.5) * width / depth.shape[1] - 0.5).astype(np.int64), 0, width - 1)
    v2 = np.clip(np.round((v + 0.5) * height / depth.shape[0] - 0.5).astype(np.int64), 0, height - 1)
    out = np.zeros((height, width), np.float32)
    order = np.argsort(-z)  # far first, nearer points overwrite them
    out[v2[order], u2[order]] = z[order]
    return out


class Augmenter:
    def __init__(self, spec: ModelSpec, crop: tuple[int, int], zoom: tuple[float, float] = (0.8, 1.25),
                 mirror: bool = True, jitter: float = 0.2):
        """crop (height, width) is cut from each image after it is brought to its network size and
        zoomed by a random factor in `zoom`."""
        self.spec = spec
        self.crop = crop
        self.zoom = zoom
        self.mirror = mirror
        self.jitter = jitter

    def depth_factor(self, sample: Sample, size: tuple[int, int], zoom: float) -> float:
        """Multiplier that turns the sample's metric depth into the target for an image of `size`."""
        model_focal = self.spec.focal_length_px
        if not model_focal or sample.intrinsics is None:
            return 1.0 / zoom  # no camera known: the sample's camera is taken to be the model's
        return model_focal / focal_at(sample.intrinsics, size)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict:
        image, segmentation, depth = sample.image, sample.segmentation, sample.depth
        crop_h, crop_w = self.crop
        net_h, net_w = self.spec.network_size(image.shape[:2])
        zoom = max(rng.uniform(*self.zoom), crop_h / net_h, crop_w / net_w)  # never smaller than the crop
        size = (max(crop_h, round(net_h * zoom)), max(crop_w, round(net_w * zoom)))
        image = resize_image(image, size)
        if segmentation is not None:
            segmentation = cv2.resize(segmentation, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        if depth is not None:
            depth = resize_depth(depth, size) * np.float32(self.depth_factor(sample, size, zoom))
        top = rng.integers(0, size[0] - crop_h + 1)
        left = rng.integers(0, size[1] - crop_w + 1)
        window = (slice(top, top + crop_h), slice(left, left + crop_w))
        image = image[window]
        segmentation = segmentation[window] if segmentation is not None else None
        depth = depth[window] if depth is not None else None
        if self.mirror and rng.random() < 0.5:
            image = image[:, ::-1]
            segmentation = segmentation[:, ::-1] if segmentation is not None else None
            depth = depth[:, ::-1] if depth is not None else None
        if self.jitter > 0:
            gain = 1 + rng.uniform(-self.jitter, self.jitter, 3).astype(np.float32)  # per-channel colour
            brightness = np.float32(rng.uniform(-self.jitter, self.jitter) * 0.5)
            image = np.clip(image * gain + brightness, 0, 1)
        return {
            "image": np.ascontiguousarray(image.transpose(2, 0, 1)),
            "segmentation": np.ascontiguousarray(segmentation) if segmentation is not None
            else np.full((crop_h, crop_w), IGNORE_LABEL, np.uint8),
            "depth": np.ascontiguousarray(depth) if depth is not None else np.zeros((crop_h, crop_w), np.float32),
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
