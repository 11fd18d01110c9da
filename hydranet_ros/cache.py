"""The user cache: ONNX exports, TensorRT engines and downloaded official models."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$HYDRANET_CACHE (the node's engine_cache parameter sets it), else ~/.cache/hydranet_ros."""
    return Path(os.environ.get("HYDRANET_CACHE", Path.home() / ".cache" / "hydranet_ros"))


def write_atomically(path: Path, data: bytes) -> None:
    """Another process sees the old file or the whole new one, never half (two nodes starting at once)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
