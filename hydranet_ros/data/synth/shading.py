"""Shading: textured albedo, a sun or a ceiling light with ambient light, and a sky with clouds."""
from __future__ import annotations

import numpy as np

from hydranet_ros.data.synth.materials import Texturer
from hydranet_ros.data.synth.raycast import Hits
from hydranet_ros.data.synth.scene import Scene


def shade(scene: Scene, hits: Hits, origin: np.ndarray, directions: np.ndarray, texturer: Texturer) -> np.ndarray:
    """Linear RGB per ray (n x 3)."""
    hit = np.isfinite(hits.t)
    points = origin + directions * np.where(hit, hits.t, 0)[:, None]
    albedo = np.empty((len(hits.t), 3), np.float32)
    albedo[:] = scene.sky_color
    emissive = np.zeros(len(hits.t), bool)
    for index, material in enumerate(hits.materials):
        mask = hits.material_id == index
        if not mask.any():
            continue
        if material.emissive:
            emissive |= mask
        p, nrm = points[mask], np.abs(hits.normal[mask])
        # Texture coordinates: the two world axes spanning the surface.
        u = np.where(nrm[:, 0] > 0.5, p[:, 2], p[:, 0])
        v = np.where(nrm[:, 1] > 0.5, p[:, 2], p[:, 1])
        albedo[mask] = material.color * texturer.pattern(material, u, v)[:, None]

    normal = hits.normal
    light = scene.light / np.linalg.norm(scene.light)
    diffuse = np.clip(normal @ light, 0, 1)
    if scene.kind == "indoor":  # a ceiling light: falloff with distance
        to_light = scene.light[None, :] - points
        distance = np.linalg.norm(to_light, axis=1) + 1e-3
        diffuse = np.clip(np.einsum("ij,ij->i", normal, to_light) / distance, 0, 1) * (6.0 / (2.0 + distance ** 2))
    shading = scene.ambient + (1 - scene.ambient) * diffuse
    color = albedo * (shading[:, None] * scene.light_color)
    color[emissive] = albedo[emissive]
    sky = ~hit
    if sky.any():  # brighter towards the horizon, with soft clouds
        elevation = np.clip(directions[sky, 1] / np.linalg.norm(directions[sky], axis=1), 0, 1)
        clouds = texturer.fractal(directions[sky, 0] / (directions[sky, 1] + 0.2) * 2,
                                  directions[sky, 2] / (directions[sky, 1] + 0.2) * 2)
        base = scene.sky_color * (1.15 - 0.5 * elevation)[:, None]
        color[sky] = base + np.clip(clouds - 0.55, 0, 1)[:, None] * 1.2
    return color
