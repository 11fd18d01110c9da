"""hydranet infer INPUT --out DIR: the model on an image, a folder of images or a video; no ROS.

Per frame NAME it writes NAME_labels.png (class ids), NAME_color.png, NAME_depth_mm.png (uint16
millimetres, 0 = none), NAME_depth.npy (float32 metres, NaN = none), NAME_points.ply (x y z,
colour, label) and NAME_overview.png.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from hydranet_ros.inference.pipeline import guess_intrinsics
from hydranet_ros.errors import CommandError
from hydranet_ros.data.dataset import write_depth_png
from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.inference.visualize import overview
from hydranet_ros.ros.outputs import cloud_output_request

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def read_frames(source: Path):
    """(name, BGR image) from an image, a folder of images or a video."""
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise CommandError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        for path in paths:
            yield path.stem, _read_image(path)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(source))
        if not capture.isOpened():
            raise CommandError(f"cannot open video {source}")
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield f"{source.stem}_{index:06d}", frame
            index += 1
        if index == 0:
            raise CommandError(f"video {source} has no readable frames")
    elif source.is_file():
        yield source.stem, _read_image(source)
    else:
        raise CommandError(f"{source} does not exist")


def check_output_folder(source: Path, out: Path) -> None:
    """--out must be a folder apart from the input: outputs written into the input folder would be read as
    camera images by the next run."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; give a folder for the outputs")
    if source.is_dir() and out.resolve() == source.resolve():
        raise CommandError(f"--out {out} is the input folder; give another folder for the outputs")


def _write_image(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise CommandError(f"cannot write {path} (disk full or not writable?)")


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CommandError(f"cannot read image {path}")
    return image


def write_ply(path: Path, cloud: np.ndarray) -> None:
    """Binary PLY of the valid points: x y z (float), red green blue label (uchar)."""
    points = cloud.reshape(-1)
    points = points[np.isfinite(points["z"])]
    packed = points["rgb"].view(np.uint32)
    vertex = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"),
                                          ("green", "u1"), ("blue", "u1"), ("label", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = points["x"], points["y"], points["z"]
    vertex["red"], vertex["green"], vertex["blue"] = (packed >> 16) & 255, (packed >> 8) & 255, packed & 255
    vertex["label"] = points["label"]
    header = ("ply\nformat binary_little_endian 1.0\ncomment hydranet_ros, camera optical frame, metres\n"
              f"element vertex {len(vertex)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar label\nend_header\n")
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(vertex.tobytes())


def infer_files(perception, source: Path, out: Path, intrinsics: tuple | None = None,
                cloud_parameters: dict | None = None) -> int:
    """Every frame of source (an image, a folder, a video) -> its files in out; returns the frame count."""
    check_output_folder(source, out)
    out.mkdir(parents=True, exist_ok=True)
    depth_range = perception.spec.label_space.depth_range_m
    # The node's clouds for the same parameters (its defaults for those not given).
    request = cloud_output_request(cloud_parameters or {}, perception.spec.label_space, frozenset({"points"}))
    clouds = request.clouds(perception)
    count = 0
    for name, bgr in tqdm(read_frames(source), desc="infer", unit="frame"):
        height, width = bgr.shape[:2]
        camera = Intrinsics(*intrinsics, width, height) if intrinsics else \
            guess_intrinsics(perception.spec, width, height)
        result = perception.process(bgr, "bgr8", overlay_alpha=0.5, camera=camera, clouds=clouds)
        cloud = result.cloud
        _write_image(out / f"{name}_labels.png", result.labels)
        _write_image(out / f"{name}_color.png", result.color[..., ::-1])
        write_depth_png(out / f"{name}_depth_mm.png", result.depth, 1000.0)
        np.save(out / f"{name}_depth.npy", result.depth)
        write_ply(out / f"{name}_points.ply", cloud)
        _write_image(out / f"{name}_overview.png", overview(result, cloud, depth_range)[..., ::-1])
        count += 1
    return count
