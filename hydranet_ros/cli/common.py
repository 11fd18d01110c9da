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


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number of at least 0 (nan and inf refused)."""
    import math
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number of at least 0")
    return value


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


def image_size(args) -> tuple[int, int] | None:
    """--image-size as (height, width), checked by the node's rules for a camera image (one line)."""
    if args.image_size is None:
        return None
    from hydranet_ros.camera.network_input import camera_size_problem
    from hydranet_ros.errors import CommandError
    problem = camera_size_problem(args.image_size)
    if problem:
        raise CommandError(f"--image-size: {problem}")
    return tuple(args.image_size)


def output_file(path: str | Path, inputs=()) -> Path:
    """An --out file checked before any work: not a folder, not one of the inputs, in a folder that
    exists (or can be made) and is writable (one line each)."""
    import os
    from hydranet_ros.errors import CommandError
    out = Path(path)
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give a file path")
    for given in inputs:
        if out.exists() and Path(given).exists() and out.resolve() == Path(given).resolve():
            raise CommandError(f"--out {out} is the input {given}; write to another file")
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"--out {out}: cannot make its folder ({error.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise CommandError(f"--out {out}: its folder {folder} is not writable")
    return out


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
