"""hydranet average: one model from the weights of several fine-tuned from the same start.

A weighted mean of every weight (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022,
and "Model soups", ICML 2022): between a model and its fine-tuned copy it trades what the fine-tuning
gained for what it forgot, usually more gracefully than an earlier epoch would. It means something only
for models that share a start (one was fine-tuned from the other, or both from a third); the shipped
street model is such an average (models/README.md).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from hydranet_ros.cache import file_sha256
from hydranet_ros.errors import ModelFileError
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import ModelSpec, load_model


def _differences(spec: ModelSpec, other: ModelSpec) -> list[str]:
    """What disagrees between two models to be averaged: anything but how each was made. Cameras within
    1e-5 of each other are one camera (a config writes the start model's focal length with 3 decimals)."""
    mine, theirs = dataclasses.asdict(spec), dataclasses.asdict(other)
    return sorted(k for k in mine if k != "provenance" and mine[k] != theirs[k]
                  and not (k == "focal_length_px" and None not in (mine[k], theirs[k])
                           and math.isclose(mine[k], theirs[k], rel_tol=1e-5)))


def average_models(paths: list[Path], weights: list[float] | None = None) -> tuple[HydraNet, ModelSpec]:
    """sum_i weights[i] * model_i for every floating-point tensor (integer buffers from the first);
    equal weights when none are given. The spec is the models' shared one; its provenance lists the
    models, their SHA-256 and weights, and what each model's own provenance said."""
    if len(paths) < 2:
        raise ModelFileError("average needs at least two model files")
    weights = [1.0 / len(paths)] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise ModelFileError(f"{len(weights)} weights for {len(paths)} model files: give one weight per model")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise ModelFileError(f"weights {weights} must be non-negative and add up to 1")
    loaded = [load_model(path) for path in paths]
    model, spec = loaded[0]
    for path, (_, other) in zip(paths[1:], loaded[1:]):
        differ = _differences(spec, other)
        if differ:
            raise ModelFileError(f"{path} differs from {paths[0]} in {', '.join(differ)}: only models of one "
                                 "architecture, label space, input and camera can be averaged")
    states = [m.state_dict() for m, _ in loaded]
    averaged = {name: sum(w * state[name].double() for w, state in zip(weights, states)).to(tensor.dtype)
                if tensor.is_floating_point() else tensor.clone()
                for name, tensor in states[0].items()}
    model.load_state_dict(averaged)
    sources = [{"model": str(path), "sha256": file_sha256(path), "weight": w, "provenance": s.provenance}
               for path, w, (_, s) in zip(paths, weights, loaded)]
    return model, dataclasses.replace(spec, provenance={"weight_average": sources})
