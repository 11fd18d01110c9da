"""The user cache: ONNX exports, TensorRT engines and downloaded official models."""
from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path

LOG = logging.getLogger("hydranet_ros.cache")


def cache_dir() -> Path:
    """$HYDRANET_CACHE (the node's engine_cache parameter sets it), else ~/.cache/hydranet_ros."""
    return Path(os.environ.get("HYDRANET_CACHE", Path.home() / ".cache" / "hydranet_ros"))


def write_atomically(path: Path, data: bytes) -> None:
    """Another process sees the old file or the whole new one, never half (two nodes starting at once)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


@contextmanager
def building(path: Path):
    """Held while a process makes the cached file at path (an export, an int8 graph, an engine): a
    second process making the same file waits, then finds it made, instead of spending the same
    seconds (minutes for an engine) again. Callers check for the file inside the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            LOG.warning("another process is making %s; waiting for it", path.name)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
