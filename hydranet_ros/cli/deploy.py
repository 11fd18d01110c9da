"""Verbs that prepare a model for a robot: export (ONNX), quantize (int8), build-engine (TensorRT)."""
from __future__ import annotations

import json
import logging
import shutil

from hydranet_ros.cli.common import (add_calibration_argument, add_image_size_argument, image_size, model_path,
                                     output_file)
from hydranet_ros.inference.choices import CALIBRATION_LIMIT, ENGINE_PRECISIONS, INT8_TARGETS, OUTPUT_RESOLUTIONS


def add_export_arguments(parser):
    parser.add_argument("model", help="model file (.pt) or the name of a shipped one")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--raw", action="store_true", help="export the bare network (normalised input, raw heads)")
    parser.add_argument("--output-resolution", choices=OUTPUT_RESOLUTIONS, default="input",
                        help="post-processed outputs at the camera image's size (input) or the model's input "
                             "size (network)")
    add_image_size_argument(parser, "camera resolution the post-processed graph is made for (default: the model's "
                                    "pixel budget); with --raw, fixes the network input (default: dynamic)")


def run_export(args):
    import numpy as np
    from hydranet_ros.cache import replaced_atomically
    from hydranet_ros.inference.export import OPSET, export_onnx, onnx_parity
    from hydranet_ros.model.model_file import load_model
    source = model_path(args.model)
    size = image_size(args)
    path = output_file(args.out, inputs=[source])
    model, spec = load_model(source)
    with replaced_atomically(path, "ONNX file") as temporary:
        export_onnx(model, spec, temporary, args.output_resolution, args.raw, size)
    print(f"wrote {path} (opset {OPSET}; onnx.checker passed; TensorRT rules (inference/tensorrt_rules.py): "
          "no findings)")
    if not args.raw:
        height, width = size or spec.input_size
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        print("parity with PyTorch:", json.dumps(onnx_parity(model, spec, path, image, args.output_resolution)))


def add_quantize_arguments(parser):
    parser.add_argument("model", help="model file (.pt) or the name of a shipped one")
    add_calibration_argument(parser, f"folders of camera images (PNG/JPEG, searched recursively; up to "
                                     f"{CALIBRATION_LIMIT} evenly spaced ones are used): frames like the robot "
                                     "will see",
                             required=True)
    add_image_size_argument(parser, "the camera's resolution; the graph is made for it (default: the model's "
                                    "pixel budget)")
    parser.add_argument("--output-resolution", choices=OUTPUT_RESOLUTIONS, default="input")
    parser.add_argument("--for", dest="target", choices=INT8_TARGETS, default="cpu",
                        help="cpu: for OpenVINO and ONNX Runtime (from the fp32 graph); tensorrt: symmetric int8 "
                             "on the fp16 graph, checked against TensorRT's parser rules (default cpu)")
    parser.add_argument("--out", help="also copy the int8 ONNX here (it is cached and found by the backends anyway)")


def run_quantize(args):
    from hydranet_ros.inference.export import load_for_inference, onnx_for_model
    from hydranet_ros.inference.quantize import int8_onnx
    path = model_path(args.model)
    size = image_size(args) or tuple(load_for_inference(path)[1].input_size)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    float_precision = "fp16" if args.target == "tensorrt" else "fp32"
    graph = int8_onnx(onnx_for_model(path, args.output_resolution, size, precision=float_precision),
                      args.calibration, size, args.target)
    if args.out:
        from hydranet_ros.cache import replaced_atomically
        out = output_file(args.out, inputs=[path])
        with replaced_atomically(out, "int8 graph") as temporary:
            shutil.copyfile(graph, temporary)
        graph = out
    print(f"int8 graph (Q/DQ ONNX) for {args.target}, {size[1]}x{size[0]} images: {graph}; run it with "
          "--precision int8 --calibration (node: precision int8, int8_calibration)")


def add_build_engine_arguments(parser):
    parser.add_argument("model", help="model file (.pt) or ONNX file exported with post-processing")
    parser.add_argument("--precision", choices=ENGINE_PRECISIONS, default="fp16", help="default fp16")
    parser.add_argument("--workspace-gib", type=float, default=2.0, help="builder workspace (GiB, default 2)")
    add_image_size_argument(parser, "the camera's image size; the graph and the engine are made for it "
                                    "(default 375 1242)", default=[375, 1242])
    add_calibration_argument(parser, "int8: folders of camera images; the engine is built from the fp16 graph "
                                     "quantized for TensorRT on them (hydranet quantize --for tensorrt)")
    parser.add_argument("--output-resolution", choices=OUTPUT_RESOLUTIONS, default="input")
    parser.add_argument("--cache", help="engine folder (default ~/.cache/hydranet_ros/engines or $HYDRANET_CACHE)")


def run_build_engine(args):
    from hydranet_ros.inference.backends.base import BackendError
    from hydranet_ros.inference.backends.tensorrt_backend import engine_for_onnx, onnx_for_engine
    source = model_path(args.model)
    size = image_size(args)
    try:
        onnx_path = source if source.suffix == ".onnx" else \
            onnx_for_engine(source, args.output_resolution, size, args.precision, args.calibration)
        path = engine_for_onnx(onnx_path, args.precision, None, args.workspace_gib, args.cache)
    except ValueError as error:  # an ONNX file the builder cannot read
        raise BackendError(str(error)) from None
    print(f"engine: {path}")


VERBS = {
    "export": ("export a model file to ONNX, optionally with post-processing in the graph",
               add_export_arguments, run_export),
    "quantize": ("calibrate an int8 (Q/DQ ONNX) graph on camera images, for OpenVINO, ONNX Runtime and TensorRT",
                 add_quantize_arguments, run_quantize),
    "build-engine": ("compile ONNX to a cached TensorRT engine (needs TensorRT and a GPU)",
                     add_build_engine_arguments, run_build_engine),
}
