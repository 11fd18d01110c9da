"""One frame of a scene from a camera pose: ray casting, shading, camera effects, exact depth and labels."""
from __future__ import annotations

import numpy as np

from hydranet_ros.camera.intrinsics import Intrinsics, pixel_rays
from hydranet_ros.data.synth.camera_effects import expose
from hydranet_ros.data.synth.materials import Texturer
from hydranet_ros.data.synth.raycast import cast_rays, rotation_matrix
from hydranet_ros.data.synth.scene import STREET_MAX_DEPTH_M, Frame, Scene
from hydranet_ros.data.synth.shading import shade


def render(scene: Scene, intrinsics: Intrinsics, position: np.ndarray, yaw: float, pitch: float,
           roll: float, rng: np.random.Generator, texturer: Texturer) -> Frame:
    """Ray-casts one frame of the scene from a camera pose."""
    h, w = intrinsics.height, intrinsics.width
    x_over_z, y_over_z = pixel_rays(intrinsics)
    rays_cam = np.stack(np.broadcast_arrays(x_over_z[None, :], y_over_z[:, None],
                                            np.ones((1, 1), np.float32)), -1).reshape(-1, 3)
    rotation = rotation_matrix(yaw, pitch, roll)
    directions = (rays_cam @ rotation.T).astype(np.float32)  # not normalised: z_cam = 1
    directions[np.abs(directions) < 1e-6] = 1e-6
    origin = position.astype(np.float32)
    hits = cast_rays(scene, origin, directions, rotation, intrinsics)
    color = shade(scene, hits, origin, directions, texturer)
    depth = (hits.t * rays_cam[:, 2]).reshape(h, w)  # rays have z = 1 in the camera frame
    depth = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
    if scene.kind == "street":
        depth[depth > STREET_MAX_DEPTH_M] = 0
    return Frame(expose(color.reshape(h, w, 3), rng), depth, hits.label.reshape(h, w), intrinsics)
