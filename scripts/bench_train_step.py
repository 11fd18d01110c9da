"""Times one training step (forward, backward, Adam) of HydraNet-40 on this machine's CPU in the
layouts and precisions train.py can use, side by side, and prints JSON with ratios to plain fp32.

    .venv/bin/python scripts/bench_train_step.py [--batch 8] [--size 180 240] [--steps 5]
"""
import argparse
import json
import time

import torch

from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.training.train import mixed_precision_dtype


def seconds_per_step(channels_last: bool, dtype, batch: int, size: tuple[int, int], steps: int) -> float:
    torch.manual_seed(0)
    model = HydraNet(40)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    images = torch.randn(batch, 3, *size).contiguous(memory_format=memory_format)

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            segmentation, depth = model(images)
        loss = segmentation.float().mean() + depth.float().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up: oneDNN picks its kernels
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(180, 240), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    bf16 = mixed_precision_dtype(torch.device("cpu"))
    variants = {"fp32": (False, None), "fp32_channels_last": (True, None)}
    if bf16 is not None:
        variants["bf16_channels_last"] = (True, bf16)
    times = {name: seconds_per_step(cl, dtype, args.batch, tuple(args.size), args.steps)
             for name, (cl, dtype) in variants.items()}
    print(json.dumps({"batch": args.batch, "size": list(args.size), "threads": torch.get_num_threads(),
                      "seconds_per_step": times,
                      "speedup_vs_fp32": {name: times["fp32"] / t for name, t in times.items()}}, indent=1))


if __name__ == "__main__":
    main()
