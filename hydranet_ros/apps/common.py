"""What the offline apps (infer, demo, process-bag, benchmark) share: model options and start-up."""
from __future__ import annotations

import logging

from hydranet_ros.data.synth import FOCAL_PER_WIDTH
from hydranet_ros.inference.backends import BACKENDS, BackendError, create_backend
from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.inference.pipeline import Perception
from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import ModelSpec, load_model
from hydranet_ros.cli.errors import CommandError

SCENE_OF_LABEL_SPACE = {"kitti6": "street", "nyud40": "indoor"}


def add_model_arguments(parser, default_model: str = "hydranet_street.pt") -> None:
    parser.add_argument("--model", default=default_model,
                        help=f"model file, or the name of a shipped one (default {default_model}; "
                             "hydranet_indoor.pt for rooms)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="default auto: the fastest available")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["fp16", "fp32", "int8"], default="fp16",
                        help="GPU precision (CPU runs fp32)")


def open_perception(args, output: str = "input") -> Perception:
    path = resolve_model_path(args.model)
    _, spec = load_model(path)
    try:
        backend, skipped = create_backend(path, args.backend, args.device, args.precision, output)
    except BackendError as error:
        raise CommandError(str(error)) from None
    log = logging.getLogger("hydranet_ros")
    for reason in skipped:
        log.info("skipped backend %s", reason)
    print(f"model {path.name} ({spec.label_space.name}), backend {backend.describe()}")
    return Perception(backend, spec)


def guess_intrinsics(spec: ModelSpec, width: int, height: int) -> Intrinsics:
    """A centred pinhole camera whose focal length at the network input is the model's training
    camera's (so depth is taken as the network gives it); the generated scenes' field of view for
    models that do not record one."""
    if spec.focal_length_px:
        focal = spec.focal_length_px * width / spec.network_size((height, width))[1]
    else:
        focal = FOCAL_PER_WIDTH[SCENE_OF_LABEL_SPACE.get(spec.label_space.name, "street")] * width
    return Intrinsics(focal, focal, width / 2 - 0.5, height / 2 - 0.5, width, height)
