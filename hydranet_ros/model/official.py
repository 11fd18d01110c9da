"""The authors' official checkpoints: what they are, and a verified download into the user cache.

The four checkpoints are plain git files in the authors' repository (DrSleep/multi-task-refinenet,
weights/NAME.ckpt), so git's own blob id (SHA-1 of "blob <size>", a NUL byte and the content, what `git hash-object`
prints) verifies a download without any other published checksum. A download goes to a temporary
name next to its destination and is renamed only once verified; a cached file is verified again
before it is used. The checkpoint is then imported into our model file (model/authors_checkpoint.py),
which runs at the image's own size with the camera the authors trained on.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hydranet_ros.cache import cache_dir
from hydranet_ros.errors import ModelFileError

PREFIX = "official:"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com/DrSleep/multi-task-refinenet/master"
BASE_URL_VARIABLE = "HYDRANET_OFFICIAL_BASE_URL"
LICENCE = ("The official HydraNet weights (Nekrasov et al., DrSleep/multi-task-refinenet) are licensed "
           "BSD-2-Clause style for NON-COMMERCIAL use only (the repository's LICENSE.md).")


# A download is given up after this long in all, however slowly the bytes keep coming.
DOWNLOAD_DEADLINE_S = 15 * 60


@dataclass(frozen=True)
class OfficialCheckpoint:
    name: str
    path: str                 # in the authors' repository
    git_blob_sha1: str
    label_space: str
    tasks: tuple[str, ...]
    trained_on: str
    tensor_bytes: int         # of its state dict, from the published layout (../shared/reference)

    @property
    def max_bytes(self) -> int:
        """More than the file can be (its tensors, room for a pickled optimizer state three times
        their size, and 1 MiB): a larger body is not the published file, whatever it claims."""
        return 4 * self.tensor_bytes + (1 << 20)


OFFICIAL = {c.name: c for c in (
    OfficialCheckpoint("ExpKITTI_joint", "weights/ExpKITTI_joint.ckpt", "d9386a96f748001406c622100ce944333d1967ff",
                       "kitti6", ("segmentation", "depth"), "KITTI-6 segmentation and KITTI depth", 12_093_628),
    OfficialCheckpoint("ExpNYUD_joint", "weights/ExpNYUD_joint.ckpt", "56f5f5a6bc08a64f36e83547140add41baa4216d",
                       "nyud40", ("segmentation", "depth"), "NYUDv2-40 segmentation and depth", 12_407_108),
    OfficialCheckpoint("ExpNYUDKITTI_joint", "weights/ExpNYUDKITTI_joint.ckpt",
                       "54f57cc2bd15e5cdfa9f3f1eaba9760951218bfa", "nyud40+kitti6", ("segmentation", "depth"),
                       "NYUDv2 and KITTI together (46 classes)", 12_462_428),
    OfficialCheckpoint("ExpNYUD_three", "weights/ExpNYUD_three.ckpt", "6f412c152600827cabff5e1b66efad50090c16a7",
                       "nyud40", ("segmentation", "depth", "normals"), "NYUDv2-40 segmentation, depth and normals",
                       12_435_792),
)}


def models_dir() -> Path:
    return cache_dir() / "models"


def git_blob_sha1(path: str | Path) -> str:
    """What `git hash-object FILE` prints."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_named(name: str) -> OfficialCheckpoint:
    if name not in OFFICIAL:
        raise ModelFileError(f"no official model {name!r}; there are {', '.join(OFFICIAL)} (hydranet models list)")
    return OFFICIAL[name]


def model_file(name: str) -> Path:
    """Our model file of an official checkpoint: `official:NAME` as model_path resolves to it."""
    checkpoint = checkpoint_named(name)
    path = models_dir() / f"{checkpoint.name}.pt"
    if not path.is_file():
        raise ModelFileError(f"official model {name} is not downloaded yet; run: hydranet models download {name} "
                             "--accept-licence (the node never downloads by itself)")
    return path


def _verified(path: Path, checkpoint: OfficialCheckpoint) -> bool:
    return path.is_file() and git_blob_sha1(path) == checkpoint.git_blob_sha1


def download(name: str, accept_licence: bool, base_url: str | None = None, progress=None) -> Path:
    """Fetches, verifies and imports an official checkpoint; returns our model file's path."""
    checkpoint = checkpoint_named(name)
    if not accept_licence:
        raise ModelFileError(f"{LICENCE} Re-run with --accept-licence to accept it.")
    folder = models_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelFileError(f"cannot create the model cache {folder}: {error.strerror}") from None
    ckpt = folder / f"{checkpoint.name}.ckpt"
    if ckpt.is_dir():
        raise ModelFileError(f"{ckpt} is a folder where the downloaded checkpoint belongs; remove it")
    _remove_stale_parts(ckpt)
    if ckpt.exists() and not _verified(ckpt, checkpoint):
        ckpt.unlink()  # a cached file is verified every time, never trusted
    if not ckpt.exists():
        url = f"{(base_url or os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL).rstrip('/')}/{checkpoint.path}"
        _fetch(url, ckpt, checkpoint, progress)
    from hydranet_ros.model.authors_checkpoint import import_authors_checkpoint  # torch: only to import one
    from hydranet_ros.model.model_file import load_label_space, save_model
    model, spec = import_authors_checkpoint(ckpt, load_label_space(checkpoint.label_space))
    spec.provenance = {"official": checkpoint.name, "source": checkpoint.path,
                       "git_blob_sha1": checkpoint.git_blob_sha1,
                       "trained_on": checkpoint.trained_on, "licence": LICENCE}
    return save_model(folder / f"{checkpoint.name}.pt", model, spec)


def _remove_stale_parts(destination: Path) -> None:
    """Partial downloads of processes that are gone (killed mid-download): nothing removed them."""
    for part in destination.parent.glob(f".{destination.name}.*.part"):
        pid = part.name[len(destination.name) + 2:-len(".part")]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            part.unlink(missing_ok=True)
        except PermissionError:  # another user's live process
            pass


def _content_length(response) -> int:
    """The announced size, 0 when absent or not a number (then only the cap and the hash judge)."""
    value = (response.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else 0


def _fetch(url: str, destination: Path, checkpoint: OfficialCheckpoint, progress) -> None:
    deadline_s = DOWNLOAD_DEADLINE_S
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.part")
    too_large = (f"{url} sends more than {checkpoint.max_bytes >> 20} MiB, more than {checkpoint.name} can be; "
                 "it is not the published file")
    try:
        try:
            start = time.monotonic()
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                expected = _content_length(response)
                if expected > checkpoint.max_bytes:
                    raise ModelFileError(too_large)
                received = 0
                # read1: what has arrived, so that a trickle still meets the deadline check
                for block in iter(lambda: response.read1(1 << 20), b""):
                    out.write(block)
                    received += len(block)
                    if received > checkpoint.max_bytes:
                        raise ModelFileError(too_large)
                    if time.monotonic() - start > deadline_s:
                        raise ModelFileError(f"download of {url} took more than {deadline_s:g} s ({received} bytes "
                                             "so far); run the command again on a better connection")
                    if progress:
                        progress(received, expected)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            if isinstance(error, http.client.IncompleteRead):
                raise ModelFileError(f"download of {url} was cut off; run the command again") from None
            reason = getattr(error, "reason", None) or error
            raise ModelFileError(f"cannot download {url}: {reason}") from None
        if expected and received != expected:
            raise ModelFileError(f"download of {url} was cut off ({received} of {expected} bytes); run the "
                                 "command again")
        found = git_blob_sha1(partial)
        if found != checkpoint.git_blob_sha1:
            raise ModelFileError(f"{url} is not the published {checkpoint.name}: its git blob id is {found}, expected "
                                 f"{checkpoint.git_blob_sha1}; the file was deleted")
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)  # nothing half-written stays in the cache
