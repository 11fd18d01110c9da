"""NYUDv2: the official labelled .mat file and the example-frame folder layout.

Example layout (as the frames published with the official models, ../shared/data/nyud):
    NAME.png             RGB
    depth_gt_NAME.png    uint16, metres = value / 5000, 0 = no reading
    segm_gt_NAME.png     uint8 ids 0..39, 255 = ignore
    lwrn_NAME.png + lwrn_NAME_mask.png    RGB + palette-coloured 40-class mask
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hydranet_ros.data.dataset import DatasetError
from hydranet_ros.data.dataset import (IGNORE_LABEL, Sample, check_labels, writing_dataset, read_png_unchanged,
                                       read_rgb, write_sample)
from hydranet_ros.data.labels import decode_color_labels
from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.model.model_file import load_label_space

NYUD_DEPTH_SCALE = 5000.0
NUM_CLASSES = 40
# The Kinect colour camera's intrinsics as distributed with the NYUDv2 toolbox.
NYUD_INTRINSICS = Intrinsics(518.857901, 519.469611, 325.582449, 253.736166, 640, 480)


def read_example_frame(root: str | Path, name: str) -> Sample:
    """One frame of the example layout; labels that have no file are left out (None)."""
    root = Path(root)
    if (root / f"lwrn_{name}.png").is_file():
        mask = read_rgb(root / f"lwrn_{name}_mask.png")
        return Sample(name, read_rgb(root / f"lwrn_{name}.png"),
                      decode_color_labels(mask, load_label_space("nyud40").palette))
    sample = Sample(name, read_rgb(root / f"{name}.png"), intrinsics=NYUD_INTRINSICS)
    if (root / f"segm_gt_{name}.png").is_file():
        path = root / f"segm_gt_{name}.png"
        sample.segmentation = check_labels(read_png_unchanged(path).astype(np.uint8), NUM_CLASSES, path)
    if (root / f"depth_gt_{name}.png").is_file():
        sample.depth = read_png_unchanged(root / f"depth_gt_{name}.png").astype(np.float32) / NYUD_DEPTH_SCALE
    return sample


def example_frame_names(root: str | Path) -> list[str]:
    root = Path(root)
    plain = [p.stem for p in root.glob("[0-9]*.png")]
    lwrn = [p.stem[len("lwrn_"):] for p in root.glob("lwrn_*.png") if not p.stem.endswith("_mask")]
    return sorted(plain + lwrn)


def convert_labelled_mat(mat_path: str | Path, class_mapping: str | Path, out: str | Path,
                         indices: list[int] | None = None) -> Path:
    """nyu_depth_v2_labeled.mat (HDF5) -> our dataset folder with 40-class labels and depth.

    class_mapping: a .npy of 895 entries mapping raw label ids 0..894 to 0..39 (255 = ignore), made
    from the 894 -> 40 mapping of Gupta et al. (docs/training.md, NYUDv2). indices: 0-based frames
    (the standard split's 795 train / 654 test lists), all frames when None.
    """
    import h5py
    mapping = np.load(class_mapping)
    if mapping.shape != (895,) or ((mapping >= NUM_CLASSES) & (mapping != IGNORE_LABEL)).any():
        raise DatasetError(f"{class_mapping}: expected 895 entries with values 0..39 or 255")
    mapping = mapping.astype(np.uint8)
    with writing_dataset(out, "nyud40", NYUD_DEPTH_SCALE) as root, h5py.File(mat_path, "r") as mat:
        images, depths, labels = mat["images"], mat["depths"], mat["labels"]  # MATLAB order: N x C x W x H
        for index in indices if indices is not None else range(images.shape[0]):
            rgb = np.ascontiguousarray(np.asarray(images[index]).transpose(2, 1, 0))
            depth = np.asarray(depths[index], dtype=np.float32).T
            raw = np.asarray(labels[index]).T
            if raw.max() >= mapping.size:
                raise DatasetError(f"{mat_path}: frame {index} has raw label {raw.max()} > 894")
            write_sample(root, Sample(f"{index + 1:06d}", rgb, mapping[raw], depth, NYUD_INTRINSICS), NYUD_DEPTH_SCALE)
    return root
