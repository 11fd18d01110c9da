"""What the backends whose outputs stay on their device (torch, TensorRT) share: camera images go up
through pinned memory, finished outputs come back in one copy."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from hydranet_ros.inference.backends.base import Backend, Prediction
from hydranet_ros.inference.graph import OUTPUT_NAMES


def to_host(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Device tensors -> host arrays. On a GPU: one device-to-host copy of all of them (packed as
    bytes, each part 16-byte aligned) into pinned memory from PyTorch's caching host allocator,
    which reuses a block once the arrays viewing it are gone: a result outlives the next frame."""
    device = next(iter(tensors.values())).device
    if device.type == "cpu":
        return {name: t.contiguous().numpy() for name, t in tensors.items()}
    parts, offsets, offset = [], {}, 0
    for name, tensor in tensors.items():
        part = tensor.contiguous().reshape(-1).view(torch.uint8)
        offsets[name] = offset
        parts.append(part)
        offset += part.numel()
        if offset % 16:
            parts.append(torch.empty(16 - offset % 16, dtype=torch.uint8, device=device))
            offset += 16 - offset % 16
    host = torch.empty(offset, dtype=torch.uint8, pin_memory=True)
    host.copy_(torch.cat(parts), non_blocking=True)
    torch.cuda.current_stream(device).synchronize()
    return {name: host[offsets[name]:offsets[name] + t.numel() * t.element_size()].view(t.dtype)
            .reshape(t.shape).numpy()
            for name, t in tensors.items()}


class PinnedStaging:
    """Uploads camera images through one pinned host buffer per image shape (the `kept` most recent):
    pinning memory is a slow driver call, too slow to repeat every frame, and a copy from pageable
    memory cannot overlap. A buffer is written again only once the copy that read it has finished."""

    def __init__(self, kept: int = 4):
        self.kept = kept
        self._buffers = OrderedDict()  # shape -> [pinned tensor, CUDA event of its last copy or None]

    def upload(self, rgb: np.ndarray, target: torch.Tensor) -> None:
        """Copies rgb into the device tensor target on the current stream, asynchronously."""
        entry = self._buffers.get(rgb.shape)
        if entry is None:
            entry = self._buffers[rgb.shape] = [torch.empty(rgb.shape, dtype=torch.uint8, pin_memory=True), None]
            if len(self._buffers) > self.kept:
                self._buffers.popitem(last=False)
        self._buffers.move_to_end(rgb.shape)
        buffer, last_copy = entry
        if last_copy is not None:
            last_copy.synchronize()
        buffer.numpy()[...] = rgb
        target.copy_(buffer, non_blocking=True)
        entry[1] = torch.cuda.Event()
        entry[1].record()


class DeviceBackend(Backend):
    """A backend whose outputs stay on its device (torch, TensorRT): infer_on_device is its own,
    infer brings the bare outputs to the host in one copy."""

    device_frames = True

    def infer(self, rgb: np.ndarray) -> Prediction:
        return Prediction(**to_host(dict(zip(OUTPUT_NAMES, self.infer_on_device(rgb).outputs))))
