"""Samples with any subset of labels, and our on-disk dataset folder.

Folder layout (what `hydranet synth` and `hydranet distill` write, and `hydranet train` reads):
    dataset.yaml         label_space, depth_scale (stored uint16 value / depth_scale = metres)
    rgb/NAME.png         colour image
    labels/NAME.png      uint8 class ids, 255 = ignore          (optional per sample)
    depth/NAME.png       uint16, 0 = no depth                   (optional per sample)
    intrinsics/NAME.json fx, fy, cx, cy, width, height          (optional)
    provenance.yaml      which labels a teacher produced        (written by distill)
A missing label file means that label is absent for the sample: it is ignored in the loss,
never taken as zeros.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from hydranet_ros.cache import write_atomically
from hydranet_ros.errors import UserError
from hydranet_ros.camera.intrinsics import Intrinsics


class DatasetError(UserError):
    """A dataset folder or data file that cannot be used as it is; the message says why."""


IGNORE_LABEL = 255


@dataclass
class Sample:
    name: str
    image: np.ndarray                       # H x W x 3 uint8 RGB
    segmentation: np.ndarray | None = None  # H x W uint8 ids, 255 = ignore
    depth: np.ndarray | None = None         # H x W float32 metres, 0 = invalid
    intrinsics: Intrinsics | None = None


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_png_unchanged(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot read {path}")
    return image


def check_labels(labels: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    bad = (labels >= num_classes) & (labels != IGNORE_LABEL)
    if bad.any():
        raise DatasetError(f"{path}: label ids {sorted(np.unique(labels[bad]).tolist())[:10]} are out "
                           f"of range for {num_classes} classes (0..{num_classes - 1}, 255 = ignore)")
    return labels


INTRINSICS_KEYS = ("fx", "fy", "cx", "cy", "width", "height")


class FolderDataset:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "dataset.yaml"
        if not meta_path.is_file():
            raise DatasetError(f"{self.root} is not a dataset folder: {meta_path} is missing")
        try:
            self.meta = yaml.safe_load(meta_path.read_text())
        except yaml.YAMLError as error:
            problem = str(error).splitlines()[0]
            raise DatasetError(f"{meta_path} is not plain YAML ({problem})") from None
        if not isinstance(self.meta, dict) or not isinstance(self.meta.get("label_space"), str):
            raise DatasetError(f"{meta_path} must be a mapping with label_space (and depth_scale)")
        depth_scale = self.meta.get("depth_scale", 1000.0)
        if isinstance(depth_scale, bool) or not isinstance(depth_scale, (int, float)) or \
                not math.isfinite(depth_scale) or depth_scale <= 0:
            raise DatasetError(f"{meta_path}: depth_scale must be a positive number (stored value / depth_scale "
                               f"= metres), not {depth_scale!r}")
        self.depth_scale = float(depth_scale)
        if self.meta.get("complete") is False:
            raise DatasetError(f"{self.root} is incomplete: the command that wrote it did not finish (stopped, "
                               "a full disk or an error); write it again")
        self.label_space = self.meta["label_space"]
        self.names = sorted(p.stem for p in (self.root / "rgb").glob("*.png"))
        if not self.names:
            raise DatasetError(f"dataset {self.root} is empty: no images in {self.root / 'rgb'}")

    def __len__(self) -> int:
        return len(self.names)

    def has(self, kind: str, name: str) -> bool:
        return (self.root / kind / f"{name}.png").is_file()

    def intrinsics(self, name: str) -> Intrinsics | None:
        path = self.root / "intrinsics" / f"{name}.json"
        if not path.is_file():
            return None
        try:
            values = json.loads(path.read_text())
            return Intrinsics(**{key: values[key] for key in INTRINSICS_KEYS})
        except (ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"{path}: intrinsics must be JSON with {', '.join(INTRINSICS_KEYS)} ({error!r})") \
                from None

    def check_files(self) -> None:
        """Every sample's files as training reads them, checked before a first step (one line naming the
        file): labels single-channel uint8 and depth single-channel uint16, each the size of its image;
        intrinsics with their keys."""
        for name in self.names:
            image = cv2.imread(str(self.root / "rgb" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise DatasetError(f"{self.root / 'rgb' / f'{name}.png'} cannot be read as an image")
            for kind, dtype in (("labels", np.uint8), ("depth", np.uint16)):
                if not self.has(kind, name):
                    continue
                path = self.root / kind / f"{name}.png"
                array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                if array is None or array.ndim != 2 or array.dtype != dtype or array.shape != image.shape[:2]:
                    channels = "" if array is None or array.ndim == 2 else f"x{array.shape[2]}"
                    found = "unreadable" if array is None else \
                        f"{array.shape[1]}x{array.shape[0]}{channels} {array.dtype}"
                    raise DatasetError(f"{path} is {found}; {kind} must be single-channel {np.dtype(dtype).name} "
                                       f"of its image's size, {image.shape[1]}x{image.shape[0]}")
            self.intrinsics(name)

    def __getitem__(self, index: int) -> Sample:
        name = self.names[index]
        sample = Sample(name, read_rgb(self.root / "rgb" / f"{name}.png"))
        if self.has("labels", name):
            sample.segmentation = read_png_unchanged(self.root / "labels" / f"{name}.png").astype(np.uint8)
        if self.has("depth", name):
            sample.depth = read_png_unchanged(self.root / "depth" / f"{name}.png").astype(np.float32) / self.depth_scale
        sample.intrinsics = self.intrinsics(name)
        return sample


def create_dataset_folder(root: str | Path, label_space: str, depth_scale: float,
                          complete: bool | None = None) -> Path:
    """The folders and dataset.yaml; complete=False marks a dataset still being written (FolderDataset
    refuses it), True one whose writer finished; None (a dataset made by hand) says neither."""
    root = Path(root)
    for sub in ("rgb", "labels", "depth", "intrinsics"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    meta = {"label_space": label_space, "depth_scale": depth_scale}
    if complete is not None:
        meta["complete"] = complete
    _write_atomically(root / "dataset.yaml", yaml.safe_dump(meta).encode())
    return root


@contextmanager
def writing_dataset(root: str | Path, label_space: str, depth_scale: float):
    """A dataset folder that says it is incomplete until the block ends without an error, so that a
    command stopped by a signal, a full disk or a crash leaves a folder train, adapt and evaluate refuse."""
    folder = create_dataset_folder(root, label_space, depth_scale, complete=False)
    yield folder
    create_dataset_folder(folder, label_space, depth_scale, complete=True)


def _write_atomically(path: Path, data: bytes) -> None:
    """The whole file or none under its name (cache.write_atomically); a full disk or an unwritable
    folder is one DatasetError."""
    try:
        write_atomically(path, data)
    except OSError as error:
        raise DatasetError(f"cannot write {path} ({error.strerror})") from None


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise DatasetError(f"cannot encode {path} as PNG")
    _write_atomically(path, encoded.tobytes())


def write_sample(root: Path, sample: Sample, depth_scale: float) -> None:
    """Each file whole or not at all, the image last: a sample is listed (by its rgb/ file) only once its
    labels, depth and intrinsics are on disk. A write that fails is one DatasetError."""
    if sample.segmentation is not None:
        _write_png(root / "labels" / f"{sample.name}.png", sample.segmentation)
    if sample.depth is not None:
        write_depth_png(root / "depth" / f"{sample.name}.png", sample.depth, depth_scale)
    if sample.intrinsics is not None:
        i = sample.intrinsics
        _write_atomically(root / "intrinsics" / f"{sample.name}.json", json.dumps(
            {"fx": i.fx, "fy": i.fy, "cx": i.cx, "cy": i.cy, "width": i.width, "height": i.height}).encode())
    _write_png(root / "rgb" / f"{sample.name}.png", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR))


def write_depth_png(path: Path, depth: np.ndarray, scale: float) -> None:
    """uint16 PNG of depth * scale; invalid (NaN, <= 0) and out-of-range depths become 0."""
    value = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0) * scale
    value = np.where((value > 0) & (value < 65535), value + 0.5, 0)
    _write_png(path, value.astype(np.uint16))
