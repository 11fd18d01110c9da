"""A camera's calibration as sensor_msgs/CameraInfo describes it, checked, and the rectification
that turns its images into pinhole images the network and the back-projection can use.

Pure numpy/OpenCV (no rclpy): the node, process-bag and the tests build it from message fields.

What the per-frame path assumes of an input image, given its CameraInfo:
  - D (and R) say how the image departs from a pinhole camera. With rectify "auto" an image whose
    D is non-zero or whose R is not the identity is undistorted (and rotated) into the pinhole
    camera P[:, :3] (K when P is empty); with "never" the image is taken as already rectified
    (image_rect) and P is its camera. plumb_bob and rational_polynomial use OpenCV's pinhole
    model, equidistant its fisheye model; any other distortion model is refused.
  - binning and ROI: K and P describe the full sensor; a binned or cropped image's pinhole camera
    follows from them. Rectifying a binned or ROI image is refused (rectify upstream instead).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hydranet_ros.camera.intrinsics import CalibrationError, Intrinsics, check_plausible

PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
FISHEYE_MODELS = ("equidistant",)
RECTIFY_MODES = ("auto", "always", "never")
# How many distortion coefficients each model has (sensor_msgs/distortion_models.hpp and CameraInfo's
# comments: plumb_bob k1 k2 t1 t2 k3; rational_polynomial adds k4 k5 k6; equidistant k1..k4); an empty
# D means no distortion. Other models: at most OpenCV's 14.
DISTORTION_COEFFICIENTS = {"plumb_bob": (0, 5), "rational_polynomial": (0, 8), "equidistant": (0, 4)}
MAX_DISTORTION_COEFFICIENTS = 14


@dataclass(frozen=True)
class CameraCalibration:
    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]        # 3 x 3 row-major
    r: tuple[float, ...]        # 3 x 3
    p: tuple[float, ...]        # 3 x 4
    binning_x: int = 0
    binning_y: int = 0
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)  # x_offset, y_offset, width, height (0: full image)

    @classmethod
    def from_fields(cls, width, height, distortion_model, d, k, r, p, binning_x=0, binning_y=0,
                    roi=(0, 0, 0, 0)) -> "CameraCalibration":
        """Checked calibration; raises CalibrationError naming the unusable field."""
        k_array = np.asarray(k, dtype=np.float64)
        p_array = np.asarray(p, dtype=np.float64)
        r_array = np.asarray(r, dtype=np.float64)
        d_array = np.asarray(d, dtype=np.float64)
        if int(width) <= 0 or int(height) <= 0:
            raise CalibrationError(f"camera_info has zero size ({width}x{height})")
        for name, array, size in (("K", k_array, 9), ("P", p_array, 12), ("R", r_array, 9)):
            if array.shape != (size,) or not np.all(np.isfinite(array)):
                raise CalibrationError(f"camera_info has an unusable {name} {array.tolist()} (wrong size, NaN or Inf)")
        counts = DISTORTION_COEFFICIENTS.get(str(distortion_model))
        if d_array.ndim != 1 or (len(d_array) not in counts if counts else len(d_array) > MAX_DISTORTION_COEFFICIENTS):
            expected = " or ".join(map(str, counts)) if counts else f"at most {MAX_DISTORTION_COEFFICIENTS}"
            raise CalibrationError(f"camera_info has {d_array.size} distortion coefficients for "
                                   f"{distortion_model!r}, which has {expected}")
        if not np.all(np.isfinite(d_array)):
            raise CalibrationError(f"camera_info has a NaN or Inf in D {d_array.tolist()}")
        if not r_array.any():
            r_array = np.eye(3).ravel()  # an empty R means no rectifying rotation
        calibration = cls(int(width), int(height), str(distortion_model), tuple(d_array.tolist()),
                          tuple(k_array.tolist()), tuple(r_array.tolist()), tuple(p_array.tolist()),
                          int(binning_x), int(binning_y), tuple(int(v) for v in roi))
        check_plausible(calibration._intrinsics_of(calibration.k_matrix()), "camera_info K")
        if p_array.any():
            check_plausible(calibration._intrinsics_of(calibration.p_matrix()[:, :3]), "camera_info P")
        if calibration.is_distorted() and calibration.distortion_model not in PINHOLE_MODELS + FISHEYE_MODELS:
            raise CalibrationError(f"distortion model {calibration.distortion_model!r} is not supported "
                                   f"(supported: {', '.join(PINHOLE_MODELS + FISHEYE_MODELS)}); rectify the "
                                   "image upstream and set rectify to never")
        return calibration

    def k_matrix(self) -> np.ndarray:
        return np.asarray(self.k).reshape(3, 3)

    def p_matrix(self) -> np.ndarray:
        return np.asarray(self.p).reshape(3, 4)

    def is_distorted(self) -> bool:
        return bool(np.any(np.asarray(self.d) != 0))

    def rotates(self) -> bool:
        return not np.allclose(np.asarray(self.r).reshape(3, 3), np.eye(3))

    def needs_rectification(self, mode: str) -> bool:
        if mode not in RECTIFY_MODES:
            raise CalibrationError(f"rectify must be one of {RECTIFY_MODES}, not {mode!r}")
        return mode == "always" or (mode == "auto" and (self.is_distorted() or self.rotates()))

    def image_size(self) -> tuple[int, int]:
        """(width, height) of the images this calibration describes, after binning and ROI."""
        width = self.roi[2] or self.width
        height = self.roi[3] or self.height
        return width // max(1, self.binning_x), height // max(1, self.binning_y)

    def _intrinsics_of(self, matrix: np.ndarray) -> Intrinsics:
        """The pinhole camera of the (binned, cropped) image for a full-sensor 3 x 3 camera matrix."""
        bx, by = max(1, self.binning_x), max(1, self.binning_y)
        width, height = self.image_size()
        return Intrinsics(matrix[0, 0] / bx, matrix[1, 1] / by, (matrix[0, 2] - self.roi[0]) / bx,
                          (matrix[1, 2] - self.roi[1]) / by, width, height)

    def pinhole(self) -> Intrinsics:
        """The pinhole camera of rectified images: P's when P is set, else K's."""
        p = self.p_matrix()
        return self._intrinsics_of(p[:, :3] if p.any() else self.k_matrix())

    def projection_column(self) -> tuple[float, float, float]:
        """P's fourth column (a stereo camera's baseline term) for the binned image."""
        column = self.p_matrix()[:, 3]
        return (column[0] / max(1, self.binning_x), column[1] / max(1, self.binning_y), column[2])

    def check_image(self, width: int, height: int) -> None:
        if (width, height) != self.image_size():
            crop = f", binning {self.binning_x}x{self.binning_y}, ROI {self.roi}" \
                if self.binning_x > 1 or self.binning_y > 1 or any(self.roi) else ""
            raise CalibrationError(f"camera_info is for {self.width}x{self.height}{crop}, which gives "
                                   f"{self.image_size()[0]}x{self.image_size()[1]} images; the image is "
                                   f"{width}x{height}")


class Rectifier:
    """Undistorts (and rotates) images into their calibration's pinhole camera. The OpenCV maps are
    computed once per calibration and kept while the calibration stays the same."""

    def __init__(self):
        self._calibration: CameraCalibration | None = None
        self._maps = None

    def maps(self, calibration: CameraCalibration):
        if calibration != self._calibration:
            if calibration.binning_x > 1 or calibration.binning_y > 1 or any(calibration.roi):
                raise CalibrationError("rectifying a binned or ROI image is not supported: rectify upstream "
                                       "(image_proc) and set rectify to never, or publish full images")
            size = (calibration.width, calibration.height)
            k, r = calibration.k_matrix(), np.asarray(calibration.r).reshape(3, 3)
            new_k = calibration.pinhole().matrix()
            d = np.asarray(calibration.d, dtype=np.float64)
            if calibration.distortion_model in FISHEYE_MODELS:
                self._maps = cv2.fisheye.initUndistortRectifyMap(k, d[:4], r, new_k, size, cv2.CV_16SC2)
            else:
                self._maps = cv2.initUndistortRectifyMap(k, d, r, new_k, size, cv2.CV_16SC2)
            self._calibration = calibration
        return self._maps

    def __call__(self, image: np.ndarray, calibration: CameraCalibration) -> np.ndarray:
        map1, map2 = self.maps(calibration)
        return cv2.remap(image, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
