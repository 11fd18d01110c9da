"""The user cache: ONNX exports, TensorRT engines and downloaded official models."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$HYDRANET_CACHE (the node's engine_cache parameter sets it), else ~/.cache/hydranet_ros."""
    return Path(os.environ.get("HYDRANET_CACHE", Path.home() / ".cache" / "hydranet_ros"))
