"""hydranet synth: write generated frames as a dataset folder (see data/dataset.py)."""
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from tqdm import tqdm

from hydranet_ros.data.dataset import Sample, create_dataset_folder, write_sample
from hydranet_ros.data.synth import LABEL_SPACES, render_frame

DEPTH_SCALES = {"indoor": 5000.0, "street": 256.0}  # as NYUDv2 and KITTI store depth


def _write(index: int, kind: str, seed: int, width: int, height: int, root: Path) -> None:
    frame = render_frame(kind, seed * 1_000_003 + index, width, height)
    write_sample(root, Sample(f"{index:06d}", frame.rgb, frame.labels, frame.depth, frame.intrinsics),
                 DEPTH_SCALES[kind])


def add_arguments(parser):
    parser.add_argument("kind", choices=sorted(LABEL_SPACES), help="indoor rooms (NYUD-40 ids) or streets (KITTI-6 ids)")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--count", type=int, default=1000, help="number of frames (default 1000)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("HEIGHT", "WIDTH"),
                        help="frame size (default 240 320 indoor, 176 608 street)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same frames")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")


def run(args):
    height, width = args.size or ((240, 320) if args.kind == "indoor" else (176, 608))
    root = create_dataset_folder(args.out, LABEL_SPACES[args.kind], DEPTH_SCALES[args.kind])
    job = partial(_write, kind=args.kind, seed=args.seed, width=width, height=height, root=root)
    with ProcessPoolExecutor(args.workers) as pool:
        list(tqdm(pool.map(job, range(args.count), chunksize=8), total=args.count, desc=f"synth {args.kind}"))
    print(f"wrote {args.count} {args.kind} frames ({width}x{height}) to {root}")
