"""Our model file: weights plus everything the node and tools need to use them.

A model file is a torch.save'd dict, readable with weights_only=True:
    {"format": FORMAT, "spec": ModelSpec as a dict, "state_dict": {...}}
The spec records the architecture, tasks, classes with names and palette, input normalisation,
the network's pixel budget (or that it runs at the camera's own resolution), the focal length
its depth was learned for, and the depth range used for display.
"""
from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from hydranet_ros.cache import replaced_atomically
from hydranet_ros.camera.network_input import input_size_problem, network_input_size
from hydranet_ros.errors import ModelFileError

from .hydranet import HydraNet

FORMAT = "hydranet_ros.model/1"
DEFAULT_MODEL = "hydranet_street.pt"
ARCHITECTURE = "hydranet-mobilenetv2-lwrefinenet"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UPSAMPLING_MODES = ("bilinear", "bicubic")
# A model file's tensors, uncompressed, at most: far above any HydraNet (255 classes and three heads in
# float32 are about 15 MB), far below what a crafted file could make torch.load allocate.
MAX_TENSOR_BYTES = 64 << 20
MAX_CLASSES = 255  # labels are uint8 and 255 means no class


@dataclass
class LabelSpace:
    name: str
    class_names: list[str]
    palette: list[list[int]]  # RGB per class id
    ground_classes: list[str] = field(default_factory=list)
    sky_classes: list[str] = field(default_factory=list)
    depth_range_m: tuple[float, float] = (0.0, 10.0)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def ids(self, names: list[str]) -> list[int]:
        unknown = [n for n in names if n not in self.class_names]
        if unknown:
            raise ValueError(f"unknown classes {unknown} in label space {self.name}")
        return [self.class_names.index(n) for n in names]


def builtin_label_spaces() -> list[str]:
    folder = resources.files("hydranet_ros.model") / "label_spaces"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_label_space(name: str) -> LabelSpace:
    """A built-in label space ("nyud40", "kitti6") or "nyud40+kitti6" for the joint 46 classes."""
    if "+" in name:
        parts = [load_label_space(part) for part in name.split("+")]
        return LabelSpace(name, sum((p.class_names for p in parts), []),
                          sum((p.palette for p in parts), []),
                          sum((p.ground_classes for p in parts), []),
                          sum((p.sky_classes for p in parts), []),
                          (0.0, max(p.depth_range_m[1] for p in parts)))
    if name not in builtin_label_spaces():
        raise ValueError(f"unknown label space {name!r}; built in: {builtin_label_spaces()}")
    path = resources.files("hydranet_ros.model") / "label_spaces" / f"{name}.json"
    data = json.loads(path.read_text())
    classes = sorted(data["classes"], key=lambda c: c["id"])
    return LabelSpace(data["name"], [c["name"] for c in classes], [c["color"] for c in classes],
                      data["ground_classes"], data["sky_classes"], tuple(data["depth_range_m"]))


def label_space_for_classes(num_classes: int) -> LabelSpace:
    for name in ("kitti6", "nyud40", "nyud40+kitti6"):
        space = load_label_space(name)
        if space.num_classes == num_classes:
            return space
    raise ValueError(f"no built-in label space has {num_classes} classes; pass one explicitly")


@dataclass
class ModelSpec:
    tasks: list[str]
    label_space: LabelSpace
    input_size: tuple[int, int]  # (height, width): the pixel budget; images keep their aspect ratio
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    architecture: str = ARCHITECTURE
    provenance: dict = field(default_factory=dict)  # what it was trained on, by which command
    # Focal length (pixels at the network input) of the camera the depth was learned for; None: unknown,
    # depth is used as the network gives it (camera/network_input.py).
    focal_length_px: float | None = None
    native_resolution: bool = False  # run at the camera's own size instead of the pixel budget
    upsampling: str = "bilinear"     # of the heads' outputs to the output size; the authors' recipe is bicubic

    @property
    def num_classes(self) -> int:
        return self.label_space.num_classes

    def network_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(height, width) the network runs at for an image of image_size=(height, width)."""
        return network_input_size(image_size, None if self.native_resolution else tuple(self.input_size))

    def with_pixel_budget(self, input_size: tuple[int, int]) -> "ModelSpec":
        """A copy that runs at a user-chosen pixel budget (aspect ratio still kept)."""
        return dataclasses.replace(self, input_size=tuple(int(v) for v in input_size), native_resolution=False)

    def palette_array(self) -> np.ndarray:
        """num_classes x 3 uint8; the colour of class c is row c."""
        return np.asarray(self.label_space.palette, dtype=np.uint8).reshape(-1, 3)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["num_classes"] = self.num_classes
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        space = LabelSpace(**{**data["label_space"],
                              "depth_range_m": tuple(data["label_space"]["depth_range_m"])})
        return cls(tasks=list(data["tasks"]), label_space=space,
                   input_size=tuple(data["input_size"]), mean=tuple(data["mean"]),
                   std=tuple(data["std"]), architecture=data["architecture"],
                   provenance=dict(data.get("provenance", {})),
                   focal_length_px=data.get("focal_length_px"),
                   native_resolution=bool(data.get("native_resolution", False)),
                   upsampling=data.get("upsampling", "bilinear"))

    def problems(self) -> list[str]:
        """What makes this spec unusable (every value is checked, so a crafted or damaged file cannot
        reach the graph); [] when none."""
        space, found = self.label_space, []
        if not self.tasks or self.tasks != [t for t in ("segmentation", "depth", "normals") if t in self.tasks]:
            found.append(f"tasks {self.tasks} (segmentation, depth and/or normals, in that order)")
        if problem := input_size_problem(self.input_size):
            found.append(problem)
        if self.upsampling not in UPSAMPLING_MODES:
            found.append(f"upsampling {self.upsampling!r} (one of {list(UPSAMPLING_MODES)})")
        if len(self.mean) != 3 or not all(np.isfinite(self.mean)):
            found.append(f"mean {list(self.mean)} (three finite numbers)")
        if len(self.std) != 3 or not all(np.isfinite(self.std)) or min(self.std) <= 0:
            found.append(f"std {list(self.std)} (three positive numbers)")
        if self.focal_length_px is not None and not (np.isfinite(self.focal_length_px) and self.focal_length_px > 0):
            found.append(f"focal_length_px {self.focal_length_px} (a positive number of pixels, or none)")
        names = space.class_names
        if not 0 < len(names) <= MAX_CLASSES or len(set(names)) != len(names) or \
                not all(isinstance(n, str) and n for n in names):
            found.append(f"class names {names} (1 to {MAX_CLASSES} distinct names)")
        palette = np.asarray(space.palette, dtype=object)
        if palette.shape != (len(names), 3) or not all(isinstance(v, int) and 0 <= v <= 255 for v in palette.ravel()):
            found.append(f"a palette of {palette.shape} (one RGB colour of 0..255 per class)")
        unknown = [n for n in space.ground_classes + space.sky_classes if n not in names]
        if unknown:
            found.append(f"ground or sky classes {unknown} that are not among its classes")
        low, high = space.depth_range_m
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low < high):
            found.append(f"depth range {[low, high]} (0 <= near < far, finite)")
        return found

    def build_model(self) -> HydraNet:
        if self.architecture != ARCHITECTURE:
            raise ModelFileError(f"architecture {self.architecture!r} is not {ARCHITECTURE!r}")
        return HydraNet(self.num_classes, tuple(self.tasks))


def for_camera(model: HydraNet, spec: ModelSpec, focal_length_px: float) -> ModelSpec:
    """Re-expresses a model's depth for another camera: the node publishes depth x f_camera / f_model, so
    scaling the depth head's last convolution (depth is its absolute value) by f_new / f_old keeps every
    published depth. Changes the model in place; returns the spec with the new camera."""
    if spec.focal_length_px is not None and "depth" in spec.tasks:
        scale = focal_length_px / spec.focal_length_px
        with torch.no_grad():
            model.depth.weight.mul_(scale)
            model.depth.bias.mul_(scale)
    return dataclasses.replace(spec, focal_length_px=focal_length_px)


def save_model(path: str | Path, model: HydraNet, spec: ModelSpec, half: bool = False) -> Path:
    """Writes a model file. half=True stores float weights as float16 (half the size)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path, "model file") as temporary:  # a reader never sees half a file
        torch.save({"format": FORMAT, "spec": spec.to_dict(), "state_dict": state}, temporary)
    return path


def _check_tensor_bytes(path: Path) -> None:
    """Refuses a file whose archive holds more than MAX_TENSOR_BYTES, from the zip's headers, before
    torch.load materialises anything (a few MB of compressed zeros can claim gigabytes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # not a zip: torch.load says what it is
    if total > MAX_TENSOR_BYTES:
        raise ModelFileError(f"model file {path} holds {total / 2**20:.0f} MiB of data, more than any HydraNet "
                             f"({MAX_TENSOR_BYTES >> 20} MiB at most); it is not a model file this package wrote")


def _unreadable_reason(path: Path, error: Exception) -> str:
    """Why torch.load could not read a file, in words."""
    if path.stat().st_size == 0:
        return "it is empty"
    if not zipfile.is_zipfile(path):
        return "it is not a zip archive, as model files are (truncated, or another kind of file)"
    if "unsupported global" in str(error).lower():  # torch's weights-only unpickler refused a class or function
        return "it holds Python objects other than tensors and plain values, which could run code when loaded"
    return "its archive is damaged (the model's record in it cannot be unpickled)"


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[HydraNet, ModelSpec]:
    """Reads a model file into an eval-mode float32 HydraNet on device."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"model path {path} is a folder, not a model file; name the .pt file in it")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; pass an existing file "
                             "(for example the shipped hydranet_street.pt or hydranet_indoor.pt)")
    _check_tensor_bytes(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files, with paragraphs of text
        raise ModelFileError(f"model file {path} cannot be read: {_unreadable_reason(path, error)}. Re-create it "
                             "with `hydranet train` or `hydranet import-checkpoint`.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a hydranet_ros model file (format {FORMAT}). An "
                             "official .ckpt is converted with `hydranet import-checkpoint`.")
    try:
        spec = ModelSpec.from_dict(data["spec"])
        problems = spec.problems()
        if problems:
            raise ModelFileError(f"model file {path} has an unusable spec: {'; '.join(problems)}; re-create it "
                                 "with `hydranet train` or `hydranet import-checkpoint`")
        model = spec.build_model()
        state = {k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFileError(f"model file {path} has a broken spec ({error.__class__.__name__}: {error}); "
                             "re-create it with `hydranet train` or `hydranet import-checkpoint`") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"model file {path}: weights do not fit its own spec ({error})") from None
    return model.to(device).eval(), spec
