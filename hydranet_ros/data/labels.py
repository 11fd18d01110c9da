"""Colour-coded label images -> class ids."""
import numpy as np

from hydranet_ros.data.dataset import IGNORE_LABEL


def decode_color_labels(rgb: np.ndarray, palette: list[list[int]]) -> np.ndarray:
    """H x W x 3 RGB label image -> H x W uint8 ids; colours not in the palette become 255."""
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    palette = np.asarray(palette, dtype=np.int32)
    palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    order = np.argsort(palette_codes)
    sorted_codes = palette_codes[order]
    position = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
    known = sorted_codes[position] == codes
    return np.where(known, order[position], IGNORE_LABEL).astype(np.uint8)
