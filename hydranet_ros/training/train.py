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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm import tqdm

from hydranet_ros.camera.network_input import focal_at
from hydranet_ros.errors import UserError
from hydranet_ros.data.augment import Augmenter, collate
from hydranet_ros.data.dataset import FolderDataset, check_labels, read_png_unchanged
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import ModelSpec, load_label_space, load_model, save_model
from hydranet_ros.training.evaluate import evaluate_model
from hydranet_ros.training.losses import joint_loss, median_frequency_weights


class TrainingError(UserError):
    """A training config or run that cannot go on as asked; the message says why."""


DEFAULTS = {
    "model": {"label_space": "nyud40", "tasks": ["segmentation", "depth"], "input_size": [480, 640],
              "imagenet_init": None, "init_from": None, "imagenet_stages": [], "focal_length_px": None},
    "data": {"train": [], "val": [], "crop": None, "zoom": [0.8, 1.25], "jitter": 0.2, "workers": 0},
    "optim": {"name": "sgd", "lr": 0.01, "encoder_lr_factor": 0.1, "momentum": 0.9, "weight_decay": 1e-5,
              "schedule": "poly", "poly_power": 0.9, "step_epochs": 10, "step_gamma": 0.5},
    "train": {"epochs": 10, "batch_size": 8, "segmentation_weight": 0.5, "seed": 42, "amp": True,
              "freeze_batchnorm": False, "class_weights": None,
              "max_depth_eval": 10.0, "out": "runs/train", "save_half": True},
}
ENCODER_PREFIXES = tuple(f"layer{i}." for i in range(1, 9))


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"config {path} does not exist")
    user = yaml.safe_load(path.read_text()) or {}
    config = copy.deepcopy(DEFAULTS)
    for section, values in user.items():
        if section not in config:
            raise TrainingError(f"{path}: unknown section {section!r}; known: {sorted(config)}")
        unknown = set(values) - set(config[section])
        if unknown:
            raise TrainingError(f"{path}: unknown keys {sorted(unknown)} in {section}")
        config[section].update(values)
    base = path.parent
    # Dataset paths are relative to the config file; a training entry may be {path, repeat}.
    config["data"]["train"] = [{"path": str((base / (e["path"] if isinstance(e, dict) else e)).resolve()),
                                "repeat": float(e.get("repeat", 1.0)) if isinstance(e, dict) else 1.0}
                               for e in config["data"]["train"]]
    config["data"]["val"] = [str((base / p).resolve()) for p in config["data"]["val"]]
    config["train"]["out"] = str((base / config["train"]["out"]).resolve())
    for key in ("imagenet_init", "init_from"):
        if config["model"][key]:
            config["model"][key] = str((base / config["model"][key]).resolve())
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
    if optim["name"] == "adam":  # L2 through Adam: a weight the loss barely moves shrinks by ~lr a step
        return torch.optim.Adam(groups, weight_decay=optim["weight_decay"])
    if optim["name"] == "adamw":  # decay decoupled from the gradient's scale: it shrinks by lr * decay
        return torch.optim.AdamW(groups, weight_decay=optim["weight_decay"])
    raise TrainingError(f"optim.name must be sgd, adam or adamw, not {optim['name']!r}")


def learning_rate_factor(optim: dict, epoch: int, progress: float) -> float:
    """progress in [0, 1) over the whole run; epoch for step schedules."""
    if optim["schedule"] == "poly":
        return (1 - progress) ** optim["poly_power"]
    if optim["schedule"] == "step":
        return optim["step_gamma"] ** (epoch // optim["step_epochs"])
    raise TrainingError(f"optim.schedule must be poly or step, not {optim['schedule']!r}")


def mixed_precision_dtype(device: torch.device) -> torch.dtype | None:
    """float16 on CUDA; bfloat16 on CPUs with native bf16 instructions; else None (fp32).
    scripts/bench_train_step.py compares the CPU variants."""
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and _cpu_has_bf16() else None


def _cpu_has_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private, but stable since torch 2.0
    return bool(check and check())


def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises torch.distributed when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # NCCL needs each rank on its own GPU before the group exists
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return (dist.get_rank() if world > 1 else 0), world, device


def _sum_over_ranks(device: torch.device):
    """A function that sums a numpy array over all ranks (identity without torch.distributed)."""
    if not dist.is_initialized():
        return lambda array: array

    def reduce(array):
        tensor = torch.as_tensor(np.asarray(array, dtype=np.float64), device=device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()
    return reduce


def check_training_labels(folders: list[FolderDataset], num_classes: int) -> None:
    """Every label file in range, before any step (a bad id would stop training with an IndexError,
    or a device-side assert on a GPU, hours in)."""
    for folder in folders:
        for name in folder.names:
            if folder.has("labels", name):
                path = folder.root / "labels" / f"{name}.png"
                check_labels(read_png_unchanged(path), num_classes, path)


def segmentation_class_weights(setting, folders: list[FolderDataset], repeats: list[float],
                               num_classes: int) -> np.ndarray | None:
    """train.class_weights: null (plain cross-entropy), a list with one weight per class, or
    median_frequency, counted over the training labels as often as each folder repeats."""
    if setting is None:
        return None
    if isinstance(setting, list):
        if len(setting) != num_classes:
            raise TrainingError(f"train.class_weights lists {len(setting)} weights for {num_classes} classes")
        return np.asarray(setting, dtype=np.float64)
    if setting != "median_frequency":
        raise TrainingError(f"train.class_weights must be null, median_frequency or a list, not {setting!r}")
    pixel_counts, image_pixels = np.zeros(num_classes), np.zeros(num_classes)
    for folder, repeat in zip(folders, repeats):
        for name in folder.names:
            if folder.has("labels", name):
                counts = np.bincount(read_png_unchanged(folder.root / "labels" / f"{name}.png").ravel(),
                                     minlength=256)[:num_classes]
                pixel_counts += repeat * counts
                image_pixels += repeat * np.where(counts > 0, counts.sum(), 0)
    return median_frequency_weights(pixel_counts, image_pixels)


def build_spec(config: dict, folders: list[FolderDataset]) -> ModelSpec:
    model_cfg = config["model"]
    spec = ModelSpec(tasks=list(model_cfg["tasks"]), label_space=load_label_space(model_cfg["label_space"]),
                     input_size=tuple(model_cfg["input_size"]),
                     provenance={"trained_on": [Path(e["path"]).name for e in config["data"]["train"]],
                                 "config": json.loads(json.dumps(config))})
    spec.focal_length_px = model_cfg["focal_length_px"] or model_camera(model_cfg["init_from"]) \
        or training_focal_length(folders, spec)
    return spec


def model_camera(init_from: str | None) -> float | None:
    """The camera of the model a fine-tune starts from: its depth keeps its scale whatever cameras the
    fine-tune's data has, and models fine-tuned from one start can be averaged."""
    return load_model(init_from)[1].focal_length_px if init_from else None


def build_model(spec: ModelSpec, model_cfg: dict, device: torch.device) -> HydraNet:
    """A new HydraNet: every weight from init_from (a model file, to fine-tune it), or the encoder from
    the ImageNet classifier imagenet_init; with both, the encoder stages imagenet_stages (1-8) come from
    ImageNet and the rest from init_from (to revive stages whose weights training drove to zero)."""
    from hydranet_ros.model.imagenet_init import init_encoder_from_tflite
    model = HydraNet(spec.num_classes, tuple(spec.tasks))
    init_from, imagenet_init = model_cfg["init_from"], model_cfg["imagenet_init"]
    stages = model_cfg["imagenet_stages"]
    if stages and not (init_from and imagenet_init):
        raise TrainingError("model.imagenet_stages needs both model.init_from and model.imagenet_init")
    if not set(stages) <= set(range(1, 9)):
        raise TrainingError(f"model.imagenet_stages are encoder stages 1-8, not {stages}")
    if init_from:
        trained, trained_spec = load_model(init_from)
        if (trained_spec.label_space.name, trained_spec.tasks) != (spec.label_space.name, spec.tasks):
            raise TrainingError(f"model.init_from {init_from} predicts {trained_spec.tasks} in "
                                f"{trained_spec.label_space.name}; this config trains {spec.tasks} in "
                                f"{spec.label_space.name}")
        model.load_state_dict(trained.state_dict())
        if stages:
            imagenet = HydraNet(spec.num_classes, tuple(spec.tasks))
            init_encoder_from_tflite(imagenet, imagenet_init)
            for stage in stages:
                getattr(model, f"layer{stage}").load_state_dict(getattr(imagenet, f"layer{stage}").state_dict())
    elif imagenet_init:
        init_encoder_from_tflite(model, imagenet_init)
    return model.to(device, memory_format=torch.channels_last)  # NHWC convolutions: faster steps on CPU


def build_loader(train_set: Dataset, batch_size: int, workers: int, seed: int, rank: int, world: int,
                 spec: ModelSpec) -> DataLoader:
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=world, rank=rank, seed=seed) \
        if world > 1 else None
    shard = math.ceil(len(train_set) / world)  # what each rank sees per epoch
    if shard == 0:
        raise TrainingError("the training folders hold no images")
    return DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                      num_workers=workers, drop_last=shard >= batch_size,  # a small set keeps its one batch
                      collate_fn=lambda items: collate(items, spec.mean, spec.std),
                      generator=torch.Generator().manual_seed(seed))


class Checkpoint:
    """Everything a resumed run needs to continue as if never interrupted, written atomically."""

    def __init__(self, path: Path):
        self.path = path

    def save(self, epoch: int, best: float, model, optimizer, scaler, loader: DataLoader) -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                 "epoch": epoch, "best": best, "loader_generator": loader.generator.get_state(),
                 "torch_rng": torch.get_rng_state(), "numpy_rng": json.dumps(_numpy_rng_state()),
                 "python_rng": json.dumps(random.getstate()[1])}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        torch.save(state, temporary)
        temporary.replace(self.path)

    def load(self, device, model, optimizer, scaler, loader: DataLoader) -> tuple[int, float]:
        """Restores the state; returns (next epoch, best score). Older checkpoints lack the RNG states."""
        if not self.path.is_file():
            raise TrainingError(f"--resume: there is no checkpoint at {self.path}; start without --resume")
        state = torch.load(self.path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
            loader.generator.set_state(state["loader_generator"])
            torch.set_rng_state(state["torch_rng"])
            keys, position, has_gauss, cached = json.loads(state["numpy_rng"])
            np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), position, has_gauss, cached))
            random.setstate((3, tuple(json.loads(state["python_rng"])), None))
        return state["epoch"] + 1, state["best"]


def _numpy_rng_state() -> list:
    _, keys, position, has_gauss, cached = np.random.get_state()
    return [keys.tolist(), int(position), int(has_gauss), float(cached)]


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a value that is not a number is written as null."""
    return value if math.isfinite(value) else None


@dataclass
class TrainingRun:
    """What one run works with, built once from the config; one per process under torchrun."""

    config: dict
    spec: ModelSpec
    model: HydraNet
    net: torch.nn.Module  # the model, wrapped in DistributedDataParallel under torchrun
    train_set: AugmentedDataset
    loader: DataLoader
    val_sets: list[FolderDataset]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    class_weights: torch.Tensor | None  # segmentation cross-entropy, one weight per class
    device: torch.device
    rank: int
    world: int


def prepare_run(config: dict) -> TrainingRun:
    rank, world, device = _distributed()
    train_cfg, data_cfg = config["train"], config["data"]
    seed_everything(train_cfg["seed"] + rank)
    if not data_cfg["train"]:
        raise TrainingError("data.train lists no dataset folder")
    folders = [FolderDataset(e["path"]) for e in data_cfg["train"]]
    repeats = [e["repeat"] for e in data_cfg["train"]]
    spec = build_spec(config, folders)
    val_sets = [FolderDataset(p) for p in data_cfg["val"]]
    check_training_labels(folders + val_sets, spec.num_classes)
    model = build_model(spec, config["model"], device)
    augmenter = Augmenter(spec, tuple(data_cfg["crop"] or spec.input_size), tuple(data_cfg["zoom"]),
                          jitter=data_cfg["jitter"])
    train_set = AugmentedDataset(folders, repeats, augmenter, train_cfg["seed"])
    loader = build_loader(train_set, train_cfg["batch_size"], data_cfg["workers"], train_cfg["seed"], rank, world, spec)
    if len(loader) == 0:
        raise TrainingError(f"no training batch: {len(train_set)} images over {world} process(es)")
    amp_dtype = mixed_precision_dtype(device) if train_cfg["amp"] else None
    weights = segmentation_class_weights(train_cfg["class_weights"], folders, repeats, spec.num_classes)
    if weights is not None and rank == 0:
        print("segmentation class weights: " + ", ".join(
            f"{name} {w:.2f}" for name, w in zip(spec.label_space.class_names, weights)), flush=True)
    return TrainingRun(config, spec, model, torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model,
                       train_set, loader, val_sets, build_optimizer(model, config["optim"]),
                       torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16), amp_dtype,
                       None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=device),
                       device, rank, world)


def train(config: dict, resume: bool = False, stop_after: int | None = None) -> Path:
    """Trains, validating and checkpointing each epoch. stop_after ends the run early at that epoch while
    the learning-rate schedule still spans train.epochs, so a later --resume continues the same curve."""
    train_cfg = config["train"]
    out = Path(train_cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    run = prepare_run(config)
    checkpoint = Checkpoint(out / "checkpoint.pt")
    start_epoch, best = checkpoint.load(run.device, run.model, run.optimizer, run.scaler, run.loader) \
        if resume else (0, -math.inf)
    history = EpochHistory(out / "history.json", start_epoch)
    writer = None
    if run.rank == 0:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(out / "tensorboard")
    reduce = _sum_over_ranks(run.device)

    end_epoch = train_cfg["epochs"] if stop_after is None else min(stop_after, train_cfg["epochs"])
    for epoch in range(start_epoch, end_epoch):
        run.train_set.set_epoch(epoch)
        if isinstance(run.loader.sampler, torch.utils.data.DistributedSampler):
            run.loader.sampler.set_epoch(epoch)
        losses = train_epoch(run, epoch, writer)
        record = epoch_record(run, epoch, losses, reduce)
        if run.rank == 0:
            log_validation(writer, record, epoch)
            history.add(record)
            score = _score(record, train_cfg["max_depth_eval"])
            if score >= best:
                best = score
                save_model(out / "best.pt", run.model, run.spec, half=train_cfg["save_half"])
            save_model(out / "last.pt", run.model, run.spec, half=train_cfg["save_half"])
            checkpoint.save(epoch, best, run.model, run.optimizer, run.scaler, run.loader)
    if writer:
        writer.close()
    if run.world > 1:
        dist.destroy_process_group()
    return out / "best.pt"


def epoch_record(run: TrainingRun, epoch: int, losses: list[float], reduce) -> dict:
    """The epoch's mean training loss over every rank's steps, and its validation metrics (each rank
    scores its share of the frames; the sums are combined)."""
    total, steps = reduce(np.array([sum(losses), len(losses)]))
    record = {"epoch": epoch + 1, "train_loss": finite_or_none(float(total / steps) if steps else math.nan)}
    if run.val_sets:
        record["val"] = evaluate_model(run.model, run.spec, run.val_sets, run.config["train"]["max_depth_eval"],
                                       run.device, shard=(run.rank, run.world), reduce=reduce)
    return record


class EpochHistory:
    """history.json, rewritten every epoch so that an interrupted run keeps it; a resumed run keeps the
    epochs before its checkpoint. Each record is also printed as one JSON line."""

    def __init__(self, path: Path, start_epoch: int):
        self.path = path
        self.records = []
        if start_epoch and path.is_file():
            self.records = [r for r in json.loads(path.read_text()) if r["epoch"] <= start_epoch]

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.path.write_text(json.dumps(self.records, indent=1))
        print(json.dumps({k: v for k, v in record.items() if k != "val"} |
                         {"val": {t: {k: v for k, v in m.items() if k != "per_class_iou"}
                                  for t, m in record.get("val", {}).items()}}), flush=True)


def train_epoch(run: TrainingRun, epoch: int, writer) -> list[float]:
    """One pass over the loader; returns the loss of each step. Only rank 0 shows progress and logs."""
    train_cfg, optim = run.config["train"], run.config["optim"]
    loader, optimizer, scaler, spec, device = run.loader, run.optimizer, run.scaler, run.spec, run.device
    steps_per_epoch = len(loader)
    total_steps = train_cfg["epochs"] * steps_per_epoch
    run.net.train()
    if train_cfg["freeze_batchnorm"]:
        # BatchNorm keeps its statistics: after the TFLite initialisation it is an identity over
        # BN-folded weights, and batch statistics would undo the ImageNet features.
        for module in run.model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{train_cfg['epochs']}", disable=run.rank != 0, leave=False)
    losses = []
    for step, batch in enumerate(bar):
        factor = learning_rate_factor(optim, epoch, (epoch * steps_per_epoch + step) / total_steps)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        image = batch["image"].contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
            outputs = dict(zip(spec.tasks, run.net(image)))
        outputs = {task: output.float() for task, output in outputs.items()}  # losses in fp32
        loss, parts = joint_loss(outputs, batch, train_cfg["segmentation_weight"], run.class_weights)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss.detach()))
        # Only the tasks this batch has labels for: a batch without depth shows no depth loss.
        bar.set_postfix(loss=f"{losses[-1]:.3f}", **{k: f"{v:.3f}" for k, v in parts.items()})
        if writer:
            global_step = epoch * steps_per_epoch + step
            writer.add_scalar("loss/total", losses[-1], global_step)
            for k, v in parts.items():
                writer.add_scalar(f"loss/{k}", v, global_step)
    return losses


def log_validation(writer, record: dict, epoch: int) -> None:
    for task, values in record.get("val", {}).items():
        for k, v in values.items():
            if isinstance(v, float):
                writer.add_scalar(f"val/{task}/{k}", v, epoch + 1)


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
