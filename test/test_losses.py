"""berHu and the joint loss, including samples that carry only one label."""
import numpy as np
import torch

from hydranet_ros.training.losses import berhu_loss, joint_loss, median_frequency_weights, segmentation_loss


def test_berhu_is_l1_below_c_and_scaled_l2_above():
    target = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])  # last pixel has no depth
    prediction = torch.tensor([[[1.1, 2.0, 0.0, 100.0]]])[:, None]  # 1 x 1 x 1 x 4
    # residuals 0.1, 1, 1 -> c = 0.2; 0.1 <= c -> 0.1; 1 > c -> (1 + 0.04) / 0.4 = 2.6
    expected = (0.1 + 2.6 + 2.6) / 3
    assert torch.isclose(berhu_loss(prediction, target), torch.tensor(expected))


def test_missing_labels_contribute_nothing_and_report_no_loss():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    depth = torch.rand(2, 1, 4, 4, requires_grad=True)
    batch = {"segmentation": torch.full((2, 4, 4), 255, dtype=torch.long), "depth": torch.zeros(2, 4, 4)}
    total, parts = joint_loss({"segmentation": logits, "depth": depth}, batch)
    assert parts == {}  # nothing to report: no batch loss of 0.000 for labels it does not have
    total.backward()
    assert logits.grad.abs().sum() == 0 and depth.grad.abs().sum() == 0


def test_a_sample_without_segmentation_does_not_change_the_segmentation_loss():
    logits = torch.randn(1, 3, 4, 4)
    labelled = torch.randint(0, 3, (1, 4, 4))
    both = segmentation_loss(torch.cat([logits, torch.randn(1, 3, 4, 4)]),
                             torch.cat([labelled, torch.full((1, 4, 4), 255)]))
    assert torch.isclose(both, segmentation_loss(logits, labelled))


def test_class_weights_give_the_weighted_mean_and_ones_change_nothing():
    logits = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, 1], [2, 255]]])
    per_pixel = -torch.log_softmax(logits, 1)[0]  # 3 x 2 x 2
    losses = torch.stack([per_pixel[0, 0, 0], per_pixel[1, 0, 1], per_pixel[2, 1, 0]])
    weights = torch.tensor([1.0, 4.0, 0.5])
    expected = (losses * weights).sum() / weights.sum()
    assert torch.isclose(segmentation_loss(logits, target, weights), expected)
    assert torch.isclose(segmentation_loss(logits, target, torch.ones(3)), segmentation_loss(logits, target))
    assert segmentation_loss(logits, torch.full((1, 2, 2), 255), weights) == 0


def test_median_frequency_weights_follow_eigen_and_fergus():
    # class 0: 28 of the 32 pixels of the two images it is in; class 1: 4 of the 16 of its one image;
    # class 2 never occurs. Median frequency (0.875 + 0.25) / 2 = 0.5625.
    weights = median_frequency_weights(np.array([28.0, 4.0, 0.0]), np.array([32.0, 16.0, 0.0]))
    assert np.allclose(weights, [0.5625 / 0.875, 0.5625 / 0.25, 0.0])
