"""hydranet import-checkpoint: an official multi-task-refinenet .ckpt -> our model file."""
from hydranet_ros.model.authors_checkpoint import import_authors_checkpoint
from hydranet_ros.model.model_file import load_label_space, save_model


def add_arguments(parser):
    parser.add_argument("checkpoint", help="ExpNYUD_joint.ckpt, ExpKITTI_joint.ckpt, ExpNYUDKITTI_joint.ckpt or ExpNYUD_three.ckpt")
    parser.add_argument("--out", required=True, help="model file to write (.pt)")
    parser.add_argument("--label-space", help="nyud40, kitti6 or nyud40+kitti6 (default: chosen by class count)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="size the model runs at (default 480 640 indoors, 352 1216 for KITTI)")


def run(args):
    space = load_label_space(args.label_space) if args.label_space else None
    model, spec = import_authors_checkpoint(args.checkpoint, space, tuple(args.input_size) if args.input_size else None)
    path = save_model(args.out, model, spec)
    print(f"wrote {path}: {spec.num_classes} classes ({spec.label_space.name}), tasks {spec.tasks}, "
          f"input {spec.input_size[0]}x{spec.input_size[1]}")
