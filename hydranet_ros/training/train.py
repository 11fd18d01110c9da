"""hydranet train CONFIG: joint training from datasets where each image may have only some labels.

The config is YAML (see config/train_*.yaml). Command-line flags override a few of its values.
Runs on CPU or one GPU as is; under torchrun it trains with DistributedDataParallel.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm import tqdm

from hydranet_ros.camera.network_input import focal_at
from hydranet_ros.cli.errors import CommandError
from hydranet_ros.data.augment import Augmenter, collate
from hydranet_ros.data.dataset import FolderDataset
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import ModelSpec, load_label_space, save_model
from hydranet_ros.training.evaluate import evaluate_model
from hydranet_ros.training.losses import joint_loss

DEFAULTS = {
    "model": {"label_space": "nyud40", "tasks": ["segmentation", "depth"], "input_size": [480, 640],
              "imagenet_init": None, "focal_length_px": None},
    "data": {"train": [], "val": [], "crop": None, "zoom": [0.8, 1.25], "jitter": 0.2, "workers": 0},
    "optim": {"name": "sgd", "lr": 0.01, "encoder_lr_factor": 0.1, "momentum": 0.9, "weight_decay": 1e-5,
              "schedule": "poly", "poly_power": 0.9, "step_epochs": 10, "step_gamma": 0.5},
    "train": {"epochs": 10, "batch_size": 8, "segmentation_weight": 0.5, "seed": 42, "amp": True,
              "freeze_batchnorm": False,
              "max_depth_eval": 10.0, "out": "runs/train", "save_half": True},
}
ENCODER_PREFIXES = tuple(f"layer{i}." for i in range(1, 9))


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"config {path} does not exist")
    user = yaml.safe_load(path.read_text()) or {}
    config = copy.deepcopy(DEFAULTS)
    for section, values in user.items():
        if section not in config:
            raise CommandError(f"{path}: unknown section {section!r}; known: {sorted(config)}")
        unknown = set(values) - set(config[section])
        if unknown:
            raise CommandError(f"{path}: unknown keys {sorted(unknown)} in {section}")
        config[section].update(values)
    base = path.parent
    # Dataset paths are relative to the config file; a training entry may be {path, repeat}.
    config["data"]["train"] = [{"path": str((base / (e["path"] if isinstance(e, dict) else e)).resolve()),
                                "repeat": float(e.get("repeat", 1.0)) if isinstance(e, dict) else 1.0}
                               for e in config["data"]["train"]]
    config["data"]["val"] = [str((base / p).resolve()) for p in config["data"]["val"]]
    config["train"]["out"] = str((base / config["train"]["out"]).resolve())
    if config["model"]["imagenet_init"]:
        config["model"]["imagenet_init"] = str((base / config["model"]["imagenet_init"]).resolve())
    return config


class AugmentedDataset(Dataset):
    """The training folders, each repeated `repeat` times per epoch (a fraction takes a different
    seeded subset each epoch), augmented reproducibly per epoch."""

    def __init__(self, folders: list[FolderDataset], repeats: list[float], augmenter: Augmenter, seed: int):
        self.data = ConcatDataset(folders)
        self.repeats = repeats
        self.augmenter = augmenter
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        rng = np.random.default_rng((self.seed, epoch, 1))
        indices, offset = [], 0
        for folder, repeat in zip(self.data.datasets, self.repeats):
            whole, fraction = int(repeat), repeat - int(repeat)
            indices += list(range(offset, offset + len(folder))) * whole
            indices += (offset + rng.permutation(len(folder))[:round(fraction * len(folder))]).tolist()
            offset += len(folder)
        self.indices = indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        rng = np.random.default_rng((self.seed, self.epoch, index))  # reproducible per epoch
        return self.augmenter(self.data[self.indices[index]], rng)


def training_focal_length(folders: list[FolderDataset], spec: ModelSpec) -> float | None:
    """The median focal length, in pixels at the network input, of the training images that have
    depth and intrinsics: the camera the model's depth is learned for."""
    focals = [focal_at(i, spec.network_size((i.height, i.width)))
              for folder in folders for name in folder.names
              if folder.has("depth", name) and (i := folder.intrinsics(name)) is not None]
    return float(np.median(focals)) if focals else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(model: torch.nn.Module, optim: dict) -> torch.optim.Optimizer:
    """The authors' recipe: the encoder learns at a tenth of the decoder's rate."""
    encoder = [p for n, p in model.named_parameters() if n.startswith(ENCODER_PREFIXES)]
    decoder = [p for n, p in model.named_parameters() if not n.startswith(ENCODER_PREFIXES)]
    groups = [{"params": encoder, "lr": optim["lr"] * optim["encoder_lr_factor"]},
              {"params": decoder, "lr": optim["lr"]}]
    for group in groups:
        group["initial_lr"] = group["lr"]
    if optim["name"] == "sgd":
        return torch.optim.SGD(groups, momentum=optim["momentum"], weight_decay=optim["weight_decay"])
    if optim["name"] == "adam":
        return torch.optim.Adam(groups, weight_decay=optim["weight_decay"])
    raise CommandError(f"optim.name must be sgd or adam, not {optim['name']!r}")


def learning_rate_factor(optim: dict, epoch: int, progress: float) -> float:
    """progress in [0, 1) over the whole run; epoch for step schedules."""
    if optim["schedule"] == "poly":
        return (1 - progress) ** optim["poly_power"]
    if optim["schedule"] == "step":
        return optim["step_gamma"] ** (epoch // optim["step_epochs"])
    raise CommandError(f"optim.schedule must be poly or step, not {optim['schedule']!r}")


def mixed_precision_dtype(device: torch.device) -> torch.dtype | None:
    """float16 on CUDA; bfloat16 on CPUs with native bf16 instructions; else None (fp32).
    scripts/bench_train_step.py compares the CPU variants."""
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and _cpu_has_bf16() else None


def _cpu_has_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private, but stable since torch 2.0
    return bool(check and check())


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world > 1 else 0), world


def train(config: dict, resume: bool = False, stop_after: int | None = None) -> Path:
    """Trains, validating and checkpointing each epoch. stop_after ends the run early at that epoch while
    the learning-rate schedule still spans train.epochs, so a later --resume continues the same curve."""
    rank, world = _distributed()
    train_cfg, data_cfg, model_cfg, optim = config["train"], config["data"], config["model"], config["optim"]
    seed_everything(train_cfg["seed"] + rank)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    out = Path(train_cfg["out"])
    out.mkdir(parents=True, exist_ok=True)

    if not data_cfg["train"]:
        raise CommandError("data.train lists no dataset folder")
    folders = [FolderDataset(e["path"]) for e in data_cfg["train"]]
    space = load_label_space(model_cfg["label_space"])
    spec = ModelSpec(tasks=list(model_cfg["tasks"]), label_space=space, input_size=tuple(model_cfg["input_size"]),
                     provenance={"trained_on": [Path(e["path"]).name for e in data_cfg["train"]],
                                 "config": json.loads(json.dumps(config))})
    spec.focal_length_px = model_cfg["focal_length_px"] or training_focal_length(folders, spec)
    model = HydraNet(space.num_classes, tuple(spec.tasks))
    if model_cfg["imagenet_init"]:
        from hydranet_ros.model.imagenet_init import init_encoder_from_tflite
        init_encoder_from_tflite(model, model_cfg["imagenet_init"])
    model.to(device, memory_format=torch.channels_last)  # NHWC convolutions: faster steps on CPU

    crop = tuple(data_cfg["crop"] or spec.input_size)
    train_set = AugmentedDataset(folders, [e["repeat"] for e in data_cfg["train"]],
                                 Augmenter(spec, crop, tuple(data_cfg["zoom"]), jitter=data_cfg["jitter"]),
                                 train_cfg["seed"])
    val_sets = [FolderDataset(p) for p in data_cfg["val"]]
    sampler = torch.utils.data.DistributedSampler(train_set) if world > 1 else None
    loader = DataLoader(train_set, batch_size=train_cfg["batch_size"], shuffle=sampler is None, sampler=sampler,
                        num_workers=data_cfg["workers"], drop_last=len(train_set) >= train_cfg["batch_size"],
                        collate_fn=lambda items: collate(items, spec.mean, spec.std),
                        generator=torch.Generator().manual_seed(train_cfg["seed"]))
    optimizer = build_optimizer(model, optim)
    amp_dtype = mixed_precision_dtype(device) if train_cfg["amp"] else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    start_epoch, best = 0, -math.inf
    checkpoint_path = out / "checkpoint.pt"
    if resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best = state["epoch"] + 1, state["best"]
    history_path = out / "history.json"
    history = []
    if start_epoch and history_path.is_file():  # a resumed run keeps the epochs before its checkpoint
        history = [r for r in json.loads(history_path.read_text()) if r["epoch"] <= start_epoch]
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(out / "tensorboard")

    steps_per_epoch = max(1, len(loader))
    total_steps = train_cfg["epochs"] * steps_per_epoch
    end_epoch = train_cfg["epochs"] if stop_after is None else min(stop_after, train_cfg["epochs"])
    for epoch in range(start_epoch, end_epoch):
        train_set.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        if train_cfg["freeze_batchnorm"]:
            # BatchNorm keeps its statistics: after the TFLite initialisation it is an identity over
            # BN-folded weights, and batch statistics would undo the ImageNet features.
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{train_cfg['epochs']}", disable=rank != 0, leave=False)
        running = []
        for step, batch in enumerate(bar):
            factor = learning_rate_factor(optim, epoch, (epoch * steps_per_epoch + step) / total_steps)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            image = batch["image"].contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                outputs = dict(zip(spec.tasks, net(image)))
            outputs = {task: output.float() for task, output in outputs.items()}  # losses in fp32
            loss, parts = joint_loss(outputs, batch, train_cfg["segmentation_weight"])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            running.append(float(loss.detach()))
            bar.set_postfix(loss=f"{running[-1]:.3f}", **{k: f"{v:.3f}" for k, v in parts.items()})
            if writer:
                global_step = epoch * steps_per_epoch + step
                writer.add_scalar("loss/total", running[-1], global_step)
                for k, v in parts.items():
                    writer.add_scalar(f"loss/{k}", v, global_step)
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(running)) if running else float("nan")}
        if rank == 0 and val_sets:
            record["val"] = evaluate_model(model, spec, val_sets, train_cfg["max_depth_eval"], device)
            for task, values in record["val"].items():
                for k, v in values.items():
                    if isinstance(v, float):
                        writer.add_scalar(f"val/{task}/{k}", v, epoch + 1)
        if rank == 0:
            history.append(record)
            history_path.write_text(json.dumps(history, indent=1))  # every epoch: an interrupted run keeps it
            print(json.dumps({k: v for k, v in record.items() if k != "val"} |
                             {"val": {t: {k: v for k, v in m.items() if k != "per_class_iou"}
                                      for t, m in record.get("val", {}).items()}}), flush=True)
            score = _score(record, train_cfg["max_depth_eval"])
            if score >= best:
                best = score
                save_model(out / "best.pt", model, spec, half=train_cfg["save_half"])
            save_model(out / "last.pt", model, spec, half=train_cfg["save_half"])
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                        "best": best}, checkpoint_path)
    if writer:
        writer.close()
    if world > 1:
        dist.destroy_process_group()
    return out / "best.pt"


def _score(record: dict, max_depth: float) -> float:
    """Higher is better: mIoU minus RMSE relative to the evaluation cap; train loss without validation."""
    val = record.get("val")
    if not val:
        return -record["train_loss"]
    score = 0.0
    if "segmentation" in val:
        score += val["segmentation"]["miou"]
    if "depth" in val and val["depth"].get("pixels"):
        score -= val["depth"]["rmse"] / max_depth
    return score


def add_arguments(parser):
    parser.add_argument("config", help="training config (YAML), e.g. config/train_indoor_synth.yaml")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--out", help="override train.out (run folder: model files, checkpoint, TensorBoard)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--stop-after", type=int, metavar="EPOCH",
                        help="end after this epoch, keeping the learning-rate schedule of train.epochs "
                             "(for time-limited jobs; continue with --resume)")


def run(args):
    config = load_config(args.config)
    if args.epochs is not None:
        config["train"]["epochs"] = args.epochs
    if args.out:
        config["train"]["out"] = args.out
    best = train(config, resume=args.resume, stop_after=args.stop_after)
    print(f"best model: {best}")
