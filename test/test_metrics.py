"""Metrics on cases worked out by hand."""
import math

import numpy as np

from hydranet_ros.training.metrics import DepthMetrics, SegmentationMetrics, garg_crop_mask


def test_segmentation_metrics_by_hand():
    # target: 0 0 1 1 / 255 ignored; prediction: 0 1 1 1
    metrics = SegmentationMetrics(3)
    metrics.update(np.array([[0, 1, 1, 1, 2]]), np.array([[0, 0, 1, 1, 255]]))
    s = metrics.summary()
    # class 0: TP 1, FP 0, FN 1 -> 1/2; class 1: TP 2, FP 1, FN 0 -> 2/3; class 2 absent -> no IoU
    assert math.isclose(s["per_class_iou"][0], 0.5) and math.isclose(s["per_class_iou"][1], 2 / 3)
    assert s["per_class_iou"][2] is None
    assert math.isclose(s["miou"], (0.5 + 2 / 3) / 2)
    assert math.isclose(s["pixel_accuracy"], 3 / 4)


def test_depth_metrics_by_hand():
    metrics = DepthMetrics(max_depth=10.0)
    target = np.array([1.0, 2.0, 4.0, 0.0, 20.0])   # 0 invalid, 20 beyond the cap
    prediction = np.array([2.0, 2.0, 3.0, 5.0, 5.0])
    metrics.update(prediction, target)
    s = metrics.summary()
    assert s["pixels"] == 3
    assert math.isclose(s["rmse"], math.sqrt((1 + 0 + 1) / 3))
    assert math.isclose(s["abs_rel"], (1 / 1 + 0 + 1 / 4) / 3)
    assert math.isclose(s["sq_rel"], (1 / 1 + 0 + 1 / 4) / 3)
    assert math.isclose(s["rmse_log"], math.sqrt((math.log(2) ** 2 + 0 + math.log(4 / 3) ** 2) / 3))
    # ratios 2, 1, 4/3: below 1.25 only 1; below 1.5625 also 4/3; 2 is above 1.953
    assert math.isclose(s["delta1"], 1 / 3) and math.isclose(s["delta2"], 2 / 3) and math.isclose(s["delta3"], 2 / 3)


def test_garg_crop_covers_the_lower_centre():
    mask = garg_crop_mask(375, 1242)
    assert mask[300, 600] and not mask[10, 600] and not mask[300, 5]
