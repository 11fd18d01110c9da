"""Streets with buildings, trees and parked cars, labelled with KITTI-6 ids."""
from __future__ import annotations

import numpy as np

from hydranet_ros.data.synth.materials import make_material
from hydranet_ros.data.synth.scene import Box, Scene, Sphere
from hydranet_ros.model.model_file import load_label_space


class StreetSceneBuilder:
    """Roads with sidewalks, buildings, trees and cars, in KITTI-6 ids."""

    def __init__(self):
        space = load_label_space("kitti6")
        self.ids = {name: i for i, name in enumerate(space.class_names)}

    def build(self, rng: np.random.Generator, length: float = 200.0) -> Scene:
        ids = self.ids
        scene = Scene("street", ground_y=0.0, road_half_width=float(rng.uniform(3.5, 6)),
                      sidewalk_width=float(rng.uniform(1.5, 4)))
        scene.ground_materials = {
            "road": (ids["road"], make_material(rng, [0.32, 0.32, 0.33], "noise", 0.05, 1.5)),
            "sidewalk": (ids["sidewalk"], make_material(rng, [0.55, 0.52, 0.5], "checker", 0.08, 1.5)),
            "verge": (ids["vegetation"], make_material(rng, [0.25, 0.4, 0.15], "noise", 0.08, 2)),
        }
        edge = scene.road_half_width + scene.sidewalk_width
        for side in (-1, 1):
            z = -20.0
            while z < length:
                span = rng.uniform(8, 25)
                if rng.random() < 0.75:
                    setback = rng.uniform(0.5, 6)
                    depth, height = rng.uniform(8, 15), rng.uniform(5, 22)
                    x_near = side * (edge + setback)
                    x_far = x_near + side * depth
                    material = make_material(rng, rng.choice([[0.7, 0.6, 0.5], [0.6, 0.4, 0.3], [0.75, 0.75, 0.72]]),
                                             rng.choice(["bricks", "noise", "stripes"]), 0.1, rng.uniform(0.5, 1.5))
                    scene.boxes.append(Box(np.array([min(x_near, x_far), 0, z]),
                                           np.array([max(x_near, x_far), height, z + span]),
                                           ids["building"], material))
                else:  # trees and hedges in the gap
                    for _ in range(rng.integers(1, 4)):
                        x = side * (edge + rng.uniform(1, 6))
                        zz = z + rng.uniform(0, span)
                        r = rng.uniform(1.5, 3.5)
                        scene.spheres.append(Sphere(np.array([x, rng.uniform(2.5, 5), zz]), r, ids["vegetation"],
                                                    make_material(rng, [0.2, 0.38, 0.12], "noise", 0.08, 3)))
                z += span + rng.uniform(0, 4)
            for _ in range(rng.integers(3, 9)):  # trees on the sidewalk edge
                x = side * (scene.road_half_width + scene.sidewalk_width * rng.uniform(0.5, 0.9))
                zz = rng.uniform(0, length)
                scene.boxes.append(Box(np.array([x - 0.15, 0, zz - 0.15]), np.array([x + 0.15, 3, zz + 0.15]),
                                       ids["vegetation"],
                                       make_material(rng, [0.3, 0.22, 0.15], "stripes", 0.05, 4)))
                scene.spheres.append(Sphere(np.array([x, rng.uniform(3.5, 5), zz]), rng.uniform(1.2, 2.5),
                                            ids["vegetation"],
                                            make_material(rng, [0.2, 0.36, 0.12], "noise", 0.08, 3)))
        for _ in range(rng.integers(4, 14)):  # parked and driving cars
            lane = rng.choice([-1, 1]) * rng.uniform(scene.road_half_width - 1.2, scene.road_half_width - 1.0) \
                if rng.random() < 0.6 else rng.uniform(-1.5, 1.5) + rng.choice([-1, 1]) * 2.0
            z = rng.uniform(4, length * 0.6)
            lengthwise, width, height = rng.uniform(3.8, 4.8), rng.uniform(1.6, 1.9), rng.uniform(1.3, 1.6)
            body = make_material(rng, rng.choice([[0.7, 0.1, 0.1], [0.1, 0.1, 0.12], [0.8, 0.8, 0.82],
                                                  [0.2, 0.3, 0.6]]), "plain", 0.1)
            scene.boxes.append(Box(np.array([lane - width / 2, 0.25, z]),
                                   np.array([lane + width / 2, height * 0.6, z + lengthwise]),
                                   ids["car"], body))
            scene.boxes.append(Box(np.array([lane - width / 2 + 0.1, height * 0.6, z + 0.8]),
                                   np.array([lane + width / 2 - 0.1, height, z + lengthwise - 1.0]),
                                   ids["car"], make_material(rng, [0.1, 0.12, 0.15], "plain", 0.05)))
            for wz in (z + 0.7, z + lengthwise - 0.7):  # wheels
                scene.boxes.append(Box(np.array([lane - width / 2, 0, wz - 0.33]),
                                       np.array([lane + width / 2, 0.3, wz + 0.33]),
                                       ids["car"], make_material(rng, [0.05, 0.05, 0.05], "plain", 0.02)))
        sun_height = rng.uniform(0.3, 1.0)
        scene.light = np.array([rng.uniform(-1, 1), sun_height, rng.uniform(-1, 1)])
        scene.light_color = np.array([1.0, rng.uniform(0.92, 1.0), rng.uniform(0.8, 1.0)]) * rng.uniform(1.0, 1.3)
        scene.ambient = float(rng.uniform(0.35, 0.55))
        scene.sky_color = np.clip(np.array([0.5, 0.65, 0.9]) + rng.normal(0, 0.07, 3), 0.3, 1.0)
        return scene

    def camera_pose(self, rng: np.random.Generator, scene: Scene):
        position = np.array([rng.uniform(-1.5, 1.5), rng.uniform(1.55, 1.75), rng.uniform(-5, 60)])
        return position, rng.uniform(-0.15, 0.15), rng.uniform(-0.03, 0.05), rng.uniform(-0.02, 0.02)
