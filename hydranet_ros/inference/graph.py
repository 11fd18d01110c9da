"""The inference graph: camera image in, finished outputs out, all on the backend's device.

    image  uint8  [1, H, W, 3]  RGB, any H x W
      -> resize, keeping the aspect ratio, to the network size the model's spec gives for H x W
         (antialiased; camera/network_input.py), scale 1/255, normalise, HWC -> CHW
      -> HydraNet
      -> labels uint8   [1, h, w]      argmax of upsampled logits (bilinear; bicubic for the
                                       authors' checkpoints, as their recipe does)
         color  uint8   [1, h, w, 3]   labels through the model's palette
         confidence uint8 [1, h, w]    255 x the highest class probability (softmax at the decoder's
                                       resolution, then upsampled with the logits: the classes'
                                       exponentials cost a sixteenth of what they would at h x w); 0
                                       without a segmentation head
         depth  float32 [1, h, w]      |depth| in metres for the model's training camera, upsampled
                                       likewise (the per-frame path rescales it to the actual camera)
where h x w is the network size (output="network") or H x W (output="input"). A single-task model
gives labels 255 (no class, black) or NaN depth for the task it lacks.

TensorRT takes UINT8 only at a network's inputs and outputs, converted by a Cast from or to FLOAT or
HALF (inference/tensorrt_rules.py): so the image is cast before anything else touches it, and the
three uint8 outputs are cast from float (the argmax is computed in float, exact for class ids).

The PyTorch backend runs this module; `hydranet export` writes it to ONNX for ONNX Runtime
and TensorRT, one file per camera resolution (the network size and the antialiasing filter follow
from it), so every backend shares one definition of pre- and post-processing.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from hydranet_ros.inference.choices import OUTPUT_RESOLUTIONS
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import ModelSpec

INPUT_NAME = "image"
OUTPUT_NAMES = ("labels", "color", "confidence", "depth")
# Part of every cached export's name: bump it when the graph's inputs, outputs or arithmetic change.
GRAPH_VERSION = 6


def resize_antialiased(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N x C x H x W float -> N x C x size. Shrinking by 2x or more is antialiased: bilinear to an
    integer multiple of the target, then a box average, so every output pixel averages the input
    pixels it covers (what OpenCV's INTER_AREA does)."""
    height, width = int(size[0]), int(size[1])
    factor = min(x.shape[-2] // height, x.shape[-1] // width)
    if factor >= 2:
        x = F.interpolate(x, size=(height * factor, width * factor), mode="bilinear", align_corners=False)
        return F.avg_pool2d(x, factor)
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


class InferenceGraph(nn.Module):
    def __init__(self, model: HydraNet, spec: ModelSpec, output: str = "input"):
        super().__init__()
        if output not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output must be one of {OUTPUT_RESOLUTIONS}, not {output!r}")
        if not {"segmentation", "depth"} & set(spec.tasks):
            raise ValueError(f"the inference graph needs a segmentation or depth head; the model has {spec.tasks}")
        self.model = model
        self.output = output
        self.spec = spec
        self.segmentation_index = spec.tasks.index("segmentation") if "segmentation" in spec.tasks else None
        self.depth_index = spec.tasks.index("depth") if "depth" in spec.tasks else None
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
        # x / 255 - mean) / std == x * scale + offset
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("offset", -mean / std)
        # float, not uint8: TensorRT casts to UINT8 only from float. 256 rows, so that any uint8 label
        # (255: no class) has a colour (black beyond the classes).
        palette = torch.zeros(256, 3, dtype=torch.float32)
        palette[:spec.num_classes] = torch.as_tensor(spec.palette_array().astype("float32"))
        self.register_buffer("palette", palette)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        network_size = self.spec.network_size((int(image.shape[1]), int(image.shape[2])))
        x = resize_antialiased(image.float().permute(0, 3, 1, 2), network_size)  # Cast first: TensorRT
        x = (x * self.scale + self.offset).to(next(self.model.parameters()).dtype)
        outputs = self.model(x)
        size = network_size if self.output == "network" else (int(image.shape[1]), int(image.shape[2]))
        # One Resize for every per-pixel map (they share the decoder's resolution): on OpenVINO's
        # blocked layouts a Resize of one channel costs about what one of sixteen does.
        maps = []
        if self.segmentation_index is not None:
            logits = outputs[self.segmentation_index].float()
            maps += [logits, logits.softmax(dim=1).amax(dim=1, keepdim=True)]
        if self.depth_index is not None:
            maps.append(outputs[self.depth_index].float())
        upsampled = F.interpolate(torch.cat(maps, dim=1), size=size, mode=self.spec.upsampling, align_corners=False)
        if self.segmentation_index is not None:
            classes = logits.shape[1]
            index = first_argmax(upsampled.index_select(1, torch.arange(classes, device=image.device)))
            confidence = (upsampled[:, classes] * 255 + 0.5).clamp(0, 255).to(torch.uint8)  # +0.5: Cast truncates
        else:
            index = torch.full((image.shape[0],) + tuple(size), 255.0, device=image.device)
            confidence = torch.zeros(index.shape, dtype=torch.uint8, device=image.device)
        labels = index.to(torch.uint8)
        color = self.palette[index.to(torch.int32)].to(torch.uint8)  # int32 indices: no int64 anywhere
        if self.depth_index is not None:
            depth = upsampled[:, -1].abs()
        else:
            depth = torch.full((image.shape[0],) + tuple(size), float("nan"), device=image.device)
        return labels, color, confidence, depth


def first_argmax(scores: torch.Tensor) -> torch.Tensor:
    """argmax over the channels of N x C x H x W float (the first channel on ties, as torch.argmax) as
    N x H x W of the same float type (class ids are exact in it, and TensorRT casts float to uint8 where
    it cannot cast int32), from ReduceMax, Equal and Mul: on OpenVINO's blocked layouts these avoid the
    Transpose and TopK an argmax exports to (1 ms of 13 at 640x480). The channel slice before it is a
    Gather, which OpenVINO runs in a vectorised kernel where a Slice runs its reference one."""
    channels = scores.shape[1]
    reverse_index = torch.arange(channels - 1, -1, -1, dtype=scores.dtype, device=scores.device).view(1, -1, 1, 1)
    is_best = scores == scores.amax(dim=1, keepdim=True)
    return channels - 1 - (is_best * reverse_index).amax(dim=1)


def half_network(model: HydraNet) -> HydraNet:
    """The model in fp16 except the depth head, which stays fp32: fp16's steps are 3-6 cm from 32 m
    on, coarser than the depth a street model predicts there. In place; returns the model."""
    model.half()
    for name in ("pre_depth", "depth"):
        if hasattr(model, name):
            getattr(model, name).float()
    return model


def fold_batchnorm(model: HydraNet) -> HydraNet:
    """A copy of the model with every BatchNorm (eval statistics) folded into the convolution before
    it, for the torch backend: one kernel instead of two per block. ONNX exports keep BatchNorm,
    which ONNX Runtime, OpenVINO and TensorRT fuse themselves."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(1, len(module)):
            conv, norm = module[index - 1], module[index]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                with torch.no_grad():
                    factor = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
                    conv.weight.mul_(factor.view(-1, 1, 1, 1))
                    conv.bias = nn.Parameter((bias - norm.running_mean) * factor + norm.bias)
                module[index] = nn.Identity()
    return folded
