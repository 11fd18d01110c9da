"""Verbs that train and measure: train, adapt, average, distill, evaluate (training/)."""
from __future__ import annotations

import json
from pathlib import Path

from hydranet_ros.cli.common import existing_path, model_path, output_file
from hydranet_ros.data.kinds import LABEL_KINDS


def add_train_arguments(parser):
    parser.add_argument("config", type=existing_path,
                        help="training config (YAML), e.g. config/train_indoor_synth.yaml")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--out", help="override train.out (run folder: model files, checkpoint, TensorBoard)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--stop-after", type=int, metavar="EPOCH",
                        help="end after this epoch, keeping the learning-rate schedule of train.epochs "
                             "(for time-limited jobs; continue with --resume)")


def run_train(args):
    from hydranet_ros.training.train import load_config, train
    config = load_config(args.config)
    if args.epochs is not None:
        config["train"]["epochs"] = args.epochs
    if args.out:
        config["train"]["out"] = args.out
    best = train(config, resume=args.resume, stop_after=args.stop_after)
    print(f"best model: {best}")


def add_adapt_arguments(parser):
    parser.add_argument("dataset", type=existing_path,
                        help="the folder `hydranet dataset from-bag` wrote (train/, val/)")
    parser.add_argument("--from", dest="model", required=True,
                        help="model file to start from, or the name of a shipped one (e.g. hydranet_street.pt)")
    parser.add_argument("--out", required=True, help="adapted model file to write (.pt)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs over train/ (default 6)")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4, poly decay)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--run-dir", help="checkpoints, history and TensorBoard (default: OUT without .pt, + _run)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument("--stop-after", type=int, metavar="EPOCH",
                        help="end after this epoch, keeping the schedule of --epochs (continue with --resume)")


def run_adapt(args):
    from hydranet_ros.training.adapt import adapt
    from hydranet_ros.training.evaluate import format_metrics_change
    source = model_path(args.model)
    out = output_file(args.out, inputs=[source])  # before the first step, not after the last
    run_dir = Path(args.run_dir) if args.run_dir else out.with_name(out.stem + "_run")
    metrics = adapt(args.dataset, source, out, run_dir, args.epochs, args.lr, args.batch_size,
                    args.resume, args.stop_after)
    if metrics is None:
        if args.stop_after is not None:
            print(f"stopped after epoch {args.stop_after}; continue with --resume (run folder {run_dir})")
        return
    print(f"validation frames of {args.dataset}, before (the model of --from) and after:")
    print(format_metrics_change(metrics["before"], metrics["after"]))
    print(f"wrote {out}")


def add_average_arguments(parser):
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="model files (or shipped names) fine-tuned from one start, e.g. a model and its "
                             "fine-tuned copy")
    parser.add_argument("--out", required=True, help="model file to write (.pt)")
    parser.add_argument("--weights", type=float, nargs="+", metavar="W",
                        help="one weight per model, adding up to 1 (default: equal weights)")
    parser.add_argument("--float32", action="store_true",
                        help="store float32 weights (default float16, as `hydranet train` stores its models)")


def run_average(args):
    from hydranet_ros.model.model_file import save_model
    from hydranet_ros.training.average import average_models
    sources = [model_path(name) for name in args.models]
    out = output_file(args.out, inputs=sources)
    model, spec = average_models(sources, args.weights)
    save_model(out, model, spec, half=not args.float32)
    sources = spec.provenance["weight_average"]
    print(f"wrote {args.out}: " + " + ".join(f"{s['weight']:g} x {s['model']}" for s in sources))


def add_distill_arguments(parser):
    parser.add_argument("data", type=existing_path, help="dataset folder (see docs/training.md)")
    parser.add_argument("--teacher", required=True, type=existing_path,
                        help="our model file (.pt), or an .onnx/.tflite segmentation model")
    parser.add_argument("--labels", required=True, choices=LABEL_KINDS, help="which missing label to fill in")
    parser.add_argument("--class-map", type=existing_path,
                        help="teacher-class map for .onnx/.tflite teachers (default: the shipped PASCAL VOC map)")


def run_distill(args):
    from hydranet_ros.training.distill import distill
    written = distill(args.data, args.teacher, args.labels, args.class_map)
    print(f"wrote {len(written)} {args.labels} labels from {args.teacher}; provenance in "
          f"{args.data / 'provenance.yaml'}")


def add_evaluate_arguments(parser):
    parser.add_argument("model", help="model file (.pt) or the name of a shipped one")
    parser.add_argument("data", nargs="+", type=existing_path,
                        help="dataset folder(s) (see `hydranet synth`, docs/training.md)")
    parser.add_argument("--max-depth", type=float,
                        help="depth cap in metres (default: 10 for NYUD-40 models, 80 for KITTI-6)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="pixel budget of the network input (default: the model's); aspect ratios are kept")
    parser.add_argument("--garg-crop", action="store_true", help="evaluate depth inside the Garg crop only (KITTI)")
    parser.add_argument("--json", dest="json_path", help="write the metrics to this JSON file")


def run_evaluate(args):
    import torch
    from hydranet_ros.data.dataset import DatasetError, FolderDataset
    from hydranet_ros.model.model_file import load_model
    from hydranet_ros.training.evaluate import evaluate_model, format_table
    path = model_path(args.model)
    datasets = [FolderDataset(p) for p in args.data]  # a bad folder is reported before the model loads
    for dataset in datasets:
        if not any(dataset.has(kind, name) for name in dataset.names for kind in ("labels", "depth")):
            raise DatasetError(f"{dataset.root} has neither labels nor depth: nothing to evaluate against")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, spec = load_model(path, device)
    if args.input_size:
        spec = spec.with_pixel_budget(args.input_size)
    for dataset in datasets:
        if dataset.label_space != spec.label_space.name:
            raise DatasetError(f"{dataset.root} is labelled in {dataset.label_space}, the model in "
                               f"{spec.label_space.name}")
    max_depth = args.max_depth or (80.0 if spec.label_space.name == "kitti6" else 10.0)
    result = evaluate_model(model, spec, datasets, max_depth, device, args.garg_crop, progress=True)
    print(format_table(result, spec.label_space.class_names))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json_path}")


VERBS = {
    "train": ("train HydraNet from a YAML config (segmentation and/or depth labels per image)",
              add_train_arguments, run_train),
    "adapt": ("fine-tune a model to a robot's camera on a dataset made with `hydranet dataset from-bag`",
              add_adapt_arguments, run_adapt),
    "average": ("one model from the weighted mean of the weights of models fine-tuned from one start",
                add_average_arguments, run_average),
    "distill": ("fill in missing labels of a dataset with a teacher, offline, with provenance",
                add_distill_arguments, run_distill),
    "evaluate": ("mIoU, pixel accuracy and depth errors of a model on a dataset", add_evaluate_arguments, run_evaluate),
}
