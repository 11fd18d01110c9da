"""What every inference backend shares: the interface, its result and its error.

    backend.infer(rgb HxWx3 uint8) -> Prediction(labels, color, confidence, depth)
    backend.infer_on_device(rgb) -> DeviceFrame   (backends with device_frames: torch, TensorRT)
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from hydranet_ros.errors import UserError


class BackendError(UserError):
    """A backend that cannot run here; the message says why."""


@dataclass
class Prediction:
    labels: np.ndarray  # h x w uint8
    color: np.ndarray   # h x w x 3 uint8
    confidence: np.ndarray  # h x w uint8, 255 x the highest class probability
    depth: np.ndarray   # h x w float32 metres


@dataclass
class DeviceFrame:
    """One frame still on the backend's device (torch tensors), for inference/device_post.py; valid
    until the backend's next frame, which may reuse the tensors."""

    image: object     # H x W x 3 uint8, the input as uploaded
    outputs: tuple    # labels, color, confidence, depth, as in Prediction


def stacked(rgbs: list[np.ndarray]) -> np.ndarray:
    """Images of one size as one N x H x W x 3 batch with the usual strides (a[None] would give the new
    axis stride 0, and torch may then pick other kernels); a single image without a copy when it is
    contiguous."""
    if len(rgbs) == 1:
        return np.ascontiguousarray(rgbs[0]).reshape((1,) + rgbs[0].shape)
    return np.stack(rgbs)


class Backend:
    name = "base"
    device = "cpu"
    device_frames = False  # True: infer_on_device keeps the outputs on the device for post-processing

    def infer(self, rgb: np.ndarray) -> Prediction:
        raise NotImplementedError

    def infer_on_device(self, rgb: np.ndarray) -> DeviceFrame:
        raise NotImplementedError(f"{self.name} returns host arrays only")

    def infer_batch(self, rgbs: list[np.ndarray]) -> list[Prediction]:
        """Images of one size; one at a time unless the backend runs them as one batch."""
        return [self.infer(rgb) for rgb in rgbs]

    def device_batch_limit(self, size: tuple[int, int]) -> int:
        """How many images of this size infer_batch_on_device runs at once (1: one at a time)."""
        return 1

    def infer_batch_on_device(self, rgbs: list[np.ndarray]) -> list[DeviceFrame]:
        """Images of one size in one run on the device, for backends that can (TensorRT built for
        batches, device_batch_limit); the frames stay valid until the next call."""
        raise NotImplementedError(f"{self.name} runs one image at a time on its device")

    def describe(self) -> str:
        return f"{self.name} on {self.device}"

    def prepared_for(self, size: tuple[int, int]) -> bool:
        """Whether an image of this size (height, width) runs without first building a graph for it."""
        return True

    def prepare(self, size: tuple[int, int]) -> None:
        """Builds what an image of this size (height, width) needs, ahead of its first frame."""


class PerResolution(Backend):
    """One backend per camera resolution, made on first use: exported graphs (ONNX, TensorRT
    engines) are built for one image size. Keeps the `limit` most recently used."""

    def __init__(self, factory, first_size: tuple[int, int], limit: int = 4):
        self.factory = factory
        self.limit = limit
        self._backends: OrderedDict[tuple[int, int], Backend] = OrderedDict()
        first = self.for_size(tuple(first_size))  # fails here, at start, if the backend cannot run
        self.name, self.device, self.device_frames = first.name, first.device, first.device_frames

    def for_size(self, size: tuple[int, int]) -> Backend:
        if size in self._backends:
            self._backends.move_to_end(size)
        else:
            self._backends[size] = self.factory(size)
            if len(self._backends) > self.limit:
                self._backends.popitem(last=False)
        return self._backends[size]

    def prepared_for(self, size: tuple[int, int]) -> bool:
        return tuple(size) in self._backends

    def prepare(self, size: tuple[int, int]) -> None:
        self.for_size(tuple(size))

    def infer(self, rgb: np.ndarray) -> Prediction:
        return self.for_size(tuple(rgb.shape[:2])).infer(rgb)

    def infer_on_device(self, rgb: np.ndarray) -> DeviceFrame:
        return self.for_size(tuple(rgb.shape[:2])).infer_on_device(rgb)

    def infer_batch(self, rgbs: list[np.ndarray]) -> list[Prediction]:
        return self.for_size(tuple(rgbs[0].shape[:2])).infer_batch(rgbs)

    def infer_batch_on_device(self, rgbs: list[np.ndarray]) -> list[DeviceFrame]:
        return self.for_size(tuple(rgbs[0].shape[:2])).infer_batch_on_device(rgbs)

    def device_batch_limit(self, size: tuple[int, int]) -> int:
        return self.for_size(tuple(size)).device_batch_limit(size)

    def describe(self) -> str:
        return next(reversed(self._backends.values())).describe()
