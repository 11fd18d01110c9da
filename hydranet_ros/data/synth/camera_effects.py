"""What a camera does to the light it gets: exposure, gamma, vignetting, blur and sensor noise."""
from __future__ import annotations

import cv2
import numpy as np


def expose(color: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Linear RGB (h x w x 3) -> an 8-bit sRGB-like image; each effect's strength is drawn from rng."""
    h, w = color.shape[:2]
    exposure = rng.uniform(0.8, 1.25)
    image = np.clip(color * exposure, 0, 1)
    image = image ** (1 / 2.2)  # sRGB-like gamma
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = 1 - rng.uniform(0.1, 0.3) * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
    image = cv2.GaussianBlur(image * vignette[..., None], (0, 0), rng.uniform(0.4, 0.9))
    image = image + rng.normal(0, rng.uniform(0.005, 0.025), image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
