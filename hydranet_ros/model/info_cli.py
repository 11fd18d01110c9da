"""hydranet info: what a model file holds."""
import json

from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import load_model


def add_arguments(parser):
    parser.add_argument("model", help="model file (.pt)")
    parser.add_argument("--json", action="store_true", help="print the whole spec as JSON")


def run(args):
    model, spec = load_model(resolve_model_path(args.model))
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
