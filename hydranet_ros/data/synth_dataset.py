"""Generated frames written as a dataset folder (data/dataset.py), for `hydranet synth`."""
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from tqdm import tqdm

from hydranet_ros.data.dataset import Sample, write_sample, writing_dataset
from hydranet_ros.data.synth import LABEL_SPACES, render_frame

DEPTH_SCALES = {"indoor": 5000.0, "street": 256.0}  # as NYUDv2 and KITTI store depth


def _write(index: int, kind: str, seed: int, width: int, height: int, root: Path) -> None:
    frame = render_frame(kind, seed * 1_000_003 + index, width, height)
    write_sample(root, Sample(f"{index:06d}", frame.rgb, frame.labels, frame.depth, frame.intrinsics),
                 DEPTH_SCALES[kind])


DEFAULT_SIZES = {"indoor": (240, 320), "street": (176, 608)}  # (height, width)


def write_synth_dataset(kind: str, out, count: int, size: tuple[int, int] | None = None, seed: int = 0,
                        workers: int = 2) -> Path:
    """count generated frames of kind (indoor or street) as a dataset folder; the same seed, the same frames."""
    height, width = size or DEFAULT_SIZES[kind]
    with writing_dataset(out, LABEL_SPACES[kind], DEPTH_SCALES[kind]) as root:
        job = partial(_write, kind=kind, seed=seed, width=width, height=height, root=root)
        with ProcessPoolExecutor(workers) as pool:
            list(tqdm(pool.map(job, range(count), chunksize=8), total=count, desc=f"synth {kind}"))
    return root
