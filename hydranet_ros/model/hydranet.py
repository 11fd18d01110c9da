"""HydraNet: MobileNet-v2 encoder + Light-Weight RefineNet decoder with one head per task.

Nekrasov et al., "Real-Time Joint Semantic Segmentation and Depth Estimation Using Asymmetric
Annotations", ICRA 2019. Attribute names follow the authors' released checkpoints
(layer1..layer8, conv3..conv8, crp1..crp4, conv_adapt2..4, pre_<task>/<task>) so that those
files load into this model with strict=True.

Input sizes: any height and width work. Every stride-2 convolution rounds its output size up,
and every decoder upsampling targets the exact size of the next skip feature, so no padding to a
multiple of 32 is needed. The outputs are ceil(H/4) x ceil(W/4).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# MobileNet-v2 inverted-residual stages: (expansion t, channels c, repeats n, stride s).
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
DECODER_WIDTH = 256
CRP_STAGES = 4

# Output channels of each head; segmentation takes num_classes.
TASK_CHANNELS = {"depth": 1, "normals": 3}
# Head attribute names in the authors' checkpoints.
HEAD_NAMES = {"segmentation": "segm", "depth": "depth", "normals": "normal"}


def conv1x1(in_channels: int, out_channels: int, groups: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias, as used throughout the decoder."""
    return nn.Conv2d(in_channels, out_channels, 1, bias=False, groups=groups)


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
            groups: int = 1, relu6: bool = True) -> nn.Sequential:
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                  padding=kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu6:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidualBlock(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear projection; a residual when shapes allow.

    The expansion convolution is present also when t = 1, as in the authors' encoder.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int):
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.output = nn.Sequential(
            conv_bn(in_channels, hidden, 1),
            conv_bn(hidden, hidden, 3, stride=stride, groups=hidden),
            conv_bn(hidden, out_channels, 1, relu6=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.output(x)
        return out + x if self.residual else out


class CRPBlock(nn.Module):
    """Chained Residual Pooling: a chain of 5x5 max-pool + 1x1 conv, each added to the sum.

    No activation inside. With depthwise=True the 1x1 convs are per-channel (HydraNet's CRP1).
    """

    def __init__(self, channels: int, stages: int = CRP_STAGES, depthwise: bool = False):
        super().__init__()
        self.stages = stages
        groups = channels if depthwise else 1
        for i in range(stages):
            # Checkpoint key names are "<i>_outvar_dimred", which are not Python identifiers.
            self.add_module(f"{i + 1}_outvar_dimred", conv1x1(channels, channels, groups))
        self.maxpool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = x
        for i in range(self.stages):
            top = self.maxpool(top)
            top = getattr(self, f"{i + 1}_outvar_dimred")(top)
            x = top + x
        return x


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class HydraNet(nn.Module):
    """Joint semantic segmentation and metric depth (optionally surface normals).

    forward(x) takes a normalised Bx3xHxW tensor and returns one raw tensor per task, in the
    order of `tasks`, at ceil(H/4) x ceil(W/4). Depth is in metres; take its absolute value at
    inference, as the authors do.
    """

    def __init__(self, num_classes: int, tasks: tuple[str, ...] = ("segmentation", "depth")):
        super().__init__()
        unknown = set(tasks) - set(HEAD_NAMES)
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}; known: {sorted(HEAD_NAMES)}")
        self.num_classes = num_classes
        self.tasks = tuple(tasks)

        # Encoder: MobileNet-v2. layer1 is the stem, layer2..layer8 the seven stages.
        self.layer1 = conv_bn(3, STEM_CHANNELS, 3, stride=2)
        in_channels = STEM_CHANNELS
        for index, (t, c, n, s) in enumerate(MOBILENET_V2_STAGES, start=2):
            blocks = [InvertedResidualBlock(in_channels if i == 0 else c, c, t, s if i == 0 else 1)
                      for i in range(n)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            in_channels = c

        # Decoder: Light-Weight RefineNet. convN maps stage N's features to the decoder width.
        stage_channels = {index: c for index, (_, c, _, _) in enumerate(MOBILENET_V2_STAGES, start=2)}
        for index in range(3, 9):
            setattr(self, f"conv{index}", conv1x1(stage_channels[index], DECODER_WIDTH))
        self.crp4 = nn.Sequential(CRPBlock(DECODER_WIDTH))
        self.crp3 = nn.Sequential(CRPBlock(DECODER_WIDTH))
        self.crp2 = nn.Sequential(CRPBlock(DECODER_WIDTH))
        self.crp1 = nn.Sequential(CRPBlock(DECODER_WIDTH, depthwise=True))
        self.conv_adapt4 = conv1x1(DECODER_WIDTH, DECODER_WIDTH)
        self.conv_adapt3 = conv1x1(DECODER_WIDTH, DECODER_WIDTH)
        self.conv_adapt2 = conv1x1(DECODER_WIDTH, DECODER_WIDTH)
        self.relu6 = nn.ReLU6(inplace=True)

        # Heads: depthwise 1x1, ReLU6, 3x3 conv with bias; one per task, after CRP1.
        for task in self.tasks:
            name = HEAD_NAMES[task]
            channels = num_classes if task == "segmentation" else TASK_CHANNELS[task]
            setattr(self, f"pre_{name}", conv1x1(DECODER_WIDTH, DECODER_WIDTH, groups=DECODER_WIDTH))
            setattr(self, name, nn.Conv2d(DECODER_WIDTH, channels, 3, padding=1, bias=True))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Returns the outputs of layer1..layer8."""
        features = []
        for index in range(1, 9):
            x = getattr(self, f"layer{index}")(x)
            features.append(x)
        return features

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        _, _, l3, l4, l5, l6, l7, l8 = features
        # Step 1: 1/32 resolution.
        x = self.relu6(self.conv8(l8) + self.conv7(l7))
        x = _upsample_to(self.conv_adapt4(self.crp4(x)), l6)
        # Step 2: 1/16.
        x = self.relu6(x + self.conv6(l6) + self.conv5(l5))
        x = _upsample_to(self.conv_adapt3(self.crp3(x)), l4)
        # Step 3: 1/8.
        x = self.relu6(x + self.conv4(l4))
        x = _upsample_to(self.conv_adapt2(self.crp2(x)), l3)
        # Step 4: 1/4.
        x = self.relu6(x + self.conv3(l3))
        return self.crp1(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        shared = self.decode(self.encode(x))
        outputs = []
        for task in self.tasks:
            name = HEAD_NAMES[task]
            pre_head = getattr(self, f"pre_{name}")
            # A head may run in another precision than the decoder (inference/graph.half_network).
            pre = self.relu6(pre_head(shared.to(pre_head.weight.dtype)))
            outputs.append(getattr(self, name)(pre))
        return tuple(outputs)
