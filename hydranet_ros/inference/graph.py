"""The inference graph: camera image in, finished outputs out, all on the backend's device.

    image  uint8  [1, H, W, 3]  RGB, any H x W
      -> resize to the model's input size, scale 1/255, normalise, HWC -> CHW
      -> HydraNet
      -> labels uint8   [1, h, w]      argmax of bilinearly upsampled logits
         color  uint8   [1, h, w, 3]   labels through the model's palette
         depth  float32 [1, h, w]      |depth| in metres, bilinearly upsampled
where h x w is the model's input size (output="network") or H x W (output="input").

The PyTorch backend runs this module; `hydranet export` writes it to ONNX for ONNX Runtime
and TensorRT, so every backend shares one definition of pre- and post-processing.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import ModelSpec

INPUT_NAME = "image"
OUTPUT_NAMES = ("labels", "color", "depth")
OUTPUT_RESOLUTIONS = ("network", "input")


class InferenceGraph(nn.Module):
    def __init__(self, model: HydraNet, spec: ModelSpec, output: str = "input"):
        super().__init__()
        if output not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output must be one of {OUTPUT_RESOLUTIONS}, not {output!r}")
        if not {"segmentation", "depth"} <= set(spec.tasks):
            raise ValueError(f"the inference graph needs segmentation and depth heads; the model has {spec.tasks}")
        self.model = model
        self.output = output
        self.input_size = tuple(int(v) for v in spec.input_size)
        self.segmentation_index = spec.tasks.index("segmentation")
        self.depth_index = spec.tasks.index("depth")
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
        # x / 255 - mean) / std == x * scale + offset
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("offset", -mean / std)
        # int32, not uint8: TensorRT's Gather takes int32 data; the result is cast to uint8.
        self.register_buffer("palette", torch.as_tensor(spec.palette_array().astype("int32")))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        x = (x * self.scale + self.offset).to(next(self.model.parameters()).dtype)
        outputs = self.model(x)
        logits, depth = outputs[self.segmentation_index], outputs[self.depth_index]
        size = self.input_size if self.output == "network" else image.shape[1:3]
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        labels = logits.argmax(dim=1).to(torch.uint8)
        color = self.palette[labels.long()].to(torch.uint8)
        depth = F.interpolate(depth.float(), size=size, mode="bilinear", align_corners=False)[:, 0].abs()
        return labels, color, depth
