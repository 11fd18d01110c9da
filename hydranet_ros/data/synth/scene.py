"""What a generated scene is made of, and the frame rendered from it."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hydranet_ros.camera.intrinsics import Intrinsics

NO_HIT = np.float32(np.inf)
STREET_MAX_DEPTH_M = 80.0  # like KITTI's LiDAR range; farther points carry no depth


@dataclass
class Frame:
    rgb: np.ndarray          # H x W x 3 uint8
    depth: np.ndarray        # H x W float32 metres, 0 = no depth (sky, beyond range)
    labels: np.ndarray       # H x W uint8 class ids
    intrinsics: Intrinsics


@dataclass
class Material:
    color: np.ndarray        # linear RGB albedo, 0..1
    texture: str = "noise"   # noise | stripes | checker | bricks | plain
    scale: float = 1.0       # texture frequency per metre
    contrast: float = 0.25
    emissive: bool = False   # lit from behind (a window): its colour is not shaded


@dataclass
class Box:
    low: np.ndarray
    high: np.ndarray
    label: int
    material: Material


@dataclass
class Sphere:
    center: np.ndarray
    radius: float
    label: int
    material: Material


@dataclass
class Scene:
    kind: str
    boxes: list[Box] = field(default_factory=list)
    spheres: list[Sphere] = field(default_factory=list)
    room: Box | None = None          # indoor: the camera is inside; its faces are hit from within
    room_face_labels: dict = field(default_factory=dict)   # (axis, side) -> label
    room_face_materials: dict = field(default_factory=dict)
    ground_y: float | None = None    # street: ground plane
    road_half_width: float = 0.0
    sidewalk_width: float = 0.0
    ground_materials: dict = field(default_factory=dict)
    light: np.ndarray = field(default_factory=lambda: np.array([0.3, 1.0, 0.2]))
    light_color: np.ndarray = field(default_factory=lambda: np.ones(3))
    ambient: float = 0.35
    sky_color: np.ndarray = field(default_factory=lambda: np.array([0.55, 0.7, 0.9]))
