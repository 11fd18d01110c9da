"""What the offline apps (infer, demo, process-bag, benchmark) share: model options and start-up."""
from __future__ import annotations

import logging

from hydranet_ros.inference.backends import BACKENDS, PRECISIONS, BackendError, create_backend
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import load_model
from hydranet_ros.cli.errors import CommandError



def add_model_arguments(parser, default_model: str = "hydranet_street.pt") -> None:
    parser.add_argument("--model", default=default_model,
                        help=f"model file, or the name of a shipped one (default {default_model}; "
                             "hydranet_indoor.pt for rooms)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="default auto: the fastest available")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16",
                        help="fp16 (GPU; fp32 on a CPU), fp32, bf16 (OpenVINO), int8 (needs --calibration)")
    parser.add_argument("--calibration", nargs="+", metavar="DIR",
                        help="folders of camera images that calibrate int8 (see hydranet quantize)")


def open_perception(args, output: str = "input") -> Perception:
    path = resolve_model_path(args.model)
    _, spec = load_model(path)
    try:
        backend, skipped = create_backend(path, args.backend, args.device, args.precision, output,
                                          calibration=args.calibration)
    except BackendError as error:
        raise CommandError(str(error)) from None
    log = logging.getLogger("hydranet_ros")
    for reason in skipped:
        log.info("skipped backend %s", reason)
    print(f"model {path.name} ({spec.label_space.name}), backend {backend.describe()}")
    return Perception(backend, spec)
