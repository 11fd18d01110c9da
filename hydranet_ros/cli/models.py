"""Verbs about model files: import-checkpoint, info, models (list, download)."""
from __future__ import annotations

import json

from hydranet_ros.cli.common import existing_path, model_path
from hydranet_ros.model import official


def add_import_checkpoint_arguments(parser):
    parser.add_argument("checkpoint", type=existing_path,
                        help="ExpNYUD_joint.ckpt, ExpKITTI_joint.ckpt, ExpNYUDKITTI_joint.ckpt or ExpNYUD_three.ckpt")
    parser.add_argument("--out", required=True, help="model file to write (.pt)")
    parser.add_argument("--label-space", help="nyud40, kitti6 or nyud40+kitti6 (default: chosen by class count)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="pixel budget to run at, aspect ratio kept (default: each image's own size, "
                             "as the authors run it)")


def run_import_checkpoint(args):
    from hydranet_ros.model.authors_checkpoint import import_authors_checkpoint
    from hydranet_ros.model.model_file import load_label_space, save_model
    space = load_label_space(args.label_space) if args.label_space else None
    model, spec = import_authors_checkpoint(args.checkpoint, space, tuple(args.input_size) if args.input_size else None)
    path = save_model(args.out, model, spec)
    size = "the image's own size" if spec.native_resolution else \
        f"about {spec.input_size[1]}x{spec.input_size[0]} pixels"
    print(f"wrote {path}: {spec.num_classes} classes ({spec.label_space.name}), tasks {spec.tasks}, runs at {size}")


def add_info_arguments(parser):
    parser.add_argument("model", help="model file (.pt) or the name of a shipped one")
    parser.add_argument("--json", action="store_true", help="print the whole spec as JSON")


def run_info(args):
    from hydranet_ros.model.model_file import load_model
    model, spec = load_model(model_path(args.model))
    if args.json:
        print(json.dumps(spec.to_dict(), indent=1))
        return
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {spec.architecture}, {parameters:,} parameters")
    print(f"  tasks: {', '.join(spec.tasks)}")
    print(f"  classes: {spec.num_classes} ({spec.label_space.name}): {', '.join(spec.label_space.class_names)}")
    size = "each image's own size" if spec.native_resolution else \
        f"about {spec.input_size[1]}x{spec.input_size[0]} pixels (width x height), aspect ratio kept"
    print(f"  input: {size}; mean {spec.mean}, std {spec.std}; outputs upsampled {spec.upsampling}")
    if spec.focal_length_px:
        print(f"  camera: depth learned for a focal length of {spec.focal_length_px:g} px at the network input; "
              "depth is rescaled to each camera's")
    else:
        print("  camera: not recorded; depth is used as the network gives it")
    print(f"  provenance: {json.dumps(spec.provenance)}")


def add_models_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the shipped models and the official checkpoints, with licence and outputs")
    fetch = actions.add_parser("download", help="fetch an official checkpoint, verify its git blob id, import it "
                                                "into the user cache (then use model_path official:NAME)")
    fetch.add_argument("name", choices=sorted(official.OFFICIAL))
    fetch.add_argument("--accept-licence", action="store_true", help="accept the weights' non-commercial licence")
    fetch.add_argument("--base-url", help=f"mirror of the authors' repository (default {official.DEFAULT_BASE_URL}, "
                                          f"or ${official.BASE_URL_VARIABLE})")


def run_models(args):
    if args.action == "download":
        _download(args)
        return
    from hydranet_ros.model.catalog import SHIPPED_LICENCES, resolve_model_path
    from hydranet_ros.model.model_file import load_model
    print("shipped (in this package; each model's licence follows its training data):")
    for name, licence in SHIPPED_LICENCES.items():
        path = resolve_model_path(name)
        if path.is_file():
            _, spec = load_model(path)
            print(f"  {name:<28} {spec.label_space.name:<14} {', '.join(spec.tasks)}; licence: {licence}")
    print(f"official ({official.LICENCE}):")
    for checkpoint in official.OFFICIAL.values():
        cached = (official.models_dir() / f"{checkpoint.name}.pt").is_file()
        state = "downloaded" if cached else f"hydranet models download {checkpoint.name} --accept-licence"
        print(f"  official:{checkpoint.name:<19} {checkpoint.label_space:<14} {', '.join(checkpoint.tasks)}; "
              f"{checkpoint.trained_on}; {state}")


def _download(args):
    from tqdm import tqdm
    bar = tqdm(unit="B", unit_scale=True, desc=f"downloading {args.name}")

    def progress(received, expected):
        bar.total = expected or None
        bar.update(received - bar.n)
    try:
        path = official.download(args.name, args.accept_licence, args.base_url, progress)
    finally:
        bar.close()
    print(f"verified (git blob {official.OFFICIAL[args.name].git_blob_sha1}) and imported: {path}")
    print(f"use it as model_path:=official:{args.name} or --model official:{args.name}")


VERBS = {
    "import-checkpoint": ("convert an official multi-task-refinenet .ckpt into our model file",
                          add_import_checkpoint_arguments, run_import_checkpoint),
    "info": ("describe a model file: tasks, classes, input size, camera, provenance", add_info_arguments, run_info),
    "models": ("list the shipped and official models; download an official one, verified",
               add_models_arguments, run_models),
}
