"""A checkpoint in the exact layout of the authors' released ones, with seeded random weights, and
the outputs the authors' own code and recipe give for it on real frames.

test/data/authors_reference_*.npz were made once, outside this repository, by loading
seeded_state_dict(...) into the authors' model class (src/models.py of DrSleep/multi-task-refinenet,
strict=True), saving it with torch.save({"state_dict": model.state_dict()}), and running their
notebooks' recipe on the frame: (img / 255 - mean) / std at the image's own size, then
cv2.resize(..., INTER_CUBIC) of logits and depth to the image size, argmax and |depth|. The files
hold labels and depth on every 4th row and column. No code of theirs is in this repository.
"""
import json

import numpy as np
import torch

SEED = 1809  # the paper's arXiv number, 1809.04766
STRIDE = 4


def seeded_state_dict(layout_path, name: str) -> dict[str, torch.Tensor]:
    """Weights drawn like the authors' initialisation (He normal for convolutions, N(0, 0.01) for the
    heads' biases); BatchNorm statistics and affine terms drawn near their defaults, so that folding
    and normalisation are exercised."""
    layout = json.loads(open(layout_path).read())[name]["state_dict"]
    rng = np.random.default_rng(SEED)
    state = {}
    for key, (shape, dtype) in layout.items():
        if dtype == "int64":
            state[key] = torch.tensor(0, dtype=torch.int64)
            continue
        if key.endswith("running_var"):
            values = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean") or (key.endswith("bias") and len(shape) == 1):
            values = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:  # BatchNorm weight
            values = rng.uniform(0.8, 1.2, shape)
        else:
            fan_out = shape[0] * shape[2] * shape[3]
            values = rng.normal(0.0, np.sqrt(2.0 / fan_out), shape)
        state[key] = torch.from_numpy(values.astype(np.float32))
    return state
