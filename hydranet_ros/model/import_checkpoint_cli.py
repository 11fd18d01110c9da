"""hydranet import-checkpoint: an official multi-task-refinenet .ckpt -> our model file."""
from hydranet_ros.model.authors_checkpoint import import_authors_checkpoint
from hydranet_ros.model.model_file import load_label_space, save_model


def add_arguments(parser):
    parser.add_argument("checkpoint", help="ExpNYUD_joint.ckpt, ExpKITTI_joint.ckpt, ExpNYUDKITTI_joint.ckpt or ExpNYUD_three.ckpt")
    parser.add_argument("--out", required=True, help="model file to write (.pt)")
    parser.add_argument("--label-space", help="nyud40, kitti6 or nyud40+kitti6 (default: chosen by class count)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="pixel budget to run at, aspect ratio kept (default: each image's own size, "
                             "as the authors run it)")


def run(args):
    space = load_label_space(args.label_space) if args.label_space else None
    model, spec = import_authors_checkpoint(args.checkpoint, space, tuple(args.input_size) if args.input_size else None)
    path = save_model(args.out, model, spec)
    size = "the image's own size" if spec.native_resolution else f"about {spec.input_size[1]}x{spec.input_size[0]} pixels"
    print(f"wrote {path}: {spec.num_classes} classes ({spec.label_space.name}), tasks {spec.tasks}, runs at {size}")
