"""The user cache: ONNX exports, TensorRT engines and downloaded official models."""
from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from hydranet_ros.errors import UserError

LOG = logging.getLogger("hydranet_ros.cache")
# How long a second process waits for another that makes the same file; an engine build on a Jetson
# takes minutes, an export seconds. A holder stopped (SIGSTOP) or hung would otherwise block forever.
LOCK_WAIT_S = 20 * 60
LOCK_POLL_S = 0.25


class CacheError(UserError):
    """A cached file that cannot be made or waited for; the message says why and what to do."""


def cache_dir() -> Path:
    """$HYDRANET_CACHE (the node's engine_cache parameter sets it), else ~/.cache/hydranet_ros."""
    return Path(os.environ.get("HYDRANET_CACHE", Path.home() / ".cache" / "hydranet_ros"))


def write_atomically(path: Path, data: bytes) -> None:
    """Another process sees the old file or the whole new one, never half (two nodes starting at once)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def replaced_atomically(path: Path, what: str):
    """Yields a temporary path beside path for the caller to write; renamed onto path only when the
    block completes, so a full disk, a read-only folder or an interruption leaves the old file (or
    none) and no temporary. A disk or permission fault is one CacheError."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        temporary.replace(path)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise CacheError(f"cannot write the {what} {path} ({error.strerror})") from None
        raise
    finally:
        temporary.unlink(missing_ok=True)


def _digest_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_intact(path: Path) -> bool:
    """The cached file is the whole file that was made: its content hash is the one recorded beside it
    when it was made (a file cut short by a full disk, a crash or a copy is not trusted)."""
    try:
        return path.is_file() and _digest_path(path).read_text().strip() == file_sha256(path)
    except OSError:
        return False


def make_cached(path: Path, make, what: str) -> Path:
    """The cached file at path, made by make(temporary_path) when missing or not intact, under the lock;
    the temporary is renamed into place and its hash recorded. A full disk is one CacheError, and no
    temporary is left behind."""
    with building(path):
        if is_intact(path):
            return path
        if path.exists():
            why = "is damaged or incomplete" if _digest_path(path).exists() else \
                "has no recorded hash (an older version made it)"
            LOG.warning("the cached %s %s %s; making it again", what, path.name, why)
        temporary = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
        try:
            make(temporary)
            digest = file_sha256(temporary)
            temporary.replace(path)
            write_atomically(_digest_path(path), digest.encode())
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise CacheError(f"cannot write the {what} to {path.parent} ({error.strerror}); free space there or "
                                 "set engine_cache (HYDRANET_CACHE) to another folder") from None
            raise
        finally:
            temporary.unlink(missing_ok=True)
    return path


@contextmanager
def building(path: Path, wait_s: float = LOCK_WAIT_S):
    """Held while a process makes the cached file at path (an export, an int8 graph, an engine): a
    second process making the same file waits, then finds it made, instead of spending the same
    seconds (minutes for an engine) again. It waits wait_s at most, then says which process holds
    the lock. Callers check for the file inside the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            LOG.warning("process %s is making %s; waiting for it (%d s at most)", holder, path.name, wait_s)
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise CacheError(f"process {holder} has held {lock.name} for more than {wait_s:g} s while "
                                         f"making {path.name}; if it is stopped or hung, end it (kill {holder})"
                                         ) from None
                    time.sleep(LOCK_POLL_S)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
