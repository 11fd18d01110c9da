"""From a robot's recordings to a model for its camera, measured: README's adaptation figures.

Generates recordings of a sidewalk robot (`hydranet synth-bag`: camera 0.6 m above the ground, a 100 degree
lens, a 16-beam LiDAR; a camera the street model never saw), turns them into a dataset (`hydranet dataset
from-bag`), adapts the shipped street model (`hydranet adapt`) and scores both models on the later part of
each recording through the node's per-frame path: depth against the LiDAR labels and against the generator's
exact depth, segmentation against its exact labels. Prints JSON with the time each step took.

    .venv/bin/python scripts/adaptation_figures.py --work /tmp/adaptation            # README's figures
    .venv/bin/python scripts/adaptation_figures.py --work /tmp/a --bags 1 --frames 12 --epochs 1   # a quick run
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
HYDRANET = [sys.executable, "-m", "hydranet_ros.cli.main"]
IMAGE_TOPIC, LIDAR_TOPIC = "/robot/camera/image_raw", "/robot/lidar/points"


def run(*args) -> float:
    start = time.perf_counter()
    subprocess.run([*HYDRANET, *map(str, args)], check=True, cwd=REPO)
    return time.perf_counter() - start


def truth_of_validation(work: Path, bags: int) -> Path:
    """The generator's truth for the frames from-bag put in val/ (named bag index, bag name, frame number)."""
    from hydranet_ros.data.dataset import FolderDataset, create_dataset_folder, write_sample
    val = FolderDataset(work / "dataset" / "val")
    truths = [FolderDataset(work / f"truth{index}") for index in range(bags)]
    out = create_dataset_folder(work / "truth_val", "kitti6", truths[0].depth_scale)
    for name in val.names:
        bag, frame = int(name.split("_", 1)[0]), name.rsplit("_", 1)[1]
        truth = truths[bag]
        sample = truth[truth.names.index(frame)]
        sample.name = name
        write_sample(out, sample, truths[0].depth_scale)
    return out


def scores(model: Path, folders: list[Path]) -> list[dict]:
    from hydranet_ros.data.dataset import FolderDataset
    from hydranet_ros.model.model_file import load_model
    from hydranet_ros.training.evaluate import evaluate_model
    network, spec = load_model(model)
    return [evaluate_model(network, spec, [FolderDataset(folder)], 80.0, torch.device("cpu")) for folder in folders]


def headline(lidar: dict, truth: dict) -> dict:
    return {"depth_rmse_vs_lidar_m": lidar["depth"]["rmse"], "depth_abs_rel_vs_lidar": lidar["depth"]["abs_rel"],
            "depth_rmse_vs_truth_m": truth["depth"]["rmse"], "depth_abs_rel_vs_truth": truth["depth"]["abs_rel"],
            "miou_vs_truth": truth["segmentation"]["miou"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="new folder for the bags, dataset and models")
    parser.add_argument("--bags", type=int, default=3, help="recordings, each of another street (default 3)")
    parser.add_argument("--frames", type=int, default=80, help="camera frames per recording at 10 Hz (default 80)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--teacher", default="hydranet_street.pt",
                        help="segmentation teacher for from-bag (default: the shipped street model itself)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    seconds = {}
    seconds["synth_bag"] = sum(run("synth-bag", "--out", work / f"bag{i}", "--truth", work / f"truth{i}",
                                   "--count", args.frames, "--seed", 11 + i) for i in range(args.bags))
    seconds["from_bag"] = run("dataset", "from-bag", *[work / f"bag{i}" for i in range(args.bags)],
                              "--out", work / "dataset", "--image-topic", IMAGE_TOPIC, "--lidar-topic", LIDAR_TOPIC,
                              "--teacher", args.teacher, "--workers", args.workers)
    seconds["adapt"] = run("adapt", work / "dataset", "--from", "hydranet_street.pt", "--out", work / "adapted.pt",
                           "--epochs", args.epochs)
    truth = truth_of_validation(work, args.bags)
    from hydranet_ros.model.catalog import resolve_model_path
    folders = [work / "dataset" / "val", truth]
    before = headline(*scores(resolve_model_path("hydranet_street.pt"), folders))
    after = headline(*scores(work / "adapted.pt", folders))
    from_bag = yaml.safe_load((work / "dataset" / "from_bag.yaml").read_text())
    summary = {"bags": args.bags, "frames_per_bag": args.frames, "epochs": args.epochs, "teacher": args.teacher,
               "train_frames": from_bag["train"], "val_frames": from_bag["val"], "seconds": seconds,
               "shipped": before, "adapted": after,
               "depth_rmse_vs_lidar_drop": 1 - after["depth_rmse_vs_lidar_m"] / before["depth_rmse_vs_lidar_m"],
               "depth_rmse_vs_truth_drop": 1 - after["depth_rmse_vs_truth_m"] / before["depth_rmse_vs_truth_m"],
               "miou_change": after["miou_vs_truth"] - before["miou_vs_truth"]}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
