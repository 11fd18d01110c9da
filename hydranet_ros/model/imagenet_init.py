"""ImageNet initialisation of the encoder from a quantised MobileNet-v2 TFLite file.

The TFLite models have BatchNorm folded into the conv weights and biases. We dequantise them,
put each folded bias into BN's beta and make BN an identity. The expansion conv of the t = 1
block, which the TFLite model lacks, starts as the identity. The TFLite models take inputs in
[-1, 1]; we fold that affine map into the stem so the encoder expects our ImageNet mean/std
normalisation. TensorFlow pads stride-2 convs asymmetrically ("SAME") while PyTorch pads
symmetrically, so activations differ by a sub-pixel shift at stride-2 layers; the test checks
that the classification still agrees.

LiteRT (ai-edge-litert, Google's maintained TFLite runtime) reads the file: no flatbuffer parsing here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .hydranet import HydraNet
from .model_file import IMAGENET_MEAN, IMAGENET_STD

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass
class FoldedConv:
    weight: np.ndarray  # PyTorch layout: out x in/groups x kh x kw
    bias: np.ndarray
    depthwise: bool


@dataclass
class TFLiteMobileNetV2:
    convs: list[FoldedConv]  # stem, 2 for block 0, 3 per later block, Conv_1, logits
    input_scale: float
    input_zero_point: int


def _dequantise(values: np.ndarray, params: dict) -> np.ndarray:
    scales = np.asarray(params["scales"], dtype=np.float64)
    zero_points = np.asarray(params["zero_points"], dtype=np.float64)
    if scales.size > 1:  # per-channel along quantized_dimension
        shape = [1] * values.ndim
        shape[params["quantized_dimension"]] = -1
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    return ((values.astype(np.float64) - zero_points) * scales).astype(np.float32)


def read_tflite_mobilenet_v2(path: str | Path) -> TFLiteMobileNetV2:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    convs = []
    for op in interpreter._get_ops_details():
        if op["op_name"] not in CONV_OPS:
            continue
        weight_detail, bias_detail = details[op["inputs"][1]], details[op["inputs"][2]]
        weight = _dequantise(interpreter.get_tensor(weight_detail["index"]),
                             weight_detail["quantization_parameters"])
        bias = _dequantise(interpreter.get_tensor(bias_detail["index"]),
                           bias_detail["quantization_parameters"])
        depthwise = op["op_name"] == "DEPTHWISE_CONV_2D"
        # TFLite: conv OHWI, depthwise 1HWC. PyTorch: OIHW, depthwise C1HW.
        weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
        convs.append(FoldedConv(np.ascontiguousarray(weight), bias, depthwise))
    expected = 1 + 2 + 3 * 16 + 2
    if len(convs) != expected:
        raise ValueError(f"{path}: found {len(convs)} convolutions, a MobileNet-v2 1.0 has {expected}")
    scale, zero_point = interpreter.get_input_details()[0]["quantization"]
    return TFLiteMobileNetV2(convs, float(scale), int(zero_point))


def _set_conv_bn(conv_bn: nn.Sequential, folded: FoldedConv) -> None:
    conv, bn = conv_bn[0], conv_bn[1]
    if tuple(conv.weight.shape) != folded.weight.shape:
        raise ValueError(f"shape mismatch: model {tuple(conv.weight.shape)}, TFLite {folded.weight.shape}")
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(folded.weight))
        _make_identity_bn(bn, torch.from_numpy(folded.bias))


def _make_identity_bn(bn: nn.BatchNorm2d, beta: torch.Tensor) -> None:
    bn.weight.fill_(1.0)
    bn.bias.copy_(beta)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)  # so that sqrt(var + eps) is exactly 1


def _fold_input_normalisation(stem: FoldedConv, scale: float, zero_point: int) -> FoldedConv:
    """Make the stem accept ImageNet mean/std inputs instead of TFLite's quantised-input range.

    pixel p in 0..255: ours x = (p/255 - mean)/std, TFLite's t = (p - zero_point)*scale,
    so t = a*x + b per channel with a = 255*scale*std, b = (255*mean - zero_point)*scale.
    """
    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    a = (255.0 * scale * std).astype(np.float32)
    b = ((255.0 * mean - zero_point) * scale).astype(np.float32)
    weight = stem.weight * a[None, :, None, None]
    bias = stem.bias + (stem.weight * b[None, :, None, None]).sum(axis=(1, 2, 3))
    return FoldedConv(weight.astype(np.float32), bias.astype(np.float32), False)


def init_encoder_from_tflite(model: HydraNet, path: str | Path) -> TFLiteMobileNetV2:
    """Loads ImageNet weights into model.layer1..layer8. Returns what was read."""
    tflite = read_tflite_mobilenet_v2(path)
    convs = iter(tflite.convs)
    _set_conv_bn(model.layer1, _fold_input_normalisation(next(convs), tflite.input_scale,
                                                         tflite.input_zero_point))
    for index in range(2, 9):
        for block_index, block in enumerate(getattr(model, f"layer{index}")):
            expand, depthwise, project = block.output
            if index == 2 and block_index == 0:
                channels = expand[0].weight.shape[0]
                eye = np.eye(channels, dtype=np.float32)[:, :, None, None]
                _set_conv_bn(expand, FoldedConv(eye, np.zeros(channels, np.float32), False))
            else:
                _set_conv_bn(expand, next(convs))
            _set_conv_bn(depthwise, next(convs))
            _set_conv_bn(project, next(convs))
    return tflite


class TFLiteClassifierHead(nn.Module):
    """MobileNet-v2's classifier (Conv_1 1x1 to 1280, ReLU6, global pool, logits) from TFLite."""

    def __init__(self, tflite: TFLiteMobileNetV2):
        super().__init__()
        conv_1, logits = tflite.convs[-2:]
        self.conv_1 = nn.Conv2d(conv_1.weight.shape[1], conv_1.weight.shape[0], 1)
        self.logits = nn.Conv2d(logits.weight.shape[1], logits.weight.shape[0], 1)
        with torch.no_grad():
            for layer, folded in ((self.conv_1, conv_1), (self.logits, logits)):
                layer.weight.copy_(torch.from_numpy(folded.weight))
                layer.bias.copy_(torch.from_numpy(folded.bias))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.clamp(self.conv_1(features), 0.0, 6.0)
        return self.logits(x.mean(dim=(2, 3), keepdim=True)).flatten(1)
