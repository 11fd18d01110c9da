"""What several verbs' arguments share. Light on purpose: `hydranet VERB --help` imports this, and
nothing here may pull in torch, onnx, OpenVINO or rclpy."""
from __future__ import annotations

import argparse
from pathlib import Path

from hydranet_ros.inference.choices import BACKENDS, DEVICES, PRECISIONS

DEFAULT_MODEL = "hydranet_street.pt"


def existing_path(text: str) -> Path:
    """argparse type: a file or folder that exists, checked before any model loads."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist")
    return path


def add_model_arguments(parser, default_model: str = DEFAULT_MODEL) -> None:
    parser.add_argument("--model", default=default_model,
                        help=f"model file, or the name of a shipped one (default {default_model}; "
                             "hydranet_indoor.pt for rooms)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="default auto: the fastest available")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16",
                        help="fp16 (GPU; fp32 on a CPU), fp32, bf16 (OpenVINO), int8 (needs --calibration)")
    add_calibration_argument(parser, "folders of camera images that calibrate int8 (see hydranet quantize)")


def add_calibration_argument(parser, help_text: str, required: bool = False) -> None:
    parser.add_argument("--calibration", nargs="+", metavar="DIR", type=existing_path, required=required,
                        help=help_text)


def add_image_size_argument(parser, help_text: str, default=None) -> None:
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=default,
                        help=help_text)


def model_path(name: str) -> Path:
    """A model name or path -> the file, which must exist (one line otherwise)."""
    from hydranet_ros.errors import ModelFileError
    from hydranet_ros.model.catalog import resolve_model_path
    path = resolve_model_path(name)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; name an existing file or a shipped model "
                             "(hydranet models list)")
    return path


def open_perception(args, output: str = "input"):
    """The model of --model on the backend of --backend/--device/--precision, as a Perception."""
    import logging
    from hydranet_ros.inference.backends import BackendOptions, create_backend
    from hydranet_ros.inference.pipeline import Perception
    from hydranet_ros.model.model_file import load_model
    path = model_path(args.model)
    _, spec = load_model(path)
    options = BackendOptions(backend=args.backend, device=args.device, precision=args.precision, output=output,
                             calibration=args.calibration)
    backend, skipped = create_backend(path, options)  # a BackendError is one line as it is
    for reason in skipped:
        logging.getLogger("hydranet_ros").info("skipped backend %s", reason)
    print(f"model {path.name} ({spec.label_space.name}), backend {backend.describe()}")
    return Perception(backend, spec)
