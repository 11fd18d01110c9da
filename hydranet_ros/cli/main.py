"""`hydranet <verb>`: one command line for every offline tool.

Each verb's implementation lives with its concern (model/, training/, inference/, apps/); this
module only parses arguments and imports the implementation when the verb runs, so --help is fast.
"""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

from hydranet_ros.errors import UserError

# verb -> (module with add_arguments(parser) and run(args), one-line help)
VERBS = {
    "demo": ("hydranet_ros.apps.demo", "play a generated camera sequence through the ROS 2 node; record a bag, pictures and a video"),
    "infer": ("hydranet_ros.apps.infer_files", "run the model on an image, a folder or a video; write PNG/NPY/PLY files (no ROS)"),
    "process-bag": ("hydranet_ros.apps.process_bag", "add segmentation, depth and point cloud topics to a rosbag2 (SQLite3 or MCAP)"),
    "export": ("hydranet_ros.inference.export", "export a model file to ONNX, optionally with post-processing in the graph"),
    "quantize": ("hydranet_ros.inference.quantize", "calibrate an int8 (Q/DQ ONNX) graph on camera images, for OpenVINO, ONNX Runtime and TensorRT"),
    "build-engine": ("hydranet_ros.inference.tensorrt_engine", "compile ONNX to a cached TensorRT engine (needs TensorRT and a GPU)"),
    "benchmark": ("hydranet_ros.apps.benchmark_cli", "time pre-processing, inference and post-processing per backend and size; JSON"),
    "soak": ("hydranet_ros.apps.soak", "feed perception_node at the camera rate for minutes; latency and memory over time"),
    "synth": ("hydranet_ros.data.synth_cli", "generate labelled indoor or street frames with exact metric depth"),
    "convert": ("hydranet_ros.data.convert_cli", "turn NYUDv2 (.mat or example frames) or KITTI data into a dataset folder"),
    "train": ("hydranet_ros.training.train", "train HydraNet from a YAML config (segmentation and/or depth labels per image)"),
    "distill": ("hydranet_ros.training.distill", "fill in missing labels of a dataset with a teacher, offline, with provenance"),
    "evaluate": ("hydranet_ros.training.evaluate", "mIoU, pixel accuracy and depth errors of a model on a dataset"),
    "import-checkpoint": ("hydranet_ros.model.import_checkpoint_cli", "convert an official multi-task-refinenet .ckpt into our model file"),
    "info": ("hydranet_ros.model.info_cli", "describe a model file: tasks, classes, input size, camera, provenance"),
    "models": ("hydranet_ros.model.models_cli", "list the shipped and official models; download an official one, verified"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hydranet",
        description="HydraNet joint semantic segmentation and metric depth: tools for training, "
                    "export, inference, benchmarks and ROS 2 bags. `hydranet VERB --help` for details.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (module_name, help_text) in VERBS.items():
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        sub.set_defaults(module_name=module_name)
        # Arguments are declared by the implementation module; import it only for the chosen verb.
        if verb in sys.argv[1:2]:
            import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sys.argv[1:] = argv
    args = build_parser().parse_args(argv)
    module = import_module(args.module_name)
    try:
        return int(module.run(args) or 0)
    except UserError as error:
        print(f"hydranet {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hydranet {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
