"""Procedural scenes with exact labels and metric depth: indoor rooms (NYUD-40 ids) and streets
(KITTI-6 ids), ray-cast in numpy.

Scenes are built from axis-aligned boxes, spheres and the room's inner faces. Every frame has an
exact z-depth, a label per pixel and its intrinsics. Appearance varies with textures, light
colour and direction, exposure, camera pose, blur and sensor noise. Everything derives from one
seed, so a (kind, seed) pair always renders the same frames.

World frame: x right, y up, z forward at yaw 0. The camera's optical frame is x right, y down,
z forward (REP 103).
"""
from __future__ import annotations

import numpy as np

from hydranet_ros.camera.intrinsics import FOCAL_PER_WIDTH, Intrinsics
from hydranet_ros.data.kinds import SCENE_OF_LABEL_SPACE
from hydranet_ros.data.synth.indoor import IndoorSceneBuilder
from hydranet_ros.data.synth.materials import Texturer
from hydranet_ros.data.synth.render import render
from hydranet_ros.data.synth.scene import Frame
from hydranet_ros.data.synth.street import StreetSceneBuilder

BUILDERS = {"indoor": IndoorSceneBuilder, "street": StreetSceneBuilder}
LABEL_SPACES = {scene: space for space, scene in SCENE_OF_LABEL_SPACE.items()}


def default_intrinsics(kind: str, width: int, height: int) -> Intrinsics:
    f = FOCAL_PER_WIDTH[kind] * width
    return Intrinsics(f, f, width / 2 - 0.5, height / 2 - 0.5, width, height)


def render_frame(kind: str, seed: int, width: int, height: int, intrinsics: Intrinsics | None = None) -> Frame:
    """One frame of a new random scene; the same (kind, seed, size, camera) gives the same frame.
    intrinsics: another camera (default: the dataset's, default_intrinsics)."""
    rng = np.random.default_rng(seed)
    builder = BUILDERS[kind]()
    scene = builder.build(rng)
    intrinsics = intrinsics or default_intrinsics(kind, width, height)
    position, yaw, pitch, roll = builder.camera_pose(rng, scene)
    return render(scene, intrinsics, position, yaw, pitch, roll, rng, Texturer(rng))


def render_sequence(kind: str, seed: int, width: int, height: int, count: int, rate_hz: float = 10.0):
    """A camera moving smoothly through one scene: driving at ~10 m/s, or walking and turning indoors."""
    rng = np.random.default_rng(seed)
    builder = BUILDERS[kind]()
    scene = builder.build(rng)
    texturer = Texturer(rng)
    intrinsics = default_intrinsics(kind, width, height)
    position, yaw, pitch, roll = builder.camera_pose(rng, scene)
    if kind == "street":
        position = np.array([rng.uniform(-1.0, 1.0), 1.65, 0.0])
        yaw, pitch, roll = 0.0, 0.02, 0.0
    for index in range(count):
        time = index / rate_hz
        if kind == "street":
            pose = (position + np.array([0, 0, 10.0 * time]), yaw + 0.03 * np.sin(time), pitch, roll)
        else:
            pose = (position + np.array([0.2 * np.sin(0.5 * time), 0, 0.15 * time]), yaw + 0.25 * np.sin(0.4 * time),
                    pitch, roll)
        yield render(scene, intrinsics, *pose, rng, texturer)
