"""CamVid (the SegNet 11-class release): real street frames with segmentation labels only.

Folder layout (as in ../shared/data/camvid/SPLIT): images/NAME.jpg (or .png), labels/NAME.png with
ids 0 sky, 1 building, 2 pole, 3 road, 4 pavement, 5 tree, 6 sign/symbol, 7 fence, 8 car,
9 pedestrian, 10 bicyclist, 11 unlabelled. Mapped onto KITTI-6; the classes KITTI-6 lacks (poles,
signs, fences, people, bicycles) and unlabelled pixels become 255 (ignored in training and metrics).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hydranet_ros.data.dataset import IGNORE_LABEL, Sample, read_png_unchanged, read_rgb
from hydranet_ros.model.model_file import load_label_space

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car",
                  "pedestrian", "bicyclist", "unlabelled")
TO_KITTI6 = {"sky": "sky", "building": "building", "road": "road", "pavement": "sidewalk",
             "tree": "vegetation", "car": "car"}


def kitti6_lookup() -> np.ndarray:
    """CamVid id -> KITTI-6 id (255 elsewhere), as a 256-entry table."""
    names = load_label_space("kitti6").class_names
    lookup = np.full(256, IGNORE_LABEL, np.uint8)
    for camvid_name, kitti_name in TO_KITTI6.items():
        lookup[CAMVID_CLASSES.index(camvid_name)] = names.index(kitti_name)
    return lookup


def frame_names(split_folder: Path) -> list[Path]:
    return sorted(p for p in (Path(split_folder) / "images").iterdir() if p.suffix.lower() in (".jpg", ".png"))


def read_frame(image_path: Path, lookup: np.ndarray) -> Sample:
    """One frame with KITTI-6 labels (no depth, no intrinsics: the camcorder's are not published)."""
    label_path = image_path.parent.parent / "labels" / f"{image_path.stem}.png"
    labels = lookup[read_png_unchanged(label_path)] if label_path.is_file() else None
    return Sample(image_path.stem, read_rgb(image_path), segmentation=labels)
