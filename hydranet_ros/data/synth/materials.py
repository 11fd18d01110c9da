"""Surface appearance: procedural textures and the material palettes the scenes draw from."""
from __future__ import annotations

import numpy as np

from hydranet_ros.data.synth.scene import Material


class Texturer:
    """Value noise and patterns evaluated at hit points; the table makes it deterministic."""

    def __init__(self, rng: np.random.Generator):
        self.table = rng.random((256, 256)).astype(np.float32)

    def noise(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        u0, v0 = np.floor(u), np.floor(v)
        fu, fv = u - u0, v - v0
        i, j = u0.astype(np.int64) & 255, v0.astype(np.int64) & 255
        i1, j1 = (i + 1) & 255, (j + 1) & 255
        t = self.table
        top = t[i, j] * (1 - fu) + t[i1, j] * fu
        bottom = t[i, j1] * (1 - fu) + t[i1, j1] * fu
        return top * (1 - fv) + bottom * fv

    def fractal(self, u, v):
        return (0.5 * self.noise(u, v) + 0.3 * self.noise(2.1 * u + 17, 2.1 * v + 5)
                + 0.2 * self.noise(4.3 * u + 3, 4.3 * v + 31))

    def pattern(self, material: Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        s = material.scale
        grain = self.fractal(u * s * 4, v * s * 4)
        if material.texture == "stripes":
            value = 0.5 + 0.5 * np.sin(u * s * 20 + 3 * grain)
        elif material.texture == "checker":
            value = ((np.floor(u * s) + np.floor(v * s)) % 2).astype(np.float32) * 0.8 + 0.2 * grain
        elif material.texture == "bricks":
            row = np.floor(v * s * 4)
            mortar = (((v * s * 4) % 1) < 0.1) | ((((u * s * 2) + 0.5 * row) % 1) < 0.05)
            value = np.where(mortar, 1.6, 0.6 + 0.4 * grain)
        elif material.texture == "plain":
            value = 0.5 + 0.1 * grain
        else:
            value = grain
        return 1.0 + material.contrast * (value - 0.5) * 2


def make_material(rng, base, texture=None, spread=0.15, scale=None):
    color = np.clip(np.asarray(base) + rng.normal(0, spread, 3), 0.03, 1).astype(np.float32)
    return Material(color, texture or rng.choice(["noise", "stripes", "checker", "plain"]),
                    scale if scale is not None else float(rng.uniform(0.5, 3)), float(rng.uniform(0.1, 0.4)))


WOOD = ([0.55, 0.38, 0.22], [0.40, 0.26, 0.15], [0.70, 0.55, 0.38], [0.30, 0.20, 0.12], [0.80, 0.78, 0.74])
FABRIC = ([0.50, 0.15, 0.12], [0.20, 0.30, 0.55], [0.30, 0.45, 0.30], [0.60, 0.55, 0.45], [0.35, 0.35, 0.38],
          [0.70, 0.60, 0.30], [0.45, 0.30, 0.45])
PAINT = ([0.85, 0.20, 0.15], [0.15, 0.35, 0.75], [0.90, 0.75, 0.15], [0.20, 0.55, 0.30], [0.95, 0.95, 0.92],
         [0.10, 0.10, 0.12], [0.55, 0.25, 0.55])


def wood_material(rng, shade=1.0):
    return make_material(rng, np.asarray(WOOD[rng.integers(len(WOOD))]) * shade, "stripes", 0.04,
                         float(rng.uniform(2, 4)))


def fabric_material(rng):
    return make_material(rng, FABRIC[rng.integers(len(FABRIC))], "noise", 0.06, float(rng.uniform(6, 10)))


def plain_material(rng, color, spread=0.03):
    return make_material(rng, color, "plain", spread)


def shadowed_material(material: Material, factor: float) -> Material:
    """The plain, darker inside of a piece of furniture: it shows in the gaps between fronts."""
    return Material(material.color * factor, "plain", 1, 0.05)
