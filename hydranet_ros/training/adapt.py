"""hydranet adapt DATASET --from MODEL --out MODEL: fit a model to a robot's camera and world.

DATASET is what `hydranet dataset from-bag` writes (train/ and val/, the later part of the recording):
the model is fine-tuned on train/ with the asymmetric losses (each frame teaches the labels it has:
LiDAR depth, teacher segmentation, or both) and the last epoch is kept (the learning rate has decayed to
zero by then): val/ chooses nothing, so the metrics on it before and after, printed and stored in the
model file's provenance, are what the robot can expect. The new model records the robot camera's focal
length, so that its depth is metric for that camera. It is `hydranet train`
with a config built from the model and the dataset, so torchrun runs it on several GPUs the same way.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from hydranet_ros.camera.network_input import SIZE_MULTIPLE
from hydranet_ros.data.dataset import DatasetError, FolderDataset
from hydranet_ros.model.model_file import for_camera, load_model, save_model
from hydranet_ros.training.evaluate import evaluate_model
from hydranet_ros.training.train import DEFAULTS, TrainingError, train, training_focal_length

# AdamW: Adam's L2 decay shrinks the weights the robot's frames barely use by ~lr a step (docs/training.md)
ADAPT_OPTIM = {"name": "adamw", "lr": 1e-4, "encoder_lr_factor": 1.0, "weight_decay": 0.01, "schedule": "poly"}
CROP_FRACTION = 0.8     # training crops are this part of the network's view of a frame (random zoom around it)


def adapt_config(dataset: Path, model: Path, run_dir: Path, epochs: int, lr: float, batch_size: int) -> dict:
    """The training config that fine-tunes `model` on DATASET/train, choosing the epoch on DATASET/val."""
    for split in ("train", "val"):
        if not (dataset / split / "dataset.yaml").is_file():
            raise DatasetError(f"{dataset} has no {split}/ dataset folder: give the folder `hydranet dataset "
                               "from-bag` wrote (it holds train/ and val/)")
    _, spec = load_model(model)
    train_set = FolderDataset(dataset / "train")
    for folder in (train_set, FolderDataset(dataset / "val")):  # a bad file fails here, not after an epoch
        folder.check_files()
    if train_set.label_space != spec.label_space.name:
        raise DatasetError(f"{dataset} is labelled in {train_set.label_space}, the model {model} in "
                           f"{spec.label_space.name}")
    if spec.native_resolution:
        raise TrainingError(f"{model} runs at each image's own size; adapt needs a model with an input size")
    net_h, net_w = spec.network_size(train_set[0].image.shape[:2])
    crop = [max(SIZE_MULTIPLE, round(side * CROP_FRACTION / SIZE_MULTIPLE) * SIZE_MULTIPLE) for side in (net_h, net_w)]
    config = copy.deepcopy(DEFAULTS)
    config["model"].update(label_space=spec.label_space.name, tasks=list(spec.tasks),
                           input_size=list(spec.input_size), init_from=str(model), focal_length_px=None)
    config["data"].update(train=[{"path": str((dataset / "train").resolve()), "repeat": 1.0}],
                          val=[str((dataset / "val").resolve())], crop=crop, zoom=[0.8, 1.25])
    config["optim"].update(ADAPT_OPTIM, lr=lr)
    config["train"].update(epochs=epochs, batch_size=batch_size, freeze_batchnorm=True,
                           max_depth_eval=80.0 if spec.label_space.name == "kitti6" else 10.0, out=str(run_dir))
    return config


def validation_metrics(model_path: Path, dataset: Path, max_depth: float) -> dict:
    model, spec = load_model(model_path)
    return evaluate_model(model, spec, [FolderDataset(dataset / "val")], max_depth, torch.device("cpu"))


def adapt(dataset: Path, model: Path, out: Path, run_dir: Path, epochs: int = 6, lr: float = 1e-4,
          batch_size: int = 8, resume: bool = False, stop_after: int | None = None) -> dict | None:
    """Fine-tunes and writes `out`; returns {"before", "after"} validation metrics (None on the ranks of
    torchrun but the first, and when stop_after ends the run before its last epoch)."""
    config = adapt_config(dataset, model, run_dir, epochs, lr, batch_size)
    last = train(config, resume=resume, stop_after=stop_after).with_name("last.pt")
    if int(os.environ.get("RANK", "0")) != 0 or (stop_after is not None and stop_after < epochs):
        return None
    max_depth = config["train"]["max_depth_eval"]
    metrics = {"before": validation_metrics(model, dataset, max_depth),
               "after": validation_metrics(last, dataset, max_depth)}
    adapted, spec = load_model(last)
    # Trained for the start's camera (no jump in depth scale to learn); recorded for the robot's, which
    # the node then assumes without camera_info.
    robot_camera = training_focal_length([FolderDataset(dataset / "train")], spec)
    if robot_camera is not None:
        spec = for_camera(adapted, spec, robot_camera)
    spec.provenance = {**spec.provenance, "adapted_from": Path(model).name, "adapt_validation": metrics}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(out, adapted, spec, half=config["train"]["save_half"])
    return metrics
