"""Calibrated INT8: a Q/DQ ONNX of the post-processed graph, from real camera frames.

ONNX Runtime's static quantizer runs the float graph on the calibration frames, records each
convolution's input range and writes QuantizeLinear/DequantizeLinear pairs around the convolutions
(weights per channel, activations per tensor). One file per camera resolution and target, like the
float exports; it is cached by the float graph, the calibration frames' content and the recipe:

- cpu (OpenVINO, ONNX Runtime): from the fp32 export, uint8 activations with zero points and int32
  biases, ONNX Runtime's defaults, measured on CPUs (docs/benchmarks.md).
- tensorrt: from the fp16 export, so that the layers left in float run in fp16 in a strongly typed
  network; int8 activations and weights, symmetric (zero points 0), biases left in float: TensorRT's
  parser takes nothing else (inference/tensorrt_rules.py checks the result before TensorRT sees it).

Which convolutions stay float was measured (scripts/int8_sensitivity.py, docs/benchmarks.md): int8 in the first
three encoder stages costs about a point of mIoU, from stage 4 on nothing measurable; the depth head
stays float too (int8 there costs the indoor model 3.7 % of RMSE), the segmentation head does not
(nothing measurable, 1.5 ms at 640x480). Both targets keep the same ones in float, and also every
convolution whose weights are all zero (blocks that training left dead, models/README.md): it computes a
constant, and OpenVINO refused int8 graphs with such convolutions quantized (two equal all-zero weight
tensors, which the exporter shares, were enough).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.inference.choices import CALIBRATION_LIMIT, INT8_TARGETS
from hydranet_ros.cache import file_sha256, make_cached
from hydranet_ros.inference.backends.base import BackendError
from hydranet_ros.inference.graph import INPUT_NAME
from hydranet_ros.inference.tensorrt_rules import report, tensorrt_findings

LOG = logging.getLogger("hydranet_ros.quantize")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FLOAT_PREFIXES = ("/model/layer1/", "/model/layer2/", "/model/layer3/",  # the first three encoder stages
                  "/model/pre_depth/", "/model/depth/")  # the depth head
# What each target's quantizer is asked for; the recipe string is part of the cache key.
RECIPES = {
    "cpu": ("conv-qdq-per-channel-minmax/stages1-3-depth-head-zero-float/v4",
            dict(activation_type="QUInt8", extra_options={})),
    "tensorrt": ("conv-qdq-int8-symmetric-per-channel-float-bias-minmax/stages1-3-depth-head-zero-float/v2",
                 dict(activation_type="QInt8", extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                                              "QuantizeBias": False})),
}


def calibration_images(folders, limit: int = CALIBRATION_LIMIT) -> list[Path]:
    """Up to `limit` images under a folder or a list of folders (recursively), evenly spaced in name order."""
    folders = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    files = []
    for folder in folders:
        if not folder.is_dir():
            raise BackendError(f"calibration folder {folder} does not exist")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise BackendError(f"calibration folder {folder} holds no PNG or JPEG images")
        files += found
    if len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def calibration_id(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()[:16]


def _rgb_at(path: Path, image_size: tuple[int, int]) -> np.ndarray:
    """The calibration image as the camera would send it: RGB at the graph's camera resolution."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BackendError(f"calibration image {path} cannot be read")
    height, width = image_size
    if bgr.shape[:2] != (height, width):
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[..., ::-1])


def float_convolutions(onnx_path: Path) -> list[str]:
    """The convolutions that stay float: the first three encoder stages, the depth head and those whose
    weights are all zero (see above)."""
    import onnx
    from onnx import numpy_helper
    graph = onnx.load(str(onnx_path)).graph
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:  # the exporter shares equal tensors (two all-zero convolutions) through Identity
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    return [node.name for node in graph.node if node.op_type == "Conv" and (
        node.name.startswith(FLOAT_PREFIXES) or (node.input[1] in weights and not weights[node.input[1]].any()))]


def quantize_graph(onnx_path: Path, out: Path, images: list[Path], image_size: tuple[int, int],
                   keep_float: list[str] | None = None, target: str = "cpu") -> Path:
    """Writes the Q/DQ ONNX of onnx_path calibrated on images for target (RECIPES) to out; nothing is
    left at out when it fails (int8_onnx makes it in a temporary of the cache's). keep_float: the convolutions
    left in float (default: float_convolutions; scripts/int8_sensitivity.py
    measures others)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(images)

        def get_next(self):
            path = next(self.remaining, None)
            return None if path is None else {INPUT_NAME: _rgb_at(path, image_size)[None]}

    out.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # ORT's quantizer logs its generic advice on the root logger
    options = RECIPES[target][1]
    try:
        quantize_static(str(onnx_path), str(out), Frames(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv"], per_channel=True,
                        activation_type=getattr(QuantType, options["activation_type"]),
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=float_convolutions(onnx_path) if keep_float is None else keep_float,
                        extra_options=options["extra_options"])
        if target == "tensorrt" and (findings := tensorrt_findings(out)):
            raise BackendError(f"the int8 graph for TensorRT breaks TensorRT's rules: {report(findings)}")
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        root.setLevel(level)
    return out


def int8_onnx(float_onnx: Path, calibration, image_size: tuple[int, int], target: str = "cpu") -> Path:
    """The cached Q/DQ ONNX for a float export (fp32 for the cpu target, fp16 for tensorrt), calibrated
    on the images in the calibration folder(s)."""
    if target not in RECIPES:
        raise BackendError(f"int8 target must be one of {INT8_TARGETS}, not {target!r}")
    if not calibration:
        raise BackendError("precision int8 needs calibration frames: set int8_calibration (node) or "
                           "--calibration (CLI) to a folder of a few hundred camera images; "
                           "`hydranet quantize MODEL --calibration DIR` makes the int8 graph ahead of time")
    import onnxruntime
    images = calibration_images(calibration)
    recipe = RECIPES[target][0]
    key = hashlib.sha256(f"{calibration_id(images)}|{recipe}|{onnxruntime.__version__}".encode()).hexdigest()[:12]
    path = float_onnx.with_name(f"{float_onnx.stem}-int8-{target}-{key}.onnx")

    def calibrate(temporary: Path) -> None:
        LOG.info("calibrating int8 for %s on %d images for %dx%d camera images (once; cached at %s)",
                 target, len(images), image_size[1], image_size[0], path)
        quantize_graph(float_onnx, temporary, images, image_size, target=target)
    return make_cached(path, calibrate, "int8 graph")
