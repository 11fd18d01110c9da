"""What every inference backend shares: the interface, its result and its error.

    backend.infer(rgb HxWx3 uint8) -> Prediction(labels, color, confidence, depth)
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


class Backend:
    name = "base"
    device = "cpu"

    def infer(self, rgb: np.ndarray) -> Prediction:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} on {self.device}"


class PerResolution(Backend):
    """One backend per camera resolution, made on first use: exported graphs (ONNX, TensorRT
    engines) are built for one image size. Keeps the `limit` most recently used."""

    def __init__(self, factory, first_size: tuple[int, int], limit: int = 4):
        self.factory = factory
        self.limit = limit
        self._backends: OrderedDict[tuple[int, int], Backend] = OrderedDict()
        first = self.for_size(tuple(first_size))  # fails here, at start, if the backend cannot run
        self.name, self.device = first.name, first.device

    def for_size(self, size: tuple[int, int]) -> Backend:
        if size in self._backends:
            self._backends.move_to_end(size)
        else:
            self._backends[size] = self.factory(size)
            if len(self._backends) > self.limit:
                self._backends.popitem(last=False)
        return self._backends[size]

    def infer(self, rgb: np.ndarray) -> Prediction:
        return self.for_size(tuple(rgb.shape[:2])).infer(rgb)

    def describe(self) -> str:
        return next(reversed(self._backends.values())).describe()
