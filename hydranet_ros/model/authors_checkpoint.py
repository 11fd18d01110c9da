"""Import of the authors' released checkpoints (ExpNYUD_joint.ckpt, ExpKITTI_joint.ckpt, ...).

Accepted: {"state_dict": ...} or a bare state dict, keys with or without a "module." prefix
(DataParallel), with or without BatchNorm's num_batches_tracked buffers.

Imported models follow the authors' recipe (their notebooks in DrSleep/multi-task-refinenet): the
network runs at the image's own resolution, and logits and depth are upsampled bicubically. They
record the camera their depth was learned with: KITTI's (fx 721.5 px at 1242x375) and NYUDv2's
Kinect (519.2 px at 640x480); the joint NYUD+KITTI model learned from both, so it records none.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from .hydranet import HydraNet
from .model_file import LabelSpace, ModelFileError, ModelSpec, label_space_for_classes

DATA_PARALLEL_PREFIX = "module."
# Focal length (px) of the camera each label space's depth was learned with, at native resolution.
TRAINING_FOCAL_PX = {"kitti6": 721.54, "nyud40": 519.16}


def normalise_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not state:
        raise ValueError("no state dict found")
    return {(k[len(DATA_PARALLEL_PREFIX):] if k.startswith(DATA_PARALLEL_PREFIX) else k): v
            for k, v in state.items()}


def model_from_state_dict(state: dict[str, torch.Tensor]) -> HydraNet:
    """Builds the HydraNet the state dict describes and loads it with strict=True."""
    if "segm.weight" not in state:
        raise ValueError("not a HydraNet state dict: it has no 'segm.weight'")
    tasks = ["segmentation", "depth"] + (["normals"] if "normal.weight" in state else [])
    model = HydraNet(state["segm.weight"].shape[0], tuple(tasks))
    # Older files lack num_batches_tracked; fill in the model's own (zero) counters.
    merged = {k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    merged.update(state)
    model.load_state_dict(merged, strict=True)
    return model.eval()


def import_authors_checkpoint(path: str | Path, label_space: LabelSpace | None = None,
                              input_size: tuple[int, int] | None = None) -> tuple[HydraNet, ModelSpec]:
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model = model_from_state_dict(normalise_state_dict(checkpoint))
    except FileNotFoundError:
        raise ModelFileError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as error:  # torch's text advises loading it unsafely: it is not passed on
        found = re.search(r"GLOBAL (\S+)", str(error))
        raise ModelFileError(f"{path} is not a checkpoint of plain tensors: it asks to run Python code "
                             f"({found.group(1) if found else 'an object beyond tensors'}), so it was not loaded; "
                             "use the official file (hydranet models download)") from None
    except Exception as error:
        raise ModelFileError(f"{path} is not a HydraNet checkpoint this tool can import: {error}") from None
    space = label_space or label_space_for_classes(model.num_classes)
    if space.num_classes != model.num_classes:
        raise ModelFileError(f"{path} has {model.num_classes} classes, label space {space.name} "
                             f"has {space.num_classes}")
    native = input_size is None
    if native:  # a nominal size for tools that need one; the node runs at the camera's resolution
        input_size = (370, 1226) if space.name == "kitti6" else (480, 640)
    spec = ModelSpec(tasks=list(model.tasks), label_space=space, input_size=tuple(input_size),
                     provenance={"imported_from": path.name}, focal_length_px=TRAINING_FOCAL_PX.get(space.name),
                     native_resolution=native, upsampling="bicubic")
    return model, spec
