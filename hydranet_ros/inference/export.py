"""hydranet export: a model file -> ONNX (opset 19), with or without post-processing in the graph.

With post-processing (the default) the graph is inference/graph.py's InferenceGraph, made for one
camera resolution H x W (the network size and the antialiasing filter follow from it):
    input  image  uint8   [1, H, W, 3]  RGB
    output labels uint8   [1, h, w]     class ids
           color  uint8   [1, h, w, 3]  palette colours
           depth  float32 [1, h, w]     metres
Raw (--raw): the bare network on a normalised tensor:
    input  input                float32 [1, 3, H, W]   (x/255 - mean) / std
    output segmentation_logits  float32 [1, C, H/4, W/4]
           depth                float32 [1, 1, H/4, W/4]   (take |x|)
           normals              float32 [1, 3, H/4, W/4]   (three-task models only)
The raw network's H and W are dynamic unless --image-size fixes them.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from hydranet_ros.cache import cache_dir, file_sha256, make_cached
from hydranet_ros.inference.backends.base import BackendError
from hydranet_ros.inference.graph import GRAPH_VERSION, INPUT_NAME, OUTPUT_NAMES, InferenceGraph, half_network
from hydranet_ros.inference.tensorrt_rules import report, tensorrt_findings
from hydranet_ros.model.model_file import ModelSpec, load_model

# 19: the first opset whose QuantizeLinear/DequantizeLinear take fp16 scales (the int8 TensorRT graph is
# quantized on the fp16 export); TensorRT 10.0's parser reads opsets 9 to 20 (inference/tensorrt_rules.py).
OPSET = 19
RAW_OUTPUT_NAMES = {"segmentation": "segmentation_logits", "depth": "depth", "normals": "normals"}
METADATA_KEY = "hydranet_ros.spec"
LOG = logging.getLogger("hydranet_ros.export")


def export_onnx(model, spec: ModelSpec, path: str | Path, output: str = "input", raw: bool = False,
                image_size: tuple[int, int] | None = None, half: bool = False, dynamic_batch: bool = False) -> Path:
    """Writes the ONNX file and returns its path. image_size=(H, W): the camera resolution of the
    post-processed graph (default: the model's pixel budget); for raw=True it fixes the input size.
    dynamic_batch: the post-processed graph takes any number of images of that size at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    # half: the network in fp16 but its depth head, pre/post-processing in fp32
    model = half_network(model) if half else model.float()
    height, width = image_size or spec.input_size
    dynamic = None  # the post-processed graph is always made for one camera resolution
    if raw:
        module = model
        example = torch.zeros(1, 3, height, width)
        input_name, output_names = "input", [RAW_OUTPUT_NAMES[t] for t in spec.tasks]
        if image_size is None:
            dims = {2: "height", 3: "width"}
            dynamic = {input_name: dims} | {n: {2: "out_height", 3: "out_width"} for n in output_names}
    else:
        module = InferenceGraph(model, spec, output).eval()
        example = torch.zeros(1, height, width, 3, dtype=torch.uint8)
        input_name, output_names = INPUT_NAME, list(OUTPUT_NAMES)
        if dynamic_batch:
            dynamic = {name: {0: "batch"} for name in [input_name] + output_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (example,), str(path), input_names=[input_name], output_names=output_names,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    graph = onnx.load(str(path))
    meta = graph.metadata_props.add()
    meta.key, meta.value = METADATA_KEY, json.dumps(spec.to_dict() | {
        "graph": "raw" if raw else f"postprocessed/{output}", "network_precision": "fp16" if half else "fp32"})
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    findings = tensorrt_findings(graph, fixed_shape=dynamic is None)
    if findings:  # every backend shares this graph, and TensorRT must be able to build it
        raise RuntimeError(f"{path} is not a graph TensorRT can build: {report(findings)}")
    return path


def load_for_inference(model_path: str | Path, input_size: tuple[int, int] | None = None):
    """load_model, with the pixel budget overridden when input_size is given."""
    model, spec = load_model(model_path)
    if input_size:
        spec = spec.with_pixel_budget(input_size)
    return model, spec


def onnx_for_model(model_path: str | Path, output: str, image_size: tuple[int, int],
                   input_size: tuple[int, int] | None = None, precision: str = "fp32",
                   dynamic_batch: bool = False) -> Path:
    """The post-processed ONNX export of a model file for camera images of image_size (height, width),
    made once and cached by content hash. precision fp16 writes the network's weights and activations
    in fp16 (the graph a strongly typed TensorRT network builds in fp16); fp32 otherwise. dynamic_batch:
    a batch axis of any size (ONNX Runtime and OpenVINO serve several cameras of one size at once)."""
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"an ONNX export is fp32 or fp16, not {precision!r}")
    model, spec = load_for_inference(model_path, input_size)
    height, width = image_size
    net_height, net_width = spec.network_size(image_size)
    # The graph code, the opset and the exporter (torch) shape the file as much as the weights do.
    name = (f"{file_sha256(model_path)[:16]}-{height}x{width}-net{net_height}x{net_width}-{output}"
            f"-{precision}{'-batch' if dynamic_batch else ''}-graph{GRAPH_VERSION}-opset{OPSET}"
            f"-torch{torch.__version__}.onnx")
    path = cache_dir() / "onnx" / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackendError(f"cannot write the cache folder {path.parent} ({error.strerror}); set engine_cache "
                           "(or HYDRANET_CACHE) to a writable folder") from None

    def export(temporary: Path) -> None:
        LOG.info("exporting %s to ONNX for %dx%d images at %s", model_path, width, height, path)
        export_onnx(model, spec, temporary, output, image_size=image_size, half=precision == "fp16",
                    dynamic_batch=dynamic_batch)
    return make_cached(path, export, "ONNX export")


def onnx_parity(model, spec: ModelSpec, onnx_path: Path, image: np.ndarray, output: str = "input") -> dict:
    """Max |depth| difference and label agreement between PyTorch and ONNX Runtime on one image."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    labels, depth = session.run(["labels", "depth"], {INPUT_NAME: image[None]})
    with torch.no_grad():
        reference = dict(zip(OUTPUT_NAMES,
                             InferenceGraph(model.float().eval(), spec, output)(torch.from_numpy(image[None]))))
    ref_labels, ref_depth = reference["labels"], reference["depth"]
    return {"depth_max_abs_diff_m": float(np.abs(ref_depth.numpy() - depth).max()),
            "label_agreement": float((ref_labels.numpy() == labels).mean())}
