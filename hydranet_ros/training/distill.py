"""hydranet distill DATA --teacher T --labels KIND: hard knowledge distillation, offline.

For every sample of a dataset folder that lacks the KIND label (segmentation or depth), a teacher
predicts it once and the prediction is written as that sample's label file. provenance.yaml in the
folder lists which files a teacher wrote, with the teacher's file name and SHA-256, so a teacher's
labels can always be told from human ones. Teachers:
  - one of our model files, full or single-task (e.g. a depth-only copy, the paper's KITTI recipe);
  - an external segmentation model as ONNX (input [1, 3, H, W] float, ImageNet-normalised; output
    logits [1, C, h, w] or ids [1, h, w]) or TFLite (uint8 input, ids or logits out),
    with --class-map mapping its classes onto ours (teacher_maps/ has PASCAL VOC and Cityscapes).
    Its fixed input is never fed a squashed image: the image is scaled, keeping its aspect ratio,
    so its shorter side fills the input, and the teacher runs on overlapping tiles along the
    longer side; each pixel takes the label of the tile whose centre is nearest.
"""
from __future__ import annotations

import datetime
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.errors import UserError
from hydranet_ros.data.kinds import LABEL_KINDS as KINDS
from hydranet_ros.data.dataset import IGNORE_LABEL, FolderDataset, write_depth_png
from hydranet_ros.inference.backends.torch_backend import TorchBackend
from hydranet_ros.cache import file_sha256
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.model.model_file import IMAGENET_MEAN, IMAGENET_STD, load_label_space, load_model


class TeacherError(UserError):
    """A teacher or distillation request that cannot be used; the message says why."""


def class_lookup(map_path: Path, label_space: str) -> np.ndarray:
    """teacher id -> our id (255 = ignore) from a teacher map file."""
    data = yaml.safe_load(Path(map_path).read_text())
    if label_space not in data["targets"]:
        raise TeacherError(f"{map_path} maps onto {sorted(data['targets'])}, not {label_space}")
    space = load_label_space(label_space)
    lookup = np.full(max(256, len(data["teacher_classes"])), IGNORE_LABEL, np.uint8)
    for teacher_name, our_name in data["targets"][label_space].items():
        lookup[data["teacher_classes"].index(teacher_name)] = space.class_names.index(our_name)
    return lookup


class ModelTeacher:
    """One of our model files; it may have only the task being distilled."""

    def __init__(self, path: Path, kind: str, label_space: str):
        self.model, self.spec = load_model(path)
        if kind not in self.spec.tasks:
            raise TeacherError(f"teacher {path} has no {kind} head (its tasks: {self.spec.tasks})")
        if kind == "segmentation" and self.spec.label_space.name != label_space:
            raise TeacherError(f"teacher {path} labels {self.spec.label_space.name}, the dataset {label_space}")
        self.kind = kind
        # The node's own per-frame path: same resizing, depth rescaled to the sample's camera.
        self.perception = Perception(TorchBackend(self.model, self.spec, "cpu", "fp32"), self.spec)

    def __call__(self, rgb: np.ndarray, intrinsics: Intrinsics | None = None) -> np.ndarray:
        frame = self.perception.process(rgb, "rgb8", camera=intrinsics)
        return frame.labels if self.kind == "segmentation" else frame.depth


class ExternalSegmentationTeacher:
    """An ONNX or TFLite segmentation model whose classes a lookup maps onto ours."""

    def __init__(self, path: Path, lookup: np.ndarray, min_confidence: float = 0.0):
        """min_confidence: pixels where a teacher that gives scores (logits) puts less probability than
        this on its class become ignore (255)."""
        self.lookup = lookup
        self.min_confidence = min_confidence
        if path.suffix == ".tflite":
            from ai_edge_litert.interpreter import Interpreter
            self.interpreter = Interpreter(model_path=str(path))
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self.size = tuple(int(v) for v in self.input["shape"][1:3])
            self.run, self.channel_axis = self._run_tflite, -1  # NHWC
        elif path.suffix == ".onnx":
            import onnxruntime as ort
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            shape = self.session.get_inputs()[0].shape
            if not all(isinstance(v, int) for v in shape[2:]):
                raise TeacherError(f"{path}: the ONNX teacher needs a fixed input size, it has {shape}")
            self.size = tuple(shape[2:])
            self.run, self.channel_axis = self._run_onnx, 0  # NCHW
        else:
            raise TeacherError(f"teacher {path}: use one of our model files (.pt), .onnx or .tflite")

    def _run_tflite(self, rgb):
        self.interpreter.set_tensor(self.input["index"], rgb[None].astype(self.input["dtype"]))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])[0]

    def _run_onnx(self, rgb):
        mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
        x = (rgb.astype(np.float32) / 255.0 - mean) / std
        return self.session.run(None, {self.session.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0][0]

    def _labels(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The tile's class ids and, for a teacher with scores, the probability of each pixel's class."""
        out = self.run(tile)
        if out.ndim != 3:  # the teacher gives ids
            return out.astype(np.uint8), None
        logits = out.astype(np.float32)
        ids = logits.argmax(self.channel_axis)
        top = logits.max(self.channel_axis, keepdims=True)
        confidence = 1.0 / np.exp(logits - top).sum(self.channel_axis)  # softmax at the arg max
        return ids.astype(np.uint8), confidence.astype(np.float32)

    def __call__(self, rgb: np.ndarray, intrinsics: Intrinsics | None = None) -> np.ndarray:
        tile_h, tile_w = self.size
        scale = max(tile_h / rgb.shape[0], tile_w / rgb.shape[1])  # the shorter side fills the input
        height, width = max(tile_h, round(rgb.shape[0] * scale)), max(tile_w, round(rgb.shape[1] * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        scaled = cv2.resize(rgb, (width, height), interpolation=interpolation)
        ids = np.zeros((height, width), np.uint8)
        confidence = np.ones((height, width), np.float32)
        # Tiles overlap by at least a third; each pixel takes the tile whose centre is nearest.
        rows = tile_positions(height, tile_h)
        cols = tile_positions(width, tile_w)
        for top, (row_from, row_to) in rows:
            for left, (col_from, col_to) in cols:
                labels, scores = self._labels(scaled[top:top + tile_h, left:left + tile_w])
                nearest = (slice(row_from - top, row_to - top), slice(col_from - left, col_to - left))
                ids[row_from:row_to, col_from:col_to] = labels[nearest]
                if scores is not None:
                    confidence[row_from:row_to, col_from:col_to] = scores[nearest]
        size = (rgb.shape[1], rgb.shape[0])
        ids = self.lookup[cv2.resize(ids, size, interpolation=cv2.INTER_NEAREST)]
        if self.min_confidence > 0:
            ids[cv2.resize(confidence, size, interpolation=cv2.INTER_NEAREST) < self.min_confidence] = IGNORE_LABEL
        return ids


def tile_positions(length: int, tile: int) -> list[tuple[int, tuple[int, int]]]:
    """Tile starts covering `length` with overlapping tiles, each with the span it is nearest to."""
    count = 1 if length <= tile else int(np.ceil((length - tile) / (tile * 2 / 3))) + 1
    starts = np.linspace(0, length - tile, count).round().astype(int) if count > 1 else np.array([0])
    centres = starts + tile / 2
    bounds = [0] + [int(round((a + b) / 2)) for a, b in zip(centres[:-1], centres[1:])] + [length]
    return [(int(s), (bounds[i], bounds[i + 1])) for i, s in enumerate(starts)]


TEACHER_MAPS = resources.files("hydranet_ros.training") / "teacher_maps"


def create_teacher(path: Path, kind: str, label_space: str, class_map: Path | None = None,
                   min_confidence: float = 0.0, default_map: str = "pascal_voc21.yaml"):
    """The teacher of a file: one of our model files, or an ONNX/TFLite segmentation model whose classes
    class_map (default: default_map of teacher_maps/) maps onto label_space."""
    if not path.is_file():
        raise TeacherError(f"teacher {path} does not exist")
    if path.suffix == ".pt":
        return ModelTeacher(path, kind, label_space)
    if kind != "segmentation":
        raise TeacherError("external (ONNX/TFLite) teachers give segmentation; depth comes from our model files")
    lookup = class_lookup(Path(class_map) if class_map else Path(str(TEACHER_MAPS / default_map)), label_space)
    return ExternalSegmentationTeacher(path, lookup, min_confidence)


def distill(data: Path, teacher_path: Path, kind: str, class_map: Path | None = None,
            progress: bool = True) -> list[str]:
    """Writes the teacher's labels for samples missing `kind`; returns their names."""
    if kind not in KINDS:
        raise TeacherError(f"--labels must be one of {KINDS}")
    dataset = FolderDataset(data)
    teacher = create_teacher(teacher_path, kind, dataset.label_space, class_map)
    folder = "labels" if kind == "segmentation" else "depth"
    missing = [i for i, name in enumerate(dataset.names) if not dataset.has(folder, name)]
    written = []
    for index in tqdm(missing, desc=f"distilling {kind}", unit="image", disable=not progress):
        sample = dataset[index]
        prediction = teacher(sample.image, sample.intrinsics)
        path = dataset.root / folder / f"{sample.name}.png"
        if kind == "segmentation":
            cv2.imwrite(str(path), prediction)
        else:
            write_depth_png(path, prediction, dataset.depth_scale)
        written.append(sample.name)
    provenance_path = dataset.root / "provenance.yaml"
    provenance = yaml.safe_load(provenance_path.read_text()) if provenance_path.is_file() else {}
    provenance.setdefault(kind, []).append({
        "teacher": teacher_path.name, "teacher_sha256": file_sha256(teacher_path),
        "class_map": str(class_map) if class_map else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "files": written})
    provenance_path.write_text(yaml.safe_dump(provenance, sort_keys=False))
    return written
